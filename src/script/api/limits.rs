//! The node keys of `shape`: `cpu` (cores, 0.25 is a quarter of one), `cpu_weight`
//! (1..10000) and `memory` (a size), validated here and enforced by the node's cgroups.

use super::args::{expected, size};
use super::call::{ApiError, ApiResult};
use super::value::{Table, Value};
use crate::experiment::NodeLimits;

pub const LIMIT_KEYS: &[&str] = &["cpu", "cpu_weight", "memory"];

/// Most cores `cpu` may give: beyond any machine, a typo rather than a limit.
const MAX_CPU: f64 = 1024.0;
/// The smallest `memory`: below it no program starts.
const MIN_MEMORY: u64 = 4 << 20;

/// The limits `opts` gives; keys it does not give stay `None`.
pub fn limits_update(opts: &Table) -> ApiResult<NodeLimits> {
    let get = |key: &str| opts.get(key);
    Ok(NodeLimits {
        cpu: get("cpu").map(cpu).transpose()?,
        cpu_weight: get("cpu_weight").map(weight).transpose()?,
        memory: get("memory").map(memory).transpose()?,
    })
}

fn cpu(v: &Value) -> ApiResult<f64> {
    match v.number() {
        Some(x) if x > 0.0 && x <= MAX_CPU => Ok(x),
        _ => Err(expected(
            "cpu",
            "a share of one core greater than 0 (0.25, 2.0), at most 1024",
            v,
        )),
    }
}

fn weight(v: &Value) -> ApiResult<u32> {
    match v.as_int() {
        Some(w @ 1..=10_000) => Ok(w as u32),
        _ => Err(expected(
            "cpu_weight",
            "a whole number from 1 to 10000 (100 is the default)",
            v,
        )),
    }
}

fn memory(v: &Value) -> ApiResult<u64> {
    let bytes = size("memory", v)?;
    if bytes < MIN_MEMORY {
        return Err(ApiError::msg(format!(
            "memory: expected at least 4mb, got {bytes} bytes"
        )));
    }
    Ok(bytes)
}
