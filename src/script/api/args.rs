//! The conversions every primitive shares, on language-neutral values: unit-bearing values
//! (durations, rates, sizes, probabilities), option maps and targets (a Node, an array of
//! Nodes or a group name).

use super::ScriptState;
use super::call::{ApiError, ApiResult};
use super::value::{Table, Value};
use crate::experiment::{NodeId, StateError};
use crate::units::{self, Nanos, UnitError};

impl From<StateError> for ApiError {
    fn from(e: StateError) -> Self {
        ApiError::msg(e)
    }
}

fn unit_err(key: &str, err: UnitError) -> ApiError {
    if key.is_empty() {
        ApiError::msg(err)
    } else {
        ApiError::msg(format!("{key}: {err}"))
    }
}

/// "expected `what`, got ...", after the option's name when there is one.
pub fn expected(key: &str, what: &str, got: &Value) -> ApiError {
    let prefix = if key.is_empty() {
        String::new()
    } else {
        format!("{key}: ")
    };
    ApiError::msg(format!("{prefix}expected {what}, got {}", got.describe()))
}

/// A duration: seconds as a number, or a string such as `"30ms"`.
pub fn duration(key: &str, v: &Value) -> ApiResult<Nanos> {
    let r = match v {
        Value::Str(s) => units::parse_duration(s),
        _ => match v.number() {
            Some(x) => units::duration_from_secs(x),
            None => {
                return Err(expected(key, "a duration (\"30ms\", \"2s\" or seconds)", v));
            }
        },
    };
    r.map_err(|e| unit_err(key, e))
}

/// A rate: bits/s as a number, or a string such as `"2mbit"`.
pub fn rate(key: &str, v: &Value) -> ApiResult<u64> {
    let r = match v {
        Value::Str(s) => units::parse_rate(s),
        _ => match v.number() {
            Some(x) => units::rate_from_bits(x),
            None => return Err(expected(key, "a rate (\"2mbit\", \"128kbit\")", v)),
        },
    };
    r.map_err(|e| unit_err(key, e))
}

/// A size: bytes as a number, or a string such as `"64kb"`.
pub fn size(key: &str, v: &Value) -> ApiResult<u64> {
    let r = match v {
        Value::Str(s) => units::parse_size(s),
        _ => match v.number() {
            Some(x) => units::size_from_bytes(x),
            None => return Err(expected(key, "a size (\"64kb\", \"1500b\")", v)),
        },
    };
    r.map_err(|e| unit_err(key, e))
}

/// A probability in [0, 1].
pub fn probability(key: &str, v: &Value) -> ApiResult<f64> {
    let x = v
        .number()
        .ok_or_else(|| expected(key, "a number between 0.0 and 1.0", v))?;
    units::probability(x).map_err(|e| unit_err(key, e))
}

/// Rejects keys an option map does not know, naming the ones it does.
pub fn check_keys(opts: &Table, allowed: &[&str]) -> ApiResult<()> {
    match opts.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(ApiError::msg(format!(
            "unknown option {key:?} (expected one of: {})",
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

/// What a primitive acts on: a Node, an array of Nodes, or a group name.
pub fn targets(state: &ScriptState, v: &Value) -> ApiResult<Vec<NodeId>> {
    match v {
        Value::Node(node) => Ok(vec![node.id]),
        Value::Str(name) => {
            let lab = state.lab();
            let group = lab.state().group(name)?;
            Ok(lab.state().members(group).to_vec())
        }
        _ => match v.as_array() {
            Some(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::Node(n) => Ok(n.id),
                    other => Err(ApiError::msg(format!(
                        "element {i} of the array is {}, expected a Node",
                        other.describe()
                    ))),
                })
                .collect(),
            None => Err(expected("", "a Node, an array of Nodes or a group name", v)),
        },
    }
}
