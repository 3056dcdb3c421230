//! Real programs on nodes: `spawn` (on one node or a target), `procs` (the running ones) and
//! the `Proc` handle (`wait`, `kill`, `running`, `exit_code`, `signal`, `pid`; `output` is in
//! `output`).

use super::ScriptState;
use super::args::{check_keys, expected, targets};
use super::call::{ApiError, ApiResult, Args, Host, Prim, Prop};
use super::nodes::{Node, TARGET};
use super::value::{Table, Value};
use crate::experiment::{
    ExitStatus, Experiment, NodeFile, NodeId, ProcId, ProcStatus, SpawnSpec, signal_name,
};

/// How often `wait()` looks whether its process ended (real mode).
const WAIT_STEP: crate::units::Nanos = 10_000_000;

/// A script's handle on one spawned process.
#[derive(Debug, Clone)]
pub struct Proc {
    pub id: ProcId,
    pub pid: u32,
    pub node: Node,
    pub cmd: String,
}

pub const PRIMS: &[Prim] = &[
    Prim {
        name: "spawn",
        min: 2,
        max: 3,
        expects: "a target (a Node, an array of Nodes or a group name), a command (a string) and optionally a map of options #{ env, shell, user, stdout }",
        f: spawn_each,
    },
    Prim {
        name: "procs",
        min: 1,
        max: 1,
        expects: TARGET,
        f: procs,
    },
    Prim {
        name: "wait",
        min: 1,
        max: 1,
        expects: "a Proc, as in p.wait()",
        f: wait,
    },
    Prim {
        name: "kill",
        min: 1,
        max: 1,
        expects: "a Proc, as in p.kill()",
        f: |s, _, a| {
            s.lab().kill(proc_arg(a)?.id)?;
            Ok(Value::Unit)
        },
    },
];

/// The Proc a method was called on.
pub fn proc_arg(a: &Args) -> ApiResult<&Proc> {
    match a.at(0) {
        Value::Proc(p) => Ok(p),
        _ => Err(a.mismatch()),
    }
}

fn proc_of(v: &Value) -> &Proc {
    match v {
        Value::Proc(p) => p,
        _ => unreachable!("a Proc property is only bound to Procs"),
    }
}

pub const PROPS: &[Prop] = &[
    Prop {
        name: "pid",
        get: |_, v| Ok(Value::Int(proc_of(v).pid as i64)),
    },
    Prop {
        name: "node",
        get: |_, v| Ok(Value::Node(proc_of(v).node.clone())),
    },
    Prop {
        name: "cmd",
        get: |_, v| Ok(Value::str(proc_of(v).cmd.clone())),
    },
    Prop {
        name: "running",
        get: |s, v| Ok(Value::Bool(s.lab().is_running(proc_of(v).id))),
    },
    Prop {
        name: "exit_code",
        get: |s, v| match s.lab().state().proc(proc_of(v).id).status {
            ProcStatus::Exited(ExitStatus::Code(c)) => Ok(Value::Int(c as i64)),
            _ => Ok(Value::Unit),
        },
    },
    Prop {
        name: "signal",
        get: |s, v| match s.lab().state().proc(proc_of(v).id).status {
            ProcStatus::Exited(ExitStatus::Signal(sig)) => Ok(Value::str(signal_name(sig))),
            _ => Ok(Value::Unit),
        },
    },
];

fn procs(s: &ScriptState, _: &mut dyn Host, a: &Args) -> ApiResult<Value> {
    let ids = targets(s, a.at(0))?;
    let mut lab = s.lab();
    let mut procs = Vec::new();
    for node in ids {
        let running = lab.running_procs(node)?;
        let st = lab.state();
        procs.extend(
            running
                .into_iter()
                .map(|id| Value::Proc(handle(st, node, id))),
        );
    }
    Ok(Value::Array(procs))
}

fn wait(s: &ScriptState, host: &mut dyn Host, a: &Args) -> ApiResult<Value> {
    let p = proc_arg(a)?;
    // Waiting lets experiment time pass: `at`/`every` callbacks keep running (except inside a
    // callback, which may not sleep). A virtual clock cannot wait for a real exit, so there
    // the process is taken to end at once.
    loop {
        let waits_for_real = {
            let mut lab = s.lab();
            if let Some(status) = lab.exit_status(p.id)? {
                return Ok(Value::Int(status.shell_code() as i64));
            }
            lab.is_real() && !super::time::in_callback(s)
        };
        if !waits_for_real {
            let status = s.lab().wait(p.id)?;
            return Ok(Value::Int(status.shell_code() as i64));
        }
        super::time::step(host, s, WAIT_STEP)?;
    }
}

/// A handle on process `id` of `node`, from the experiment state.
fn handle(st: &Experiment, node: NodeId, id: ProcId) -> Proc {
    let proc = st.proc(id);
    Proc {
        id,
        pid: proc.pid,
        node: Node::of(st, node),
        cmd: proc.cmd.clone(),
    }
}

/// `spawn` on one Node gives its Proc; on an array of Nodes or a group name, one spawn per
/// node, each exactly as a single `spawn`, and the Procs in order.
fn spawn_each(s: &ScriptState, _: &mut dyn Host, a: &Args) -> ApiResult<Value> {
    let cmd = a.string(1)?;
    let opts = a.opts(2)?;
    if let Value::Node(node) = a.at(0) {
        return spawn(s, node.clone(), cmd, &opts).map(Value::Proc);
    }
    let ids = targets(s, a.at(0))?;
    let mut procs = Vec::with_capacity(ids.len());
    for id in ids {
        let node = Node::of(s.lab().state(), id);
        procs.push(Value::Proc(spawn(s, node, cmd, &opts)?));
    }
    Ok(Value::Array(procs))
}

/// Replaces `{ip}` and `{id}` with the node's values.
pub fn fill_placeholders(text: &str, node: &Node) -> String {
    text.replace("{ip}", &node.ip)
        .replace("{id}", &node.id.0.to_string())
}

fn spawn(state: &ScriptState, node: Node, cmd: &str, opts: &Table) -> ApiResult<Proc> {
    check_keys(opts, &["env", "shell", "user", "stdout"])?;
    let cmd = fill_placeholders(cmd, &node);
    if cmd.trim().is_empty() {
        return Err(ApiError::msg("expected a command, got an empty string"));
    }
    let shell = match opts.get("shell") {
        None => false,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| expected("shell", "true or false", v))?,
    };
    let argv = if shell {
        vec!["sh".to_string(), "-c".to_string(), cmd.clone()]
    } else {
        shell_words::split(&cmd).map_err(|e| {
            ApiError::msg(format!(
                "cannot split {cmd:?} into words ({e}); use #{{shell: true}} for shell syntax"
            ))
        })?
    };
    let env = match opts.get("env") {
        None => Vec::new(),
        Some(v) => v
            .as_map()
            .ok_or_else(|| expected("env", "a map of names to values", v))?
            .iter()
            .map(|(k, v)| (k.clone(), fill_placeholders(&v.to_string(), &node)))
            .collect(),
    };
    let user = match opts.get("user") {
        None => None,
        Some(Value::Str(u)) if !u.is_empty() => Some(u.clone()),
        Some(v) => return Err(expected("user", "a user name", v)),
    };
    let stdout = match opts.get("stdout") {
        None => None,
        Some(Value::Str(name)) => Some(
            NodeFile::parse(&fill_placeholders(name, &node))
                .map_err(|e| ApiError::msg(format!("stdout: {e}")))?,
        ),
        Some(v) => return Err(expected("stdout", "a file name", v)),
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
    let id = lab.spawn(node.id, spec)?;
    let pid = lab.state().proc(id).pid;
    Ok(Proc { id, pid, node, cmd })
}
