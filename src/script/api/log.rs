//! What a script tells the results: `log`, `metric` (and `str`, a value as `log` writes it),
//! and what it asks the command line:
//! `param` (values from `--set name=value`) and `script_dir()` (where the script is, for
//! the programs and files it ships beside it).

use super::ScriptState;
use super::call::{ApiError, ApiResult, Args, Host, Prim};
use super::value::Value;
use crate::results::Event;

pub const PRIMS: &[Prim] = &[
    Prim {
        name: "script_dir",
        min: 0,
        max: 0,
        expects: "no argument",
        f: script_dir,
    },
    // Rhai's math `log(float)` would win over a parameter of any kind and silently compute a
    // logarithm (the binding shadows it); in a scenario, `log(x)` records x (`log(x, base)`
    // is still the logarithm).
    Prim {
        name: "log",
        min: 1,
        max: 1,
        expects: "a message (a string or any value), or a number and a base for a logarithm",
        f: |s, _, a| {
            let mut lab = s.lab();
            let event = Event::new(lab.now(), "log").with("msg", a.at(0).to_string());
            lab.record(event)?;
            Ok(Value::Unit)
        },
    },
    // Lua's own `tostring` and `..` write floats with 14 digits; this is the text `log` and
    // Rhai's `${v}` write, so that twins' commands and messages are the same bytes.
    Prim {
        name: "str",
        min: 1,
        max: 1,
        expects: "a value",
        f: |_, _, a| Ok(Value::str(a.at(0).to_string())),
    },
    Prim {
        name: "metric",
        min: 2,
        max: 2,
        expects: "a name (a string) and a value (a number)",
        f: metric,
    },
    Prim {
        name: "param",
        min: 1,
        max: 2,
        expects: "a parameter name (a string) and optionally a default value",
        f: param,
    },
];

fn script_dir(s: &ScriptState, _: &mut dyn Host, _: &Args) -> ApiResult<Value> {
    let dir = s.data_file("");
    let dir = if dir.as_os_str().is_empty() {
        std::path::PathBuf::from(".")
    } else {
        dir
    };
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    Ok(Value::str(dir.to_string_lossy()))
}

fn metric(s: &ScriptState, _: &mut dyn Host, a: &Args) -> ApiResult<Value> {
    let name = a.string(0)?;
    let value = a.at(1);
    let value = value.number().filter(|v| v.is_finite()).ok_or_else(|| {
        ApiError::msg(format!(
            "expected a finite number as value, got {}",
            value.describe()
        ))
    })?;
    let mut lab = s.lab();
    let event = Event::new(lab.now(), "metric")
        .with("name", name)
        .with("value", value);
    lab.record(event)?;
    Ok(Value::Unit)
}

fn param(s: &ScriptState, _: &mut dyn Host, a: &Args) -> ApiResult<Value> {
    let name = a.string(0)?;
    let Some(default) = a.get(1) else {
        return s.params().get(name).map(Value::Str).ok_or_else(|| {
            ApiError::msg(format!(
                "no value for {name:?}: pass --set {name}=VALUE or give a default: \
                 param({name:?}, default)"
            ))
        });
    };
    let Some(raw) = s.params().get(name) else {
        return Ok(default.clone());
    };
    convert_like(&raw, default).ok_or_else(|| {
        let what = default.kind();
        let what = what.split(" (").next().unwrap_or(what);
        let shown = match default {
            Value::Node(_) | Value::Proc(_) | Value::Timer(_) | Value::Topology(_) => String::new(),
            other => format!(" {other}"),
        };
        ApiError::msg(format!(
            "--set {name}={raw}: expected {what} like the default{shown}"
        ))
    })
}

/// Reads a `--set` value as the kind of the script's default.
fn convert_like(raw: &str, default: &Value) -> Option<Value> {
    match default {
        Value::Int(_) => raw.trim().parse::<i64>().ok().map(Value::Int),
        Value::Float(_) => raw.trim().parse::<f64>().ok().map(Value::Float),
        Value::Bool(_) => raw.trim().parse::<bool>().ok().map(Value::Bool),
        _ => Some(Value::str(raw)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_follow_default_type() {
        let int = convert_like("12", &Value::Int(1)).unwrap();
        assert_eq!(int.as_int(), Some(12));
        assert!(convert_like("x", &Value::Int(1)).is_none());
        assert!(matches!(
            convert_like("0.5", &Value::Float(1.0)),
            Some(Value::Float(x)) if x == 0.5
        ));
        let b = convert_like("true", &Value::Bool(false)).unwrap();
        assert_eq!(b.as_bool(), Some(true));
        let text = convert_like("a b", &Value::str("s")).unwrap();
        assert_eq!(text.as_str(), Some("a b"));
    }
}
