//! The scenario script: loading it, building the Rhai engine with p2plab's primitives and
//! module resolver, the static check, the runaway-loop watchdog, and running it against a
//! `Lab` on a thread of its own. The primitives live in `api`, the size and depth limits in
//! `limits`; units are parsed by `crate::units`.

pub mod api;
pub mod check;
pub mod error;
pub mod limits;
pub mod lua;
pub mod modules;
pub mod rhai_bind;
pub mod timers;
pub mod words;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rhai::{AST, Dynamic, Engine};

use api::Params;
pub use api::ScriptState;
pub use error::{Location, ScriptError};

use crate::controller::Lab;
use crate::results::Event;
use crate::units::Nanos;

/// At the end of a script, programs still running get SIGTERM and this long to exit.
pub const STOP_GRACE: Nanos = 2_000_000_000;

/// Operations a script may run between two sleeps before it is stopped as a runaway loop.
pub const DEFAULT_MAX_OPERATIONS: u64 = 50_000_000;

/// A scenario file, read and named as the user wrote its path.
pub struct Scenario {
    pub path: PathBuf,
    pub text: String,
}

impl Scenario {
    pub fn load(path: &Path) -> std::io::Result<Self> {
        Ok(Scenario {
            path: path.to_path_buf(),
            text: std::fs::read_to_string(path)?,
        })
    }

    /// The name errors and events use.
    pub fn name(&self) -> String {
        self.path.display().to_string()
    }

    fn dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }
}

/// How the script runs, beyond the lab it drives.
pub struct ScriptOptions {
    pub seed: u64,
    pub params: BTreeMap<String, String>,
    pub max_operations: u64,
    /// Experiment time a run may not pass (dry-runs), so that endless scripts end.
    pub horizon: Option<Nanos>,
}

/// What a finished script leaves behind, besides its events.
#[derive(Debug, Clone)]
pub struct ScriptReport {
    pub end_time: Nanos,
    /// Per-node traffic counters at the end (real mode).
    pub traffic: Vec<(std::net::Ipv4Addr, crate::experiment::NodeCounters)>,
    pub events: u64,
    pub unread_params: Vec<String>,
    pub pending_callbacks: usize,
    /// Nodes allocated, and those failed at the end.
    pub nodes: usize,
    pub failed: usize,
    /// Every process's status at the end, in spawn order.
    pub procs: Vec<crate::experiment::ProcStatus>,
}

/// Compiles the script and runs the static checks; nothing is executed.
pub fn compile(engine: &Engine, scenario: &Scenario) -> Result<AST, ScriptError> {
    let name = scenario.name();
    let known = check::known_functions(engine);
    let mut ast = engine
        .compile(&scenario.text)
        .map_err(|e| ScriptError::from_eval(&e.into(), &name, &known))?;
    ast.set_source(name.as_str());
    check::unknown_calls(&ast, &known, &name)?;
    Ok(ast)
}

/// An engine with every primitive bound to `state`.
pub fn engine(scenario: &Scenario, state: &Arc<ScriptState>, max_operations: u64) -> Engine {
    let mut engine = Engine::new();
    engine.set_module_resolver(modules::LabModules::new(
        scenario.path.clone(),
        scenario.dir(),
    ));
    engine.set_strict_variables(true);
    // The optimiser would delete branches it can prove dead before the static check sees
    // them; a typo there must still be reported.
    engine.set_optimization_level(rhai::OptimizationLevel::None);
    // Rhai's debug-build limits are tighter than its release ones; use the release ones always
    // so a script behaves the same under `cargo test` and the installed binary.
    engine.set_max_expr_depths(64, 32);
    limits::apply(&mut engine);
    // Rhai reserves `spawn` for a future keyword; p2plab's API is older than that wish.
    #[allow(deprecated)]
    engine.on_parse_token(|token, _, _| match token {
        rhai::Token::Reserved(s) if s.as_str() == "spawn" => rhai::Token::Identifier(s),
        other => other,
    });
    rhai_bind::register(&mut engine, state);
    let s = state.clone();
    let (seen_sleeps, base) = (AtomicU64::new(0), AtomicU64::new(0));
    engine.on_progress(move |ops| {
        if crate::interrupt::requested() {
            return Some(Dynamic::from("interrupted (Ctrl-C or SIGTERM)".to_string()));
        }
        let sleeps = s.sleeps.load(Ordering::Relaxed);
        if sleeps != seen_sleeps.load(Ordering::Relaxed) {
            seen_sleeps.store(sleeps, Ordering::Relaxed);
            base.store(ops, Ordering::Relaxed);
        }
        (ops.saturating_sub(base.load(Ordering::Relaxed)) > max_operations)
            .then(|| Dynamic::from(runaway_message(max_operations)))
    });
    engine
}

/// What stops a script that never sleeps, in every language.
pub fn runaway_message(max_operations: u64) -> String {
    format!(
        "the script ran {max_operations} operations without sleeping: an endless loop? \
         (max_operations; loops that wait must call sleep(), or raise the limit with \
         --max-operations N)"
    )
}

/// The language of a scenario, from its file's extension: `.lua` is Lua, anything else Rhai.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Rhai,
    Lua,
}

impl Language {
    pub fn of(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some("lua") => Language::Lua,
            _ => Language::Rhai,
        }
    }
}

/// A scenario compiled and checked in its language, ready to run.
enum Compiled {
    Rhai(Box<Engine>, AST),
    Lua(lua::LuaScript),
}

impl Compiled {
    fn new(
        scenario: &Scenario,
        state: &Arc<ScriptState>,
        max_operations: u64,
    ) -> Result<Self, ScriptError> {
        Ok(match Language::of(&scenario.path) {
            Language::Rhai => {
                let engine = engine(scenario, state, max_operations);
                let ast = compile(&engine, scenario)?;
                Compiled::Rhai(Box::new(engine), ast)
            }
            Language::Lua => Compiled::Lua(lua::LuaScript::load(scenario, state, max_operations)?),
        })
    }

    fn run(&self, name: &str) -> Result<(), ScriptError> {
        match self {
            Compiled::Rhai(engine, ast) => engine
                .run_ast(ast)
                .map_err(|e| ScriptError::from_eval(&e, name, &check::known_functions(engine))),
            Compiled::Lua(script) => script.run(),
        }
    }
}

/// Runs `scenario` against `lab` from start to end and records `start` and `end` events. It
/// runs on a thread whose stack holds the deepest calls the limits allow, whatever thread the
/// caller is on: a native stack overflow would abort without removing the lab.
pub fn run(
    scenario: &Scenario,
    lab: Lab,
    opts: &ScriptOptions,
) -> Result<ScriptReport, ScriptError> {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("script".into())
            .stack_size(limits::SCRIPT_STACK)
            .spawn_scoped(scope, || run_here(scenario, lab, opts))
            .map_err(|e| ScriptError::new(None, format!("cannot start the script's thread: {e}")))?
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

fn run_here(
    scenario: &Scenario,
    lab: Lab,
    opts: &ScriptOptions,
) -> Result<ScriptReport, ScriptError> {
    let script_dir = scenario
        .path
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let state = ScriptState::new(
        lab,
        Params::new(opts.params.clone()),
        opts.horizon,
        script_dir,
    );
    let compiled = Compiled::new(scenario, &state, opts.max_operations)?;
    let name = scenario.name();
    let io_err = |e: crate::controller::LabError| ScriptError::new(None, e.to_string());

    // The scenario's name without its language's extension, so that twins in Rhai and Lua
    // write the same events.
    let script_name = scenario
        .path
        .file_stem()
        .map_or(name.clone(), |f| f.to_string_lossy().into_owned());
    let start = Event::new(0, "start")
        .with("script", script_name)
        .with("seed", opts.seed)
        .with(
            "params",
            serde_json::to_value(&opts.params).unwrap_or_default(),
        );
    state.lab().record(start).map_err(io_err)?;

    let result = compiled.run(&name);
    let pending_callbacks = state.timers().pending();
    let mut lab = state.lab();
    // Whatever goes wrong while stopping, the node folders are still collected and the labs
    // removed (`finish` below).
    let stopped = lab.stop_all(STOP_GRACE).map_err(io_err);
    let end_time = lab.now();
    let outcome = match &result {
        Ok(()) => "ok".to_string(),
        Err(_) => "error".to_string(),
    };
    let end = Event::new(end_time, "end")
        .with("outcome", outcome)
        .with("pending_callbacks", pending_callbacks);
    let recorded = lab.record(end).and_then(|()| lab.flush()).map_err(io_err);
    let traffic = lab.traffic().map_err(io_err);
    // The script's own error, if any, comes first; then one from stopping, from the event
    // log, or from collecting node folders.
    let finished = lab.finish().map_err(io_err);
    result?;
    stopped?;
    recorded?;
    let traffic = traffic?;
    finished?;
    Ok(ScriptReport {
        end_time,
        traffic,
        events: lab.events_recorded(),
        unread_params: state.params().unread(),
        pending_callbacks,
        nodes: lab.state().nodes().len(),
        failed: lab.state().nodes().iter().filter(|n| n.failed).count(),
        procs: lab.state().procs().iter().map(|p| p.status).collect(),
    })
}
