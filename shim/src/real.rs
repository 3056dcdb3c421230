//! The C library's own socket calls, found with `dlsym(RTLD_NEXT, …)` once and cached in
//! atomics. Never call `libc::bind` and friends from the shim: they would resolve to the shim.

use core::ffi::{CStr, c_int, c_uint, c_void};
use core::sync::atomic::{AtomicPtr, Ordering};

use libc::{mmsghdr, msghdr, size_t, sockaddr, socklen_t, ssize_t};

/// One symbol of the next library: its name and, once looked up, its address.
pub(crate) struct Symbol {
    name: &'static CStr,
    addr: AtomicPtr<c_void>,
}

impl Symbol {
    const fn new(name: &'static CStr) -> Symbol {
        Symbol {
            name,
            addr: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    /// The symbol's address, or null if the C library has none. The constructor resolves every
    /// symbol; the lookup here only serves calls made before it ran (another library's
    /// constructor). Racing lookups store the same value.
    fn get(&self) -> *mut c_void {
        let addr = self.addr.load(Ordering::Acquire);
        if !addr.is_null() {
            return addr;
        }
        // SAFETY: `name` is a NUL-terminated string; RTLD_NEXT is a valid pseudo-handle.
        let addr = unsafe { libc::dlsym(libc::RTLD_NEXT, self.name.as_ptr()) };
        self.addr.store(addr, Ordering::Release);
        addr
    }
}

static BIND: Symbol = Symbol::new(c"bind");
static LISTEN: Symbol = Symbol::new(c"listen");
static CONNECT: Symbol = Symbol::new(c"connect");
static SENDTO: Symbol = Symbol::new(c"sendto");
static SENDMSG: Symbol = Symbol::new(c"sendmsg");
static SENDMMSG: Symbol = Symbol::new(c"sendmmsg");

/// Looks every symbol up (from the constructor, while the process is single-threaded, so that a
/// child forked later from a multi-threaded parent never has to take the loader's lock).
pub(crate) fn resolve_all() {
    for symbol in [&BIND, &LISTEN, &CONNECT, &SENDTO, &SENDMSG, &SENDMMSG] {
        symbol.get();
    }
}

/// Defines a function that calls the C library's function of the same name (or fails with
/// ENOSYS if there is none).
macro_rules! forward {
    ($(#[$doc:meta])* $fn:ident, $symbol:ident, ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        $(#[$doc])*
        /// # Safety
        /// The same contract as the C function of that name.
        pub(crate) unsafe fn $fn($($arg: $ty),*) -> $ret {
            let addr = $symbol.get();
            if addr.is_null() {
                crate::set_errno(libc::ENOSYS);
                return -1;
            }
            // SAFETY: `addr` is the C library's function of this name, which has this signature.
            let real = unsafe {
                core::mem::transmute::<*mut c_void, unsafe extern "C" fn($($ty),*) -> $ret>(addr)
            };
            // SAFETY: the caller upholds the C function's contract.
            unsafe { real($($arg),*) }
        }
    };
}

forward!(
    /// The real `bind(2)`.
    bind, BIND, (fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int
);
forward!(
    /// The real `listen(2)`.
    listen, LISTEN, (fd: c_int, backlog: c_int) -> c_int
);
forward!(
    /// The real `connect(2)`.
    connect, CONNECT, (fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int
);
forward!(
    /// The real `sendto(2)`.
    sendto, SENDTO,
    (fd: c_int, buf: *const c_void, n: size_t, flags: c_int, addr: *const sockaddr, len: socklen_t)
        -> ssize_t
);
forward!(
    /// The real `sendmsg(2)`.
    sendmsg, SENDMSG, (fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t
);
forward!(
    /// The real `sendmmsg(2)`.
    sendmmsg, SENDMMSG, (fd: c_int, msgs: *mut mmsghdr, vlen: c_uint, flags: c_int) -> c_int
);
