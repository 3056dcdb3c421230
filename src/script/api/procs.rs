//! Real programs on nodes: `spawn` (on one node or a target), `procs` (the running ones) and
//! the `Proc` handle (`wait`, `kill`, `running`, `exit_code`, `signal`, `pid`; `output` is in
//! `output`).

use std::sync::Arc;

use rhai::{Array, Dynamic, Engine, ImmutableString, Map, NativeCallContext};

use super::nodes::Node;
use super::{RhaiResult, ScriptState, check_keys, expected, lab_err, targets};
use crate::experiment::{
    ExitStatus, Experiment, NodeFile, NodeId, ProcId, ProcStatus, SpawnSpec, signal_name,
};
use crate::script::error::at_call;

/// How often `wait()` looks whether its process ended (real mode).
const WAIT_STEP: crate::units::Nanos = 10_000_000;

/// A script's handle on one spawned process.
#[derive(Debug, Clone)]
pub struct Proc {
    pub id: ProcId,
    pub pid: u32,
    pub node: Node,
    pub cmd: ImmutableString,
}

pub fn register(engine: &mut Engine, state: &Arc<ScriptState>) {
    engine
        .register_type_with_name::<Proc>("Proc")
        .register_get("pid", |p: &mut Proc| p.pid as i64)
        .register_get("node", |p: &mut Proc| p.node.clone())
        .register_get("cmd", |p: &mut Proc| p.cmd.clone())
        .register_fn("to_string", |p: &mut Proc| {
            format!("proc {} on {}: {}", p.pid, p.node.ip, p.cmd)
        })
        .register_fn("to_debug", |p: &mut Proc| {
            format!("proc {} on {}: {}", p.pid, p.node.ip, p.cmd)
        });

    let s = state.clone();
    engine.register_get("running", move |p: &mut Proc| s.lab().is_running(p.id));
    let s = state.clone();
    engine.register_get("exit_code", move |p: &mut Proc| -> Dynamic {
        match s.lab().state().proc(p.id).status {
            ProcStatus::Exited(ExitStatus::Code(c)) => Dynamic::from(c as i64),
            _ => Dynamic::UNIT,
        }
    });
    let s = state.clone();
    engine.register_get("signal", move |p: &mut Proc| -> Dynamic {
        match s.lab().state().proc(p.id).status {
            ProcStatus::Exited(ExitStatus::Signal(sig)) => Dynamic::from(signal_name(sig)),
            _ => Dynamic::UNIT,
        }
    });
    let s = state.clone();
    engine.register_fn(
        "procs",
        move |ctx: NativeCallContext, target: Dynamic| -> RhaiResult<Array> {
            let ids = targets(&ctx, &s, &target)?;
            let mut lab = s.lab();
            let mut procs = Array::new();
            for node in ids {
                let running = lab.running_procs(node).map_err(|e| lab_err(&ctx, e))?;
                let st = lab.state();
                procs.extend(
                    running
                        .into_iter()
                        .map(|id| Dynamic::from(handle(st, node, id))),
                );
            }
            Ok(procs)
        },
    );
    let s = state.clone();
    engine.register_fn(
        "wait",
        move |ctx: NativeCallContext, p: &mut Proc| -> RhaiResult<i64> {
            // Waiting lets experiment time pass: `at`/`every` callbacks keep running (except
            // inside a callback, which may not sleep). A virtual clock cannot wait for a real
            // exit, so there the process is taken to end at once.
            loop {
                let waits_for_real = {
                    let mut lab = s.lab();
                    if let Some(status) = lab.exit_status(p.id).map_err(|e| lab_err(&ctx, e))? {
                        return Ok(status.shell_code() as i64);
                    }
                    lab.is_real() && !super::time::in_callback(&s)
                };
                if !waits_for_real {
                    let status = s.lab().wait(p.id).map_err(|e| lab_err(&ctx, e))?;
                    return Ok(status.shell_code() as i64);
                }
                super::time::step(&ctx, &s, WAIT_STEP)?;
            }
        },
    );
    let s = state.clone();
    engine.register_fn(
        "kill",
        move |ctx: NativeCallContext, p: &mut Proc| -> RhaiResult<()> {
            s.lab().kill(p.id).map_err(|e| lab_err(&ctx, e))
        },
    );

    let s = state.clone();
    engine.register_fn(
        "spawn",
        move |ctx: NativeCallContext, node: Node, cmd: &str| {
            spawn(&ctx, &s, node, cmd, &Map::new())
        },
    );
    let s = state.clone();
    engine.register_fn(
        "spawn",
        move |ctx: NativeCallContext, node: Node, cmd: &str, opts: Map| {
            spawn(&ctx, &s, node, cmd, &opts)
        },
    );
    // An array of Nodes or a group name: one spawn per node, in order. (A single Node takes
    // the typed registrations above and gets one Proc.)
    let s = state.clone();
    engine.register_fn(
        "spawn",
        move |ctx: NativeCallContext, target: Dynamic, cmd: &str| {
            spawn_each(&ctx, &s, &target, cmd, &Map::new())
        },
    );
    let s = state.clone();
    engine.register_fn(
        "spawn",
        move |ctx: NativeCallContext, target: Dynamic, cmd: &str, opts: Map| {
            spawn_each(&ctx, &s, &target, cmd, &opts)
        },
    );
}

/// A handle on process `id` of `node`, from the experiment state.
fn handle(st: &Experiment, node: NodeId, id: ProcId) -> Proc {
    let proc = st.proc(id);
    Proc {
        id,
        pid: proc.pid,
        node: Node::of(st, node),
        cmd: proc.cmd.as_str().into(),
    }
}

/// `spawn` on every node of a target, each exactly as a single `spawn`; the Procs in order.
fn spawn_each(
    ctx: &NativeCallContext,
    state: &ScriptState,
    target: &Dynamic,
    cmd: &str,
    opts: &Map,
) -> RhaiResult<Dynamic> {
    if let Some(node) = target.read_lock::<Node>().map(|n| n.clone()) {
        return spawn(ctx, state, node, cmd, opts).map(Dynamic::from);
    }
    let ids = targets(ctx, state, target)?;
    let mut procs = Array::with_capacity(ids.len());
    for id in ids {
        let node = Node::of(state.lab().state(), id);
        procs.push(Dynamic::from(spawn(ctx, state, node, cmd, opts)?));
    }
    Ok(Dynamic::from(procs))
}

/// Replaces `{ip}` and `{id}` with the node's values.
pub fn fill_placeholders(text: &str, node: &Node) -> String {
    text.replace("{ip}", &node.ip)
        .replace("{id}", &node.id.0.to_string())
}

fn spawn(
    ctx: &NativeCallContext,
    state: &ScriptState,
    node: Node,
    cmd: &str,
    opts: &Map,
) -> RhaiResult<Proc> {
    check_keys(ctx, opts, &["env", "shell", "user", "stdout"])?;
    let cmd = fill_placeholders(cmd, &node);
    if cmd.trim().is_empty() {
        return Err(at_call(ctx, "expected a command, got an empty string"));
    }
    let shell = match opts.get("shell") {
        None => false,
        Some(v) => v
            .as_bool()
            .map_err(|_| expected(ctx, "shell", "true or false", v))?,
    };
    let argv = if shell {
        vec!["sh".to_string(), "-c".to_string(), cmd.clone()]
    } else {
        shell_words::split(&cmd).map_err(|e| {
            at_call(
                ctx,
                format!(
                    "cannot split {cmd:?} into words ({e}); use #{{shell: true}} for shell syntax"
                ),
            )
        })?
    };
    let env = match opts.get("env") {
        None => Vec::new(),
        Some(v) => {
            let map = v
                .read_lock::<Map>()
                .ok_or_else(|| expected(ctx, "env", "a map of names to values", v))?;
            map.iter()
                .map(|(k, v)| (k.to_string(), fill_placeholders(&v.to_string(), &node)))
                .collect()
        }
    };
    let user = match opts.get("user") {
        None => None,
        Some(v) => match v.read_lock::<ImmutableString>() {
            Some(u) if !u.is_empty() => Some(u.to_string()),
            _ => return Err(expected(ctx, "user", "a user name", v)),
        },
    };
    let stdout = match opts.get("stdout") {
        None => None,
        Some(v) => match v.read_lock::<ImmutableString>() {
            Some(name) => Some(
                NodeFile::parse(&fill_placeholders(&name, &node))
                    .map_err(|e| at_call(ctx, format!("stdout: {e}")))?,
            ),
            None => return Err(expected(ctx, "stdout", "a file name", v)),
        },
    };
    let spec = SpawnSpec {
        cmd: cmd.clone(),
        argv,
        shell,
        env,
        user,
        stdout,
    };
    let mut lab = state.lab();
    let id = lab.spawn(node.id, spec).map_err(|e| lab_err(ctx, e))?;
    let pid = lab.state().proc(id).pid;
    Ok(Proc {
        id,
        pid,
        node,
        cmd: cmd.into(),
    })
}
