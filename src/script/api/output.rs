//! What programs wrote, read back into the script: `read_file(node, name)` and
//! `read_json(node, name)` (a file of the node's folder, on whichever worker hosts it),
//! `proc.output()` (a process spawned with `#{ stdout: "name" }`) and `parse_json(text)`.
//! In a dry-run nothing runs and nothing was written: each returns `()`.

use super::ScriptState;
use super::call::{ApiError, ApiResult, Args, Host, Prim};
use super::nodes::Node;
use super::procs::proc_arg;
use super::value::Value;
use crate::experiment::{NodeFile, NodeId};

/// What `read_file` and `read_json` take, in the words of the reference.
const NODE_FILE: &str = "a Node and a file name in its folder (a string)";

pub const PRIMS: &[Prim] = &[
    Prim {
        name: "read_file",
        min: 2,
        max: 2,
        expects: NODE_FILE,
        f: |s, _, a| {
            let (node, name) = node_file(a)?;
            Ok(read_text(s, node.id, name)?.map_or(Value::Unit, Value::Str))
        },
    },
    Prim {
        name: "read_json",
        min: 2,
        max: 2,
        expects: NODE_FILE,
        f: |s, _, a| {
            let (node, name) = node_file(a)?;
            match read_text(s, node.id, name)? {
                Some(text) => json(&text, &format!("nodes/{}/{name}", node.ip)),
                None => Ok(Value::Unit),
            }
        },
    },
    Prim {
        name: "output",
        min: 1,
        max: 1,
        expects: "a Proc, as in p.output()",
        f: output,
    },
    // Replaces Rhai's own, whose errors name no position. `()` stays `()`:
    // `parse_json(p.output())` in a dry-run, where nothing ran.
    Prim {
        name: "parse_json",
        min: 1,
        max: 1,
        expects: "text (a string)",
        f: |_, _, a| match a.at(0) {
            Value::Str(text) => json(text, "text"),
            Value::Unit => Ok(Value::Unit),
            _ => Err(a.mismatch()),
        },
    },
];

fn node_file(a: &Args) -> ApiResult<(&Node, &str)> {
    match a.at(0) {
        Value::Node(node) => Ok((node, a.string(1)?)),
        _ => Err(a.mismatch()),
    }
}

fn output(s: &ScriptState, _: &mut dyn Host, a: &Args) -> ApiResult<Value> {
    let p = proc_arg(a)?;
    let file = s.lab().state().proc(p.id).stdout.clone();
    let Some(file) = file else {
        return Err(ApiError::msg(format!(
            "the output of {:?} went to its node's stdout.log, which all its programs share; \
             spawn it with #{{ stdout: \"out.txt\" }} to read its own",
            p.cmd.as_str()
        )));
    };
    Ok(read_text(s, p.node.id, file.as_str())?.map_or(Value::Unit, Value::Str))
}

/// The file as text; `None` in a dry-run. In real mode a missing file is an error: the script
/// asked for what a program should have written.
fn read_text(state: &ScriptState, node: NodeId, name: &str) -> ApiResult<Option<String>> {
    let file = NodeFile::parse(name).map_err(ApiError::msg)?;
    let mut lab = state.lab();
    let data = lab.read_node_file(node, &file)?;
    let ip = lab.state().node(node).ip;
    match data {
        Some(bytes) => String::from_utf8(bytes).map(Some).map_err(|_| {
            ApiError::msg(format!(
                "nodes/{ip}/{file} is not text (UTF-8); a script reads results"
            ))
        }),
        None if lab.is_real() => Err(ApiError::msg(format!(
            "node {ip} has no file {name:?} (yet): did its program write it there, in \
             its folder nodes/{ip}/?"
        ))),
        None => Ok(None),
    }
}

/// JSON as script values: objects become maps, arrays arrays, null `()`.
fn json(text: &str, what: &str) -> ApiResult<Value> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        ApiError::msg(format!(
            "{what} is not JSON ({e}){}",
            if text.trim().is_empty() {
                ": it is empty (did the program finish writing it?)"
            } else {
                ""
            }
        ))
    })?;
    Ok(Value::from_json(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_becomes_script_values() {
        let v = json(
            r#"{"a": [1, 2.5, null, true], "b": {"c": "x"}, "big": 1e300}"#,
            "text",
        )
        .unwrap();
        let Value::Map(map) = v else { panic!("a map") };
        let a = map["a"].as_array().unwrap();
        assert_eq!(a[0].as_int(), Some(1));
        assert_eq!(a[1].number(), Some(2.5));
        assert!(a[2].is_unit());
        assert_eq!(a[3].as_bool(), Some(true));
        let b = map["b"].as_map().unwrap();
        assert_eq!(b["c"].as_str(), Some("x"));
        assert!(matches!(map["big"], Value::Float(x) if x == 1e300));
    }
}
