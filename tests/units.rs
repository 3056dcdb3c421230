//! Unit parsing: exact values, and no panic on any input (property tests).

use p2plab::units::{self, SEC};
use proptest::prelude::*;

#[test]
fn documented_examples() {
    assert_eq!(units::parse_rate("128kbit"), Ok(128_000));
    assert_eq!(units::parse_rate("2mbit"), Ok(2_000_000));
    assert_eq!(units::parse_rate("1gbit"), Ok(1_000_000_000));
    assert_eq!(units::parse_size("64kb"), Ok(64 * 1024));
    assert_eq!(units::parse_duration("30ms"), Ok(30_000_000));
    assert_eq!(units::parse_duration("2s"), Ok(2 * SEC));
    assert_eq!(units::parse_duration("5m"), Ok(300 * SEC));
    assert!(units::parse_rate("fast").is_err());
    assert!(units::probability(1.5).is_err());
    assert!(units::probability(f64::NAN).is_err());
    assert!(units::duration_from_secs(f64::INFINITY).is_err());
}

proptest! {
    #[test]
    fn no_panic_on_any_string(s in "\\PC*") {
        let _ = units::parse_rate(&s);
        let _ = units::parse_size(&s);
        let _ = units::parse_duration(&s);
    }

    #[test]
    fn no_panic_on_unit_like_strings(s in "[-0-9. ]{0,12}(bit|kbit|mbit|kb|ms|s|m|h|us|µs|/s|x)?[0-9a-z]{0,3}") {
        let _ = units::parse_rate(&s);
        let _ = units::parse_size(&s);
        let _ = units::parse_duration(&s);
    }

    #[test]
    fn no_panic_on_any_number(x in proptest::num::f64::ANY) {
        let _ = units::rate_from_bits(x);
        let _ = units::size_from_bytes(x);
        let _ = units::duration_from_secs(x);
        let _ = units::probability(x);
    }

    #[test]
    fn rates_round_trip(kbit in 1u64..10_000_000) {
        prop_assert_eq!(units::parse_rate(&format!("{kbit}kbit")), Ok(kbit * 1000));
        let shown = units::Rate(kbit * 1000).to_string();
        let back = units::parse_rate(&shown).unwrap();
        // The display keeps 3 decimals of its unit.
        prop_assert!((back as f64 - (kbit * 1000) as f64).abs() <= (kbit * 1000) as f64 * 1e-3);
    }

    #[test]
    fn durations_round_trip(ms in 0u64..100_000_000) {
        prop_assert_eq!(units::parse_duration(&format!("{ms}ms")), Ok(ms * 1_000_000));
        prop_assert_eq!(units::parse_duration(&format!("{}", ms as f64 / 1000.0)), Ok(ms * 1_000_000));
    }

    #[test]
    fn compound_durations_add_up(h in 0u64..100, m in 0u64..60, s in 0u64..60) {
        prop_assert_eq!(
            units::parse_duration(&format!("{h}h{m}m{s}s")),
            Ok((h * 3600 + m * 60 + s) * SEC)
        );
    }
}
