//! Seeded randomness for scripts: every draw comes from the run's one generator, seeded by
//! `--seed` (recorded in `events.jsonl`), so a run can be replayed exactly.

use std::sync::Arc;

use rand::RngExt;
use rand_distr::{Distribution, Exp, Pareto, Weibull};
use rhai::{Array, Dynamic, Engine, NativeCallContext};

use super::{RhaiResult, ScriptState, number};
use crate::script::error::at_call;
use crate::script::words::describe;

pub fn register(engine: &mut Engine, state: &Arc<ScriptState>) {
    let s = state.clone();
    engine.register_fn("rand", move || s.lab().rng.random::<f64>());

    let s = state.clone();
    engine.register_fn(
        "rand_int",
        move |ctx: NativeCallContext, lo: i64, hi: i64| -> RhaiResult<i64> {
            if lo > hi {
                return Err(at_call(&ctx, format!("expected lo <= hi, got {lo} > {hi}")));
            }
            Ok(s.lab().rng.random_range(lo..=hi))
        },
    );

    let s = state.clone();
    engine.register_fn(
        "rand_exp",
        move |ctx: NativeCallContext, mean: Dynamic| -> RhaiResult<f64> {
            let mean = positive(&ctx, "mean", &mean)?;
            let exp = Exp::new(1.0 / mean).map_err(|e| at_call(&ctx, e))?;
            Ok(exp.sample(&mut s.lab().rng))
        },
    );

    let s = state.clone();
    engine.register_fn(
        "rand_pareto",
        move |ctx: NativeCallContext, scale: Dynamic, shape: Dynamic| -> RhaiResult<f64> {
            let (scale, shape) = (
                positive(&ctx, "scale", &scale)?,
                positive(&ctx, "shape", &shape)?,
            );
            let d = Pareto::new(scale, shape).map_err(|e| at_call(&ctx, e))?;
            Ok(d.sample(&mut s.lab().rng))
        },
    );

    let s = state.clone();
    engine.register_fn(
        "rand_weibull",
        move |ctx: NativeCallContext, scale: Dynamic, shape: Dynamic| -> RhaiResult<f64> {
            let (scale, shape) = (
                positive(&ctx, "scale", &scale)?,
                positive(&ctx, "shape", &shape)?,
            );
            let d = Weibull::new(scale, shape).map_err(|e| at_call(&ctx, e))?;
            Ok(d.sample(&mut s.lab().rng))
        },
    );

    let s = state.clone();
    engine.register_fn("shuffle", move |items: Array| -> Array {
        let mut items = items;
        let mut lab = s.lab();
        // Fisher–Yates with our generator, so the order depends on the seed only.
        for i in (1..items.len()).rev() {
            let j = lab.rng.random_range(0..=i);
            items.swap(i, j);
        }
        items
    });

    let s = state.clone();
    engine.register_fn(
        "pick",
        // By reference: by value, Rhai would copy the array on every call (a millisecond at
        // 8,000 nodes). Registered pure (Rhai's default), so it is not measured against the
        // size limits after the call either (vendor/README.md).
        move |ctx: NativeCallContext, items: &mut Array| -> RhaiResult<Dynamic> {
            if items.is_empty() {
                return Err(at_call(&ctx, "cannot pick from an empty array"));
            }
            let i = s.lab().rng.random_range(0..items.len());
            Ok(items[i].clone())
        },
    );
}

fn positive(ctx: &NativeCallContext, what: &str, v: &Dynamic) -> RhaiResult<f64> {
    match number(v) {
        Some(x) if x > 0.0 && x.is_finite() => Ok(x),
        _ => Err(at_call(
            ctx,
            format!(
                "{what}: expected a number greater than 0, got {}",
                describe(v)
            ),
        )),
    }
}
