//! Traces as values over time, for scripts that replay them where no data-plane trace exists
//! (group links) or record them: `trace_rates` and `trace_delays`, and the unit conversions
//! `rate_bits` and `duration_secs` that such scripts compute with.

use super::ScriptState;
use super::args::{duration, rate, size};
use super::call::{ApiError, ApiResult, Args, Host, Prim};
use super::traces::{Kind, read_trace};
use super::value::{Table, Value};
use crate::experiment::{LinkTrace, OPPORTUNITY_BYTES, RateTrace};
use crate::units::{self, MS, Nanos, SEC};

/// Windows of one `trace_rates` answer: each is a few values, and an array holds a million.
const MAX_WINDOWS: u64 = 300_000;

pub const PRIMS: &[Prim] = &[
    Prim {
        name: "trace_rates",
        min: 1,
        max: 2,
        expects: "a trace file's name (a string) and optionally a window (a duration)",
        f: trace_rates,
    },
    Prim {
        name: "trace_delays",
        min: 1,
        max: 1,
        expects: "a trace file's name (a string)",
        f: trace_delays,
    },
    Prim {
        name: "rate_bits",
        min: 1,
        max: 1,
        expects: "a rate (\"2mbit\", \"128kbit\" or bits/s)",
        f: |_, _, a| Ok(Value::Int(rate("", a.at(0))? as i64)),
    },
    Prim {
        name: "duration_secs",
        min: 1,
        max: 1,
        expects: "a duration (\"30ms\", \"2s\" or seconds)",
        f: |_, _, a| Ok(Value::Float(units::secs(duration("", a.at(0))?))),
    },
    Prim {
        name: "size_bytes",
        min: 1,
        max: 1,
        expects: "a size (\"64kb\" or bytes)",
        f: |_, _, a| Ok(Value::Int(size("", a.at(0))? as i64)),
    },
];

fn trace_delays(s: &ScriptState, _: &mut dyn Host, a: &Args) -> ApiResult<Value> {
    let file = a.string(0)?;
    let (_, trace) = read_trace(s, "trace_delays", file, Kind::Delay)?;
    let LinkTrace::Delay(trace) = trace else {
        return Err(ApiError::msg("trace_delays: expected a delay trace"));
    };
    let points = trace
        .points()
        .iter()
        .map(|&(t, latency)| point(units::secs(t), Value::Float(units::secs(latency))))
        .collect();
    let period = trace
        .period
        .map_or(Value::Unit, |p| Value::Float(units::secs(p)));
    Ok(Value::Map(series(points, period)))
}

fn trace_rates(s: &ScriptState, _: &mut dyn Host, a: &Args) -> ApiResult<Value> {
    let file = a.string(0)?;
    let window = match a.get(1) {
        None => SEC,
        Some(v) => duration("window", v)?,
    };
    let (_, trace) = read_trace(s, "trace_rates", file, Kind::Rate)?;
    let LinkTrace::Rate(trace) = trace else {
        return Err(ApiError::msg("trace_rates: expected a rate trace"));
    };
    if window == 0 {
        return Err(ApiError::msg(
            "window: expected a duration greater than zero",
        ));
    }
    let windows = trace.period().div_ceil(window);
    if windows > MAX_WINDOWS {
        return Err(ApiError::msg(format!(
            "window: {file} lasts {} and would make {windows} windows of {} (at most \
             {MAX_WINDOWS}): give a longer window",
            units::Duration(trace.period()),
            units::Duration(window)
        )));
    }
    let points = rates_per_window(&trace, window)
        .into_iter()
        .map(|(t, bits)| point(units::secs(t), Value::Int(bits as i64)))
        .collect();
    let mut map = series(points, Value::Float(units::secs(trace.period())));
    map.insert("mean".into(), Value::Int(trace.mean_rate().round() as i64));
    Ok(Value::Map(map))
}

fn point(t: f64, value: Value) -> Value {
    Value::Array(vec![Value::Float(t), value])
}

fn series(points: Vec<Value>, period: Value) -> Table {
    let mut map = Table::new();
    map.insert("points".into(), Value::Array(points));
    map.insert("period".into(), period);
    map
}

/// The rate of one pass of `trace` in windows of `window`: (start of the window, bits/s).
/// Window k holds the opportunities at trace times in (k·window, (k+1)·window], the capacity
/// the link offers packets that arrive in it; an opportunity at 0 counts in the first. The
/// last window ends at the period and may be shorter: its rate is over its own length.
fn rates_per_window(trace: &RateTrace, window: Nanos) -> Vec<(Nanos, u64)> {
    let period = trace.period();
    let mut counts = vec![0u64; period.div_ceil(window) as usize];
    for &ms in trace.opportunities() {
        let k = (ms * MS).saturating_sub(1) / window;
        if let Some(c) = counts.get_mut(k as usize) {
            *c += 1;
        }
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(k, count)| {
            let start = k as Nanos * window;
            let len = window.min(period - start);
            let bits = (count * OPPORTUNITY_BYTES * 8) as f64;
            (start, (bits * SEC as f64 / len as f64).round() as u64)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(ms: &[u64]) -> RateTrace {
        RateTrace::new(ms.to_vec()).unwrap()
    }

    #[test]
    fn windows_count_the_opportunities_that_end_in_them() {
        // 1..=1000 ms: 1000 opportunities in 1 s, 12 Mbit/s; in 250 ms windows, 250 each.
        let constant: Vec<u64> = (1..=1000).collect();
        assert_eq!(
            rates_per_window(&trace(&constant), SEC),
            vec![(0, 12_000_000)]
        );
        let quarters = rates_per_window(&trace(&constant), 250 * MS);
        assert_eq!(quarters.len(), 4);
        assert!(
            quarters.iter().all(|&(_, r)| r == 12_000_000),
            "{quarters:?}"
        );
        assert_eq!(quarters[3].0, 750 * MS);
        // An opportunity on a window's last millisecond is in that window, one at 0 in the
        // first; repeated lines count each.
        let w = rates_per_window(&trace(&[0, 10, 10, 11, 20]), 10 * MS);
        assert_eq!(w, vec![(0, 3_600_000), (10 * MS, 2_400_000)]);
    }

    #[test]
    fn the_last_window_is_over_its_own_length_and_empty_ones_are_zero() {
        // 2 opportunities by 1 s, none until 2 s, 1 in the half window (2, 2.5] s.
        let w = rates_per_window(&trace(&[500, 1000, 2500]), SEC);
        assert_eq!(w, vec![(0, 24_000), (SEC, 0), (2 * SEC, 24_000)], "{w:?}");
    }
}
