//! Experiment time on a real machine: nanoseconds of CLOCK_MONOTONIC since a clock started.
//! Each party starts its own: the controller one for the experiment (script time, event
//! times), each worker one for its lab (its data plane's packet times and timers, its process
//! deadlines). They need not agree: a worker's timers run on its own clock only, and a packet
//! sent to another worker carries the delay it still has, not a time (`dataplane::encap`).

use nix::time::{ClockId, clock_gettime};

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
    // CLOCK_MONOTONIC exists on every Linux, and the vDSO reads it without a system call.
    let ts = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC is always there");
    ts.tv_sec() as Nanos * 1_000_000_000 + ts.tv_nsec() as Nanos
}
