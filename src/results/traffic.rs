//! `traffic.csv`: per node and per second of experiment time, what its link carried and
//! dropped. It turns readings of the data plane's running totals into per-interval rows; when
//! to take a reading is the controller's business.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::Path;

use crate::experiment::NodeCounters;
use crate::units::{Nanos, SEC};

/// The first line; report readers depend on it, column for column.
pub const HEADER: &str =
    "t,ip,sent_bytes,sent_packets,recv_bytes,recv_packets,dropped_queue,dropped_loss";

/// Writes `traffic.csv` from readings of per-node totals.
///
/// A row is `t` (the end of its interval: whole seconds 1, 2, 3..., and the run's last,
/// partial interval with three decimals) and the node's counts during the interval. A node
/// that counted nothing in an interval gets no row.
pub struct TrafficCsv {
    out: Box<dyn Write + Send>,
    /// Each node's totals at the last reading.
    previous: HashMap<Ipv4Addr, NodeCounters>,
    /// The next whole second whose row is due.
    next_second: u64,
}

impl TrafficCsv {
    /// Creates the file, unbuffered: each interval goes out in one write (see `write`).
    pub fn create(path: &Path) -> io::Result<Self> {
        Self::new(Box::new(File::create(path)?))
    }

    pub fn new(mut out: Box<dyn Write + Send>) -> io::Result<Self> {
        out.write_all(format!("{HEADER}\n").as_bytes())?;
        out.flush()?;
        Ok(TrafficCsv {
            out,
            previous: HashMap::new(),
            next_second: 1,
        })
    }

    /// True once experiment time `now` has passed the end of the interval not yet written.
    pub fn due(&self, now: Nanos) -> bool {
        now >= self.next_second.saturating_mul(SEC)
    }

    /// Writes the interval that ends at the last whole second `now` passed, from a reading
    /// taken at `now`. A reading taken late (the controller was busy for seconds) covers
    /// every second since the previous row and is written at the last of them.
    /// Returns the interval's non-zero counts, as written.
    pub fn second(
        &mut self,
        now: Nanos,
        reading: &[(Ipv4Addr, NodeCounters)],
    ) -> io::Result<Vec<(Ipv4Addr, NodeCounters)>> {
        self.next_second = now / SEC + 1;
        self.write(&second_label(now), reading)
    }

    /// Writes the run's last interval, which ends at `now` (the final reading), rounded to
    /// the millisecond like the run's end time printed at the end.
    pub fn last(
        &mut self,
        now: Nanos,
        reading: &[(Ipv4Addr, NodeCounters)],
    ) -> io::Result<Vec<(Ipv4Addr, NodeCounters)>> {
        self.write(&last_label(now), reading)
    }

    /// One interval's rows, in the reading's order, as a single write of whole lines: a
    /// process killed between two writes leaves a file that ends with a complete line.
    fn write(
        &mut self,
        t: &str,
        reading: &[(Ipv4Addr, NodeCounters)],
    ) -> io::Result<Vec<(Ipv4Addr, NodeCounters)>> {
        let mut text = String::new();
        let mut counted = Vec::new();
        for (ip, now) in reading {
            let before = self.previous.insert(*ip, *now).unwrap_or_default();
            let d = now.since(&before);
            if d == NodeCounters::ZERO {
                continue;
            }
            counted.push((*ip, d));
            let _ = writeln!(
                text,
                "{t},{ip},{},{},{},{},{},{}",
                d.sent_bytes,
                d.sent_packets,
                d.recv_bytes,
                d.recv_packets,
                d.dropped_queue,
                d.dropped_loss
            );
        }
        if !text.is_empty() {
            self.out.write_all(text.as_bytes())?;
            self.out.flush()?;
        }
        Ok(counted)
    }
}

/// The `t` of an interval that ends at the last whole second `now` passed.
pub fn second_label(now: Nanos) -> String {
    (now / SEC).to_string()
}

/// The `t` of the run's last interval, ending at `now`: seconds with three decimals, rounded
/// to the millisecond like the run's end time printed at the end.
pub fn last_label(now: Nanos) -> String {
    let ms = now.saturating_add(500_000) / 1_000_000;
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::testing::{Shared, text};

    fn sent(bytes: u64, packets: u64) -> NodeCounters {
        NodeCounters {
            sent_bytes: bytes,
            sent_packets: packets,
            ..NodeCounters::ZERO
        }
    }

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    #[test]
    fn deltas_zero_rows_and_the_last_interval() {
        let out = Shared::default();
        let mut csv = TrafficCsv::new(Box::new(out.clone())).unwrap();
        assert!(!csv.due(999_999_999));
        assert!(csv.due(SEC));
        // B is listed first: rows follow the reading's order (the lab's allocation order).
        let b1 = NodeCounters {
            recv_bytes: 100,
            recv_packets: 1,
            dropped_queue: 2,
            dropped_loss: 3,
            ..NodeCounters::ZERO
        };
        csv.second(SEC + 20_000_000, &[(B, b1), (A, sent(100, 1))])
            .unwrap();
        assert!(!csv.due(2 * SEC - 1));
        // Second 2: A sent nothing more, B did not change: no rows at all.
        csv.second(2 * SEC, &[(B, b1), (A, sent(100, 1))]).unwrap();
        csv.second(3 * SEC + 5, &[(B, b1), (A, sent(1600, 2))])
            .unwrap();
        csv.last(3 * SEC + 437_400_000, &[(B, b1), (A, sent(1700, 3))])
            .unwrap();
        assert_eq!(
            text(&out),
            format!(
                "{HEADER}\n\
                 1,10.0.0.2,0,0,100,1,2,3\n\
                 1,10.0.0.1,100,1,0,0,0,0\n\
                 3,10.0.0.1,1500,1,0,0,0,0\n\
                 3.437,10.0.0.1,100,1,0,0,0,0\n"
            )
        );
    }

    #[test]
    fn a_late_reading_covers_the_seconds_it_missed() {
        let out = Shared::default();
        let mut csv = TrafficCsv::new(Box::new(out.clone())).unwrap();
        csv.second(SEC, &[(A, sent(10, 1))]).unwrap();
        // Building nodes held the controller from 1.0 s to 4.2 s.
        assert!(csv.due(4 * SEC + 200_000_000));
        let counted = csv
            .second(4 * SEC + 200_000_000, &[(A, sent(50, 5))])
            .unwrap();
        assert_eq!(counted, [(A, sent(40, 4))], "what was written, returned");
        assert!(!csv.due(4 * SEC + 900_000_000));
        assert!(csv.due(5 * SEC));
        // A node that appears later starts from zero; the last interval may be under 1 ms.
        csv.last(5 * SEC + 400_000, &[(A, sent(50, 5)), (B, sent(7, 1))])
            .unwrap();
        assert_eq!(
            text(&out),
            format!(
                "{HEADER}\n1,10.0.0.1,10,1,0,0,0,0\n4,10.0.0.1,40,4,0,0,0,0\n\
                 5.000,10.0.0.2,7,1,0,0,0,0\n"
            )
        );
    }
}
