//! The words a picture uses for link parameters: `128 kbit/s`, `30 ms`, `0.1 %`, and one
//! value for a group whose nodes differ (`1 mbit/s–8 mbit/s`, or `mixed`).

use crate::units::{self, Nanos};

/// A rate as the script writes it, with a space and per second: `128 kbit/s`.
pub fn rate(bits_per_second: u64) -> String {
    spaced(&units::Rate(bits_per_second).to_string(), "/s")
}

/// A duration as the script writes it, with a space: `30 ms`, `1.5 s`.
pub fn duration(t: Nanos) -> String {
    spaced(&units::Duration(t).to_string(), "")
}

/// A probability as a percentage: `0.1 %`.
pub fn loss(p: f64) -> String {
    let s = format!("{:.3}", p * 100.0);
    format!("{} %", s.trim_end_matches('0').trim_end_matches('.'))
}

/// A size in bytes in binary units, as scripts' `"1mb"` means them (like `tc`): `1 MiB`,
/// `64 KiB`, `900 B`.
pub fn size(bytes: u64) -> String {
    for (scale, unit) in [(1073741824.0, "GiB"), (1048576.0, "MiB"), (1024.0, "KiB")] {
        if bytes as f64 >= scale {
            let s = format!("{:.3}", bytes as f64 / scale);
            return format!("{} {unit}", s.trim_end_matches('0').trim_end_matches('.'));
        }
    }
    format!("{bytes} B")
}

/// `30ms` → `30 ms`: a space between number and unit, then `suffix`.
fn spaced(s: &str, suffix: &str) -> String {
    match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(at) => format!("{} {}{suffix}", &s[..at], &s[at..]),
        None => s.to_string(),
    }
}

/// One parameter of one node's link, as a group's summary compares them.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// A number in base units (bits/s, ns, probability).
    Number(f64),
    /// Anything else, already in words (`unlimited`, `trace lte-like.down`).
    Words(String),
}

/// What one parameter of a group's nodes reads as: their common value, the range of their
/// numbers, or `mixed` when numbers and words (or different words) meet. `None` for no nodes.
pub fn summary(readings: &[Reading], number: impl Fn(f64) -> String) -> Option<String> {
    let first = readings.first()?;
    if readings.iter().all(|r| r == first) {
        return Some(match first {
            Reading::Number(v) => number(*v),
            Reading::Words(w) => w.clone(),
        });
    }
    let numbers: Option<Vec<f64>> = readings
        .iter()
        .map(|r| match r {
            Reading::Number(v) => Some(*v),
            Reading::Words(_) => None,
        })
        .collect();
    Some(match numbers {
        Some(v) => {
            let min = v.iter().copied().fold(f64::INFINITY, f64::min);
            let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            format!("{}–{}", number(min), number(max))
        }
        None => "mixed".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_read_like_the_script() {
        assert_eq!(rate(128_000), "128 kbit/s");
        assert_eq!(rate(1_500_000), "1.5 mbit/s");
        assert_eq!(rate(10), "10 bit/s");
        assert_eq!(duration(30_000_000), "30 ms");
        assert_eq!(duration(1_500_000_000), "1.5 s");
        assert_eq!(duration(0), "0");
        assert_eq!(loss(0.001), "0.1 %");
        assert_eq!(loss(0.25), "25 %");
        assert_eq!(size(1 << 20), "1 MiB");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(900), "900 B");
    }

    #[test]
    fn groups_whose_nodes_differ_say_so() {
        let r = |bits: u64| Reading::Number(bits as f64);
        let words = |w: &str| Reading::Words(w.into());
        let show = |v: f64| rate(v as u64);
        assert_eq!(summary(&[r(8), r(8)], show).unwrap(), "8 bit/s");
        assert_eq!(
            summary(&[r(8_000_000), r(1_000_000), r(2_000_000)], show).unwrap(),
            "1 mbit/s–8 mbit/s"
        );
        assert_eq!(summary(&[r(1), words("unlimited")], show).unwrap(), "mixed");
        assert_eq!(summary(&[words("a"), words("a")], show).unwrap(), "a");
        assert_eq!(summary(&[words("a"), words("b")], show).unwrap(), "mixed");
        assert_eq!(summary(&[], show), None);
    }
}
