//! Experiment time on a real machine: nanoseconds of CLOCK_MONOTONIC since the lab started.
//! The data plane and the controller share one epoch, so packet times and event times agree.

use crate::units::Nanos;

#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    epoch: Nanos,
}

impl MonotonicClock {
    /// A clock whose time 0 is now.
    pub fn start() -> Self {
        MonotonicClock {
            epoch: monotonic_ns(),
        }
    }

    pub fn now(&self) -> Nanos {
        monotonic_ns().saturating_sub(self.epoch)
    }

    /// CLOCK_MONOTONIC value of experiment time `t`, for absolute timers.
    pub fn to_monotonic(&self, t: Nanos) -> Nanos {
        self.epoch.saturating_add(t)
    }
}

fn monotonic_ns() -> Nanos {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as Nanos * 1_000_000_000 + ts.tv_nsec as Nanos
}
