//! The cap on processes running at once on one worker (`max_procs`): what stops a loop that
//! spawns without end before it exhausts the machine's memory or process ids. Processes count
//! per worker, since each machine runs its own; a program's own children do not count.

use crate::experiment::ProcId;
use crate::units::Nanos;

/// Processes one worker may run at once unless `--max-procs` says otherwise: a lab of
/// thousands of nodes, one program each, fits; a fork loop stops well before the kernel's
/// default of 32,768 process ids runs out.
pub const DEFAULT_MAX_PROCS: usize = 10_000;

/// A real clock counts a process until its exit is recorded. A virtual clock (dry-run) never
/// sees a program end by itself, so there only processes started at the current instant and
/// not ended since count: a spawn loop that never sleeps stops as in the real run, while
/// programs spawned one after another over a long dry-run do not pile up as if they all ran.
#[derive(Debug)]
pub struct ProcLimit {
    max: usize,
    /// The instant of `started` and its first process: process ids grow, so the processes
    /// started at this instant are those from `first` on.
    instant: Nanos,
    first: ProcId,
    /// Per worker, processes started at `instant` that still run.
    started: Vec<usize>,
}

impl ProcLimit {
    pub fn new(max: usize) -> Self {
        ProcLimit {
            max,
            instant: 0,
            first: ProcId(0),
            started: Vec::new(),
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Records that `proc` started on `worker` at experiment time `now`.
    pub fn started(&mut self, proc: ProcId, worker: u32, now: Nanos) {
        if now != self.instant || self.started.is_empty() {
            self.instant = now;
            self.first = proc;
            self.started.clear();
        }
        let worker = worker as usize;
        if self.started.len() <= worker {
            self.started.resize(worker + 1, 0);
        }
        self.started[worker] += 1;
    }

    /// Records that `proc`, which ran on `worker`, ended.
    pub fn exited(&mut self, proc: ProcId, worker: u32) {
        if proc >= self.first
            && let Some(n) = self.started.get_mut(worker as usize)
        {
            *n = n.saturating_sub(1);
        }
    }

    /// Whether one more process on `worker`, where `running` processes run by the records,
    /// would pass the limit.
    pub fn reached(&self, worker: u32, running: usize, now: Nanos, virtual_clock: bool) -> bool {
        let counted = if virtual_clock {
            self.started_at(worker, now)
        } else {
            running
        };
        counted >= self.max
    }

    fn started_at(&self, worker: u32, now: Nanos) -> usize {
        if now != self.instant {
            return 0;
        }
        self.started.get(worker as usize).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_clock_counts_every_running_process() {
        let limit = ProcLimit::new(2);
        assert!(!limit.reached(0, 1, 5, false));
        assert!(limit.reached(0, 2, 5, false));
    }

    #[test]
    fn a_virtual_clock_counts_those_started_at_this_instant() {
        let mut limit = ProcLimit::new(2);
        limit.started(ProcId(0), 0, 10);
        limit.started(ProcId(1), 0, 10);
        limit.started(ProcId(2), 1, 10);
        assert!(limit.reached(0, 2, 10, true));
        assert!(!limit.reached(1, 1, 10, true), "other workers count apart");
        // One of them ended (killed, waited for): it no longer counts.
        limit.exited(ProcId(1), 0);
        assert!(!limit.reached(0, 1, 10, true));
        // Later, those still "running" from before do not count, nor do their exits.
        assert!(!limit.reached(0, 500, 11, true));
        limit.started(ProcId(3), 0, 11);
        limit.exited(ProcId(0), 0);
        limit.started(ProcId(4), 0, 11);
        assert!(limit.reached(0, 502, 11, true));
    }
}
