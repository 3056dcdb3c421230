//! The traffic counters a script reads while the run goes (`node.rx_bytes`): one reading of
//! every node, reused for a short while, so that a loop over a thousand nodes asks each worker
//! once, not a thousand times.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::experiment::NodeCounters;
use crate::units::Nanos;

/// How long a reading serves, in experiment time: short next to a second of traffic, long
/// next to a loop over many nodes.
pub const FRESH_FOR: Nanos = 10_000_000;

/// The last reading of every node's counters and when it was taken.
#[derive(Debug, Default)]
pub struct LiveCounters {
    reading: Option<(Nanos, HashMap<Ipv4Addr, NodeCounters>)>,
}

impl LiveCounters {
    /// Whether the last reading still serves at `now`.
    pub fn is_fresh(&self, now: Nanos) -> bool {
        self.reading
            .as_ref()
            .is_some_and(|(at, _)| now >= *at && now - *at < FRESH_FOR)
    }

    /// Keeps `reading`, taken at `now`.
    pub fn store(&mut self, now: Nanos, reading: Vec<(Ipv4Addr, NodeCounters)>) {
        self.reading = Some((now, reading.into_iter().collect()));
    }

    /// The counters of `ip` in the last reading; zero for a node it did not have (a dry-run
    /// has no data plane, so its readings are empty).
    pub fn of(&self, ip: Ipv4Addr) -> NodeCounters {
        self.reading
            .as_ref()
            .and_then(|(_, by_ip)| by_ip.get(&ip).copied())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn received(bytes: u64) -> NodeCounters {
        NodeCounters {
            recv_bytes: bytes,
            recv_packets: 1,
            ..NodeCounters::ZERO
        }
    }

    #[test]
    fn a_reading_serves_for_fresh_for_then_expires() {
        let mut live = LiveCounters::default();
        assert!(!live.is_fresh(0), "no reading yet");
        live.store(1_000, vec![(A, received(500))]);
        assert!(live.is_fresh(1_000));
        assert!(live.is_fresh(1_000 + FRESH_FOR - 1));
        assert!(!live.is_fresh(1_000 + FRESH_FOR));
        assert!(
            !live.is_fresh(999),
            "a reading from the future does not serve"
        );
        assert_eq!(live.of(A), received(500));
    }

    #[test]
    fn a_node_missing_from_the_reading_counts_zero() {
        let mut live = LiveCounters::default();
        assert_eq!(live.of(A), NodeCounters::ZERO);
        live.store(0, vec![(A, received(7))]);
        assert_eq!(live.of(B), NodeCounters::ZERO);
        live.store(FRESH_FOR, vec![(B, received(9))]);
        assert_eq!(
            live.of(A),
            NodeCounters::ZERO,
            "a new reading replaces the old"
        );
        assert_eq!(live.of(B), received(9));
    }
}
