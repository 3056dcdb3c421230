//! Durations and rates as graph files write them: p2plab's units (`units`), and the longer
//! spellings Shadow's graphs also use ("10 milliseconds", "100 Mbits", "1 kilobit").

use crate::units::{self, Nanos, UnitError};

/// Shadow's duration suffixes p2plab's units do not know, and p2plab's name for each.
const DURATIONS: &[(&str, &str)] = &[
    ("nanoseconds", "ns"),
    ("nanosecond", "ns"),
    ("microseconds", "us"),
    ("microsecond", "us"),
    ("μs", "us"),
    ("milliseconds", "ms"),
    ("millisecond", "ms"),
    ("seconds", "s"),
    ("second", "s"),
    ("secs", "s"),
    ("minutes", "min"),
    ("minute", "min"),
    ("mins", "min"),
    ("hours", "h"),
    ("hour", "h"),
    ("hrs", "h"),
    ("hr", "h"),
];

/// Shadow's rate prefixes in words, and their letters.
const PREFIXES: &[(&str, &str)] = &[
    ("kibi", "ki"),
    ("mebi", "mi"),
    ("gibi", "gi"),
    ("tebi", "ti"),
    ("kilo", "k"),
    ("mega", "m"),
    ("giga", "g"),
    ("tera", "t"),
];

/// A duration: p2plab's units (`"10ms"`, `"10 ms"`, a bare number is seconds) or Shadow's.
pub fn duration(s: &str) -> Result<Nanos, UnitError> {
    units::parse_duration(s).or_else(|e| {
        let t = s.trim();
        DURATIONS
            .iter()
            .find_map(|(long, short)| t.strip_suffix(long).map(|n| format!("{n}{short}")))
            .and_then(|p| units::parse_duration(&p).ok())
            .ok_or(e)
    })
}

/// A rate in bits/s: p2plab's units (`"10mbit"`, `"10 Mbit"`) or Shadow's (`"10 Mbits"`,
/// `"1 kilobit"`).
pub fn rate(s: &str) -> Result<u64, UnitError> {
    units::parse_rate(s).or_else(|e| {
        let mut t = s.trim().to_ascii_lowercase();
        if let Some(x) = t.strip_suffix("bits") {
            t = format!("{x}bit");
        }
        for (word, letter) in PREFIXES {
            if let Some(x) = t.strip_suffix(&format!("{word}bit")) {
                t = format!("{x}{letter}bit");
            }
        }
        units::parse_rate(&t).map_err(|_| e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::MS;

    #[test]
    fn durations_in_both_spellings() {
        assert_eq!(duration("10 ms"), Ok(10 * MS));
        assert_eq!(duration("10ms"), Ok(10 * MS));
        assert_eq!(duration("10 milliseconds"), Ok(10 * MS));
        assert_eq!(duration("2 secs"), Ok(2_000 * MS));
        assert_eq!(duration("0.5"), Ok(500 * MS));
        assert_eq!(duration("3 μs"), Ok(3_000));
        assert!(matches!(
            duration("10 parsecs"),
            Err(UnitError::NotADuration(s)) if s == "10 parsecs"
        ));
    }

    #[test]
    fn rates_in_both_spellings() {
        assert_eq!(rate("10 Mbit"), Ok(10_000_000));
        assert_eq!(rate("10 Mbits"), Ok(10_000_000));
        assert_eq!(rate("1 kilobit"), Ok(1_000));
        assert_eq!(rate("2 Kibit"), Ok(2_048));
        assert_eq!(rate("1 gigabits"), Ok(1_000_000_000));
        assert!(matches!(rate("fast"), Err(UnitError::NotARate(s)) if s == "fast"));
    }
}
