//! Virtual nodes: `alloc_ip`, the `Node` handle and its live traffic counters, `nodes()`,
//! and the node life cycle (`fail_node`, `revive`, `leave`).

use super::ScriptState;
use super::args::{check_keys, duration, expected, targets};
use super::call::{ApiResult, Args, Host, Prim, Prop};
use super::value::Value;
use crate::experiment::{Experiment, NodeCounters, NodeId, NodeRecord};
use crate::units::SEC;

/// Default grace period of `leave` between SIGTERM and SIGKILL.
pub const LEAVE_GRACE: u64 = 5 * SEC;
/// The group of nodes allocated without one.
pub const DEFAULT_GROUP: &str = "default";
/// Most nodes one `alloc_ip` call may create (one worker's address block).
const MAX_ALLOC: i64 = crate::experiment::NODES_PER_WORKER as i64;

/// What a target is, in the words of the reference.
pub const TARGET: &str = "a target (a Node, an array of Nodes or a group name)";

/// A script's handle on a virtual node. Immutable facts only; state is read from the lab.
#[derive(Debug, Clone)]
pub struct Node {
    pub id: NodeId,
    pub ip: String,
    pub group: String,
    pub worker: u32,
}

impl Node {
    pub fn from_record(r: &NodeRecord, group: &str) -> Self {
        Node {
            id: r.id,
            ip: r.ip.to_string(),
            group: group.into(),
            worker: r.worker,
        }
    }

    /// The handle on node `id` of the experiment.
    pub fn of(st: &Experiment, id: NodeId) -> Self {
        let r = st.node(id);
        Node::from_record(r, st.group_name(r.group))
    }
}

pub const PRIMS: &[Prim] = &[
    Prim {
        name: "alloc_ip",
        min: 1,
        max: 2,
        expects: "a number of nodes (an integer) and optionally a map of options #{ group, worker }",
        f: alloc,
    },
    Prim {
        name: "nodes",
        min: 0,
        max: 1,
        expects: "no argument, or a group name",
        f: nodes,
    },
    Prim {
        name: "fail_node",
        min: 1,
        max: 1,
        expects: TARGET,
        f: |s, _, a| {
            // The target first: a group name is looked up in the lab, which must not be locked.
            let ids = targets(s, a.at(0))?;
            s.lab().fail(&ids)?;
            Ok(Value::Unit)
        },
    },
    Prim {
        name: "revive",
        min: 1,
        max: 1,
        expects: TARGET,
        f: |s, _, a| {
            let ids = targets(s, a.at(0))?;
            s.lab().revive(&ids)?;
            Ok(Value::Unit)
        },
    },
    Prim {
        name: "leave",
        min: 1,
        max: 2,
        expects: "a target (a Node, an array of Nodes or a group name) and optionally a map of options #{ grace }",
        f: leave,
    },
];

fn node(v: &Value) -> &Node {
    match v {
        Value::Node(n) => n,
        _ => unreachable!("a Node property is only bound to Nodes"),
    }
}

/// One of a node's traffic counters, live; zero in a dry-run.
fn counter(s: &ScriptState, v: &Value, count: fn(&NodeCounters) -> u64) -> ApiResult<Value> {
    let c = s.lab().node_counters(node(v).id);
    Ok(Value::Int(i64::try_from(count(&c)).unwrap_or(i64::MAX)))
}

pub const PROPS: &[Prop] = &[
    Prop {
        name: "ip",
        get: |_, v| Ok(Value::str(node(v).ip.clone())),
    },
    Prop {
        name: "id",
        get: |_, v| Ok(Value::Int(node(v).id.0 as i64)),
    },
    Prop {
        name: "group",
        get: |_, v| Ok(Value::str(node(v).group.clone())),
    },
    Prop {
        name: "worker",
        get: |_, v| Ok(Value::Int(node(v).worker as i64)),
    },
    Prop {
        name: "failed",
        get: |s, v| Ok(Value::Bool(s.lab().state().node(node(v).id).failed)),
    },
    Prop {
        name: "rx_bytes",
        get: |s, v| counter(s, v, |c| c.recv_bytes),
    },
    Prop {
        name: "tx_bytes",
        get: |s, v| counter(s, v, |c| c.sent_bytes),
    },
    Prop {
        name: "rx_packets",
        get: |s, v| counter(s, v, |c| c.recv_packets),
    },
    Prop {
        name: "tx_packets",
        get: |s, v| counter(s, v, |c| c.sent_packets),
    },
    Prop {
        name: "dropped",
        get: |s, v| counter(s, v, NodeCounters::dropped),
    },
];

fn nodes(s: &ScriptState, _: &mut dyn Host, a: &Args) -> ApiResult<Value> {
    let lab = s.lab();
    let st = lab.state();
    let list = match a.get(0) {
        None => st
            .nodes()
            .iter()
            .map(|r| Value::Node(Node::from_record(r, st.group_name(r.group))))
            .collect(),
        Some(_) => {
            let group = a.string(0)?;
            let g = st.group(group)?;
            st.members(g)
                .iter()
                .map(|&id| Value::Node(Node::from_record(st.node(id), group)))
                .collect()
        }
    };
    Ok(Value::Array(list))
}

fn leave(s: &ScriptState, _: &mut dyn Host, a: &Args) -> ApiResult<Value> {
    let opts = a.opts(1)?;
    check_keys(&opts, &["grace"])?;
    let grace = match opts.get("grace") {
        Some(g) => duration("grace", g)?,
        None => LEAVE_GRACE,
    };
    let ids = targets(s, a.at(0))?;
    s.lab().leave(&ids, grace)?;
    Ok(Value::Unit)
}

fn alloc(s: &ScriptState, _: &mut dyn Host, a: &Args) -> ApiResult<Value> {
    let n = a.int(0)?;
    let opts = a.opts(1)?;
    check_keys(&opts, &["group", "worker"])?;
    if !(1..=MAX_ALLOC).contains(&n) {
        return Err(super::call::ApiError::msg(format!(
            "expected a number of nodes between 1 and {MAX_ALLOC}, got {n}"
        )));
    }
    let group = match opts.get("group") {
        None => DEFAULT_GROUP.to_string(),
        Some(Value::Str(g)) if !g.trim().is_empty() => g.clone(),
        Some(g) => return Err(expected("group", "a non-empty group name", g)),
    };
    let worker = match opts.get("worker") {
        None => None,
        Some(w) => match w.as_int() {
            Some(k) if u32::try_from(k).is_ok() => Some(k as u32),
            _ => return Err(expected("worker", "a worker number (0, 1, ...)", w)),
        },
    };
    let records = s.lab().alloc(n as usize, &group, worker)?;
    Ok(Value::Array(
        records
            .iter()
            .map(|r| Value::Node(Node::from_record(r, &group)))
            .collect(),
    ))
}
