//! Seeded randomness for scripts: every draw comes from the run's one generator, seeded by
//! `--seed` (recorded in `events.jsonl`), so a run can be replayed exactly.

use rand::RngExt;
use rand_distr::{Distribution, Exp, Pareto, Weibull};

use super::ScriptState;
use super::call::{ApiError, ApiResult, Args, Host, Prim};
use super::value::Value;

/// What `rand_pareto` and `rand_weibull` take, in the words of the reference.
const SCALE_SHAPE: &str = "a scale and a shape (two numbers greater than 0)";

pub const PRIMS: &[Prim] = &[
    Prim {
        name: "rand",
        min: 0,
        max: 0,
        expects: "no argument",
        f: |s, _, _| Ok(Value::Float(s.lab().rng.random::<f64>())),
    },
    Prim {
        name: "rand_int",
        min: 2,
        max: 2,
        expects: "two integers, lo and hi",
        f: rand_int,
    },
    Prim {
        name: "rand_exp",
        min: 1,
        max: 1,
        expects: "a mean (a number greater than 0)",
        f: |s, _, a| {
            let mean = positive("mean", a.at(0))?;
            let exp = Exp::new(1.0 / mean).map_err(ApiError::msg)?;
            Ok(Value::Float(exp.sample(&mut s.lab().rng)))
        },
    },
    Prim {
        name: "rand_pareto",
        min: 2,
        max: 2,
        expects: SCALE_SHAPE,
        f: |s, _, a| {
            let (scale, shape) = scale_shape(a)?;
            let d = Pareto::new(scale, shape).map_err(ApiError::msg)?;
            Ok(Value::Float(d.sample(&mut s.lab().rng)))
        },
    },
    Prim {
        name: "rand_weibull",
        min: 2,
        max: 2,
        expects: SCALE_SHAPE,
        f: |s, _, a| {
            let (scale, shape) = scale_shape(a)?;
            let d = Weibull::new(scale, shape).map_err(ApiError::msg)?;
            Ok(Value::Float(d.sample(&mut s.lab().rng)))
        },
    },
    Prim {
        name: "shuffle",
        min: 1,
        max: 1,
        expects: "an array",
        f: shuffle,
    },
    Prim {
        name: "pick",
        min: 1,
        max: 1,
        expects: "an array",
        f: pick,
    },
];

fn rand_int(s: &ScriptState, _: &mut dyn Host, a: &Args) -> ApiResult<Value> {
    let (lo, hi) = (a.int(0)?, a.int(1)?);
    if lo > hi {
        return Err(ApiError::msg(format!("expected lo <= hi, got {lo} > {hi}")));
    }
    Ok(Value::Int(s.lab().rng.random_range(lo..=hi)))
}

fn shuffle(s: &ScriptState, _: &mut dyn Host, a: &Args) -> ApiResult<Value> {
    let mut items = a.at(0).as_array().ok_or_else(|| a.mismatch())?.to_vec();
    let mut lab = s.lab();
    // Fisher–Yates with our generator, so the order depends on the seed only.
    for i in (1..items.len()).rev() {
        let j = lab.rng.random_range(0..=i);
        items.swap(i, j);
    }
    Ok(Value::Array(items))
}

fn pick(s: &ScriptState, _: &mut dyn Host, a: &Args) -> ApiResult<Value> {
    let items = a.at(0).as_array().ok_or_else(|| a.mismatch())?;
    Ok(items[pick_index(s, items.len())?].clone())
}

/// The index `pick` draws from an array of `len` elements. Apart, so that a binding can pick
/// from its own array in place: converting a swarm's array on every call made a churn loop
/// quadratic (`benches/script_scale.rs`).
pub fn pick_index(s: &ScriptState, len: usize) -> ApiResult<usize> {
    if len == 0 {
        return Err(ApiError::msg("cannot pick from an empty array"));
    }
    Ok(s.lab().rng.random_range(0..len))
}

fn scale_shape(a: &Args) -> ApiResult<(f64, f64)> {
    Ok((positive("scale", a.at(0))?, positive("shape", a.at(1))?))
}

fn positive(what: &str, v: &Value) -> ApiResult<f64> {
    match v.number() {
        Some(x) if x > 0.0 && x.is_finite() => Ok(x),
        _ => Err(ApiError::msg(format!(
            "{what}: expected a number greater than 0, got {}",
            v.describe()
        ))),
    }
}
