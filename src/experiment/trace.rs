//! Link traces as scripts load them, checked line by line: rate traces in Mahimahi's format
//! (one millisecond timestamp per 1500-byte delivery opportunity) and delay traces (a
//! one-way latency from a time on). Parsing is pure: the caller reads the file.

use std::fmt;

use crate::units::{MS, Nanos};

/// Bytes of IP packet one delivery opportunity carries. Mahimahi counts 1504 with the 4-byte
/// header its TUN device adds, which is the same 1500-byte packet.
pub const OPPORTUNITY_BYTES: u64 = 1500;

/// A trace of either kind, shared by every link that uses it.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkTrace {
    Rate(RateTrace),
    Delay(DelayTrace),
}

impl LinkTrace {
    /// How long one pass of the trace lasts (`None`: a delay trace that does not repeat).
    pub fn period(&self) -> Option<Nanos> {
        match self {
            LinkTrace::Rate(r) => Some(r.period()),
            LinkTrace::Delay(d) => d.period,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            LinkTrace::Rate(_) => "rate",
            LinkTrace::Delay(_) => "delay",
        }
    }
}

/// Mahimahi's schedule: delivery opportunities at these milliseconds (non-decreasing, a
/// repeated value is several opportunities at once), repeated every `period_ms`, which is
/// the last timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateTrace {
    opportunities: Vec<u64>,
}

impl RateTrace {
    /// A schedule from its timestamps in ms; they must be non-decreasing and end after 0.
    pub fn new(opportunities: Vec<u64>) -> Result<Self, TraceError> {
        let mut prev = 0;
        for (i, &ms) in opportunities.iter().enumerate() {
            if ms < prev {
                return Err(TraceError::at(i + 1, "timestamps must be non-decreasing"));
            }
            prev = ms;
        }
        match opportunities.last() {
            None => Err(TraceError::at(1, "no timestamp: the trace is empty")),
            Some(0) => Err(TraceError::at(
                opportunities.len(),
                "the trace must last longer than 0 ms (its last timestamp is its length)",
            )),
            Some(_) => Ok(RateTrace { opportunities }),
        }
    }

    /// Reads Mahimahi's format: one integer millisecond timestamp per line.
    pub fn parse(text: &str) -> Result<Self, TraceError> {
        let mut opportunities = Vec::new();
        for (i, line) in lines(text) {
            let ms = line.trim().parse::<u64>().map_err(|_| {
                TraceError::at(
                    i,
                    format!("expected a whole number of milliseconds, found {line:?}"),
                )
            })?;
            opportunities.push(ms);
        }
        RateTrace::new(opportunities)
    }

    /// The opportunities' timestamps in ms, one pass.
    pub fn opportunities(&self) -> &[u64] {
        &self.opportunities
    }

    /// The length of one pass: the last timestamp.
    pub fn period(&self) -> Nanos {
        self.period_ms().saturating_mul(MS)
    }

    pub fn period_ms(&self) -> u64 {
        self.opportunities.last().copied().unwrap_or(1)
    }

    /// The mean rate over one pass, in bits/s.
    pub fn mean_rate(&self) -> f64 {
        let bits = self.opportunities.len() as f64 * OPPORTUNITY_BYTES as f64 * 8.0;
        bits / (self.period_ms() as f64 / 1000.0)
    }
}

/// One-way latency over time: `points[i].1` holds from `points[i].0` until the next point.
/// With a `period`, the trace starts over at that time; without, the last latency stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelayTrace {
    points: Vec<(Nanos, Nanos)>,
    pub period: Option<Nanos>,
}

impl DelayTrace {
    /// A trace from (time, latency) points with strictly increasing times from 0, and a period
    /// after the last point's time.
    pub fn new(points: Vec<(Nanos, Nanos)>, period: Option<Nanos>) -> Result<Self, TraceError> {
        match points.first() {
            None => return Err(TraceError::at(1, "no latency: the trace is empty")),
            Some(&(t, _)) if t != 0 => {
                return Err(TraceError::at(1, "the first line must be at time 0"));
            }
            Some(_) => {}
        }
        for (i, w) in points.windows(2).enumerate() {
            if w[1].0 <= w[0].0 {
                return Err(TraceError::at(
                    i + 2,
                    "times must increase from line to line",
                ));
            }
        }
        if let Some(p) = period
            && points.last().is_some_and(|&(t, _)| p <= t)
        {
            return Err(TraceError::at(
                points.len() + 1,
                "the end line must come after the last latency",
            ));
        }
        Ok(DelayTrace { points, period })
    }

    /// Reads `<ms> <latency ms>` lines (decimals allowed); a last line with a time only
    /// ends the trace there and makes it repeat.
    pub fn parse(text: &str) -> Result<Self, TraceError> {
        let mut points = Vec::new();
        let mut period = None;
        for (i, line) in lines(text) {
            if period.is_some() {
                return Err(TraceError::at(
                    i,
                    "nothing may follow the end line (a time without a latency)",
                ));
            }
            let mut fields = line.split_whitespace();
            let time = fields.next().map(|f| millis(i, "time", f)).transpose()?;
            let latency = fields.next().map(|f| millis(i, "latency", f)).transpose()?;
            if fields.next().is_some() {
                return Err(TraceError::at(
                    i,
                    "expected `<time ms> <latency ms>`, found more fields",
                ));
            }
            match (time, latency) {
                (Some(t), Some(l)) => points.push((t, l)),
                (Some(_), None) if points.is_empty() => {
                    return Err(TraceError::at(
                        i,
                        "expected `<time ms> <latency ms>`, found a time only (a time alone \
                         ends a trace, after its latencies; is this a rate trace?)",
                    ));
                }
                (Some(t), None) => period = Some(t),
                _ => return Err(TraceError::at(i, "expected `<time ms> <latency ms>`")),
            }
        }
        DelayTrace::new(points, period)
    }

    pub fn points(&self) -> &[(Nanos, Nanos)] {
        &self.points
    }

    /// The latency at time `t` of the trace.
    pub fn latency_at(&self, t: Nanos) -> Nanos {
        let t = match self.period {
            Some(p) if p > 0 => t % p,
            _ => t,
        };
        let i = self.points.partition_point(|&(at, _)| at <= t);
        // The first point is at 0, so at least one is at or before `t`.
        self.points[i.saturating_sub(1)].1
    }
}

/// What is wrong with a trace, and on which line (1-based).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct TraceError {
    pub line: usize,
    pub message: String,
}

impl TraceError {
    fn at(line: usize, message: impl Into<String>) -> Self {
        TraceError {
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Numbered lines with content; a final newline is not an empty line, an empty line
/// elsewhere is (as Mahimahi holds).
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let text = text.strip_suffix('\n').unwrap_or(text);
    text.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim_start().starts_with('#'))
}

/// A non-negative number of milliseconds (decimals allowed) in ns.
fn millis(line: usize, what: &str, field: &str) -> Result<Nanos, TraceError> {
    match field.parse::<f64>() {
        Ok(ms) if (0.0..1e12).contains(&ms) => Ok((ms * MS as f64).round() as u64),
        _ => Err(TraceError::at(
            line,
            format!("expected the {what} in milliseconds (a number ≥ 0), found {field:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mahimahi_rate_trace_parses_and_checks() {
        let t = RateTrace::parse("1\n1\n3\n4\n").unwrap();
        assert_eq!(t.opportunities(), &[1, 1, 3, 4]);
        assert_eq!(t.period(), 4 * MS);
        // 4 × 1500 B in 4 ms = 12 Mbit/s.
        assert_eq!(t.mean_rate(), 12_000_000.0);
        let err = RateTrace::parse("1\n5\n3\n").unwrap_err();
        assert_eq!(err.to_string(), "line 3: timestamps must be non-decreasing");
        let err = RateTrace::parse("1\n\n3\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("whole number"), "{err}");
        let err = RateTrace::parse("1\n2.5\n").unwrap_err();
        assert!(
            err.to_string().starts_with("line 2: expected a whole"),
            "{err}"
        );
        assert_eq!(RateTrace::parse("0\n0\n").unwrap_err().line, 2);
        assert_eq!(RateTrace::parse("").unwrap_err().line, 1);
        // Comments are skipped but keep their line numbers.
        let err = RateTrace::parse("# made by hand\n1\nx\n").unwrap_err();
        assert_eq!(err.line, 3);
    }

    #[test]
    fn delay_trace_steps_and_repeats() {
        let t = DelayTrace::parse("0 20\n1000 80.5\n2000 20\n4000\n").unwrap();
        assert_eq!(t.period, Some(4000 * MS));
        assert_eq!(t.latency_at(0), 20 * MS);
        assert_eq!(t.latency_at(999 * MS), 20 * MS);
        assert_eq!(t.latency_at(1000 * MS), 80_500_000);
        assert_eq!(t.latency_at(3999 * MS), 20 * MS);
        assert_eq!(t.latency_at(5000 * MS), 80_500_000);
        let once = DelayTrace::parse("0 5\n10 7\n").unwrap();
        assert_eq!(once.period, None);
        assert_eq!(once.latency_at(1_000_000 * MS), 7 * MS);
    }

    #[test]
    fn delay_trace_errors_name_the_line() {
        let cases = [
            ("5 20\n", 1, "time 0"),
            ("0 20\n0 30\n", 2, "increase"),
            ("0 20\n10 -3\n", 2, "latency in milliseconds"),
            ("0 20\n10\n20 5\n", 3, "nothing may follow"),
            ("0 20\n10 5 7\n", 2, "more fields"),
            ("0 20\n10 5\n10\n", 3, "after the last latency"),
        ];
        for (text, line, needle) in cases {
            let err = DelayTrace::parse(text).unwrap_err();
            assert_eq!(err.line, line, "{text:?}: {err}");
            assert!(err.message.contains(needle), "{text:?}: {err}");
        }
    }
}
