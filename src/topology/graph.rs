//! A network graph: vertices (network locations, with the access bandwidth of hosts placed
//! there) and edges (latency, jitter, loss), undirected unless made directed, and the paths
//! between vertices as Shadow computes them: the direct edge when the graph is complete and
//! direct edges are asked for (Shadow's `use_shortest_path: false`), otherwise the shortest path
//! by latency (Dijkstra, ties broken by lower loss), whose latency is the sum of its edges'
//! and whose loss is `1 - Π(1 - loss)`. A vertex's path to itself is its self-loop, whatever
//! shorter path there is (as in Shadow), or nothing added when it has none.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::OnceLock;

use super::TopologyError;
use crate::experiment::GroupLink;
use crate::units::Nanos;

/// What a packet meets along an edge or a path, one way.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    pub latency: Nanos,
    /// Half-width of the uniform jitter, as `GroupLink::jitter`.
    pub jitter: Nanos,
    pub loss: f64,
}

impl Link {
    /// Nothing added.
    pub const ZERO: Link = Link {
        latency: 0,
        jitter: 0,
        loss: 0.0,
    };

    /// The same link between two groups of the lab.
    pub fn group_link(&self) -> GroupLink {
        GroupLink {
            latency: self.latency,
            jitter: self.jitter,
            loss: self.loss,
            ..GroupLink::NONE
        }
    }

    /// The one of two directions' paths a symmetric group link gets: the slower (then the
    /// lossier), so no pair is faster than the graph says in either direction.
    pub fn slower(self, other: Link) -> Link {
        if (other.latency, other.loss.to_bits()) > (self.latency, self.loss.to_bits()) {
            other
        } else {
            self
        }
    }
}

/// A scalar attribute of a vertex besides the ones p2plab reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    Num(f64),
    Text(String),
}

/// A network location nodes can be placed on.
#[derive(Debug, Clone, PartialEq)]
pub struct Vertex {
    pub name: String,
    /// Access bandwidth of each host placed here, bits/s (Shadow's `host_bandwidth_up`).
    pub up: Option<u64>,
    pub down: Option<u64>,
    pub attrs: Vec<(String, Attr)>,
}

impl Vertex {
    /// A vertex with a name and nothing else.
    pub fn named(name: impl Into<String>) -> Self {
        Vertex {
            name: name.into(),
            up: None,
            down: None,
            attrs: Vec::new(),
        }
    }

    /// A numeric attribute, if the vertex has one called `key`.
    pub fn number(&self, key: &str) -> Option<f64> {
        self.attrs.iter().find_map(|(k, v)| match v {
            Attr::Num(x) if k == key => Some(*x),
            _ => None,
        })
    }
}

/// How paths are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routing {
    /// The edge between the two vertices (the graph must be complete).
    Direct,
    /// The shortest path by latency.
    Shortest,
}

/// How vertices of a GML file are named (their names are the lab's group names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// By `label` when every vertex has a distinct one, else by `id`.
    Auto,
    Id,
    Label,
}

#[derive(Debug, Clone, Copy)]
struct Edge {
    from: u32,
    to: u32,
    link: Link,
}

/// Edges by vertex: `hops[start[v]..start[v + 1]]` leave `v`, sorted by the vertex they reach,
/// the best edge of parallel ones first.
#[derive(Debug)]
struct Csr {
    start: Vec<u32>,
    hops: Vec<(u32, u32)>,
}

impl Csr {
    fn hops(&self, v: u32) -> &[(u32, u32)] {
        let v = v as usize;
        &self.hops[self.start[v] as usize..self.start[v + 1] as usize]
    }
}

#[derive(Debug)]
struct Adjacency {
    out: Csr,
    /// Edges by the vertex they reach (directed graphs only).
    into: Option<Csr>,
    /// The first pair of distinct vertices with no edge between them, if any.
    missing: Option<(u32, u32)>,
}

#[derive(Debug, Default)]
pub struct Graph {
    directed: bool,
    vertices: Vec<Vertex>,
    names: HashMap<String, u32>,
    edges: Vec<Edge>,
    /// Built on first use, dropped when the graph changes.
    adjacency: OnceLock<Adjacency>,
}

/// A path being grown by Dijkstra: jitters add as squares (see `Acc::finish`).
#[derive(Debug, Clone, Copy)]
struct Acc {
    latency: Nanos,
    delivered: f64,
    jitter_sq: u128,
}

impl Acc {
    const START: Acc = Acc {
        latency: 0,
        delivered: 1.0,
        jitter_sq: 0,
    };

    fn then(self, l: &Link) -> Acc {
        let j = u128::from(l.jitter);
        Acc {
            latency: self.latency.saturating_add(l.latency),
            delivered: self.delivered * (1.0 - l.loss),
            jitter_sq: self.jitter_sq.saturating_add(j * j),
        }
    }

    fn key(&self) -> (Nanos, u64) {
        (self.latency, self.loss().to_bits())
    }

    fn loss(&self) -> f64 {
        // `+ 0.0` makes a -0.0 (from 1 - 1) a 0.0, whose bits order like the number.
        (1.0 - self.delivered).max(0.0) + 0.0
    }

    /// The path's link. Its jitter is the root of the sum of the edges' squared jitters: the
    /// delay of a path is a sum of independent draws, whose standard deviation is the root of
    /// the sum of their variances, and a uniform jitter's variance is proportional to its
    /// half-width squared, so this keeps the path's spread that of its edges together.
    fn finish(self) -> Link {
        Link {
            latency: self.latency,
            jitter: isqrt_round(self.jitter_sq),
            loss: self.loss(),
        }
    }
}

/// The integer nearest to √x.
fn isqrt_round(x: u128) -> Nanos {
    let square = |r: u128| r.checked_mul(r);
    let mut r = (x as f64).sqrt() as u128;
    while square(r).is_none_or(|s| s > x) {
        r -= 1;
    }
    while square(r + 1).is_some_and(|s| s <= x) {
        r += 1;
    }
    // r² ≤ x < (r+1)²; round up when x ≥ (r + ½)² = r² + r + ¼.
    let r = if x - r * r > r { r + 1 } else { r };
    Nanos::try_from(r).unwrap_or(Nanos::MAX)
}

impl Graph {
    pub fn new(directed: bool) -> Self {
        Graph {
            directed,
            ..Graph::default()
        }
    }

    pub fn directed(&self) -> bool {
        self.directed
    }

    pub fn set_directed(&mut self, directed: bool) {
        self.directed = directed;
        self.adjacency = OnceLock::new();
    }

    pub fn vertices(&self) -> &[Vertex] {
        &self.vertices
    }

    pub fn vertex(&self, v: u32) -> &Vertex {
        &self.vertices[v as usize]
    }

    pub fn edge_count(&self) -> usize {
        self.edges.len()
    }

    /// Adds a vertex; names are unique.
    pub fn add_vertex(&mut self, vertex: Vertex) -> Result<u32, TopologyError> {
        if self.names.contains_key(&vertex.name) {
            return Err(TopologyError::Invalid(format!(
                "two vertices are named {:?}",
                vertex.name
            )));
        }
        let id = u32::try_from(self.vertices.len())
            .map_err(|_| TopologyError::Invalid("more than 2³² vertices".into()))?;
        self.names.insert(vertex.name.clone(), id);
        self.vertices.push(vertex);
        self.adjacency = OnceLock::new();
        Ok(id)
    }

    /// Gives every vertex a new name, in order. `Err(v)`: vertex `v`'s name is an earlier
    /// vertex's too (the names are then `v`'s and those before it changed).
    pub fn rename(&mut self, names: Vec<String>) -> Result<(), u32> {
        self.names.clear();
        for (i, (vertex, name)) in self.vertices.iter_mut().zip(names).enumerate() {
            vertex.name = name;
            if self.names.insert(vertex.name.clone(), i as u32).is_some() {
                return Err(i as u32);
            }
        }
        Ok(())
    }

    /// Adds an edge between two vertices of this graph (from `find` or `add_vertex`), from
    /// `from` to `to` only in a directed graph.
    pub fn add_edge(&mut self, from: u32, to: u32, link: Link) {
        let loss = if link.loss > 0.0 {
            link.loss.min(1.0)
        } else {
            0.0
        };
        self.edges.push(Edge {
            from,
            to,
            link: Link { loss, ..link },
        });
        self.adjacency = OnceLock::new();
    }

    /// The vertex called `name`.
    pub fn find(&self, name: &str) -> Result<u32, TopologyError> {
        self.names.get(name).copied().ok_or_else(|| {
            let count = self.vertices.len();
            let hint = if count == 0 {
                String::new()
            } else if count <= 8 {
                let names: Vec<String> = self
                    .vertices
                    .iter()
                    .map(|v| format!("{:?}", v.name))
                    .collect();
                format!(": {}", names.join(", "))
            } else {
                format!(", such as {:?}", self.vertices[0].name)
            };
            TopologyError::UnknownVertex {
                name: name.to_string(),
                count,
                hint,
            }
        })
    }

    /// Whether every vertex has an edge to every other (a self-loop is not needed).
    pub fn is_complete(&self) -> bool {
        self.adjacency().missing.is_none()
    }

    /// Direct edges where the graph is complete, unless shortest paths are asked for.
    pub fn routing(&self, shortest: bool) -> Routing {
        if !shortest && self.is_complete() {
            Routing::Direct
        } else {
            Routing::Shortest
        }
    }

    /// The path from `a` to `b`.
    pub fn path(&self, a: u32, b: u32, routing: Routing) -> Result<Link, TopologyError> {
        self.paths_from(a, routing)?[b as usize].ok_or_else(|| self.unreachable(a, b))
    }

    /// The error for a pair with no path.
    pub fn unreachable(&self, a: u32, b: u32) -> TopologyError {
        TopologyError::Unreachable {
            from: self.vertex(a).name.clone(),
            to: self.vertex(b).name.clone(),
        }
    }

    /// The path from `v` to every vertex (`None`: unreachable), one Dijkstra.
    pub fn paths_from(&self, v: u32, routing: Routing) -> Result<Vec<Option<Link>>, TopologyError> {
        let adj = self.adjacency();
        self.row(&adj.out, v, routing)
    }

    /// The path from every vertex to `v` (the same as `paths_from` when undirected).
    pub fn paths_to(&self, v: u32, routing: Routing) -> Result<Vec<Option<Link>>, TopologyError> {
        let adj = self.adjacency();
        self.row(adj.into.as_ref().unwrap_or(&adj.out), v, routing)
    }

    fn row(&self, csr: &Csr, v: u32, routing: Routing) -> Result<Vec<Option<Link>>, TopologyError> {
        let mut row = match routing {
            Routing::Direct => self.direct(csr, v)?,
            Routing::Shortest => self.dijkstra(csr, v),
        };
        // A vertex to itself: its self-loop, even where a path through others is shorter.
        row[v as usize] = Some(self.self_loop(csr, v).unwrap_or(Link::ZERO));
        Ok(row)
    }

    fn self_loop(&self, csr: &Csr, v: u32) -> Option<Link> {
        let hops = csr.hops(v);
        let i = hops.partition_point(|&(to, _)| to < v);
        hops.get(i)
            .filter(|&&(to, _)| to == v)
            .map(|&(_, e)| self.edges[e as usize].link)
    }

    fn direct(&self, csr: &Csr, v: u32) -> Result<Vec<Option<Link>>, TopologyError> {
        if let Some((a, b)) = self.adjacency().missing {
            return Err(TopologyError::NotComplete {
                from: self.vertex(a).name.clone(),
                to: self.vertex(b).name.clone(),
            });
        }
        let mut row = vec![None; self.vertices.len()];
        // Hops are sorted by target with the best edge first: keep the first of each target.
        for &(to, e) in csr.hops(v).iter().rev() {
            row[to as usize] = Some(self.edges[e as usize].link);
        }
        Ok(row)
    }

    fn dijkstra(&self, csr: &Csr, source: u32) -> Vec<Option<Link>> {
        let n = self.vertices.len();
        let mut best: Vec<Option<Acc>> = vec![None; n];
        let mut done = vec![false; n];
        let mut heap = BinaryHeap::new();
        best[source as usize] = Some(Acc::START);
        heap.push(Reverse((Acc::START.key(), source)));
        while let Some(Reverse((_, v))) = heap.pop() {
            let vi = v as usize;
            if done[vi] {
                continue;
            }
            done[vi] = true;
            let Some(acc) = best[vi] else { continue };
            for &(to, e) in csr.hops(v) {
                let next = acc.then(&self.edges[e as usize].link);
                let ti = to as usize;
                if !done[ti] && best[ti].is_none_or(|b| next.key() < b.key()) {
                    best[ti] = Some(next);
                    heap.push(Reverse((next.key(), to)));
                }
            }
        }
        best.into_iter().map(|a| a.map(Acc::finish)).collect()
    }

    fn adjacency(&self) -> &Adjacency {
        self.adjacency.get_or_init(|| {
            let n = self.vertices.len();
            let out = if self.directed {
                self.csr(|e| [Some((e.from, e.to)), None])
            } else {
                self.csr(|e| {
                    [
                        Some((e.from, e.to)),
                        (e.from != e.to).then_some((e.to, e.from)),
                    ]
                })
            };
            let into = self
                .directed
                .then(|| self.csr(|e| [Some((e.to, e.from)), None]));
            let missing = (0..n as u32).find_map(|v| {
                // Targets come sorted: walk them against every vertex but `v`, in order.
                let after = |w: u32| if w + 1 == v { w + 2 } else { w + 1 };
                let mut want = if v == 0 { 1 } else { 0 };
                for &(to, _) in out.hops(v) {
                    if to == v || to < want {
                        continue;
                    }
                    if to > want {
                        return Some((v, want));
                    }
                    want = after(want);
                }
                (want < n as u32).then_some((v, want))
            });
            Adjacency { out, into, missing }
        })
    }

    /// Hops grouped by their first vertex: `pairs` gives up to two (from, to) per edge.
    fn csr(&self, pairs: impl Fn(&Edge) -> [Option<(u32, u32)>; 2]) -> Csr {
        let n = self.vertices.len();
        let mut start = vec![0u32; n + 1];
        for e in &self.edges {
            for (from, _) in pairs(e).into_iter().flatten() {
                start[from as usize + 1] += 1;
            }
        }
        for i in 0..n {
            start[i + 1] += start[i];
        }
        let mut fill = start.clone();
        let mut hops = vec![(0u32, 0u32); start[n] as usize];
        for (i, e) in self.edges.iter().enumerate() {
            for (from, to) in pairs(e).into_iter().flatten() {
                let slot = &mut fill[from as usize];
                hops[*slot as usize] = (to, i as u32);
                *slot += 1;
            }
        }
        let edges = &self.edges;
        let key = |&(to, e): &(u32, u32)| {
            let l = edges[e as usize].link;
            (to, l.latency, l.loss.to_bits(), e)
        };
        for v in 0..n {
            hops[start[v] as usize..start[v + 1] as usize].sort_unstable_by_key(key);
        }
        Csr { start, hops }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::MS;

    fn ms(latency: u64) -> Link {
        Link {
            latency: latency * MS,
            ..Link::ZERO
        }
    }

    /// a - b - c - d in a line, plus a slow a - d shortcut.
    fn line() -> Graph {
        let mut g = Graph::new(false);
        for name in ["a", "b", "c", "d"] {
            g.add_vertex(Vertex::named(name)).unwrap();
        }
        g.add_edge(
            0,
            1,
            Link {
                latency: 10 * MS,
                jitter: 3 * MS,
                loss: 0.1,
            },
        );
        g.add_edge(
            1,
            2,
            Link {
                latency: 20 * MS,
                jitter: 4 * MS,
                loss: 0.2,
            },
        );
        g.add_edge(2, 3, ms(5));
        g.add_edge(0, 3, ms(100));
        g.add_edge(1, 1, ms(1));
        g
    }

    #[test]
    fn shortest_paths_sum_latency_compound_loss_and_add_jitter_squares() {
        let g = line();
        assert!(!g.is_complete());
        assert_eq!(g.routing(false), Routing::Shortest);
        let p = g.path(0, 2, Routing::Shortest).unwrap();
        assert_eq!(p.latency, 30 * MS);
        assert_eq!(p.jitter, 5 * MS, "√(3² + 4²) = 5");
        assert!((p.loss - (1.0 - 0.9 * 0.8)).abs() < 1e-12, "{}", p.loss);
        // Through c (35 ms), not the 100 ms shortcut.
        assert_eq!(g.path(0, 3, Routing::Shortest).unwrap().latency, 35 * MS);
        assert_eq!(g.path(3, 0, Routing::Shortest).unwrap().latency, 35 * MS);
    }

    #[test]
    fn a_vertex_to_itself_is_its_self_loop_or_nothing() {
        let g = line();
        assert_eq!(g.path(1, 1, Routing::Shortest).unwrap(), ms(1));
        assert_eq!(g.path(0, 0, Routing::Shortest).unwrap(), Link::ZERO);
    }

    #[test]
    fn ties_go_to_the_lower_loss() {
        let mut g = Graph::new(false);
        for name in ["a", "b", "c"] {
            g.add_vertex(Vertex::named(name)).unwrap();
        }
        let lossy = Link {
            loss: 0.5,
            ..ms(10)
        };
        g.add_edge(
            0,
            2,
            Link {
                latency: 20 * MS,
                ..lossy
            },
        );
        g.add_edge(0, 1, ms(10));
        g.add_edge(1, 2, ms(10));
        let p = g.path(0, 2, Routing::Shortest).unwrap();
        assert_eq!((p.latency, p.loss), (20 * MS, 0.0));
    }

    #[test]
    fn direct_edges_of_a_complete_graph_even_past_a_shorter_path() {
        let mut g = Graph::new(false);
        for name in ["a", "b", "c"] {
            g.add_vertex(Vertex::named(name)).unwrap();
        }
        g.add_edge(0, 1, ms(10));
        g.add_edge(1, 2, ms(10));
        g.add_edge(2, 0, ms(50));
        g.add_edge(2, 0, ms(40));
        assert!(g.is_complete());
        assert_eq!(g.routing(false), Routing::Direct);
        assert_eq!(g.routing(true), Routing::Shortest);
        // The better of two parallel edges.
        assert_eq!(g.path(0, 2, Routing::Direct).unwrap(), ms(40));
        assert_eq!(g.path(0, 2, Routing::Shortest).unwrap(), ms(20));
        assert_eq!(g.path(2, 2, Routing::Direct).unwrap(), Link::ZERO);
    }

    #[test]
    fn direct_edges_need_a_complete_graph() {
        let g = line();
        assert_eq!(
            g.path(0, 1, Routing::Direct).unwrap_err(),
            TopologyError::NotComplete {
                from: "a".into(),
                to: "c".into()
            }
        );
    }

    #[test]
    fn directed_edges_go_one_way() {
        let mut g = Graph::new(true);
        for name in ["a", "b", "c"] {
            g.add_vertex(Vertex::named(name)).unwrap();
        }
        g.add_edge(0, 1, ms(10));
        g.add_edge(1, 2, ms(10));
        g.add_edge(2, 0, ms(10));
        assert!(!g.is_complete());
        assert_eq!(g.path(0, 2, Routing::Shortest).unwrap(), ms(20));
        assert_eq!(g.path(2, 0, Routing::Shortest).unwrap(), ms(10));
        let into_a = g.paths_to(0, Routing::Shortest).unwrap();
        assert_eq!(into_a, vec![Some(Link::ZERO), Some(ms(20)), Some(ms(10))]);
        assert_eq!(ms(20).slower(ms(10)), ms(20));
        assert_eq!(ms(10).slower(ms(20)), ms(20));
        g.add_edge(1, 0, ms(1));
        g.add_edge(0, 2, ms(1));
        g.add_edge(2, 1, ms(1));
        assert!(g.is_complete());
    }

    #[test]
    fn unreachable_pairs_and_unknown_names_say_which() {
        let mut g = line();
        g.add_vertex(Vertex::named("island")).unwrap();
        assert_eq!(
            g.path(0, 4, Routing::Shortest).unwrap_err().to_string(),
            "no path from vertex \"a\" to vertex \"island\": the graph is not connected"
        );
        assert_eq!(
            g.find("paris").unwrap_err().to_string(),
            "no vertex named \"paris\" (the graph has 5 vertices: \"a\", \"b\", \"c\", \"d\", \"island\")"
        );
        assert!(g.add_vertex(Vertex::named("a")).is_err());
    }

    #[test]
    fn rounded_square_roots() {
        assert_eq!(isqrt_round(0), 0);
        assert_eq!(isqrt_round(2), 1);
        assert_eq!(isqrt_round(3), 2);
        assert_eq!(isqrt_round(25), 5);
        assert_eq!(isqrt_round(30), 5);
        assert_eq!(isqrt_round(31), 6);
        assert_eq!(
            isqrt_round(u128::from(u64::MAX) * u128::from(u64::MAX)),
            u64::MAX
        );
    }
}
