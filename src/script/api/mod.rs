//! The primitives of the script API, in no script language: each domain's file has a table of
//! `Prim`s (and `Prop`s of its handles) written against `value::Value`, which the Rhai binding
//! (`script::rhai_bind`) and the Lua binding (`script::lua`) both register. This file holds
//! the state they share during a run; `args` the conversions every primitive shares.

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

use crate::controller::Lab;
use crate::script::timers::Timers;
use crate::units::Nanos;

/// Everything the primitives share during one run.
pub struct ScriptState {
    lab: Mutex<Lab>,
    timers: Mutex<Timers<value::Func>>,
    params: Mutex<Params>,
    /// Number of `sleep` calls so far; the watchdog resets when it changes.
    pub sleeps: AtomicU64,
    callback_depth: AtomicU32,
    /// The experiment time the script's current step began: the due time of the running
    /// callback, or where its last sleep or wait ended. Real time runs on while a step
    /// computes, so `at()` measures "the past" from here rather than from `now()`.
    step_began: AtomicU64,
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
            step_began: AtomicU64::new(0),
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
    net::PRIMS,
    topology::PRIMS,
    output::PRIMS,
    capture::PRIMS,
    log::PRIMS,
    rand::PRIMS,
    series::PRIMS,
];

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
