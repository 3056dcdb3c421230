//! `dataplane.csv`: per worker and per interval of `traffic.csv`, how its data plane kept up:
//! the packets it timed and how late they left (p50, p99, max), its thread's CPU time,
//! packets the kernel dropped because it did not read them in time, and failed writes.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use super::traffic::{last_label, second_label};
use crate::experiment::DataplaneHealth;
use crate::units::Nanos;

/// The first line; report readers depend on it, column for column.
pub const HEADER: &str =
    "t,worker,timed_packets,late_p50_ns,late_p99_ns,late_max_ns,cpu_ns,overruns,write_errors";

/// Writes `dataplane.csv`, one row per worker per interval, `t` as in `traffic.csv`.
pub struct HealthCsv {
    out: Box<dyn Write + Send>,
}

impl HealthCsv {
    /// Creates the file, unbuffered: each interval goes out in one write of whole lines.
    pub fn create(path: &Path) -> io::Result<Self> {
        Self::new(Box::new(File::create(path)?))
    }

    pub fn new(mut out: Box<dyn Write + Send>) -> io::Result<Self> {
        out.write_all(format!("{HEADER}\n").as_bytes())?;
        out.flush()?;
        Ok(HealthCsv { out })
    }

    /// The interval that ends at the last whole second `now` passed.
    pub fn second(&mut self, now: Nanos, health: &[(u32, DataplaneHealth)]) -> io::Result<()> {
        self.write(&second_label(now), health)
    }

    /// The run's last interval, which ends at `now`.
    pub fn last(&mut self, now: Nanos, health: &[(u32, DataplaneHealth)]) -> io::Result<()> {
        self.write(&last_label(now), health)
    }

    fn write(&mut self, t: &str, health: &[(u32, DataplaneHealth)]) -> io::Result<()> {
        let text: String = health
            .iter()
            .map(|(w, h)| {
                format!(
                    "{t},{w},{},{},{},{},{},{},{}\n",
                    h.timed_packets,
                    h.late_p50_ns,
                    h.late_p99_ns,
                    h.late_max_ns,
                    h.cpu_ns,
                    h.overruns,
                    h.write_errors
                )
            })
            .collect();
        if !text.is_empty() {
            self.out.write_all(text.as_bytes())?;
            self.out.flush()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::testing::{Shared, text};
    use crate::units::SEC;

    #[test]
    fn one_row_per_worker_per_interval() {
        let out = Shared::default();
        let mut csv = HealthCsv::new(Box::new(out.clone())).unwrap();
        let h = DataplaneHealth {
            timed_packets: 10,
            late_p50_ns: 20,
            late_p99_ns: 30,
            late_max_ns: 40,
            cpu_ns: 50,
            overruns: 1,
            write_errors: 2,
        };
        csv.second(SEC + 3, &[(0, h), (1, DataplaneHealth::default())])
            .unwrap();
        csv.second(2 * SEC, &[]).unwrap();
        csv.last(2 * SEC + 250_000_000, &[(1, h)]).unwrap();
        assert_eq!(
            text(&out),
            format!(
                "{HEADER}\n1,0,10,20,30,40,50,1,2\n1,1,0,0,0,0,0,0,0\n2.250,1,10,20,30,40,50,1,2\n"
            )
        );
    }
}
