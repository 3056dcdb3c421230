//! Unit-bearing values of the script API: rates (`"2mbit"`), sizes (`"64kb"`) and durations
//! (`"30ms"`, `"1m30s"`). Pure parsing, no Rhai: the bindings turn a `UnitError` into a script
//! error with a position.
//!
//! Conventions follow `tc`: rates are decimal (1 kbit = 1000 bit/s), sizes are binary
//! (1 kb = 1024 bytes). Experiment time is kept in integer nanoseconds so that a long run does
//! not drift.

use std::fmt;

/// Experiment time and durations, in nanoseconds.
pub type Nanos = u64;

/// One microsecond in [`Nanos`].
pub const US: Nanos = 1_000;
/// One millisecond in [`Nanos`].
pub const MS: Nanos = 1_000_000;
/// One second in [`Nanos`].
pub const SEC: Nanos = 1_000_000_000;

/// Largest accepted duration: 100 days, far beyond any experiment, far below `u64` overflow.
const MAX_DURATION_SECS: f64 = 100.0 * 86_400.0;
/// Largest accepted rate: 10 tbit/s.
const MAX_RATE: f64 = 1e13;
/// Largest accepted size: 1 TiB.
const MAX_SIZE: f64 = (1u64 << 40) as f64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("{0:?} is not a rate (try \"2mbit\" or \"128kbit\")")]
    NotARate(String),
    #[error("{0:?} is not a size (try \"64kb\" or \"1500b\")")]
    NotASize(String),
    #[error("{0:?} is not a duration (try \"30ms\", \"2s\" or a number of seconds)")]
    NotADuration(String),
    #[error("{what} must be {expected}, got {got}")]
    OutOfRange {
        what: &'static str,
        expected: &'static str,
        got: String,
    },
}

/// Splits `"1.5mbit"` into `(1.5, "mbit")`; `None` when there is no leading number.
fn split_number(s: &str) -> Option<(f64, &str)> {
    let end = s
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_digit() || c == '.'))
        .map_or(s.len(), |(i, _)| i);
    let (num, rest) = s.split_at(end);
    if num.is_empty() || num == "." {
        return None;
    }
    let value: f64 = num.parse().ok()?;
    Some((value, rest.trim_start()))
}

fn rate_unit(unit: &str) -> Option<f64> {
    let unit = unit.to_ascii_lowercase();
    let unit = unit.strip_suffix("/s").unwrap_or(&unit);
    Some(match unit {
        "" | "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        "tbit" => 1e12,
        "kibit" => 1024.0,
        "mibit" => 1024.0 * 1024.0,
        "gibit" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    })
}

fn size_unit(unit: &str) -> Option<f64> {
    Some(match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    })
}

fn duration_unit(unit: &str) -> Option<f64> {
    Some(match unit {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" | "sec" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return None,
    })
}

/// Parses a rate string into bits per second (> 0).
pub fn parse_rate(s: &str) -> Result<u64, UnitError> {
    let bad = || UnitError::NotARate(s.to_string());
    let (value, unit) = split_number(s.trim()).ok_or_else(bad)?;
    let bits = value * rate_unit(unit).ok_or_else(bad)?;
    rate_from_bits(bits)
}

/// Checks a rate given as a number of bits per second.
pub fn rate_from_bits(bits: f64) -> Result<u64, UnitError> {
    if !(1.0..=MAX_RATE).contains(&bits) {
        return Err(UnitError::OutOfRange {
            what: "a rate",
            expected: "between 1 bit/s and 10tbit",
            got: format_rate_f(bits),
        });
    }
    Ok(bits.round() as u64)
}

/// Parses a size string into bytes (> 0).
pub fn parse_size(s: &str) -> Result<u64, UnitError> {
    let bad = || UnitError::NotASize(s.to_string());
    let (value, unit) = split_number(s.trim()).ok_or_else(bad)?;
    let bytes = value * size_unit(unit).ok_or_else(bad)?;
    size_from_bytes(bytes)
}

/// Checks a size given as a number of bytes.
pub fn size_from_bytes(bytes: f64) -> Result<u64, UnitError> {
    if !(1.0..=MAX_SIZE).contains(&bytes) {
        return Err(UnitError::OutOfRange {
            what: "a size",
            expected: "between 1 byte and 1 TiB",
            got: format!("{bytes} bytes"),
        });
    }
    Ok(bytes.round() as u64)
}

/// Parses a duration string (`"30ms"`, `"2.5s"`, `"1h30m"`, `"10"` = seconds) into nanoseconds.
pub fn parse_duration(s: &str) -> Result<Nanos, UnitError> {
    let bad = || UnitError::NotADuration(s.to_string());
    let mut rest = s.trim();
    if rest.starts_with('-') {
        return Err(UnitError::OutOfRange {
            what: "a duration",
            expected: "zero or more",
            got: s.to_string(),
        });
    }
    let mut total = 0.0;
    let mut parts = 0;
    while !rest.is_empty() {
        let (value, tail) = split_number(rest).ok_or_else(bad)?;
        let unit_end = tail
            .char_indices()
            .find(|&(_, c)| c.is_ascii_digit() || c == '.')
            .map_or(tail.len(), |(i, _)| i);
        let (unit, tail) = tail.split_at(unit_end);
        let unit = unit.trim();
        // A bare number is seconds, but only on its own: "1h30" is ambiguous.
        if unit.is_empty() && (parts > 0 || !tail.is_empty()) {
            return Err(bad());
        }
        let scale = if unit.is_empty() {
            1.0
        } else {
            duration_unit(unit).ok_or_else(bad)?
        };
        total += value * scale;
        parts += 1;
        rest = tail.trim_start();
    }
    if parts == 0 {
        return Err(bad());
    }
    duration_from_secs(total)
}

/// Checks a duration given as seconds.
pub fn duration_from_secs(secs: f64) -> Result<Nanos, UnitError> {
    if !(0.0..=MAX_DURATION_SECS).contains(&secs) {
        return Err(UnitError::OutOfRange {
            what: "a duration",
            expected: "between 0 and 100 days",
            got: format!("{secs} s"),
        });
    }
    Ok((secs * 1e9).round() as Nanos)
}

/// Checks a probability (loss rate).
pub fn probability(p: f64) -> Result<f64, UnitError> {
    if !(0.0..=1.0).contains(&p) {
        return Err(UnitError::OutOfRange {
            what: "a loss rate",
            expected: "between 0.0 and 1.0 (0.02 is 2 %)",
            got: p.to_string(),
        });
    }
    Ok(p)
}

fn format_rate_f(bits: f64) -> String {
    if bits.is_finite() {
        format!("{bits} bit/s")
    } else {
        bits.to_string()
    }
}

/// Human form of a rate for timelines: `128kbit`, `2.5mbit`.
pub struct Rate(pub u64);

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0 as f64;
        for (scale, unit) in [(1e12, "tbit"), (1e9, "gbit"), (1e6, "mbit"), (1e3, "kbit")] {
            if v >= scale {
                return write!(f, "{}{unit}", trim_float(v / scale));
            }
        }
        write!(f, "{}bit", self.0)
    }
}

/// Human form of a duration for timelines: `30ms`, `1.5s`, `250us`.
pub struct Duration(pub Nanos);

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0 as f64;
        for (scale, unit) in [(1e9, "s"), (1e6, "ms"), (1e3, "us")] {
            if v >= scale {
                return write!(f, "{}{unit}", trim_float(v / scale));
            }
        }
        if self.0 == 0 {
            return write!(f, "0");
        }
        write!(f, "{}ns", self.0)
    }
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Experiment time in seconds, as written to `events.jsonl`.
pub fn secs(t: Nanos) -> f64 {
    t as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("128kbit"), Ok(128_000));
        assert_eq!(parse_rate("2mbit"), Ok(2_000_000));
        assert_eq!(parse_rate("1.5 Mbit/s"), Ok(1_500_000));
        assert_eq!(parse_rate("1gbit"), Ok(1_000_000_000));
        assert_eq!(parse_rate("1kibit"), Ok(1024));
        assert!(matches!(parse_rate("fast"), Err(UnitError::NotARate(_))));
        assert!(matches!(
            parse_rate("0kbit"),
            Err(UnitError::OutOfRange { .. })
        ));
        assert!(parse_rate("2mbps").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64kb"), Ok(65_536));
        assert_eq!(parse_size("1500b"), Ok(1500));
        assert_eq!(parse_size("1500"), Ok(1500));
        assert_eq!(parse_size("1mb"), Ok(1 << 20));
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30ms"), Ok(30_000_000));
        assert_eq!(parse_duration("2s"), Ok(2 * SEC));
        assert_eq!(parse_duration("5m"), Ok(300 * SEC));
        assert_eq!(parse_duration("1h30m"), Ok(5400 * SEC));
        assert_eq!(parse_duration("250us"), Ok(250_000));
        assert_eq!(parse_duration("1.5"), Ok(1_500_000_000));
        assert!(parse_duration("-5ms").is_err());
        assert!(parse_duration("1h30").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn display() {
        assert_eq!(Rate(128_000).to_string(), "128kbit");
        assert_eq!(Rate(2_500_000).to_string(), "2.5mbit");
        assert_eq!(Duration(30_000_000).to_string(), "30ms");
        assert_eq!(Duration(1_500_000_000).to_string(), "1.5s");
    }
}
