//! What a script tells the results: `log`, `metric`, and what it asks the command line:
//! `param` (values from `--set name=value`) and `script_dir()` (where the script is, for
//! the programs and files it ships beside it).

use std::sync::Arc;

use rhai::{Dynamic, Engine, ImmutableString, NativeCallContext};

use super::{RhaiResult, ScriptState, lab_err, number};
use crate::results::Event;
use crate::script::error::at_call;
use crate::script::words::{self, describe};

pub fn register(engine: &mut Engine, state: &Arc<ScriptState>) {
    let s = state.clone();
    engine.register_fn("script_dir", move || -> String {
        let dir = s.data_file("");
        let dir = if dir.as_os_str().is_empty() {
            std::path::PathBuf::from(".")
        } else {
            dir
        };
        std::fs::canonicalize(&dir)
            .unwrap_or(dir)
            .to_string_lossy()
            .into_owned()
    });
    // Rhai's math `log(float)` would win over a `Dynamic` parameter and silently compute a
    // logarithm; in a scenario, `log(x)` records x (`log(x, base)` is still the logarithm).
    let s = state.clone();
    engine.register_fn("log", move |ctx: NativeCallContext, msg: Dynamic| {
        record_log(&ctx, &s, msg)
    });
    let s = state.clone();
    engine.register_fn("log", move |ctx: NativeCallContext, x: f64| {
        record_log(&ctx, &s, x.into())
    });
    let s = state.clone();
    engine.register_fn("log", move |ctx: NativeCallContext, x: i64| {
        record_log(&ctx, &s, x.into())
    });

    let s = state.clone();
    engine.register_fn(
        "metric",
        move |ctx: NativeCallContext, name: ImmutableString, value: Dynamic| -> RhaiResult<()> {
            let value = number(&value).filter(|v| v.is_finite()).ok_or_else(|| {
                at_call(
                    &ctx,
                    format!(
                        "expected a finite number as value, got {}",
                        describe(&value)
                    ),
                )
            })?;
            let mut lab = s.lab();
            let event = Event::new(lab.now(), "metric")
                .with("name", name.as_str())
                .with("value", value);
            lab.record(event).map_err(|e| lab_err(&ctx, e))
        },
    );

    let s = state.clone();
    engine.register_fn(
        "param",
        move |ctx: NativeCallContext, name: &str| -> RhaiResult<Dynamic> {
            s.params()
                .get(name)
                .map(Dynamic::from)
                .ok_or_else(|| at_call(&ctx, format!("no value for {name:?}: pass --set {name}=VALUE or give a default: param({name:?}, default)")))
        },
    );
    let s = state.clone();
    engine.register_fn(
        "param",
        move |ctx: NativeCallContext, name: &str, default: Dynamic| -> RhaiResult<Dynamic> {
            let Some(raw) = s.params().get(name) else {
                return Ok(default);
            };
            convert_like(&raw, &default).ok_or_else(|| {
                let what = words::kind(&default);
                let what = what.split(" (").next().unwrap_or(&what);
                let shown = if default.is_variant() {
                    String::new()
                } else {
                    format!(" {default}")
                };
                at_call(
                    &ctx,
                    format!("--set {name}={raw}: expected {what} like the default{shown}"),
                )
            })
        },
    );
}

fn record_log(ctx: &NativeCallContext, state: &ScriptState, msg: Dynamic) -> RhaiResult<()> {
    // Handles (Node, Proc, Timer) print through their registered `to_string`.
    let text = ctx
        .call_fn::<rhai::ImmutableString>("to_string", (msg.clone(),))
        .map_or_else(|_| msg.to_string(), |s| s.to_string());
    let mut lab = state.lab();
    let event = Event::new(lab.now(), "log").with("msg", text);
    lab.record(event).map_err(|e| lab_err(ctx, e))
}

/// Reads a `--set` value as the type of the script's default.
fn convert_like(raw: &str, default: &Dynamic) -> Option<Dynamic> {
    if default.is_int() {
        raw.trim().parse::<i64>().ok().map(Dynamic::from)
    } else if default.is_float() {
        raw.trim().parse::<f64>().ok().map(Dynamic::from)
    } else if default.is_bool() {
        raw.trim().parse::<bool>().ok().map(Dynamic::from)
    } else {
        Some(Dynamic::from(raw.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_follow_default_type() {
        assert_eq!(
            convert_like("12", &Dynamic::from(1_i64)).unwrap().as_int(),
            Ok(12)
        );
        assert!(convert_like("x", &Dynamic::from(1_i64)).is_none());
        assert_eq!(
            convert_like("0.5", &Dynamic::from(1.0)).unwrap().as_float(),
            Ok(0.5)
        );
        assert_eq!(
            convert_like("true", &Dynamic::from(false))
                .unwrap()
                .as_bool(),
            Ok(true)
        );
        assert_eq!(
            convert_like("a b", &Dynamic::from("s"))
                .unwrap()
                .to_string(),
            "a b"
        );
    }
}
