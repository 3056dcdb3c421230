//! The node keys of `shape`: `cpu` (cores, 0.25 is a quarter of one), `cpu_weight`
//! (1..10000) and `memory` (a size), validated here and enforced by the node's cgroups.

use rhai::{Dynamic, Map, NativeCallContext};

use super::{RhaiResult, expected, number, size};
use crate::experiment::NodeLimits;
use crate::script::error::at_call;

pub const LIMIT_KEYS: &[&str] = &["cpu", "cpu_weight", "memory"];

/// Most cores `cpu` may give: beyond any machine, a typo rather than a limit.
const MAX_CPU: f64 = 1024.0;
/// The smallest `memory`: below it no program starts.
const MIN_MEMORY: u64 = 4 << 20;

/// The limits `opts` gives; keys it does not give stay `None`.
pub fn limits_update(ctx: &NativeCallContext, opts: &Map) -> RhaiResult<NodeLimits> {
    let get = |key: &str| opts.get(key);
    Ok(NodeLimits {
        cpu: get("cpu").map(|v| cpu(ctx, v)).transpose()?,
        cpu_weight: get("cpu_weight").map(|v| weight(ctx, v)).transpose()?,
        memory: get("memory").map(|v| memory(ctx, v)).transpose()?,
    })
}

fn cpu(ctx: &NativeCallContext, v: &Dynamic) -> RhaiResult<f64> {
    match number(v) {
        Some(x) if x > 0.0 && x <= MAX_CPU => Ok(x),
        _ => Err(expected(
            ctx,
            "cpu",
            "a share of one core greater than 0 (0.25, 2.0), at most 1024",
            v,
        )),
    }
}

fn weight(ctx: &NativeCallContext, v: &Dynamic) -> RhaiResult<u32> {
    match v.as_int() {
        Ok(w @ 1..=10_000) => Ok(w as u32),
        _ => Err(expected(
            ctx,
            "cpu_weight",
            "a whole number from 1 to 10000 (100 is the default)",
            v,
        )),
    }
}

fn memory(ctx: &NativeCallContext, v: &Dynamic) -> RhaiResult<u64> {
    let bytes = size(ctx, "memory", v)?;
    if bytes < MIN_MEMORY {
        return Err(at_call(
            ctx,
            format!("memory: expected at least 4mb, got {bytes} bytes"),
        ));
    }
    Ok(bytes)
}
