//! Topologies in scripts: the `Topology` handle (`load_gml`, `load_latency_csv`, `graph()`
//! built by hand with `add_vertex`/`add_edge`), its `path(a, b)`, and `place(n, opts)`, which
//! makes nodes on the graph's vertices: each vertex is a group, shaped with the vertex's host
//! bandwidth, linked with every other used vertex by one `link_group_row` per vertex.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use rhai::{Array, Dynamic, Engine, ImmutableString, Map, NativeCallContext};
use sha2::{Digest, Sha256};

use super::nodes::Node;
use super::{
    RhaiResult, ScriptState, check_keys, duration, expected, lab_err, number, probability, rate,
};
use crate::experiment::{GroupId, GroupLink, NodeLimits, ShapeUpdate};
use crate::results::Event;
use crate::script::error::at_call;
use crate::topology::graph::Attr;
use crate::topology::{Graph, Link, Naming, Routing, Vertex, csv, place, shadow};
use crate::units;

/// A script's handle on a topology; copies share it.
#[derive(Clone)]
pub struct Topology(Arc<Mutex<Topo>>);

struct Topo {
    graph: Graph,
    /// Shortest paths even where the graph is complete.
    shortest: bool,
    /// The vertices that have nodes, in the order they got them, and their groups.
    used: Vec<(u32, GroupId)>,
    group_of: BTreeMap<u32, GroupId>,
    /// Paths from the vertices `path()` asked about: one Dijkstra per source.
    rows: HashMap<u32, Vec<Option<Link>>>,
}

impl Topology {
    fn new(graph: Graph, shortest: bool) -> Self {
        Topology(Arc::new(Mutex::new(Topo {
            graph,
            shortest,
            used: Vec::new(),
            group_of: BTreeMap::new(),
            rows: HashMap::new(),
        })))
    }

    fn lock(&self) -> MutexGuard<'_, Topo> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How the topology prints: its size and kind.
    pub fn describe(&self) -> String {
        describe(&self.lock())
    }
}

const GML_KEYS: &[&str] = &["names", "shortest_paths"];
const EDGE_KEYS: &[&str] = &["latency", "jitter", "loss"];
const PLACE_KEYS: &[&str] = &["vertex", "by", "key"];
/// Most nodes one `place` makes: the address blocks of 256 workers.
const MAX_PLACE: usize = 256 * crate::experiment::NODES_PER_WORKER as usize;

pub fn register(engine: &mut Engine, state: &Arc<ScriptState>) {
    engine
        .register_type_with_name::<Topology>("Topology")
        .register_fn("to_string", |t: &mut Topology| describe(&t.lock()))
        .register_fn("to_debug", |t: &mut Topology| describe(&t.lock()))
        .register_get("complete", |t: &mut Topology| t.lock().graph.is_complete())
        .register_fn("vertices", |t: &mut Topology| -> Array {
            let t = t.lock();
            t.graph
                .vertices()
                .iter()
                .map(|v| Dynamic::from(ImmutableString::from(v.name.as_str())))
                .collect()
        })
        .register_fn("graph", || Topology::new(Graph::new(false), false))
        .register_fn(
            "add_vertex",
            |ctx: NativeCallContext, t: &mut Topology, name: &str| {
                add_vertex(&ctx, t, name, &Map::new())
            },
        )
        .register_fn(
            "add_vertex",
            |ctx: NativeCallContext, t: &mut Topology, name: &str, opts: Map| {
                add_vertex(&ctx, t, name, &opts)
            },
        )
        .register_fn(
            "add_edge",
            |ctx: NativeCallContext, t: &mut Topology, a: &str, b: &str| {
                add_edge(&ctx, t, a, b, &Map::new())
            },
        )
        .register_fn(
            "add_edge",
            |ctx: NativeCallContext, t: &mut Topology, a: &str, b: &str, opts: Map| {
                add_edge(&ctx, t, a, b, &opts)
            },
        )
        .register_fn("path", path);

    let s = state.clone();
    engine.register_fn("load_gml", move |ctx: NativeCallContext, path: &str| {
        load_gml(&ctx, &s, path, &Map::new())
    });
    let s = state.clone();
    engine.register_fn(
        "load_gml",
        move |ctx: NativeCallContext, path: &str, opts: Map| load_gml(&ctx, &s, path, &opts),
    );
    let s = state.clone();
    engine.register_fn(
        "load_latency_csv",
        move |ctx: NativeCallContext, path: &str| -> RhaiResult<Topology> {
            let (text, digest) = read(&ctx, &s, path)?;
            let graph = csv::read(path, &text).map_err(|e| at_call(&ctx, e))?;
            record_load(&ctx, &s, path, &digest, &graph)?;
            Ok(Topology::new(graph, false))
        },
    );
    let s = state.clone();
    engine.register_fn(
        "place",
        move |ctx: NativeCallContext, t: &mut Topology, n: i64| {
            place_nodes(&ctx, &s, t, n, &Map::new())
        },
    );
    let s = state.clone();
    engine.register_fn(
        "place",
        move |ctx: NativeCallContext, t: &mut Topology, n: i64, opts: Map| {
            place_nodes(&ctx, &s, t, n, &opts)
        },
    );
}

fn describe(t: &Topo) -> String {
    format!(
        "topology of {} vertices and {} edges",
        t.graph.vertices().len(),
        t.graph.edge_count()
    )
}

/// The file's text and its SHA-256, found from the script's folder.
fn read(ctx: &NativeCallContext, state: &ScriptState, path: &str) -> RhaiResult<(String, String)> {
    let file = state.data_file(path);
    let bytes = std::fs::read(&file)
        .map_err(|e| at_call(ctx, format!("cannot read {}: {e}", file.display())))?;
    let digest = hex::encode(Sha256::digest(&bytes));
    let text = String::from_utf8(bytes)
        .map_err(|e| at_call(ctx, format!("{path} is not UTF-8 text: {e}")))?;
    Ok((text, digest))
}

fn record_load(
    ctx: &NativeCallContext,
    state: &ScriptState,
    path: &str,
    digest: &str,
    graph: &Graph,
) -> RhaiResult<()> {
    let mut lab = state.lab();
    let event = Event::new(lab.now(), "topology")
        .with("file", path)
        .with("sha256", digest)
        .with("vertices", graph.vertices().len())
        .with("edges", graph.edge_count())
        .with("directed", graph.directed())
        .with("complete", graph.is_complete());
    lab.record(event).map_err(|e| lab_err(ctx, e))
}

fn load_gml(
    ctx: &NativeCallContext,
    state: &ScriptState,
    path: &str,
    opts: &Map,
) -> RhaiResult<Topology> {
    check_keys(ctx, opts, GML_KEYS)?;
    let naming = match opts.get("names") {
        None => Naming::Auto,
        Some(v) => match v
            .read_lock::<ImmutableString>()
            .as_deref()
            .map(|s| s.as_str())
        {
            Some("auto") => Naming::Auto,
            Some("id") => Naming::Id,
            Some("label") => Naming::Label,
            _ => return Err(expected(ctx, "names", "\"auto\", \"id\" or \"label\"", v)),
        },
    };
    let shortest = match opts.get("shortest_paths") {
        None => false,
        Some(v) => v
            .as_bool()
            .map_err(|_| expected(ctx, "shortest_paths", "true or false", v))?,
    };
    let (text, digest) = read(ctx, state, path)?;
    let graph = shadow::read(path, &text, naming).map_err(|e| at_call(ctx, e))?;
    record_load(ctx, state, path, &digest, &graph)?;
    Ok(Topology::new(graph, shortest))
}

fn add_vertex(ctx: &NativeCallContext, t: &mut Topology, name: &str, opts: &Map) -> RhaiResult<()> {
    if name.trim().is_empty() {
        return Err(at_call(ctx, "expected a non-empty vertex name"));
    }
    let mut vertex = Vertex::named(name);
    for (key, value) in opts {
        match key.as_str() {
            "up" => vertex.up = Some(rate(ctx, "up", value)?),
            "down" => vertex.down = Some(rate(ctx, "down", value)?),
            other => {
                let x = number(value).ok_or_else(|| {
                    expected(
                        ctx,
                        other,
                        "a number (an attribute such as a weight)",
                        value,
                    )
                })?;
                vertex.attrs.push((other.to_string(), Attr::Num(x)));
            }
        }
    }
    let mut t = t.lock();
    t.graph.add_vertex(vertex).map_err(|e| at_call(ctx, e))?;
    // Rows are as long as the graph was.
    t.rows.clear();
    Ok(())
}

fn add_edge(
    ctx: &NativeCallContext,
    t: &mut Topology,
    a: &str,
    b: &str,
    opts: &Map,
) -> RhaiResult<()> {
    check_keys(ctx, opts, EDGE_KEYS)?;
    let get = |key: &str| opts.get(key);
    let link = Link {
        latency: get("latency")
            .map(|v| duration(ctx, "latency", v))
            .transpose()?
            .unwrap_or(0),
        jitter: get("jitter")
            .map(|v| duration(ctx, "jitter", v))
            .transpose()?
            .unwrap_or(0),
        loss: get("loss")
            .map(|v| probability(ctx, "loss", v))
            .transpose()?
            .unwrap_or(0.0),
    };
    let mut t = t.lock();
    if !t.used.is_empty() {
        return Err(at_call(
            ctx,
            "nodes are placed on this graph already, and their links are set: add edges before place()",
        ));
    }
    let from = t.graph.find(a).map_err(|e| at_call(ctx, e))?;
    let to = t.graph.find(b).map_err(|e| at_call(ctx, e))?;
    t.graph.add_edge(from, to, link);
    t.rows.clear();
    Ok(())
}

/// `t.path(a, b)`: `#{ latency, jitter, loss }` (seconds, seconds, probability) from a to b.
fn path(ctx: NativeCallContext, t: &mut Topology, a: &str, b: &str) -> RhaiResult<Map> {
    let mut t = t.lock();
    let from = t.graph.find(a).map_err(|e| at_call(&ctx, e))?;
    let to = t.graph.find(b).map_err(|e| at_call(&ctx, e))?;
    let routing = t.graph.routing(t.shortest);
    if !t.rows.contains_key(&from) {
        let row = t
            .graph
            .paths_from(from, routing)
            .map_err(|e| at_call(&ctx, e))?;
        t.rows.insert(from, row);
    }
    let link =
        t.rows[&from][to as usize].ok_or_else(|| at_call(&ctx, t.graph.unreachable(from, to)))?;
    let mut m = Map::new();
    m.insert("latency".into(), Dynamic::from(units::secs(link.latency)));
    m.insert("jitter".into(), Dynamic::from(units::secs(link.jitter)));
    m.insert("loss".into(), Dynamic::from(link.loss));
    Ok(m)
}

/// Where `place` puts `n` nodes, as counts per vertex.
fn counts(
    ctx: &NativeCallContext,
    state: &ScriptState,
    graph: &Graph,
    n: usize,
    opts: &Map,
) -> RhaiResult<place::Counts> {
    check_keys(ctx, opts, PLACE_KEYS)?;
    let text = |key: &str| -> RhaiResult<Option<ImmutableString>> {
        opts.get(key)
            .map(|v| {
                v.read_lock::<ImmutableString>()
                    .map(|s| s.clone())
                    .ok_or_else(|| expected(ctx, key, "a string", v))
            })
            .transpose()
    };
    let (vertex, by, key) = (text("vertex")?, text("by")?, text("key")?);
    if let Some(name) = vertex {
        if by.is_some() || key.is_some() {
            return Err(at_call(ctx, "give either vertex or by, not both"));
        }
        let v = graph.find(&name).map_err(|e| at_call(ctx, e))?;
        return Ok(place::on_vertex(n, v));
    }
    match by.as_deref() {
        None | Some("random") => {
            if key.is_some() {
                return Err(at_call(ctx, "key is for by: \"weight\""));
            }
            let vertices = u32::try_from(graph.vertices().len()).unwrap_or(u32::MAX);
            place::at_random(n, vertices, &mut state.lab().rng).map_err(|e| at_call(ctx, e))
        }
        Some("weight") => {
            let key = key.as_deref().unwrap_or("weight");
            let weights: Vec<(u32, f64)> = graph
                .vertices()
                .iter()
                .enumerate()
                .map(|(i, v)| (i as u32, v.number(key).unwrap_or(0.0)))
                .collect();
            place::by_weight(n, &weights, |v| graph.vertex(v).name.clone())
                .map_err(|e| at_call(ctx, format!("by weight ({key}): {e}")))
        }
        Some(other) => Err(at_call(
            ctx,
            format!("by: expected \"weight\" or \"random\", got {other:?}"),
        )),
    }
}

/// The paths from `v` to every vertex and, in a directed graph, back.
type Rows = (Vec<Option<Link>>, Option<Vec<Option<Link>>>);

fn rows_of(
    graph: &Graph,
    v: u32,
    routing: Routing,
) -> Result<Rows, crate::topology::TopologyError> {
    let from = graph.paths_from(v, routing)?;
    let to = if graph.directed() {
        Some(graph.paths_to(v, routing)?)
    } else {
        None
    };
    Ok((from, to))
}

/// The symmetric link of `v` with `u`: the slower direction in a directed graph.
fn pair_link(
    graph: &Graph,
    rows: &Rows,
    v: u32,
    u: u32,
) -> Result<GroupLink, crate::topology::TopologyError> {
    let ui = u as usize;
    let out = rows.0[ui].ok_or_else(|| graph.unreachable(v, u))?;
    let link = match &rows.1 {
        Some(back) => out.slower(back[ui].ok_or_else(|| graph.unreachable(u, v))?),
        None => out,
    };
    Ok(link.group_link())
}

fn place_nodes(
    ctx: &NativeCallContext,
    state: &ScriptState,
    t: &mut Topology,
    n: i64,
    opts: &Map,
) -> RhaiResult<Array> {
    let n = usize::try_from(n)
        .ok()
        .filter(|n| (1..=MAX_PLACE).contains(n))
        .ok_or_else(|| {
            at_call(
                ctx,
                format!("expected a number of nodes between 1 and {MAX_PLACE}, got {n}"),
            )
        })?;
    let mut t = t.lock();
    let t = &mut *t;
    let counts = counts(ctx, state, &t.graph, n, opts)?;
    let routing = t.graph.routing(t.shortest);
    let fresh: Vec<u32> = counts
        .iter()
        .map(|&(v, _)| v)
        .filter(|v| !t.group_of.contains_key(v))
        .collect();
    // Before any node is made: every vertex used must reach every other, both ways. The
    // first new vertex reaching all of them (and all of them it) is enough.
    let first_rows = match fresh.first() {
        None => None,
        Some(&v) => {
            let rows = rows_of(&t.graph, v, routing).map_err(|e| at_call(ctx, e))?;
            for &u in t.group_of.keys().chain(&fresh) {
                pair_link(&t.graph, &rows, v, u).map_err(|e| at_call(ctx, e))?;
            }
            Some(rows)
        }
    };
    let mut nodes = Array::new();
    let mut lab = state.lab();
    for &(v, count) in &counts {
        let vertex = t.graph.vertex(v);
        let records = lab
            .alloc(count, &vertex.name, None)
            .map_err(|e| lab_err(ctx, e))?;
        let update = ShapeUpdate {
            up: vertex.up,
            down: vertex.down,
            ..ShapeUpdate::default()
        };
        if update != ShapeUpdate::default() {
            let ids: Vec<_> = records.iter().map(|r| r.id).collect();
            lab.shape(&ids, &update, &NodeLimits::default())
                .map_err(|e| lab_err(ctx, e))?;
        }
        if let std::collections::btree_map::Entry::Vacant(slot) = t.group_of.entry(v) {
            let group = lab
                .state()
                .group(&vertex.name)
                .map_err(|e| at_call(ctx, e))?;
            slot.insert(group);
            t.used.push((v, group));
        }
        nodes.extend(
            records
                .iter()
                .map(|r| Dynamic::from(Node::from_record(r, &vertex.name))),
        );
    }
    // One row per new vertex, with the vertices used before it and itself. Sent last first,
    // so the first row names the newest group and each data plane grows its table once.
    let before = t.used.len() - fresh.len();
    let mut first_rows = first_rows;
    for (i, &v) in fresh.iter().enumerate().rev() {
        let rows = match first_rows.take_if(|_| i == 0) {
            Some(rows) => rows,
            None => rows_of(&t.graph, v, routing).map_err(|e| at_call(ctx, e))?,
        };
        let links = t.used[..before + i + 1]
            .iter()
            .map(|&(u, group)| Ok((group, pair_link(&t.graph, &rows, v, u)?)))
            .collect::<Result<Vec<_>, crate::topology::TopologyError>>()
            .map_err(|e| at_call(ctx, e))?;
        lab.link_group_row(t.group_of[&v], links)
            .map_err(|e| lab_err(ctx, e))?;
    }
    Ok(nodes)
}
pub const PROPS: &[super::call::Prop] = &[];
