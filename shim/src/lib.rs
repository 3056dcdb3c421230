//! # The bind shim: every IPv4 socket of a program speaks as its node
//!
//! A virtual node of p2plab is an IPv4 address. The process supervisor starts each program with
//! `LD_PRELOAD=<abs path of libp2plab_shim.so>` and `BINDIP=<node address>` (the contract is
//! in [`env`](mod@env)); this library then makes every IPv4 socket of that unmodified program,
//! and of the children it forks or executes, use the node's address.
//!
//! ## What each call does (the one place that says it)
//!
//! With `$BINDIP` unset, empty, unparsable or `0.0.0.0`, every call goes straight through.
//! Otherwise, only stream and datagram sockets (`SO_TYPE`) of `AF_INET`, and dual-stack
//! (`IPV6_V6ONLY` off) `AF_INET6`, are touched; Unix, netlink, raw and IPv6-only sockets never:
//!
//! | call | when | what happens first |
//! |---|---|---|
//! | `bind` | address `0.0.0.0` | the address becomes `$BINDIP`, port kept |
//! | `bind` | address `::` on a dual-stack socket | the address becomes `::ffff:$BINDIP`, port kept |
//! | `listen` | socket unbound (wildcard, port 0) | bind to `$BINDIP:0` (`[::ffff:$BINDIP]:0`) |
//! | `connect`, `sendto`, `sendmsg`, `sendmmsg` | socket unbound, destination IPv4 or v4-mapped, not 127.0.0.0/8 | `IP_BIND_ADDRESS_NO_PORT`, then bind to `$BINDIP:0` (`[::ffff:$BINDIP]:0`) |
//!
//! A specific address given to `bind` is left alone (it may be wrong for the node: the program
//! asked for it). `sendmmsg` looks at the destinations of its (at most 1024) messages and binds
//! if any of them qualifies. `IP_BIND_ADDRESS_NO_PORT` lets the kernel pick the port at connect
//! time from the whole 4-tuple, so many connections do not exhaust the ephemeral ports.
//!
//! **Loopback.** A destination in 127.0.0.0/8 (plain or v4-mapped) does not bind the socket:
//! loopback is the machine, shared by every node on it, and a program must keep reaching a local
//! daemon (a resolver on 127.0.0.53) as before. A socket that first talks to loopback stays on
//! the wildcard afterwards.
//!
//! **IPv6.** A dual-stack `::` listener would accept on every address of the namespace, so it is
//! narrowed to `::ffff:$BINDIP`: IPv4 traffic to the node reaches it, native IPv6 no longer
//! does. Native IPv6 (IPv6-only sockets, native destinations) is not isolated at all: the lab is
//! IPv4.
//!
//! **Errors.** `errno` is saved before any extra system call and restored before the real call,
//! so the caller sees the real call's `errno` (or its own value, on success). If binding to the
//! node fails before `connect`/`send*`/`listen` (the address is not on this machine, say), the
//! call fails with that `bind` error instead of speaking from another address: a node never
//! leaks traffic from an address that is not its own.
//!
//! **Processes.** The only state is the node address and the real functions, both in atomics
//! filled by a constructor when the library loads, before `main`. A forked child inherits them
//! as they are and needs nothing re-initialised; an exec'd program loads the shim again because
//! `LD_PRELOAD` and `BINDIP` stay in its environment.
//!
//! ## Careful by construction
//!
//! - No allocation, lock or I/O besides the socket system calls in an interposed call; the
//!   `dlsym(RTLD_NEXT, …)` lookups happen once, in the constructor (`real.rs`).
//! - No panics: no indexing, unwrap or overflowing arithmetic on the paths of interposed calls.
//!   Should one happen anyway, an `extern "C"` function aborts rather than unwind into C.
//! - Caller pointers are read only within the lengths the caller gave. A non-null pointer that
//!   is not readable crashes where the kernel would have returned `EFAULT`.
//! - Each socket call that can bind costs one `getsockname(2)`; the first one of a socket adds
//!   `getsockopt`, `setsockopt` and `bind`.
//!
//! ## What it cannot reach
//!
//! Statically linked programs have no dynamic loader, so `LD_PRELOAD` never runs (the
//! supervisor warns about them). Go programs make their socket system calls directly, cgo or
//! not, so even a dynamically linked Go binary bypasses the shim. Setuid/setcap programs run
//! in secure-execution mode, where the loader ignores such a preload. Nor are raw `syscall(2)`,
//! io_uring, or children of a program that clears its environment before exec'ing them
//! reached. For all of these, a cgroup-BPF `bind4`/`connect4` program would be the fix. A
//! wildcard bind meant to receive broadcast or multicast now receives only the node's unicast.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod addr;
pub mod env;
mod real;

use core::ffi::{CStr, c_int, c_uint, c_void};
use core::mem::{size_of, zeroed};
use core::ptr;
use core::sync::atomic::{AtomicU32, Ordering};

use libc::{mmsghdr, msghdr, size_t, sockaddr, sockaddr_storage, socklen_t, ssize_t};

use addr::{Node, SockAddr};

/// `$BINDIP` as `in_addr.s_addr`; 0 when the shim passes everything through.
static NODE: AtomicU32 = AtomicU32::new(0);

/// The most messages one `sendmmsg(2)` handles (`UIO_MAXIOV`).
const MAX_MMSG: c_uint = 1024;

/// Runs when the library is loaded, before the program's `main` (glibc calls every
/// `.init_array` entry of a loaded object).
#[used]
#[unsafe(link_section = ".init_array")]
static CONSTRUCTOR: extern "C" fn() = load;

extern "C" fn load() {
    real::resolve_all();
    // SAFETY: a NUL-terminated name; no other thread changes the environment this early.
    let value = unsafe { libc::getenv(env::BINDIP_C.as_ptr()) };
    if value.is_null() {
        return;
    }
    // SAFETY: getenv returned a NUL-terminated string.
    let text = unsafe { CStr::from_ptr(value) }.to_bytes();
    if let Some(node) = addr::parse_node(text) {
        NODE.store(node.0, Ordering::Release);
    }
}

fn node() -> Option<Node> {
    let value = NODE.load(Ordering::Acquire);
    (value != 0).then_some(Node(value))
}

fn errno() -> c_int {
    // SAFETY: __errno_location returns this thread's errno, always valid.
    unsafe { *libc::__errno_location() }
}

pub(crate) fn set_errno(value: c_int) {
    // SAFETY: as in `errno`.
    unsafe { *libc::__errno_location() = value };
}

/// `bind(2)`, with a wildcard address replaced by the node's (see the table above).
///
/// # Safety
/// The contract of `bind(2)`: `addr` points to `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    if let Some(node) = node() {
        let saved = errno();
        // SAFETY: `addr` has `len` readable bytes (the caller's contract).
        let wanted = unsafe { SockAddr::read(addr, len) };
        let ours = wanted
            .node_instead_of_wildcard(node)
            .filter(|_| is_node_socket(fd, &wanted));
        set_errno(saved);
        if let Some((addr, len)) = ours.as_ref().and_then(SockAddr::as_raw) {
            // SAFETY: `addr` points into `ours`, alive until the call returns.
            return unsafe { real::bind(fd, addr, len) };
        }
    }
    // SAFETY: the caller's contract.
    unsafe { real::bind(fd, addr, len) }
}

/// `listen(2)`, binding an unbound socket to the node first.
///
/// # Safety
/// None beyond `listen(2)`'s; `unsafe` for symmetry with the other interposed calls.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn listen(fd: c_int, backlog: c_int) -> c_int {
    if let Some(node) = node() {
        let saved = errno();
        if let Err(e) = bind_if_unbound(fd, node, false) {
            set_errno(e);
            return -1;
        }
        set_errno(saved);
    }
    // SAFETY: plain integers.
    unsafe { real::listen(fd, backlog) }
}

/// `connect(2)`, binding an unbound socket to the node first unless `addr` is loopback.
///
/// # Safety
/// The contract of `connect(2)`: `addr` points to `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    // SAFETY: the caller's contract.
    if let Err(e) = unsafe { bind_before_sending(fd, [(addr, len)]) } {
        set_errno(e);
        return -1;
    }
    // SAFETY: the caller's contract.
    unsafe { real::connect(fd, addr, len) }
}

/// `sendto(2)`, binding an unbound socket to the node first unless `addr` is loopback.
///
/// # Safety
/// The contract of `sendto(2)`: `buf` has `n` readable bytes, `addr` is null or has `len`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sendto(
    fd: c_int,
    buf: *const c_void,
    n: size_t,
    flags: c_int,
    addr: *const sockaddr,
    len: socklen_t,
) -> ssize_t {
    // SAFETY: the caller's contract.
    if let Err(e) = unsafe { bind_before_sending(fd, [(addr, len)]) } {
        set_errno(e);
        return -1;
    }
    // SAFETY: the caller's contract.
    unsafe { real::sendto(fd, buf, n, flags, addr, len) }
}

/// `sendmsg(2)`, binding an unbound socket to the node first unless `msg_name` is loopback.
///
/// # Safety
/// The contract of `sendmsg(2)`: `msg` points to a valid `msghdr`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t {
    if !msg.is_null() {
        // SAFETY: `msg` points to a msghdr (the caller's contract).
        let hdr = unsafe { ptr::read_unaligned(msg) };
        let dest = (
            hdr.msg_name.cast_const().cast::<sockaddr>(),
            hdr.msg_namelen,
        );
        // SAFETY: `msg_name` has `msg_namelen` bytes (the caller's contract).
        if let Err(e) = unsafe { bind_before_sending(fd, [dest]) } {
            set_errno(e);
            return -1;
        }
    }
    // SAFETY: the caller's contract.
    unsafe { real::sendmsg(fd, msg, flags) }
}

/// `sendmmsg(2)`, binding an unbound socket to the node first if a destination is not loopback.
///
/// # Safety
/// The contract of `sendmmsg(2)`: `msgs` points to `vlen` valid `mmsghdr`s.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sendmmsg(
    fd: c_int,
    msgs: *mut mmsghdr,
    vlen: c_uint,
    flags: c_int,
) -> c_int {
    if !msgs.is_null() {
        let dests = (0..vlen.min(MAX_MMSG) as usize).map(|i| {
            // SAFETY: `i < vlen`, so `msgs.add(i)` is one of the caller's messages.
            let hdr = unsafe { ptr::read_unaligned(ptr::addr_of!((*msgs.add(i)).msg_hdr)) };
            (
                hdr.msg_name.cast_const().cast::<sockaddr>(),
                hdr.msg_namelen,
            )
        });
        // SAFETY: each `msg_name` has `msg_namelen` bytes (the caller's contract).
        if let Err(e) = unsafe { bind_before_sending(fd, dests) } {
            set_errno(e);
            return -1;
        }
    }
    // SAFETY: the caller's contract.
    unsafe { real::sendmmsg(fd, msgs, vlen, flags) }
}

/// Before a connect or send: if one of `dests` needs the node as source, binds the socket to the
/// node when it is still unbound. `Err(errno)` if that bind failed; `errno` is left as it was.
///
/// # Safety
/// Each destination pointer is null or has its length in readable bytes.
unsafe fn bind_before_sending(
    fd: c_int,
    dests: impl IntoIterator<Item = (*const sockaddr, socklen_t)>,
) -> Result<(), c_int> {
    let Some(node) = node() else {
        return Ok(());
    };
    let saved = errno();
    let mut dests = dests.into_iter();
    // SAFETY: the caller's contract.
    let result =
        if dests.any(|(addr, len)| unsafe { SockAddr::read(addr, len) }.needs_node_source()) {
            bind_if_unbound(fd, node, true)
        } else {
            Ok(())
        };
    set_errno(saved);
    result
}

/// Binds `fd` to the node with port 0 if it is an unbound socket the shim handles, setting
/// `IP_BIND_ADDRESS_NO_PORT` first when `no_port`. `Err(errno)` if the bind failed; a socket
/// another thread bound meanwhile (`EINVAL`) is fine. Clobbers `errno`.
fn bind_if_unbound(fd: c_int, node: Node, no_port: bool) -> Result<(), c_int> {
    let local = local_addr(fd);
    if !local.is_unbound() || !is_node_socket(fd, &local) {
        return Ok(());
    }
    if no_port {
        // Best effort: the bind below is what matters.
        setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, 1);
    }
    let source = local.node_source(node);
    let Some((addr, len)) = source.as_raw() else {
        return Ok(());
    };
    // SAFETY: `addr` points into `source`, alive until the call returns.
    match unsafe { real::bind(fd, addr, len) } {
        0 => Ok(()),
        _ => match errno() {
            libc::EINVAL => Ok(()),
            e => Err(e),
        },
    }
}

/// True for the sockets the shim binds: stream or datagram, and for `addr` of IPv6, dual-stack.
fn is_node_socket(fd: c_int, addr: &SockAddr) -> bool {
    let stream_or_dgram = matches!(
        getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TYPE),
        Some(libc::SOCK_STREAM | libc::SOCK_DGRAM)
    );
    stream_or_dgram
        && match addr {
            SockAddr::V4(_) => true,
            SockAddr::V6(_) => getsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY) == Some(0),
            SockAddr::Other => false,
        }
}

/// The socket's own address, or [`SockAddr::Other`] if it has none we handle (not a socket).
fn local_addr(fd: c_int) -> SockAddr {
    // SAFETY: sockaddr_storage is plain old data, all zeroes is valid.
    let mut storage: sockaddr_storage = unsafe { zeroed() };
    let mut len = size_of::<sockaddr_storage>() as socklen_t;
    let addr = ptr::addr_of_mut!(storage).cast::<sockaddr>();
    // SAFETY: `addr` has `len` writable bytes.
    if unsafe { libc::getsockname(fd, addr, &mut len) } != 0 {
        return SockAddr::Other;
    }
    let len = len.min(size_of::<sockaddr_storage>() as socklen_t);
    // SAFETY: the kernel wrote `len` bytes (at most the storage's size).
    unsafe { SockAddr::read(addr, len) }
}

fn getsockopt_int(fd: c_int, level: c_int, name: c_int) -> Option<c_int> {
    let mut value: c_int = 0;
    let mut len = size_of::<c_int>() as socklen_t;
    // SAFETY: `value` has `len` writable bytes.
    let rc =
        unsafe { libc::getsockopt(fd, level, name, ptr::addr_of_mut!(value).cast(), &mut len) };
    (rc == 0).then_some(value)
}

fn setsockopt_int(fd: c_int, level: c_int, name: c_int, value: c_int) {
    let len = size_of::<c_int>() as socklen_t;
    // SAFETY: `value` has `len` readable bytes.
    unsafe { libc::setsockopt(fd, level, name, ptr::addr_of!(value).cast(), len) };
}
