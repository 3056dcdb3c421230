//! Virtual nodes: `alloc_ip`, the `Node` handle and its live traffic counters, `nodes()`,
//! and the node life cycle (`fail_node`, `revive`, `leave`).

use std::sync::Arc;

use rhai::{Array, Dynamic, Engine, ImmutableString, Map, NativeCallContext};

use super::{RhaiResult, ScriptState, check_keys, duration, expected, lab_err, targets};
use crate::experiment::{Experiment, NodeCounters, NodeId, NodeRecord};
use crate::script::error::at_call;
use crate::units::SEC;

/// Default grace period of `leave` between SIGTERM and SIGKILL.
pub const LEAVE_GRACE: u64 = 5 * SEC;
/// The group of nodes allocated without one.
pub const DEFAULT_GROUP: &str = "default";
/// Most nodes one `alloc_ip` call may create (one worker's address block).
const MAX_ALLOC: i64 = crate::experiment::NODES_PER_WORKER as i64;

/// A script's handle on a virtual node. Immutable facts only; state is read from the lab.
#[derive(Debug, Clone)]
pub struct Node {
    pub id: NodeId,
    pub ip: ImmutableString,
    pub group: ImmutableString,
    pub worker: u32,
}

impl Node {
    pub fn from_record(r: &NodeRecord, group: &str) -> Self {
        Node {
            id: r.id,
            ip: r.ip.to_string().into(),
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

pub fn register(engine: &mut Engine, state: &Arc<ScriptState>) {
    engine
        .register_type_with_name::<Node>("Node")
        .register_get("ip", |n: &mut Node| n.ip.clone())
        .register_get("id", |n: &mut Node| n.id.0 as i64)
        .register_get("group", |n: &mut Node| n.group.clone())
        .register_get("worker", |n: &mut Node| n.worker as i64)
        .register_fn("to_string", |n: &mut Node| {
            format!("node {} ({})", n.id.0, n.ip)
        })
        .register_fn("to_debug", |n: &mut Node| {
            format!("node {} ({})", n.id.0, n.ip)
        })
        .register_fn("==", |a: &mut Node, b: Node| a.id == b.id)
        .register_fn("!=", |a: &mut Node, b: Node| a.id != b.id);

    let s = state.clone();
    engine.register_get("failed", move |n: &mut Node| {
        s.lab().state().node(n.id).failed
    });

    register_counters(engine, state);

    let s = state.clone();
    engine.register_fn("alloc_ip", move |ctx: NativeCallContext, n: i64| {
        alloc(&ctx, &s, n, &Map::new())
    });
    let s = state.clone();
    engine.register_fn(
        "alloc_ip",
        move |ctx: NativeCallContext, n: i64, opts: Map| alloc(&ctx, &s, n, &opts),
    );

    let s = state.clone();
    engine.register_fn("nodes", move || -> Array {
        let lab = s.lab();
        let st = lab.state();
        st.nodes()
            .iter()
            .map(|r| Dynamic::from(Node::from_record(r, st.group_name(r.group))))
            .collect()
    });
    let s = state.clone();
    engine.register_fn(
        "nodes",
        move |ctx: NativeCallContext, group: &str| -> RhaiResult<Array> {
            let lab = s.lab();
            let st = lab.state();
            let g = st.group(group).map_err(|e| at_call(&ctx, e))?;
            Ok(st
                .members(g)
                .iter()
                .map(|&id| Dynamic::from(Node::from_record(st.node(id), group)))
                .collect())
        },
    );

    let s = state.clone();
    engine.register_fn(
        "fail_node",
        move |ctx: NativeCallContext, target: Dynamic| -> RhaiResult<()> {
            let ids = targets(&ctx, &s, &target)?;
            s.lab().fail(&ids).map_err(|e| lab_err(&ctx, e))
        },
    );
    let s = state.clone();
    engine.register_fn(
        "revive",
        move |ctx: NativeCallContext, target: Dynamic| -> RhaiResult<()> {
            let ids = targets(&ctx, &s, &target)?;
            s.lab().revive(&ids).map_err(|e| lab_err(&ctx, e))
        },
    );
    let s = state.clone();
    engine.register_fn(
        "leave",
        move |ctx: NativeCallContext, target: Dynamic| -> RhaiResult<()> {
            let ids = targets(&ctx, &s, &target)?;
            s.lab()
                .leave(&ids, LEAVE_GRACE)
                .map_err(|e| lab_err(&ctx, e))
        },
    );
    let s = state.clone();
    engine.register_fn(
        "leave",
        move |ctx: NativeCallContext, target: Dynamic, opts: Map| -> RhaiResult<()> {
            check_keys(&ctx, &opts, &["grace"])?;
            let grace = match opts.get("grace") {
                Some(g) => duration(&ctx, "grace", g)?,
                None => LEAVE_GRACE,
            };
            let ids = targets(&ctx, &s, &target)?;
            s.lab().leave(&ids, grace).map_err(|e| lab_err(&ctx, e))
        },
    );
}

/// One of a node's traffic counters.
type Count = fn(&NodeCounters) -> u64;

/// The live traffic counters of a node, as properties (`node.rx_bytes`); zero in a dry-run.
fn register_counters(engine: &mut Engine, state: &Arc<ScriptState>) {
    let counters: [(&str, Count); 5] = [
        ("rx_bytes", |c| c.recv_bytes),
        ("tx_bytes", |c| c.sent_bytes),
        ("rx_packets", |c| c.recv_packets),
        ("tx_packets", |c| c.sent_packets),
        ("dropped", NodeCounters::dropped),
    ];
    for (name, count) in counters {
        let s = state.clone();
        engine.register_get(name, move |n: &mut Node| -> i64 {
            let c = s.lab().node_counters(n.id);
            i64::try_from(count(&c)).unwrap_or(i64::MAX)
        });
    }
}

fn alloc(ctx: &NativeCallContext, state: &ScriptState, n: i64, opts: &Map) -> RhaiResult<Array> {
    check_keys(ctx, opts, &["group", "worker"])?;
    if !(1..=MAX_ALLOC).contains(&n) {
        return Err(at_call(
            ctx,
            format!("expected a number of nodes between 1 and {MAX_ALLOC}, got {n}"),
        ));
    }
    let group: ImmutableString = match opts.get("group") {
        None => DEFAULT_GROUP.into(),
        Some(g) => match g.read_lock::<ImmutableString>() {
            Some(s) if !s.trim().is_empty() => s.clone(),
            _ => return Err(expected(ctx, "group", "a non-empty group name", g)),
        },
    };
    let worker = match opts.get("worker") {
        None => None,
        Some(w) => match w.as_int() {
            Ok(k) if u32::try_from(k).is_ok() => Some(k as u32),
            _ => return Err(expected(ctx, "worker", "a worker number (0, 1, ...)", w)),
        },
    };
    let records = state
        .lab()
        .alloc(n as usize, &group, worker)
        .map_err(|e| lab_err(ctx, e))?;
    Ok(records
        .iter()
        .map(|r| Dynamic::from(Node::from_record(r, &group)))
        .collect())
}
