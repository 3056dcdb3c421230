//! Network topologies as researchers bring them: Shadow's GML network graphs (`gml`, read into
//! a `graph::Graph`), latency matrices (`csv`), the paths between vertices (`graph`: direct
//! edges or shortest paths by latency, as Shadow computes them) and which vertex each node
//! goes to (`place`). Pure logic: files are read, and nodes made, by the script's binding.

pub mod csv;
pub mod gml;
pub mod graph;
pub mod place;
pub mod shadow;
mod spelling;

pub use graph::{Graph, Link, Naming, Routing, Vertex};

/// Errors a topology file or a question about it can meet.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TopologyError {
    /// Something wrong at a place in a file: `file:line:col: what was expected`.
    #[error("{file}:{line}:{col}: {msg}")]
    At {
        file: String,
        line: u32,
        col: u32,
        msg: String,
    },
    #[error("no vertex named {name:?} (the graph has {count} vertices{hint})")]
    UnknownVertex {
        name: String,
        count: usize,
        hint: String,
    },
    #[error("no path from vertex {from:?} to vertex {to:?}: the graph is not connected")]
    Unreachable { from: String, to: String },
    #[error(
        "the graph is not complete (no edge from {from:?} to {to:?}): direct edges need one \
         between every pair; use shortest paths instead"
    )]
    NotComplete { from: String, to: String },
    #[error("{0}")]
    Invalid(String),
}
