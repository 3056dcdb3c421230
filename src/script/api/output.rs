//! What programs wrote, read back into the script: `read_file(node, name)` and
//! `read_json(node, name)` (a file of the node's folder, on whichever worker hosts it),
//! `proc.output()` (a process spawned with `#{ stdout: "name" }`) and `parse_json(text)`.
//! In a dry-run nothing runs and nothing was written: each returns `()`.

use std::sync::Arc;

use rhai::{Array, Dynamic, Engine, Map, NativeCallContext};

use super::nodes::Node;
use super::procs::Proc;
use super::{RhaiResult, ScriptState, lab_err};
use crate::experiment::{NodeFile, NodeId};
use crate::script::error::at_call;

pub fn register(engine: &mut Engine, state: &Arc<ScriptState>) {
    let s = state.clone();
    engine.register_fn(
        "read_file",
        move |ctx: NativeCallContext, node: Node, name: &str| -> RhaiResult<Dynamic> {
            Ok(read_text(&ctx, &s, node.id, name)?.map_or(Dynamic::UNIT, Dynamic::from))
        },
    );
    let s = state.clone();
    engine.register_fn(
        "read_json",
        move |ctx: NativeCallContext, node: Node, name: &str| -> RhaiResult<Dynamic> {
            match read_text(&ctx, &s, node.id, name)? {
                Some(text) => json(&ctx, &text, &format!("nodes/{}/{name}", node.ip)),
                None => Ok(Dynamic::UNIT),
            }
        },
    );
    let s = state.clone();
    engine.register_fn(
        "output",
        move |ctx: NativeCallContext, p: &mut Proc| -> RhaiResult<Dynamic> {
            let file = s.lab().state().proc(p.id).stdout.clone();
            let Some(file) = file else {
                return Err(at_call(
                    &ctx,
                    format!(
                        "the output of {:?} went to its node's stdout.log, which all its \
                         programs share; spawn it with #{{ stdout: \"out.txt\" }} to read its \
                         own",
                        p.cmd.as_str()
                    ),
                ));
            };
            Ok(read_text(&ctx, &s, p.node.id, file.as_str())?.map_or(Dynamic::UNIT, Dynamic::from))
        },
    );
    // Replaces Rhai's own, whose errors name no position. `()` stays `()`:
    // `parse_json(p.output())` in a dry-run, where nothing ran.
    engine.register_fn(
        "parse_json",
        |ctx: NativeCallContext, text: &str| -> RhaiResult<Dynamic> { json(&ctx, text, "text") },
    );
    engine.register_fn("parse_json", |_: ()| Dynamic::UNIT);
}

/// The file as text; `None` in a dry-run. In real mode a missing file is an error: the script
/// asked for what a program should have written.
fn read_text(
    ctx: &NativeCallContext,
    state: &ScriptState,
    node: NodeId,
    name: &str,
) -> RhaiResult<Option<String>> {
    let file = NodeFile::parse(name).map_err(|e| at_call(ctx, e))?;
    let mut lab = state.lab();
    let data = lab
        .read_node_file(node, &file)
        .map_err(|e| lab_err(ctx, e))?;
    let ip = lab.state().node(node).ip;
    match data {
        Some(bytes) => String::from_utf8(bytes).map(Some).map_err(|_| {
            at_call(
                ctx,
                format!("nodes/{ip}/{file} is not text (UTF-8); a script reads results"),
            )
        }),
        None if lab.is_real() => Err(at_call(
            ctx,
            format!(
                "node {ip} has no file {name:?} (yet): did its program write it there, in \
                 its folder nodes/{ip}/?"
            ),
        )),
        None => Ok(None),
    }
}

/// JSON as Rhai values: objects become maps, arrays arrays, null `()`.
fn json(ctx: &NativeCallContext, text: &str, what: &str) -> RhaiResult<Dynamic> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        at_call(
            ctx,
            format!(
                "{what} is not JSON ({e}){}",
                if text.trim().is_empty() {
                    ": it is empty (did the program finish writing it?)"
                } else {
                    ""
                }
            ),
        )
    })?;
    Ok(to_dynamic(value))
}

fn to_dynamic(value: serde_json::Value) -> Dynamic {
    use serde_json::Value;
    match value {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => b.into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64().unwrap_or(f64::NAN).into(),
        },
        Value::String(s) => s.into(),
        Value::Array(items) => items.into_iter().map(to_dynamic).collect::<Array>().into(),
        Value::Object(fields) => fields
            .into_iter()
            .map(|(k, v)| (k.into(), to_dynamic(v)))
            .collect::<Map>()
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_becomes_rhai_values() {
        let v = to_dynamic(
            serde_json::from_str(r#"{"a": [1, 2.5, null, true], "b": {"c": "x"}, "big": 1e300}"#)
                .unwrap(),
        );
        let map = v.cast::<Map>();
        let a = map["a"].clone().cast::<Array>();
        assert_eq!(a[0].as_int().unwrap(), 1);
        assert_eq!(a[1].as_float().unwrap(), 2.5);
        assert!(a[2].is_unit());
        assert!(a[3].as_bool().unwrap());
        let b = map["b"].clone().cast::<Map>();
        assert_eq!(b["c"].clone().into_string().unwrap(), "x");
        assert_eq!(map["big"].as_float().unwrap(), 1e300);
    }
}
