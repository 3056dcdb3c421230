//! Ctrl-C and SIGTERM: the handler only raises a flag; sleeps, waits and the script watchdog
//! check it, so the run stops at the next step and every lab is removed on the way out.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Installs the handler for SIGINT and SIGTERM (once per process is enough; again is harmless).
pub fn install() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe, and no
        // other code of the process relies on the previous disposition of these signals.
        // Installing it cannot fail for these two signals, so the result is not needed.
        let _ = unsafe { sigaction(sig, &action) };
    }
}

/// True once Ctrl-C or SIGTERM arrived.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}
