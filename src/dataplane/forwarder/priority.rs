//! The data-plane thread's scheduling: it releases packets at their deadlines, so it asks for
//! a real-time priority above the programs it emulates links for (and whatever else the
//! machine runs), or failing that the highest nice level it may take. The kernel's real-time
//! throttling (95 % of each second by default) keeps a flood from freezing the machine.

/// Low among real-time priorities: above every normal thread, below the kernel's own.
pub const FIFO_PRIORITY: i32 = 10;

/// How the thread ended up scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduling {
    RealTime,
    Nice(i32),
    Normal,
}

/// Raises the calling thread's priority as far as it is allowed.
pub fn raise() -> Scheduling {
    let param = libc::sched_param {
        sched_priority: FIFO_PRIORITY,
    };
    // SAFETY: `param` is a valid sched_param for the call; pid 0 is the calling thread.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } == 0 {
        return Scheduling::RealTime;
    }
    for nice in [-10, -5] {
        // SAFETY: plain syscall on the calling thread (who 0 with PRIO_PROCESS is the caller's
        // thread id on Linux, where nice values are per thread).
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) } == 0 {
            return Scheduling::Nice(nice);
        }
    }
    Scheduling::Normal
}
