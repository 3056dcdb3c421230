//! The link model: what happens to one packet between two virtual nodes, as pure logic.
//! It owns no socket, no clock and no RNG: callers pass `now` and a seeded RNG.
//!
//! # The packet path
//!
//! A packet from node `a` to node `b` (see DESIGN.md, "Link model"):
//!
//! 1. **Failure**: if `a` or `b` is failed, the packet is dropped silently.
//! 2. **Uplink of `a`**: a [`LinkFifo`] serialising at `up(a)`; drop-tail at the queue limit.
//! 3. **Loss**: `a`'s link, `b`'s link and the group pair's link, in that order, each one
//!    Bernoulli draw of its `loss` or, where it has a burst model, one step of its own
//!    Gilbert–Elliott chain ([`loss`]); the first loss ends the packet (later hops do not
//!    draw, and their chains do not move).
//! 4. **Propagation**: the [`DelayLine`] adds `latency(a) + latency(b) + group latency` and
//!    the three hops' jitters in the same order, each drawn from its distribution with its
//!    correlation ([`jitter`]), never reordering packets of one (src, dst) pair.
//!
//! Every draw comes from the RNG passed in, in that order: a Bernoulli hop takes one `u64`
//! (none at loss 0 or 1), a Gilbert–Elliott hop always two, a jitter one (none when it is 0).
//! A hop that remembers (a correlated jitter's last value, a chain's state) keeps it per
//! direction: a node's link has one state for what it sends and one for what it receives, a
//! group link one per ordered pair of groups. Each machine of a decentralized lab keeps the
//! states of the packets its own senders send.
//! 5. The packet waits in the [`Fabric`]'s event heap until it reaches `b`'s downlink.
//! 6. **Downlink of `b`**: the same FIFO at `down(b)`, offered at the arrival time, so
//!    packets from different senders meet there in arrival order.
//! 7. After serialisation it is handed back by [`Fabric::poll`].
//!
//! Steps 1–4 are [`Fabric::send_to_remote`] and steps 5–7 are [`Fabric::receive_from_remote`];
//! [`Fabric::send`] is the two halves back to back, which is how the decentralized mode splits
//! the work between the sender's and the receiver's machine.
//!
//! ```
//! use p2plab::dataplane::model::{Fabric, GroupIdx};
//! use p2plab::experiment::LinkShape;
//! use p2plab::units::MS;
//! use rand::SeedableRng;
//!
//! let mut fabric = Fabric::new();
//! let a = fabric.add_node(GroupIdx(0));
//! let b = fabric.add_node(GroupIdx(0));
//! let slow = LinkShape { latency: 30 * MS, ..LinkShape::default() };
//! fabric.set_params(0, a, slow).unwrap();
//! fabric.set_params(0, b, slow).unwrap();
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(1);
//! fabric.send(0, a, b, 100, "hello", &mut rng).unwrap();
//! assert_eq!(fabric.next_deadline(), Some(60 * MS));
//! let mut out = Vec::new();
//! fabric.poll(60 * MS, &mut out);
//! assert_eq!(out, vec![(60 * MS, b, "hello")]);
//! ```

mod delay;
mod direction;
mod fabric;
mod fifo;
mod groups;
pub mod jitter;
pub mod loss;
#[cfg(test)]
mod tests;
mod trace_fifo;

use std::fmt;

use crate::experiment::{GroupLink, LinkShape, NodeCounters, TraceId};
use crate::units::Nanos;

pub use delay::DelayLine;
pub use direction::{Direction, Service};
pub use fabric::Fabric;
pub use fifo::LinkFifo;
pub use groups::GroupMatrix;
pub use trace_fifo::TraceFifo;

/// A virtual node, as a dense index into the fabric's node table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeIdx(pub u32);

/// A group of nodes, as a dense index into the [`GroupMatrix`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupIdx(pub u32);

impl fmt::Display for NodeIdx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node #{}", self.0)
    }
}

impl fmt::Display for GroupIdx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "group #{}", self.0)
    }
}

/// Why a packet did not make it. Drops are normal outcomes and are also counted in
/// [`NodeCounters`]; only [`Dropped::UnknownNode`] is a caller bug, and it is counted nowhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Dropped {
    /// A FIFO's backlog plus the packet exceeded its queue limit (drop-tail).
    #[error("queue full")]
    Queue,
    /// A loss draw of the source, the destination or their group pair hit.
    #[error("lost on the link")]
    Loss,
    /// The source or the destination is failed.
    #[error("node is failed")]
    Failed,
    /// The fabric has no such node.
    #[error("unknown {0}")]
    UnknownNode(NodeIdx),
}

/// A configuration call named something the model does not have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// No node with this index was added.
    #[error("unknown {0}")]
    UnknownNode(NodeIdx),
    /// The group matrix is dense, so group indices are capped at [`GroupMatrix::MAX_GROUPS`].
    #[error("{0} is beyond the limit of {max} groups", max = GroupMatrix::MAX_GROUPS)]
    TooManyGroups(GroupIdx),
    /// A link named a trace that was never loaded.
    #[error("trace #{} was never loaded", .0.0)]
    UnknownTrace(TraceId),
    /// A rate trace where a delay trace belongs, or the other way round.
    #[error("trace #{} is a {kind} trace, not a {wanted} trace", .id.0)]
    WrongTrace {
        id: TraceId,
        kind: &'static str,
        wanted: &'static str,
    },
}
