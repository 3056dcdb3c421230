//! Shadow's network graph in GML, read into a `Graph`: `graph [ directed 0|1 node [ ... ]
//! edge [ ... ] ]`, with the node attributes `id` (required), `label`, `host_bandwidth_up`,
//! `host_bandwidth_down` ("10 Mbit") and any other scalar kept as an attribute (a weight for
//! placement), and the edge attributes `source`, `target`, `latency` (required, "10 ms"; a bare
//! number is seconds, as in Shadow), `jitter` ("2 ms") and `packet_loss` (0 to 1).

use std::collections::HashMap;

use super::gml::{Event, Pos, Reader, Value};
use super::graph::{Attr, Graph, Link, Naming, Vertex};
use super::{TopologyError, spelling};

/// The graph as it is read: vertices get their names at the end (labels, when every vertex
/// has a distinct one, are only known then); edges go in as they come, so a graph of millions
/// of edges is held once.
struct Builder {
    graph: Graph,
    /// Vertex of each GML id.
    index: HashMap<i64, u32>,
    /// Each vertex's id, label and place in the file.
    nodes: Vec<(i64, Option<String>, Pos)>,
    /// Edges naming an id not seen yet (nodes usually come first).
    pending: Vec<RawEdge>,
}

/// An edge whose ends are GML ids.
struct RawEdge {
    source: i64,
    target: i64,
    link: Link,
    at: Pos,
}

/// Reads a Shadow network graph from GML text; `file` names it in errors.
pub fn read(file: &str, text: &str, naming: Naming) -> Result<Graph, TopologyError> {
    let mut r = Reader::new(file, text);
    let mut found = false;
    let mut b = Builder {
        graph: Graph::new(false),
        index: HashMap::new(),
        nodes: Vec::new(),
        pending: Vec::new(),
    };
    while let Some(event) = r.next_event()? {
        match event {
            Event::Open { key: "graph", at } => {
                if found {
                    return Err(r.error(at, "a second graph: a file holds one graph"));
                }
                found = true;
                read_graph(&mut r, &mut b)?;
            }
            Event::Open { .. } => skip_list(&mut r)?,
            Event::Pair { .. } | Event::Close { .. } => {}
        }
    }
    if !found {
        return Err(r.error(
            Pos { line: 1, col: 1 },
            "expected a graph [ ... ] list, found none",
        ));
    }
    finish(&r, b, naming)
}

/// Reads the body of `graph [`, up to its `]`.
fn read_graph(r: &mut Reader<'_>, b: &mut Builder) -> Result<(), TopologyError> {
    while let Some(event) = r.next_event()? {
        match event {
            Event::Close { .. } => return Ok(()),
            Event::Open { key: "node", at } => {
                let (id, label, vertex) = read_node(r, at)?;
                if b.index.contains_key(&id) {
                    return Err(r.error(at, format!("a second node with id {id}")));
                }
                // A name no label can take (NUL), until `finish` names every vertex.
                let placeholder = Vertex {
                    name: format!("\0{}", b.nodes.len()),
                    ..vertex
                };
                let v = b.graph.add_vertex(placeholder)?;
                b.index.insert(id, v);
                b.nodes.push((id, label, at));
            }
            Event::Open { key: "edge", at } => {
                let edge = read_edge(r, at)?;
                match (b.index.get(&edge.source), b.index.get(&edge.target)) {
                    (Some(&from), Some(&to)) => b.graph.add_edge(from, to, edge.link),
                    _ => b.pending.push(edge),
                }
            }
            Event::Open { .. } => skip_list(r)?,
            Event::Pair {
                key: "directed",
                value,
                at,
            } => match value {
                Value::Int(0) => b.graph.set_directed(false),
                Value::Int(1) => b.graph.set_directed(true),
                v => {
                    return Err(r.error(
                        at,
                        format!("expected directed 0 or 1, found {}", v.describe()),
                    ));
                }
            },
            Event::Pair { .. } => {}
        }
    }
    // The reader reports a list left open before it ends.
    Ok(())
}

fn read_node(r: &mut Reader<'_>, at: Pos) -> Result<(i64, Option<String>, Vertex), TopologyError> {
    let mut id = None;
    let mut label = None;
    let mut vertex = Vertex::named("");
    while let Some((key, value, vat)) = next_pair(r)? {
        match key {
            "id" => id = Some(int(r, "id", &value, vat)?),
            "label" => label = Some(string(r, "label", &value, vat)?.to_string()),
            "host_bandwidth_up" => vertex.up = Some(rate(r, key, &value, vat)?),
            "host_bandwidth_down" => vertex.down = Some(rate(r, key, &value, vat)?),
            _ => {
                let attr = match value {
                    Value::Str(s) => Attr::Text(s.into_owned()),
                    v => Attr::Num(v.number().unwrap_or(0.0)),
                };
                vertex.attrs.push((key.to_string(), attr));
            }
        }
    }
    let id = id.ok_or_else(|| r.error(at, "expected an id in this node, found none"))?;
    Ok((id, label, vertex))
}

fn read_edge(r: &mut Reader<'_>, at: Pos) -> Result<RawEdge, TopologyError> {
    let (mut source, mut target, mut latency) = (None, None, None);
    let mut link = Link::ZERO;
    while let Some((key, value, vat)) = next_pair(r)? {
        match key {
            "source" => source = Some(int(r, key, &value, vat)?),
            "target" => target = Some(int(r, key, &value, vat)?),
            "latency" => latency = Some(duration(r, key, &value, vat)?),
            "jitter" => link.jitter = duration(r, key, &value, vat)?,
            "packet_loss" => {
                link.loss = match value.number() {
                    Some(p) if (0.0..=1.0).contains(&p) => p,
                    _ => {
                        return Err(r.error(
                            vat,
                            format!(
                                "expected packet_loss between 0.0 and 1.0, found {}",
                                value.describe()
                            ),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    let missing = |what: &str| r.error(at, format!("expected a {what} in this edge, found none"));
    link.latency = latency.ok_or_else(|| missing("latency"))?;
    Ok(RawEdge {
        source: source.ok_or_else(|| missing("source"))?,
        target: target.ok_or_else(|| missing("target"))?,
        link,
        at,
    })
}

/// Skips the rest of a list whose `[` was just read.
/// The next `key value` pair of the list being read, skipping nested lists (Shadow's graphs
/// have none inside a node or an edge); `None` at the list's `]`.
fn next_pair<'a>(r: &mut Reader<'a>) -> Result<Option<(&'a str, Value<'a>, Pos)>, TopologyError> {
    while let Some(event) = r.next_event()? {
        match event {
            Event::Close { .. } => return Ok(None),
            Event::Open { .. } => skip_list(r)?,
            Event::Pair { key, value, at } => return Ok(Some((key, value, at))),
        }
    }
    Ok(None)
}

fn skip_list(r: &mut Reader<'_>) -> Result<(), TopologyError> {
    let mut depth = 1usize;
    while let Some(event) = r.next_event()? {
        match event {
            Event::Open { .. } => depth += 1,
            Event::Close { .. } => {
                depth -= 1;
                if depth == 0 {
                    return Ok(());
                }
            }
            Event::Pair { .. } => {}
        }
    }
    Ok(())
}

/// Names the vertices and adds the edges that came before their nodes.
fn finish(r: &Reader<'_>, mut b: Builder, naming: Naming) -> Result<Graph, TopologyError> {
    for edge in std::mem::take(&mut b.pending) {
        let end = |id: i64| {
            b.index.get(&id).copied().ok_or_else(|| {
                r.error(
                    edge.at,
                    format!("this edge names node {id}, which is not in the graph"),
                )
            })
        };
        let (from, to) = (end(edge.source)?, end(edge.target)?);
        b.graph.add_edge(from, to, edge.link);
    }
    let by_label = match naming {
        Naming::Id => false,
        Naming::Label => true,
        Naming::Auto => {
            let mut seen = std::collections::HashSet::new();
            b.nodes
                .iter()
                .all(|(_, label, _)| label.as_ref().is_some_and(|l| seen.insert(l.as_str())))
        }
    };
    let names = b
        .nodes
        .iter()
        .map(|(id, label, at)| match (by_label, label) {
            (false, _) => Ok(id.to_string()),
            (true, Some(label)) => Ok(label.clone()),
            (true, None) => Err(r.error(*at, "expected a label in this node, found none")),
        })
        .collect::<Result<Vec<String>, TopologyError>>()?;
    b.graph.rename(names).map_err(|v| {
        let (_, _, at) = b.nodes[v as usize];
        r.error(
            at,
            format!("two vertices are named {:?}", b.graph.vertex(v).name),
        )
    })?;
    Ok(b.graph)
}

fn int(r: &Reader<'_>, key: &str, v: &Value<'_>, at: Pos) -> Result<i64, TopologyError> {
    match v {
        Value::Int(i) => Ok(*i),
        v => Err(r.error(
            at,
            format!("expected an integer {key}, found {}", v.describe()),
        )),
    }
}

fn string<'v>(
    r: &Reader<'_>,
    key: &str,
    v: &'v Value<'_>,
    at: Pos,
) -> Result<&'v str, TopologyError> {
    match v {
        Value::Str(s) => Ok(s),
        v => Err(r.error(
            at,
            format!("expected a string {key}, found {}", v.describe()),
        )),
    }
}

fn duration(r: &Reader<'_>, key: &str, v: &Value<'_>, at: Pos) -> Result<u64, TopologyError> {
    let parsed = match v {
        Value::Str(s) => spelling::duration(s),
        v => crate::units::duration_from_secs(v.number().unwrap_or(-1.0)),
    };
    parsed.map_err(|e| r.error(at, format!("{key}: {e}")))
}

fn rate(r: &Reader<'_>, key: &str, v: &Value<'_>, at: Pos) -> Result<u64, TopologyError> {
    let s = string(r, key, v, at)?;
    spelling::rate(s).map_err(|e| r.error(at, format!("{key}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Routing;
    use crate::units::MS;

    const FOUR: &str = r#"
        # Four places: a line a - b - c - d, and a slow edge a - d.
        graph [
          directed 0
          node [ id 0 label "a" host_bandwidth_up "10 Mbit" host_bandwidth_down "20 Mbit" weight 3 ]
          node [ id 1 label "b" weight 1 ]
          node [ id 7 label "c" ]
          node [ id 3 label "d" graphics [ x 1 y 2 ] ]
          edge [ source 0 target 1 latency "10 ms" packet_loss 0.1 ]
          edge [ source 1 target 7 latency "20 milliseconds" jitter "2 ms" ]
          edge [ source 7 target 3 latency 0.005 ]
          edge [ source 0 target 3 latency "100 ms" label "slow" ]
          edge [ source 0 target 0 latency "1 ms" ]
        ]
    "#;

    #[test]
    fn reads_vertices_edges_and_their_units() {
        let g = read("four.gml", FOUR, Naming::Auto).unwrap();
        assert!(!g.directed());
        assert_eq!(g.edge_count(), 5);
        let names: Vec<&str> = g.vertices().iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "d"]);
        let a = g.vertex(0);
        assert_eq!((a.up, a.down), (Some(10_000_000), Some(20_000_000)));
        assert_eq!(a.number("weight"), Some(3.0));
        assert_eq!(g.vertex(2).number("weight"), None);
        let p = g.path(0, 3, Routing::Shortest).unwrap();
        assert_eq!(p.latency, 35 * MS);
        assert_eq!(p.jitter, 2 * MS);
        assert!((p.loss - 0.1).abs() < 1e-12);
        assert_eq!(g.path(0, 0, Routing::Shortest).unwrap().latency, MS);
    }

    #[test]
    fn names_are_labels_when_all_are_distinct_else_ids() {
        let text = "graph [ node [ id 4 label \"x\" ] node [ id 5 label \"x\" ] node [ id 6 ] ]";
        let g = read("g.gml", text, Naming::Auto).unwrap();
        let names: Vec<&str> = g.vertices().iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["4", "5", "6"]);
        let g = read("g.gml", FOUR, Naming::Id).unwrap();
        assert_eq!(g.vertex(2).name, "7");
        assert_eq!(
            read("g.gml", text, Naming::Label).unwrap_err().to_string(),
            "g.gml:1:57: expected a label in this node, found none"
        );
        let twice = "graph [ node [ id 4 label \"x\" ] node [ id 5 label \"x\" ] ]";
        assert_eq!(
            read("g.gml", twice, Naming::Label).unwrap_err().to_string(),
            "g.gml:1:33: two vertices are named \"x\""
        );
        // Edges may come before the nodes they name.
        let late = "graph [ edge [ source 1 target 2 latency 1 ] node [ id 1 ] node [ id 2 ] ]";
        assert_eq!(read("g.gml", late, Naming::Auto).unwrap().edge_count(), 1);
    }

    #[test]
    fn errors_point_at_the_line_and_column() {
        let err = |t: &str| read("w.gml", t, Naming::Auto).unwrap_err().to_string();
        assert_eq!(
            err("graph [\n node [ id 0 ]\n edge [ source 0 target 9 latency \"1 ms\" ]\n]"),
            "w.gml:3:2: this edge names node 9, which is not in the graph"
        );
        assert_eq!(
            err("graph [ node [ id 0 ] edge [ source 0 target 0 ] ]"),
            "w.gml:1:23: expected a latency in this edge, found none"
        );
        assert_eq!(
            err("graph [ edge [ source 0 target 0 latency \"fast\" ] ]"),
            "w.gml:1:34: latency: \"fast\" is not a duration (try \"30ms\", \"2s\" or a number of seconds)"
        );
        assert_eq!(
            err("graph [ edge [ latency 1 packet_loss 2 ] ]"),
            "w.gml:1:26: expected packet_loss between 0.0 and 1.0, found the integer 2"
        );
        assert_eq!(
            err("graph [ node [ label \"a\" ] ]"),
            "w.gml:1:9: expected an id in this node, found none"
        );
        assert_eq!(
            err("graph [ node [ id \"a\" ] ]"),
            "w.gml:1:16: expected an integer id, found the string \"a\""
        );
        assert_eq!(
            err("graph [ directed 2 ]"),
            "w.gml:1:9: expected directed 0 or 1, found the integer 2"
        );
        assert_eq!(
            err("Creator \"me\""),
            "w.gml:1:1: expected a graph [ ... ] list, found none"
        );
        assert_eq!(
            err("graph [ node [ id 1 ] node [ id 1 ] ]"),
            "w.gml:1:23: a second node with id 1"
        );
    }

    #[test]
    fn never_panics_on_truncated_graphs() {
        for end in 0..=FOUR.len() {
            let _ = read("four.gml", &FOUR[..end], Naming::Auto);
        }
    }
}
