//! `Direction`: one direction of a node's access link, served at a constant rate
//! (`LinkFifo`) or at a rate trace's opportunities (`TraceFifo`). A reshape that changes
//! the kind keeps the packets already accepted where they are.

use std::num::NonZeroU64;
use std::sync::Arc;

use super::{Dropped, LinkFifo, Nanos, TraceFifo};
use crate::experiment::{LinkTrace, MIN_DEFAULT_QUEUE, default_queue_limit};

#[derive(Clone, Debug)]
pub enum Direction {
    Rate(LinkFifo),
    Trace(TraceFifo),
}

impl Default for Direction {
    fn default() -> Self {
        Direction::Rate(LinkFifo::default())
    }
}

/// What a direction should be after a reshape.
pub enum Service {
    /// A constant rate (`None`: unlimited) with its queue limit.
    Rate {
        rate: Option<NonZeroU64>,
        limit: Option<u64>,
    },
    /// A rate trace from `offset` into it; `queue` is the explicit limit, if any.
    Trace {
        trace: Arc<LinkTrace>,
        offset: Nanos,
        queue: Option<u64>,
    },
}

impl Direction {
    /// Reshapes at `now`. Packets already accepted keep their departures; a trace that was
    /// already playing from the same offset goes on, any other starts at `now`.
    pub fn set(&mut self, now: Nanos, service: Service) {
        match (&mut *self, service) {
            (Direction::Rate(fifo), Service::Rate { rate, limit }) => {
                fifo.set_rate(rate);
                fifo.set_limit(limit);
            }
            (
                Direction::Trace(fifo),
                Service::Trace {
                    trace,
                    offset,
                    queue,
                },
            ) if fifo.plays(&trace, offset) => {
                fifo.set_limit(Some(trace_queue_limit(&trace, queue)));
            }
            (
                _,
                Service::Trace {
                    trace,
                    offset,
                    queue,
                },
            ) => {
                let (floor, backlog) = (self.busy_until(), self.backlog_bytes(now));
                let limit = Some(trace_queue_limit(&trace, queue));
                if let Some(fifo) = TraceFifo::new(trace, now, offset, limit, floor, backlog) {
                    *self = Direction::Trace(fifo);
                }
            }
            (Direction::Trace(_), Service::Rate { rate, limit }) => {
                let floor = self.busy_until();
                *self = Direction::Rate(LinkFifo::starting_at(rate, limit, floor));
            }
        }
    }

    pub fn offer(&mut self, now: Nanos, len: u64) -> Result<Nanos, Dropped> {
        match self {
            Direction::Rate(f) => f.offer(now, len),
            Direction::Trace(f) => f.offer(now, len),
        }
    }

    pub fn busy_until(&self) -> Nanos {
        match self {
            Direction::Rate(f) => f.busy_until(),
            Direction::Trace(f) => f.busy_until(),
        }
    }

    pub fn backlog_bytes(&mut self, now: Nanos) -> u64 {
        match self {
            Direction::Rate(f) => f.backlog_bytes(now),
            Direction::Trace(f) => f.backlog_bytes(now),
        }
    }
}

/// A trace-driven direction's queue limit: the explicit one, or the default of a link at
/// the trace's mean rate (what it sends in 100 ms, at least 64 KiB).
fn trace_queue_limit(trace: &LinkTrace, explicit: Option<u64>) -> u64 {
    explicit.unwrap_or_else(|| match trace {
        LinkTrace::Rate(r) => {
            NonZeroU64::new(r.mean_rate() as u64).map_or(MIN_DEFAULT_QUEUE, default_queue_limit)
        }
        LinkTrace::Delay(_) => MIN_DEFAULT_QUEUE,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::RateTrace;
    use crate::units::MS;

    fn trace(ms: &[u64]) -> Arc<LinkTrace> {
        Arc::new(LinkTrace::Rate(RateTrace::new(ms.to_vec()).unwrap()))
    }

    #[test]
    fn switching_kinds_keeps_accepted_packets_in_place() {
        // 1 mbit/s: 1000 B take 8 ms.
        let mut d = Direction::Rate(LinkFifo::new(NonZeroU64::new(1_000_000), None));
        assert_eq!(d.offer(0, 1000), Ok(8 * MS));
        // A trace with an opportunity every ms, from 1 ms on: the next packet waits for the
        // rate's work to end at 8 ms, then takes the opportunity at 9 ms.
        let t = trace(&[1]);
        d.set(
            MS,
            Service::Trace {
                trace: t.clone(),
                offset: 0,
                queue: None,
            },
        );
        assert_eq!(d.backlog_bytes(MS), 875);
        assert_eq!(d.offer(MS, 1500), Ok(9 * MS));
        // The same trace and offset again goes on; back to a rate starts after 9 ms.
        d.set(
            2 * MS,
            Service::Trace {
                trace: t,
                offset: 0,
                queue: Some(10_000),
            },
        );
        assert_eq!(d.offer(2 * MS, 1500), Ok(10 * MS));
        d.set(
            3 * MS,
            Service::Rate {
                rate: NonZeroU64::new(1_000_000),
                limit: None,
            },
        );
        assert_eq!(d.offer(3 * MS, 1000), Ok(18 * MS));
    }

    #[test]
    fn a_trace_default_queue_is_100_ms_at_its_mean_rate() {
        // 1 opportunity per ms = 12 Mbit/s: 150 kB in 100 ms.
        assert_eq!(trace_queue_limit(&trace(&[1]), None), 150_000);
        assert_eq!(trace_queue_limit(&trace(&[1000]), None), MIN_DEFAULT_QUEUE);
        assert_eq!(trace_queue_limit(&trace(&[1]), Some(7)), 7);
    }
}
