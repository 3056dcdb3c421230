//! Topologies in scripts: the `Topology` handle (`load_gml`, `load_latency_csv`, `graph()`
//! built by hand with `add_vertex`/`add_edge`), its `path(a, b)`, and `place(n, opts)`, which
//! makes nodes on the graph's vertices: each vertex is a group, shaped with the vertex's host
//! bandwidth, linked with every other used vertex by one `link_group_row` per vertex.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use sha2::{Digest, Sha256};

use super::ScriptState;
use super::args::{check_keys, duration, expected, probability, rate};
use super::call::{ApiError, ApiResult, Args, Host, Prim, Prop};
use super::nodes::Node;
use super::value::{Table, Value};
use crate::experiment::{GroupId, GroupLink, NodeLimits, ShapeUpdate};
use crate::results::Event;
use crate::topology::graph::Attr;
use crate::topology::{Graph, Link, Naming, Routing, TopologyError, Vertex, csv, place, shadow};
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

pub const PRIMS: &[Prim] = &[
    Prim {
        name: "graph",
        min: 0,
        max: 0,
        expects: "no argument",
        f: |_, _, _| Ok(Value::Topology(Topology::new(Graph::new(false), false))),
    },
    Prim {
        name: "load_gml",
        min: 1,
        max: 2,
        expects: "a file name (a string) and optionally a map of options #{ names, shortest_paths }",
        f: load_gml,
    },
    Prim {
        name: "load_latency_csv",
        min: 1,
        max: 1,
        expects: "a file name (a string)",
        f: load_latency_csv,
    },
    Prim {
        name: "vertices",
        min: 1,
        max: 1,
        expects: "a Topology, as in t.vertices()",
        f: vertices,
    },
    Prim {
        name: "add_vertex",
        min: 2,
        max: 3,
        expects: "a Topology, a vertex name (a string) and optionally a map of options, as in g.add_vertex(name, #{ up })",
        f: add_vertex,
    },
    Prim {
        name: "add_edge",
        min: 3,
        max: 4,
        expects: "a Topology, two vertex names (strings) and optionally a map of options, as in g.add_edge(a, b, #{ latency })",
        f: add_edge,
    },
    Prim {
        name: "path",
        min: 3,
        max: 3,
        expects: "a Topology and two vertex names (strings), as in t.path(a, b)",
        f: path,
    },
    Prim {
        name: "place",
        min: 2,
        max: 3,
        expects: "a Topology, a number of nodes (an integer) and optionally a map of options, as in t.place(n, #{ by: \"random\" })",
        f: place_nodes,
    },
];

pub const PROPS: &[Prop] = &[Prop {
    name: "complete",
    get: |_, v| match v {
        Value::Topology(t) => Ok(Value::Bool(t.lock().graph.is_complete())),
        _ => unreachable!("a Topology property is only bound to Topologies"),
    },
}];

/// The Topology argument `i`.
fn topology(a: &Args, i: usize) -> ApiResult<&Topology> {
    match a.at(i) {
        Value::Topology(t) => Ok(t),
        _ => Err(a.mismatch()),
    }
}

impl From<TopologyError> for ApiError {
    fn from(e: TopologyError) -> Self {
        ApiError::msg(e)
    }
}

fn vertices(_: &ScriptState, _: &mut dyn Host, a: &Args) -> ApiResult<Value> {
    let t = topology(a, 0)?.lock();
    Ok(Value::Array(
        t.graph
            .vertices()
            .iter()
            .map(|v| Value::str(v.name.as_str()))
            .collect(),
    ))
}

fn load_latency_csv(s: &ScriptState, _: &mut dyn Host, a: &Args) -> ApiResult<Value> {
    let path = a.string(0)?;
    let (text, digest) = read(s, path)?;
    let graph = csv::read(path, &text)?;
    record_load(s, path, &digest, &graph)?;
    Ok(Value::Topology(Topology::new(graph, false)))
}

fn describe(t: &Topo) -> String {
    format!(
        "topology of {} vertices and {} edges",
        t.graph.vertices().len(),
        t.graph.edge_count()
    )
}

/// The file's text and its SHA-256, found from the script's folder.
fn read(state: &ScriptState, path: &str) -> ApiResult<(String, String)> {
    let file = state.data_file(path);
    let bytes = std::fs::read(&file)
        .map_err(|e| ApiError::msg(format!("cannot read {}: {e}", file.display())))?;
    let digest = hex::encode(Sha256::digest(&bytes));
    let text = String::from_utf8(bytes)
        .map_err(|e| ApiError::msg(format!("{path} is not UTF-8 text: {e}")))?;
    Ok((text, digest))
}

fn record_load(state: &ScriptState, path: &str, digest: &str, graph: &Graph) -> ApiResult<()> {
    let mut lab = state.lab();
    let event = Event::new(lab.now(), "topology")
        .with("file", path)
        .with("sha256", digest)
        .with("vertices", graph.vertices().len())
        .with("edges", graph.edge_count())
        .with("directed", graph.directed())
        .with("complete", graph.is_complete());
    lab.record(event)?;
    Ok(())
}

fn load_gml(s: &ScriptState, _: &mut dyn Host, a: &Args) -> ApiResult<Value> {
    let path = a.string(0)?;
    let opts = a.opts(1)?;
    check_keys(&opts, GML_KEYS)?;
    let naming = match opts.get("names") {
        None => Naming::Auto,
        Some(v) => match v.as_str() {
            Some("auto") => Naming::Auto,
            Some("id") => Naming::Id,
            Some("label") => Naming::Label,
            _ => return Err(expected("names", "\"auto\", \"id\" or \"label\"", v)),
        },
    };
    let shortest = match opts.get("shortest_paths") {
        None => false,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| expected("shortest_paths", "true or false", v))?,
    };
    let (text, digest) = read(s, path)?;
    let graph = shadow::read(path, &text, naming)?;
    record_load(s, path, &digest, &graph)?;
    Ok(Value::Topology(Topology::new(graph, shortest)))
}

fn add_vertex(_: &ScriptState, _: &mut dyn Host, a: &Args) -> ApiResult<Value> {
    let (t, name, opts) = (topology(a, 0)?, a.string(1)?, a.opts(2)?);
    if name.trim().is_empty() {
        return Err(ApiError::msg("expected a non-empty vertex name"));
    }
    let mut vertex = Vertex::named(name);
    for (key, value) in &opts {
        match key.as_str() {
            "up" => vertex.up = Some(rate("up", value)?),
            "down" => vertex.down = Some(rate("down", value)?),
            other => {
                let x = value.number().ok_or_else(|| {
                    expected(other, "a number (an attribute such as a weight)", value)
                })?;
                vertex.attrs.push((other.to_string(), Attr::Num(x)));
            }
        }
    }
    let mut t = t.lock();
    t.graph.add_vertex(vertex)?;
    // Rows are as long as the graph was.
    t.rows.clear();
    Ok(Value::Unit)
}

fn add_edge(_: &ScriptState, _: &mut dyn Host, a: &Args) -> ApiResult<Value> {
    let (t, from, to, opts) = (topology(a, 0)?, a.string(1)?, a.string(2)?, a.opts(3)?);
    check_keys(&opts, EDGE_KEYS)?;
    let get = |key: &str| opts.get(key);
    let link = Link {
        latency: get("latency")
            .map(|v| duration("latency", v))
            .transpose()?
            .unwrap_or(0),
        jitter: get("jitter")
            .map(|v| duration("jitter", v))
            .transpose()?
            .unwrap_or(0),
        loss: get("loss")
            .map(|v| probability("loss", v))
            .transpose()?
            .unwrap_or(0.0),
    };
    let mut t = t.lock();
    if !t.used.is_empty() {
        return Err(ApiError::msg(
            "nodes are placed on this graph already, and their links are set: add edges before place()",
        ));
    }
    let from = t.graph.find(from)?;
    let to = t.graph.find(to)?;
    t.graph.add_edge(from, to, link);
    t.rows.clear();
    Ok(Value::Unit)
}

/// `t.path(a, b)`: `#{ latency, jitter, loss }` (seconds, seconds, probability) from a to b.
fn path(_: &ScriptState, _: &mut dyn Host, a: &Args) -> ApiResult<Value> {
    let (t, from, to) = (topology(a, 0)?, a.string(1)?, a.string(2)?);
    let mut t = t.lock();
    let from = t.graph.find(from)?;
    let to = t.graph.find(to)?;
    let routing = t.graph.routing(t.shortest);
    if !t.rows.contains_key(&from) {
        let row = t.graph.paths_from(from, routing)?;
        t.rows.insert(from, row);
    }
    let link = t.rows[&from][to as usize].ok_or_else(|| t.graph.unreachable(from, to))?;
    let mut m = Table::new();
    m.insert("latency".into(), Value::Float(units::secs(link.latency)));
    m.insert("jitter".into(), Value::Float(units::secs(link.jitter)));
    m.insert("loss".into(), Value::Float(link.loss));
    Ok(Value::Map(m))
}

/// Where `place` puts `n` nodes, as counts per vertex.
fn counts(state: &ScriptState, graph: &Graph, n: usize, opts: &Table) -> ApiResult<place::Counts> {
    check_keys(opts, PLACE_KEYS)?;
    let text = |key: &str| -> ApiResult<Option<&str>> {
        opts.get(key)
            .map(|v| v.as_str().ok_or_else(|| expected(key, "a string", v)))
            .transpose()
    };
    let (vertex, by, key) = (text("vertex")?, text("by")?, text("key")?);
    if let Some(name) = vertex {
        if by.is_some() || key.is_some() {
            return Err(ApiError::msg("give either vertex or by, not both"));
        }
        let v = graph.find(name)?;
        return Ok(place::on_vertex(n, v));
    }
    match by {
        None | Some("random") => {
            if key.is_some() {
                return Err(ApiError::msg("key is for by: \"weight\""));
            }
            let vertices = u32::try_from(graph.vertices().len()).unwrap_or(u32::MAX);
            Ok(place::at_random(n, vertices, &mut state.lab().rng)?)
        }
        Some("weight") => {
            let key = key.unwrap_or("weight");
            let weights: Vec<(u32, f64)> = graph
                .vertices()
                .iter()
                .enumerate()
                .map(|(i, v)| (i as u32, v.number(key).unwrap_or(0.0)))
                .collect();
            place::by_weight(n, &weights, |v| graph.vertex(v).name.clone())
                .map_err(|e| ApiError::msg(format!("by weight ({key}): {e}")))
        }
        Some(other) => Err(ApiError::msg(format!(
            "by: expected \"weight\" or \"random\", got {other:?}"
        ))),
    }
}

/// The paths from `v` to every vertex and, in a directed graph, back.
type Rows = (Vec<Option<Link>>, Option<Vec<Option<Link>>>);

fn rows_of(graph: &Graph, v: u32, routing: Routing) -> Result<Rows, TopologyError> {
    let from = graph.paths_from(v, routing)?;
    let to = if graph.directed() {
        Some(graph.paths_to(v, routing)?)
    } else {
        None
    };
    Ok((from, to))
}

/// The symmetric link of `v` with `u`: the slower direction in a directed graph.
fn pair_link(graph: &Graph, rows: &Rows, v: u32, u: u32) -> Result<GroupLink, TopologyError> {
    let ui = u as usize;
    let out = rows.0[ui].ok_or_else(|| graph.unreachable(v, u))?;
    let link = match &rows.1 {
        Some(back) => out.slower(back[ui].ok_or_else(|| graph.unreachable(u, v))?),
        None => out,
    };
    Ok(link.group_link())
}

fn place_nodes(state: &ScriptState, _: &mut dyn Host, a: &Args) -> ApiResult<Value> {
    let (t, n, opts) = (topology(a, 0)?, a.int(1)?, a.opts(2)?);
    let n = usize::try_from(n)
        .ok()
        .filter(|n| (1..=MAX_PLACE).contains(n))
        .ok_or_else(|| {
            ApiError::msg(format!(
                "expected a number of nodes between 1 and {MAX_PLACE}, got {n}"
            ))
        })?;
    let mut t = t.lock();
    let t = &mut *t;
    let counts = counts(state, &t.graph, n, &opts)?;
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
            let rows = rows_of(&t.graph, v, routing)?;
            for &u in t.group_of.keys().chain(&fresh) {
                pair_link(&t.graph, &rows, v, u)?;
            }
            Some(rows)
        }
    };
    let mut nodes = Vec::new();
    let mut lab = state.lab();
    for &(v, count) in &counts {
        let vertex = t.graph.vertex(v);
        let records = lab.alloc(count, &vertex.name, None)?;
        let update = ShapeUpdate {
            up: vertex.up,
            down: vertex.down,
            ..ShapeUpdate::default()
        };
        if update != ShapeUpdate::default() {
            let ids: Vec<_> = records.iter().map(|r| r.id).collect();
            lab.shape(&ids, &update, &NodeLimits::default())?;
        }
        if let std::collections::btree_map::Entry::Vacant(slot) = t.group_of.entry(v) {
            let group = lab.state().group(&vertex.name)?;
            slot.insert(group);
            t.used.push((v, group));
        }
        nodes.extend(
            records
                .iter()
                .map(|r| Value::Node(Node::from_record(r, &vertex.name))),
        );
    }
    // One row per new vertex, with the vertices used before it and itself. Sent last first,
    // so the first row names the newest group and each data plane grows its table once.
    let before = t.used.len() - fresh.len();
    let mut first_rows = first_rows;
    for (i, &v) in fresh.iter().enumerate().rev() {
        let rows = match first_rows.take_if(|_| i == 0) {
            Some(rows) => rows,
            None => rows_of(&t.graph, v, routing)?,
        };
        let links = t.used[..before + i + 1]
            .iter()
            .map(|&(u, group)| Ok((group, pair_link(&t.graph, &rows, v, u)?)))
            .collect::<Result<Vec<_>, TopologyError>>()?;
        lab.link_group_row(t.group_of[&v], links)?;
    }
    Ok(Value::Array(nodes))
}
