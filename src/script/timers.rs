//! `at`/`every` callbacks on the experiment clock: a queue ordered by due time, then by the
//! order they were scheduled. Generic over the callback so it is tested without Rhai.

use std::collections::{BTreeMap, HashMap};

use crate::units::Nanos;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(pub u64);

#[derive(Debug)]
struct Timer<T> {
    callback: T,
    period: Option<Nanos>,
}

#[derive(Debug)]
pub struct Timers<T> {
    /// (due, sequence) → timer; the sequence keeps ties in scheduling order.
    queue: BTreeMap<(Nanos, u64), TimerId>,
    timers: HashMap<TimerId, (Timer<T>, (Nanos, u64))>,
    next_seq: u64,
}

impl<T> Default for Timers<T> {
    fn default() -> Self {
        Timers {
            queue: BTreeMap::new(),
            timers: HashMap::new(),
            next_seq: 0,
        }
    }
}

impl<T: Clone> Timers<T> {
    /// Schedules `callback` at `due`, then every `period` after it if given (period > 0).
    pub fn schedule(&mut self, due: Nanos, period: Option<Nanos>, callback: T) -> TimerId {
        let id = TimerId(self.next_seq);
        let key = (due, self.next_seq);
        self.next_seq += 1;
        self.queue.insert(key, id);
        self.timers.insert(id, (Timer { callback, period }, key));
        id
    }

    /// Cancels a timer; returns false when it had already run (one-shot) or was cancelled.
    pub fn cancel(&mut self, id: TimerId) -> bool {
        match self.timers.remove(&id) {
            Some((_, key)) => {
                self.queue.remove(&key);
                true
            }
            None => false,
        }
    }

    pub fn is_pending(&self, id: TimerId) -> bool {
        self.timers.contains_key(&id)
    }

    pub fn pending(&self) -> usize {
        self.timers.len()
    }

    /// Takes the earliest timer due at or before `until`: its due time and callback. A
    /// repeating timer is scheduled again one period later (after timers already due then).
    pub fn pop_due(&mut self, until: Nanos) -> Option<(Nanos, TimerId, T)> {
        let (&key, &id) = self.queue.iter().next()?;
        if key.0 > until {
            return None;
        }
        self.queue.remove(&key);
        let (timer, _) = self.timers.remove(&id)?;
        let callback = timer.callback.clone();
        if let Some(period) = timer.period {
            let next = (key.0.saturating_add(period), self.next_seq);
            self.next_seq += 1;
            self.queue.insert(next, id);
            self.timers.insert(id, (timer, next));
        }
        Some((key.0, id, callback))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(t: &mut Timers<&'static str>, until: Nanos) -> Vec<(Nanos, &'static str)> {
        std::iter::from_fn(|| t.pop_due(until).map(|(at, _, cb)| (at, cb))).collect()
    }

    #[test]
    fn time_order_then_schedule_order() {
        let mut t = Timers::default();
        t.schedule(20, None, "b");
        t.schedule(10, None, "a");
        t.schedule(20, None, "c");
        t.schedule(30, None, "late");
        assert_eq!(drain(&mut t, 25), vec![(10, "a"), (20, "b"), (20, "c")]);
        assert_eq!(t.pending(), 1);
    }

    #[test]
    fn every_repeats_and_cancels() {
        let mut t = Timers::default();
        let id = t.schedule(10, Some(10), "tick");
        t.schedule(20, None, "once");
        assert_eq!(
            drain(&mut t, 30),
            vec![(10, "tick"), (20, "once"), (20, "tick"), (30, "tick")]
        );
        assert!(t.cancel(id));
        assert!(!t.cancel(id));
        assert!(drain(&mut t, 100).is_empty());
    }
}
