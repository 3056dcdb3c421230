//! Reading a results folder's `dataplane.csv` into each worker's lateness and CPU-share series:
//! how late the data plane delivered packets, and how busy its thread was, second by second.
//! Pure, one line at a time, like `series`.

use std::collections::BTreeMap;
use std::io::BufRead;

use super::ReportError;
use super::series::{Point, csv_rows, parse};

/// The header a real run writes; a dry-run writes it alone.
pub const HEADER: &str =
    "t,worker,timed_packets,late_p50_ns,late_p99_ns,late_max_ns,cpu_ns,overruns,write_errors";

/// One worker's data plane over time.
#[derive(Debug, Default, PartialEq)]
pub struct WorkerSeries {
    pub worker: u64,
    /// The 99th percentile of each interval's lateness, in ns, for intervals that timed a
    /// packet (an interval without packets has no lateness).
    pub p99: Vec<Point>,
    /// The largest lateness of each interval that timed a packet, in ns.
    pub max: Vec<Point>,
    /// The CPU time of the data-plane thread over each interval's length: 1.0 is one core.
    pub cpu_share: Vec<Point>,
}

/// `dataplane.csv`, by worker number.
#[derive(Debug, Default, PartialEq)]
pub struct DataplaneSeries {
    pub workers: Vec<WorkerSeries>,
}

impl DataplaneSeries {
    /// Whether the file had rows (a dry-run's has its header only).
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// Whether any interval timed a packet.
    pub fn timed_any(&self) -> bool {
        self.workers.iter().any(|w| !w.p99.is_empty())
    }

    /// The last interval's end over all workers.
    pub fn end(&self) -> f64 {
        let last = |w: &WorkerSeries| w.cpu_share.last().map_or(0.0, |&(t, _)| t);
        self.workers.iter().map(last).fold(0.0, f64::max)
    }
}

/// Reads `dataplane.csv` line by line. `file` names it in errors. An interval runs from the
/// worker's previous row (or 0) to its `t`, so the last, partial one and an interval that
/// covered several seconds get their true length.
pub fn read_dataplane(input: impl BufRead, file: &str) -> Result<DataplaneSeries, ReportError> {
    let mut workers: BTreeMap<u64, WorkerSeries> = BTreeMap::new();
    csv_rows(input, file, HEADER, |line, at| {
        let mut fields = line.split(',');
        let mut field = |what: &str| {
            let text = fields
                .next()
                .ok_or_else(|| at(format!("missing {what}: expected 9 fields")))?;
            parse(text, what).map_err(at)
        };
        let t = field("t")?;
        let worker = field("worker")?;
        let timed = field("timed_packets")?;
        field("late_p50_ns")?;
        let p99 = field("late_p99_ns")?;
        let max = field("late_max_ns")?;
        let cpu = field("cpu_ns")?;
        if worker < 0.0 || worker.fract() != 0.0 {
            return Err(at(format!("worker is not a worker number: {worker}")));
        }
        let w = workers
            .entry(worker as u64)
            .or_insert_with(|| WorkerSeries {
                worker: worker as u64,
                ..WorkerSeries::default()
            });
        let start = w.cpu_share.last().map_or(0.0, |&(t, _)| t);
        if t <= start {
            return Err(at(format!(
                "t {t} is not after worker {worker}'s previous t {start}"
            )));
        }
        if timed > 0.0 {
            w.p99.push((t, p99));
            w.max.push((t, max));
        }
        w.cpu_share.push((t, cpu / 1e9 / (t - start)));
        Ok(())
    })?;
    Ok(DataplaneSeries {
        workers: workers.into_values().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_become_lateness_and_cpu_share_per_worker() {
        let text = format!(
            "{HEADER}\n1,0,100,20000,90000,300000,100000000,0,0\n\
             1,1,0,0,0,0,5000000,0,0\n2,0,0,0,0,0,50000000,0,0\n\
             4,1,10,1000,2000,3000,20000000,0,0\n4.25,0,5,100,200,400,25000000,0,0\n"
        );
        let s = read_dataplane(text.as_bytes(), "dataplane.csv").unwrap();
        assert_eq!(s.workers.len(), 2);
        let w0 = &s.workers[0];
        assert_eq!(w0.worker, 0);
        // Second 2 timed nothing: no lateness point, but its CPU share.
        assert_eq!(w0.p99, [(1.0, 90000.0), (4.25, 200.0)]);
        assert_eq!(w0.max, [(1.0, 300000.0), (4.25, 400.0)]);
        // 25 ms of CPU over the 2.25 s since worker 0's row at t = 2.
        assert_eq!(
            w0.cpu_share,
            [(1.0, 0.1), (2.0, 0.05), (4.25, 0.025 / 2.25)]
        );
        let w1 = &s.workers[1];
        assert_eq!(w1.p99, [(4.0, 2000.0)]);
        // A row covering seconds 2 to 4 spreads its CPU time over three seconds.
        assert_eq!(w1.cpu_share, [(1.0, 0.005), (4.0, 0.02 / 3.0)]);
        assert!(s.timed_any());
        assert_eq!(s.end(), 4.25);
    }

    #[test]
    fn a_header_alone_is_no_data_plane() {
        let s = read_dataplane(format!("{HEADER}\n").as_bytes(), "d").unwrap();
        assert!(s.is_empty());
        assert!(!s.timed_any());
        assert_eq!(s.end(), 0.0);
    }

    #[test]
    fn bad_rows_name_their_line() {
        let bad = |rows: &str| {
            let text = format!("{HEADER}\n{rows}");
            read_dataplane(text.as_bytes(), "dataplane.csv")
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            bad("1,0,1,2,x,4,5,0,0\n"),
            "dataplane.csv:2: late_p99_ns is not a number: \"x\""
        );
        assert_eq!(
            bad("1,0,1\n"),
            "dataplane.csv:2: missing late_p50_ns: expected 9 fields"
        );
        assert_eq!(
            bad("1,0.5,1,2,3,4,5,0,0\n"),
            "dataplane.csv:2: worker is not a worker number: 0.5"
        );
        assert_eq!(
            bad("2,0,1,2,3,4,5,0,0\n1,0,1,2,3,4,5,0,0\n"),
            "dataplane.csv:3: t 1 is not after worker 0's previous t 2"
        );
        let err = read_dataplane("t,worker\n".as_bytes(), "dataplane.csv").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("dataplane.csv:1: expected the header")
        );
    }
}
