//! The controller's real clock: experiment time on the machine's monotonic clock, slept in
//! short naps so that process exits are recorded and Ctrl-C is noticed on the way.

use std::time::Duration;

use crate::clock::MonotonicClock;
use crate::experiment::Clock;
use crate::units::{MS, Nanos};

/// Experiment time on the wall clock; sleeps end early on Ctrl-C.
pub struct RealClock {
    clock: MonotonicClock,
}

impl RealClock {
    pub fn new(clock: MonotonicClock) -> Self {
        RealClock { clock }
    }
}

impl Clock for RealClock {
    fn now(&self) -> Nanos {
        self.clock.now()
    }

    fn sleep_until(&mut self, t: Nanos) {
        // One short nap: the caller records exits and checks Ctrl-C between naps. The lab's
        // precise timing lives in the data plane, not here.
        // After Ctrl-C the naps are 1 ms: short, yet no busy loop while the last exits come.
        let nap = if crate::interrupt::requested() {
            MS
        } else {
            20 * MS
        };
        let now = self.clock.now();
        if now < t {
            std::thread::sleep(Duration::from_nanos((t - now).min(nap)));
        }
    }
}
