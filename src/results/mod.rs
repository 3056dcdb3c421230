//! The results folder of one run: where it is, `events.jsonl` (see `events`), `traffic.csv`
//! (see `traffic`), `dataplane.csv` (see `health`), per-node folders and `summary.json` with
//! the fidelity verdict (see `conformance`). Plots and the HTML report come later, from
//! `p2plab report`.

pub mod conformance;
pub mod events;
pub mod health;
pub mod traffic;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

#[cfg(test)]
mod testing;

pub use conformance::{Conformance, Verdict};
pub use events::{Event, EventLog};
pub use health::HealthCsv;
pub use traffic::TrafficCsv;

#[derive(Debug, thiserror::Error)]
#[error("results folder {path}: {source}")]
pub struct ResultsError {
    pub path: PathBuf,
    pub source: io::Error,
}

/// What a node's programs used, written into its folder by its worker at the end of a run.
pub const USAGE_FILE: &str = "usage.json";

pub struct ResultsDir {
    path: PathBuf,
}

impl ResultsDir {
    /// Creates `out`, or `results/<script>-<UTC timestamp>` (with `-2`, `-3`... when a run of
    /// the same second already took the name).
    pub fn create(out: Option<&Path>, script: &Path) -> Result<Self, ResultsError> {
        let path = match out {
            Some(p) => p.to_path_buf(),
            None => {
                let stem = script
                    .file_stem()
                    .map_or("script".into(), |s| s.to_string_lossy());
                let base = format!("{stem}-{}", utc_stamp(SystemTime::now()));
                let mut path = Path::new("results").join(&base);
                let mut n = 2;
                while path.exists() {
                    path = Path::new("results").join(format!("{base}-{n}"));
                    n += 1;
                }
                path
            }
        };
        fs::create_dir_all(&path).map_err(|source| ResultsError {
            path: path.clone(),
            source,
        })?;
        Ok(ResultsDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What each node's programs used, from the `usage.json` its worker wrote into its
    /// folder: `{ip, cpu_seconds, memory_peak_bytes}` by address, for `summary.json`.
    pub fn node_usage(&self) -> Vec<serde_json::Value> {
        let mut all: Vec<(std::net::Ipv4Addr, serde_json::Value)> =
            std::fs::read_dir(self.path.join("nodes"))
                .into_iter()
                .flatten()
                .filter_map(|e| {
                    let e = e.ok()?;
                    let ip = e.file_name().to_str()?.parse().ok()?;
                    let text = std::fs::read_to_string(e.path().join(USAGE_FILE)).ok()?;
                    let mut usage: serde_json::Value = serde_json::from_str(&text).ok()?;
                    usage
                        .as_object_mut()?
                        .insert("ip".into(), format!("{ip}").into());
                    Some((ip, usage))
                })
                .collect();
        all.sort_by_key(|(ip, _)| *ip);
        all.into_iter().map(|(_, u)| u).collect()
    }

    pub fn events_path(&self) -> PathBuf {
        self.path.join("events.jsonl")
    }

    pub fn dataplane_path(&self) -> PathBuf {
        self.path.join("dataplane.csv")
    }

    pub fn traffic_path(&self) -> PathBuf {
        self.path.join("traffic.csv")
    }

    pub fn write_summary(&self, summary: &serde_json::Value) -> Result<(), ResultsError> {
        let path = self.path.join("summary.json");
        let text = serde_json::to_string_pretty(summary).unwrap_or_default();
        fs::write(&path, text + "\n").map_err(|source| ResultsError { path, source })
    }
}

/// `YYYYmmdd-HHMMSS` in UTC, for folder names.
pub fn utc_stamp(t: SystemTime) -> String {
    let (year, month, day, secs) = civil(t);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// ISO 8601 in UTC with milliseconds, `2026-11-25T19:56:06.250Z`, for `summary.json`.
pub fn iso8601(t: SystemTime) -> String {
    let (year, month, day, secs) = civil(t);
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_millis());
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Year, month, day and second of the day in UTC, without a date crate (days-to-civil from
/// H. Hinnant).
fn civil(t: SystemTime) -> (i64, i64, i64, i64) {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stamp() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_636_566);
        assert_eq!(utc_stamp(t), "20261125-195606");
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101-000000");
        let t = t + Duration::from_millis(250);
        assert_eq!(iso8601(t), "2026-11-25T19:56:06.250Z");
    }
}
