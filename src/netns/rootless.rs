//! Rootless labs: an unprivileged user becomes root of a new user namespace with a new network
//! namespace of its own, where it may configure addresses, routes and sysctls. This must
//! happen before the process has a second thread (the kernel refuses `CLONE_NEWUSER` then).

use std::sync::atomic::{AtomicBool, Ordering};

use nix::sched::{CloneFlags, unshare};
use nix::unistd::{getegid, geteuid};

static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Set when the namespaces were made but the uid/gid maps could not be written: the process
/// then has capabilities in a namespace where it maps to nobody, and must not try a lab.
static HALF_ENTERED: AtomicBool = AtomicBool::new(false);

/// True if `enter` failed half-way (see `HALF_ENTERED`).
pub fn half_entered() -> bool {
    HALF_ENTERED.load(Ordering::SeqCst)
}

/// True once `enter` succeeded: the process's own network namespace is the lab.
pub fn active() -> bool {
    ACTIVE.load(Ordering::SeqCst)
}

/// Moves this (single-threaded) process into a new user and network namespace, mapped to
/// root inside. Does nothing for root. On failure (user namespaces disabled, threads already
/// running) the process stays as it was and real mode later explains what is missing.
pub fn enter() -> std::io::Result<()> {
    let (uid, gid) = (geteuid(), getegid());
    if uid.is_root() {
        return Ok(());
    }
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET)?;
    let mapped = std::fs::write("/proc/self/setgroups", "deny")
        .and_then(|()| std::fs::write("/proc/self/uid_map", format!("0 {uid} 1")))
        .and_then(|()| std::fs::write("/proc/self/gid_map", format!("0 {gid} 1")));
    match mapped {
        Ok(()) => ACTIVE.store(true, Ordering::SeqCst),
        Err(_) => HALF_ENTERED.store(true, Ordering::SeqCst),
    }
    mapped
}
