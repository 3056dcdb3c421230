//! The primitives of the script API, split by domain; each file has a `register` that binds
//! its functions as closures over the shared `ScriptState`. This file holds that state and the
//! conversions every primitive shares: targets, unit-bearing values, option maps.

pub mod args;
pub mod call;
pub mod capture;
pub mod limits;
pub mod log;
pub mod net;
pub mod nodes;
pub mod output;
pub mod procs;
pub mod rand;
pub mod series;
pub mod time;
pub mod topology;
pub mod traces;
pub mod value;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rhai::{Dynamic, Engine, EvalAltResult, Map, NativeCallContext};

use crate::controller::{Lab, LabError};
use crate::experiment::NodeId;
use crate::script::error::at_call;
use crate::script::timers::Timers;
use crate::script::words::describe;
use crate::units::{self, Nanos, UnitError};

pub type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// Everything the primitives share during one run.
pub struct ScriptState {
    lab: Mutex<Lab>,
    timers: Mutex<Timers<value::Func>>,
    params: Mutex<Params>,
    /// Number of `sleep` calls so far; the watchdog resets when it changes.
    pub sleeps: AtomicU64,
    callback_depth: AtomicU32,
    /// The latest experiment time a run may reach (dry-run), to stop scripts that never end.
    horizon: Option<Nanos>,
    /// Where the script is: data files it names (traces, graphs) are found from there.
    script_dir: PathBuf,
}

/// Values from `--set name=value`, and which of them the script read.
#[derive(Debug, Default)]
pub struct Params {
    values: BTreeMap<String, String>,
    read: Vec<String>,
}

impl Params {
    pub fn new(values: BTreeMap<String, String>) -> Self {
        Params {
            values,
            read: Vec::new(),
        }
    }

    pub fn get(&mut self, name: &str) -> Option<String> {
        self.read.push(name.to_string());
        self.values.get(name).cloned()
    }

    /// `--set` names the script never asked for (probably typos).
    pub fn unread(&self) -> Vec<String> {
        self.values
            .keys()
            .filter(|k| !self.read.contains(k))
            .cloned()
            .collect()
    }
}

impl ScriptState {
    pub fn new(lab: Lab, params: Params, horizon: Option<Nanos>, script_dir: PathBuf) -> Arc<Self> {
        Arc::new(ScriptState {
            script_dir,
            lab: Mutex::new(lab),
            timers: Mutex::new(Timers::default()),
            params: Mutex::new(params),
            sleeps: AtomicU64::new(0),
            callback_depth: AtomicU32::new(0),
            horizon,
        })
    }

    /// The lab; a panic elsewhere never poisons it for good (we report, not abort).
    pub fn lab(&self) -> MutexGuard<'_, Lab> {
        self.lab.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn timers(&self) -> MutexGuard<'_, Timers<value::Func>> {
        self.timers.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn params(&self) -> MutexGuard<'_, Params> {
        self.params.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A data file the script names: relative paths are from the script's folder.
    pub fn data_file(&self, path: &str) -> PathBuf {
        self.script_dir.join(path)
    }
}

/// Every primitive, by domain: what the bindings register.
pub const PRIMS: &[&[call::Prim]] = &[
    nodes::PRIMS,
    procs::PRIMS,
    time::PRIMS,
    output::PRIMS,
    capture::PRIMS,
    log::PRIMS,
    rand::PRIMS,
    series::PRIMS,
];

/// Binds the primitives not yet in `PRIMS` directly to Rhai.
pub fn register(engine: &mut Engine, state: &Arc<ScriptState>) {
    net::register(engine, state);
    topology::register(engine, state);
}

/// A lab error raised inside a primitive, reported at its call site.
pub fn lab_err(ctx: &NativeCallContext, err: LabError) -> Box<EvalAltResult> {
    at_call(ctx, err)
}

fn unit_err(ctx: &NativeCallContext, key: &str, err: UnitError) -> Box<EvalAltResult> {
    if key.is_empty() {
        at_call(ctx, err)
    } else {
        at_call(ctx, format!("{key}: {err}"))
    }
}

/// A duration: seconds as a number, or a string such as `"30ms"`.
pub fn duration(ctx: &NativeCallContext, key: &str, v: &Dynamic) -> RhaiResult<Nanos> {
    let r = if let Some(s) = v.read_lock::<rhai::ImmutableString>() {
        units::parse_duration(&s)
    } else if let Some(x) = number(v) {
        units::duration_from_secs(x)
    } else {
        return Err(expected(
            ctx,
            key,
            "a duration (\"30ms\", \"2s\" or seconds)",
            v,
        ));
    };
    r.map_err(|e| unit_err(ctx, key, e))
}

/// A rate: bits/s as a number, or a string such as `"2mbit"`.
pub fn rate(ctx: &NativeCallContext, key: &str, v: &Dynamic) -> RhaiResult<u64> {
    let r = if let Some(s) = v.read_lock::<rhai::ImmutableString>() {
        units::parse_rate(&s)
    } else if let Some(x) = number(v) {
        units::rate_from_bits(x)
    } else {
        return Err(expected(ctx, key, "a rate (\"2mbit\", \"128kbit\")", v));
    };
    r.map_err(|e| unit_err(ctx, key, e))
}

/// A size: bytes as a number, or a string such as `"64kb"`.
pub fn size(ctx: &NativeCallContext, key: &str, v: &Dynamic) -> RhaiResult<u64> {
    let r = if let Some(s) = v.read_lock::<rhai::ImmutableString>() {
        units::parse_size(&s)
    } else if let Some(x) = number(v) {
        units::size_from_bytes(x)
    } else {
        return Err(expected(ctx, key, "a size (\"64kb\", \"1500b\")", v));
    };
    r.map_err(|e| unit_err(ctx, key, e))
}

/// A probability in [0, 1].
pub fn probability(ctx: &NativeCallContext, key: &str, v: &Dynamic) -> RhaiResult<f64> {
    let x = number(v).ok_or_else(|| expected(ctx, key, "a number between 0.0 and 1.0", v))?;
    units::probability(x).map_err(|e| unit_err(ctx, key, e))
}

pub fn number(v: &Dynamic) -> Option<f64> {
    v.as_float()
        .ok()
        .or_else(|| v.as_int().ok().map(|i| i as f64))
}

pub fn expected(
    ctx: &NativeCallContext,
    key: &str,
    what: &str,
    got: &Dynamic,
) -> Box<EvalAltResult> {
    let prefix = if key.is_empty() {
        String::new()
    } else {
        format!("{key}: ")
    };
    at_call(
        ctx,
        format!("{prefix}expected {what}, got {}", describe(got)),
    )
}

/// Rejects keys an option map does not know, naming the ones it does.
pub fn check_keys(ctx: &NativeCallContext, opts: &Map, allowed: &[&str]) -> RhaiResult<()> {
    for key in opts.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(at_call(
                ctx,
                format!(
                    "unknown option {key:?} (expected one of: {})",
                    allowed.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// What a primitive acts on: a Node, an array of Nodes, or a group name.
pub fn targets(
    ctx: &NativeCallContext,
    state: &ScriptState,
    v: &Dynamic,
) -> RhaiResult<Vec<NodeId>> {
    if let Some(node) = v.read_lock::<nodes::Node>() {
        return Ok(vec![node.id]);
    }
    if let Some(name) = v.read_lock::<rhai::ImmutableString>() {
        let lab = state.lab();
        let group = lab.state().group(&name).map_err(|e| at_call(ctx, e))?;
        return Ok(lab.state().members(group).to_vec());
    }
    if let Some(items) = v.read_lock::<rhai::Array>() {
        return items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                item.read_lock::<nodes::Node>()
                    .map(|n| n.id)
                    .ok_or_else(|| {
                        at_call(
                            ctx,
                            format!(
                                "element {i} of the array is {}, expected a Node",
                                describe(item)
                            ),
                        )
                    })
            })
            .collect();
    }
    Err(expected(
        ctx,
        "",
        "a Node, an array of Nodes or a group name",
        v,
    ))
}

/// Counts nested callbacks: `sleep` is refused inside one.
pub struct CallbackGuard<'a>(&'a AtomicU32);

impl<'a> CallbackGuard<'a> {
    pub fn enter(state: &'a ScriptState) -> Self {
        state.callback_depth.fetch_add(1, Ordering::SeqCst);
        CallbackGuard(&state.callback_depth)
    }
}

impl Drop for CallbackGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
