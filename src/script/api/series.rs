//! Traces as values over time, for scripts that replay them where no data-plane trace exists
//! (group links) or record them: `trace_rates` and `trace_delays`, and the unit conversions
//! `rate_bits` and `duration_secs` that such scripts compute with.

use std::sync::Arc;

use rhai::{Array, Dynamic, Engine, Map, NativeCallContext};

use super::traces::{Kind, read_trace};
use super::{RhaiResult, ScriptState, duration, rate, size};
use crate::experiment::{LinkTrace, OPPORTUNITY_BYTES, RateTrace};
use crate::script::error::at_call;
use crate::units::{self, MS, Nanos, SEC};

/// Windows of one `trace_rates` answer: each is a few values, and an array holds a million.
const MAX_WINDOWS: u64 = 300_000;

pub fn register(engine: &mut Engine, state: &Arc<ScriptState>) {
    let s = state.clone();
    engine.register_fn("trace_rates", move |ctx: NativeCallContext, file: &str| {
        rates(&ctx, &s, file, SEC)
    });
    let s = state.clone();
    engine.register_fn(
        "trace_rates",
        move |ctx: NativeCallContext, file: &str, window: Dynamic| {
            let window = duration(&ctx, "window", &window)?;
            rates(&ctx, &s, file, window)
        },
    );
    let s = state.clone();
    engine.register_fn(
        "trace_delays",
        move |ctx: NativeCallContext, file: &str| -> RhaiResult<Map> {
            let (_, trace) =
                read_trace(&s, "trace_delays", file, Kind::Delay).map_err(|e| api_err(&ctx, e))?;
            let LinkTrace::Delay(trace) = trace else {
                return Err(at_call(&ctx, "trace_delays: expected a delay trace"));
            };
            let points = trace
                .points()
                .iter()
                .map(|&(t, latency)| point(units::secs(t), units::secs(latency).into()))
                .collect();
            let period = trace
                .period
                .map_or(Dynamic::UNIT, |p| units::secs(p).into());
            Ok(series(points, period))
        },
    );
    engine.register_fn("rate_bits", |ctx: NativeCallContext, v: Dynamic| {
        rate(&ctx, "", &v).map(|r| r as i64)
    });
    engine.register_fn("duration_secs", |ctx: NativeCallContext, v: Dynamic| {
        duration(&ctx, "", &v).map(units::secs)
    });
    engine.register_fn("size_bytes", |ctx: NativeCallContext, v: Dynamic| {
        size(&ctx, "", &v).map(|b| b as i64)
    });
}

fn rates(ctx: &NativeCallContext, s: &ScriptState, file: &str, window: Nanos) -> RhaiResult<Map> {
    let (_, trace) = read_trace(s, "trace_rates", file, Kind::Rate).map_err(|e| api_err(ctx, e))?;
    let LinkTrace::Rate(trace) = trace else {
        return Err(at_call(ctx, "trace_rates: expected a rate trace"));
    };
    if window == 0 {
        return Err(at_call(
            ctx,
            "window: expected a duration greater than zero",
        ));
    }
    let windows = trace.period().div_ceil(window);
    if windows > MAX_WINDOWS {
        return Err(at_call(
            ctx,
            format!(
                "window: {file} lasts {} and would make {windows} windows of {} (at most \
                 {MAX_WINDOWS}): give a longer window",
                units::Duration(trace.period()),
                units::Duration(window)
            ),
        ));
    }
    let points = rates_per_window(&trace, window)
        .into_iter()
        .map(|(t, bits)| point(units::secs(t), (bits as i64).into()))
        .collect();
    let mut map = series(points, units::secs(trace.period()).into());
    map.insert("mean".into(), (trace.mean_rate().round() as i64).into());
    Ok(map)
}

/// An error of the neutral layer (`read_trace`) at this Rhai call, until this file is
/// converted too.
fn api_err(ctx: &NativeCallContext, e: super::call::ApiError) -> Box<rhai::EvalAltResult> {
    match e {
        super::call::ApiError::Msg(m) => at_call(ctx, m),
        super::call::ApiError::Script(_) => at_call(ctx, "an error of the script"),
    }
}

fn point(t: f64, value: Dynamic) -> Dynamic {
    let p: Array = vec![t.into(), value];
    p.into()
}

fn series(points: Array, period: Dynamic) -> Map {
    let mut map = Map::new();
    map.insert("points".into(), points.into());
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
