//! `Fabric<P>`: the whole packet path between virtual nodes, event-driven: it owns the
//! per-node FIFOs, the delay line, the group matrix, the counters and the packets in flight.
//! It does not own a clock, a timer or a device: the caller polls it at `next_deadline()`.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use rand::Rng;

use super::jitter::JitterState;
use super::loss::{GeState, HopLoss};
use super::{
    DelayLine, Direction, Dropped, GroupIdx, GroupLink, GroupMatrix, LinkShape, ModelError, Nanos,
    NodeCounters, NodeIdx, Service, loss,
};
use crate::experiment::{LinkTrace, TraceId, TraceRef};

/// Counters handed out for a node that does not exist.
static NO_COUNTERS: NodeCounters = NodeCounters::ZERO;

/// One virtual node's access link and state.
#[derive(Clone, Debug)]
struct Node {
    group: GroupIdx,
    params: LinkShape,
    up: Direction,
    down: Direction,
    /// The delay trace replacing `params.latency`, and when it started.
    delay: Option<PlayingDelay>,
    failed: bool,
    counters: NodeCounters,
    /// The correlated jitter's and the burst loss's memory, for packets this node sends...
    sending: HopState,
    /// ... and for packets it receives.
    receiving: HopState,
}

/// What one hop of the path remembers between packets, per direction.
#[derive(Clone, Copy, Debug, Default)]
struct HopState {
    jitter: JitterState,
    loss: GeState,
}

/// A delay trace as a link plays it: trace time `t - start + offset` at experiment time `t`.
#[derive(Clone, Debug)]
struct PlayingDelay {
    trace: Arc<LinkTrace>,
    reference: TraceRef,
    start: Nanos,
}

impl Node {
    /// The node's parameters as a packet departing at `t` meets them: a delay trace's
    /// latency of that moment instead of the constant one.
    /// Borrowed as they are without a delay trace: the common case copies nothing.
    fn params_at(&self, t: Nanos) -> Cow<'_, LinkShape> {
        match &self.delay {
            Some(d) if let LinkTrace::Delay(trace) = &*d.trace => {
                let tau = t.saturating_sub(d.start).saturating_add(d.reference.offset);
                let mut params = self.params;
                params.latency = trace.latency_at(tau);
                Cow::Owned(params)
            }
            _ => Cow::Borrowed(&self.params),
        }
    }
}

/// A packet between the two halves of the path, parked in `Fabric::slots`.
#[derive(Debug)]
struct InFlight<P> {
    dst: NodeIdx,
    len: u64,
    payload: P,
}

/// What happens when an event comes due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// The packet reaches the destination's downlink (step 6).
    Arrive,
    /// The packet has left the downlink and is delivered (step 7).
    Deliver,
}

/// An entry of the event heap. Small and `Copy` so the heap moves 24 bytes, not payloads.
#[derive(Clone, Copy, Debug)]
struct Event {
    time: Nanos,
    /// Insertion order: breaks ties between events due at the same nanosecond, FIFO.
    seq: u64,
    slot: u32,
    stage: Stage,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}

impl Eq for Event {}

impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Event {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest (time, seq) first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}

/// The link model of a set of nodes, for payloads of type `P` (a packet buffer, a handle…).
///
/// Every node of the lab should be added on every machine, with the same index, parameters,
/// group and failure state: the sending half needs the receiver's latency, loss and group. In
/// the decentralized mode a machine calls [`Fabric::send_to_remote`] for its own senders and
/// [`Fabric::receive_from_remote`] for its own receivers; counters then split between the
/// machines as [`NodeCounters`] describes, and add up across them.
#[derive(Debug)]
pub struct Fabric<P> {
    nodes: Vec<Node>,
    groups: GroupMatrix,
    delay: DelayLine,
    events: BinaryHeap<Event>,
    /// Payloads in flight, indexed by `Event::slot`; `free` lists the empty ones for reuse.
    slots: Vec<Option<InFlight<P>>>,
    free: Vec<u32>,
    seq: u64,
    /// The latest `now` given to `poll`: events are never scheduled before it.
    clock: Nanos,
    /// Traces links may name, loaded once per run.
    traces: HashMap<TraceId, Arc<LinkTrace>>,
    /// Hop states of group links from `.0` to `.1`, made only for links with correlated
    /// jitter or burst loss (the others remember nothing).
    pairs: HashMap<(GroupIdx, GroupIdx), HopState>,
}

impl<P> Default for Fabric<P> {
    fn default() -> Self {
        Fabric {
            nodes: Vec::new(),
            groups: GroupMatrix::new(),
            delay: DelayLine::new(),
            events: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            seq: 0,
            clock: 0,
            traces: HashMap::new(),
            pairs: HashMap::new(),
        }
    }
}

impl<P> Fabric<P> {
    /// An empty fabric.
    pub fn new() -> Self {
        Fabric::default()
    }

    /// Adds an unshaped node in `group`; indices are dense, from 0, in the order of addition.
    pub fn add_node(&mut self, group: GroupIdx) -> NodeIdx {
        // 2³² nodes would take over a terabyte; the saturation below is never reached.
        let idx = NodeIdx(u32::try_from(self.nodes.len()).unwrap_or(u32::MAX));
        self.nodes.push(Node {
            group,
            params: LinkShape::default(),
            up: Direction::default(),
            down: Direction::default(),
            delay: None,
            failed: false,
            counters: NodeCounters::default(),
            sending: HopState::default(),
            receiving: HopState::default(),
        });
        idx
    }

    /// How many nodes were added.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Keeps a trace that links may name from now on (a later one under the same id
    /// replaces it for links shaped after).
    pub fn load_trace(&mut self, id: TraceId, trace: Arc<LinkTrace>) {
        self.traces.insert(id, trace);
    }

    /// Sets a node's access link at `now`; applies to the next packet offered to each FIFO
    /// (packets already queued keep their departure times).
    ///
    /// A trace replaces the constant rate or latency of its direction; it plays from its
    /// offset at `now`, unless the link already played the same trace from the same offset.
    /// A trace never loaded, or of the wrong kind, is an error that changes nothing.
    pub fn set_params(
        &mut self,
        now: Nanos,
        node: NodeIdx,
        params: LinkShape,
    ) -> Result<(), ModelError> {
        self.node_mut(node)?;
        let rate = |trace: Option<TraceRef>, rate, limit| -> Result<Service, ModelError> {
            Ok(match trace {
                None => Service::Rate { rate, limit },
                Some(r) => Service::Trace {
                    trace: self.trace(r.id, "rate")?,
                    offset: r.offset,
                    queue: params.queue,
                },
            })
        };
        let up = rate(params.traces.up, params.up_rate(), params.up_queue_limit())?;
        let down = rate(
            params.traces.down,
            params.down_rate(),
            params.down_queue_limit(),
        )?;
        let delay = match params.traces.delay {
            None => None,
            Some(reference) => Some((self.trace(reference.id, "delay")?, reference)),
        };
        let n = self.node_mut(node)?;
        n.params = params;
        n.up.set(now, up);
        n.down.set(now, down);
        n.delay = delay.map(|(trace, reference)| {
            let start = match &n.delay {
                Some(d) if d.reference == reference => d.start,
                _ => now,
            };
            PlayingDelay {
                trace,
                reference,
                start,
            }
        });
        Ok(())
    }

    /// A loaded trace of the `wanted` kind.
    fn trace(&self, id: TraceId, wanted: &'static str) -> Result<Arc<LinkTrace>, ModelError> {
        let trace = self.traces.get(&id).ok_or(ModelError::UnknownTrace(id))?;
        if trace.kind() != wanted {
            return Err(ModelError::WrongTrace {
                id,
                kind: trace.kind(),
                wanted,
            });
        }
        Ok(trace.clone())
    }

    /// A node's access-link parameters.
    pub fn params(&self, node: NodeIdx) -> Option<&LinkShape> {
        self.nodes.get(node.0 as usize).map(|n| &n.params)
    }

    /// A node's group.
    pub fn group(&self, node: NodeIdx) -> Option<GroupIdx> {
        self.nodes.get(node.0 as usize).map(|n| n.group)
    }

    /// Sets the extra latency, jitter and loss between two groups (symmetric; `g1 == g2` is
    /// the link of a group with itself); applies to the next packet sent.
    pub fn set_group_link(
        &mut self,
        g1: GroupIdx,
        g2: GroupIdx,
        params: GroupLink,
    ) -> Result<(), ModelError> {
        self.groups.set(g1, g2, params)
    }

    /// The link between two groups.
    pub fn group_link(&self, g1: GroupIdx, g2: GroupIdx) -> &GroupLink {
        self.groups.get(g1, g2)
    }

    /// Fails or revives a node. A failed node's traffic is dropped silently: new packets to or
    /// from it at once, and packets in flight to it when they reach or leave its downlink.
    pub fn set_failed(&mut self, node: NodeIdx, failed: bool) -> Result<(), ModelError> {
        self.node_mut(node)?.failed = failed;
        Ok(())
    }

    /// Whether a node is failed (`false` for an unknown node).
    pub fn is_failed(&self, node: NodeIdx) -> bool {
        self.nodes.get(node.0 as usize).is_some_and(|n| n.failed)
    }

    /// A node's counters (all zero for an unknown node). See [`NodeCounters`] for the rule.
    pub fn counters(&self, node: NodeIdx) -> &NodeCounters {
        self.nodes
            .get(node.0 as usize)
            .map_or(&NO_COUNTERS, |n| &n.counters)
    }

    /// Packets accepted and not yet delivered or dropped on this fabric.
    pub fn in_flight(&self) -> usize {
        self.events.len()
    }

    /// When the earliest pending event is due: arm the timer for it, then [`Fabric::poll`].
    pub fn next_deadline(&self) -> Option<Nanos> {
        self.events.peek().map(|e| e.time)
    }

    /// Sends `len` bytes from `src` to `dst` at `now`: steps 1–4 ([`Fabric::send_to_remote`])
    /// then steps 5–7 ([`Fabric::receive_from_remote`]). The payload comes out of
    /// [`Fabric::poll`] when it is delivered; a drop returns why (already counted).
    pub fn send<R: Rng + ?Sized>(
        &mut self,
        now: Nanos,
        src: NodeIdx,
        dst: NodeIdx,
        len: usize,
        payload: P,
        rng: &mut R,
    ) -> Result<(), Dropped> {
        let arrival = self.send_to_remote(now, src, dst, len, rng)?;
        self.receive_from_remote(arrival, dst, len, payload)
    }

    /// The sender's half, steps 1–4: failure check, `src`'s uplink, loss draws and the delay
    /// line. Returns when the packet reaches `dst`'s downlink; the caller keeps the payload
    /// and ships it, with that time, to whoever calls [`Fabric::receive_from_remote`].
    pub fn send_to_remote<R: Rng + ?Sized>(
        &mut self,
        now: Nanos,
        src: NodeIdx,
        dst: NodeIdx,
        len: usize,
        rng: &mut R,
    ) -> Result<Nanos, Dropped> {
        let len = u64::try_from(len).unwrap_or(u64::MAX);
        let (si, di) = (self.index(src)?, self.index(dst)?);
        self.nodes[si].counters.on_sent(len);
        // 1. A failed end drops everything, like a crashed host: peers just time out.
        if self.nodes[si].failed || self.nodes[di].failed {
            self.nodes[si].counters.on_loss();
            return Err(Dropped::Failed);
        }
        // 2. The sender's uplink.
        let depart = match self.nodes[si].up.offer(now, len) {
            Ok(t) => t,
            Err(drop) => {
                self.nodes[si].counters.on_queue_drop();
                return Err(drop);
            }
        };
        let (a, b) = (&self.nodes[si], &self.nodes[di]);
        let pair = (a.group, b.group);
        let group = self.groups.get(pair.0, pair.1);
        let remembers = group.jitter_model.correlation > 0.0 || group.burst.is_some();
        let pair_state = if remembers {
            self.pairs.get(&pair).copied().unwrap_or_default()
        } else {
            HopState::default()
        };
        let hops = [a.sending, b.receiving, pair_state];
        // 3. Loss after the uplink: a lost packet still used the sender's bandwidth.
        let mut ge = hops.map(|h| h.loss);
        let lost = loss::lost(
            [
                HopLoss::of(a.params.loss, a.params.burst),
                HopLoss::of(b.params.loss, b.params.burst),
                HopLoss::of(group.loss, group.burst),
            ],
            &mut ge,
            rng,
        );
        // 4. Propagation to the receiver's downlink (a lost packet draws no jitter).
        let mut jitter = hops.map(|h| h.jitter);
        let arrival = (!lost).then(|| {
            self.delay.forget_until(now);
            // A delay trace's latency is the one of the moment the packet departs.
            let (a, b) = (a.params_at(depart), b.params_at(depart));
            let (a, b) = (&*a, &*b);
            self.delay
                .arrival(depart, src, dst, a, b, group, &mut jitter, rng)
        });
        let [sending, receiving, pair_state] = [0, 1, 2].map(|i| HopState {
            jitter: jitter[i],
            loss: ge[i],
        });
        self.nodes[si].sending = sending;
        self.nodes[di].receiving = receiving;
        if remembers {
            self.pairs.insert(pair, pair_state);
        }
        arrival.ok_or_else(|| {
            self.nodes[si].counters.on_loss();
            Dropped::Loss
        })
    }

    /// The receiver's half, steps 5–7: the packet waits until `arrival`, is offered to `dst`'s
    /// downlink then, and is delivered by [`Fabric::poll`] when it has left it. An `arrival`
    /// already past (a late remote packet) counts as arriving at the last polled time.
    pub fn receive_from_remote(
        &mut self,
        arrival: Nanos,
        dst: NodeIdx,
        len: usize,
        payload: P,
    ) -> Result<(), Dropped> {
        let di = self.index(dst)?;
        let len = u64::try_from(len).unwrap_or(u64::MAX);
        let Some(slot) = self.park(InFlight { dst, len, payload }) else {
            // Only with 2³² packets in flight: treat it as the downlink queue overflowing.
            self.nodes[di].counters.on_queue_drop();
            return Err(Dropped::Queue);
        };
        self.schedule(arrival.max(self.clock), slot, Stage::Arrive);
        Ok(())
    }

    /// Processes every event due at or before `now`, in time order, and appends the delivered
    /// packets to `out` in delivery order, each with the time the model delivers it at (at
    /// or before `now`: how late the caller polled is its own to measure). Returns how many
    /// were appended.
    pub fn poll(&mut self, now: Nanos, out: &mut Vec<(Nanos, NodeIdx, P)>) -> usize {
        let before = out.len();
        self.clock = self.clock.max(now);
        while let Some(&event) = self.events.peek() {
            if event.time > now {
                break;
            }
            self.events.pop();
            match event.stage {
                Stage::Arrive => self.arrive(event, now, out),
                Stage::Deliver => self.deliver(event.slot, event.time, out),
            }
        }
        out.len() - before
    }

    /// Step 6: offer the packet to the destination's downlink at its arrival time.
    fn arrive(&mut self, event: Event, now: Nanos, out: &mut Vec<(Nanos, NodeIdx, P)>) {
        let Some(packet) = self.slots.get(event.slot as usize).and_then(Option::as_ref) else {
            return;
        };
        let node = &mut self.nodes[packet.dst.0 as usize];
        if node.failed {
            node.counters.on_loss();
            self.unpark(event.slot);
            return;
        }
        match node.down.offer(event.time, packet.len) {
            Err(_) => {
                node.counters.on_queue_drop();
                self.unpark(event.slot);
            }
            // Deliver at once when the delivery event would be the next one popped anyway:
            // same order, one heap round trip less (the common case of an unshaped downlink).
            Ok(t) if t <= now && self.events.peek().is_none_or(|next| next.time > t) => {
                self.deliver(event.slot, t, out);
            }
            Ok(t) => self.schedule(t, event.slot, Stage::Deliver),
        }
    }

    /// Step 7: hand the packet over, unless its destination failed meanwhile.
    fn deliver(&mut self, slot: u32, due: Nanos, out: &mut Vec<(Nanos, NodeIdx, P)>) {
        let Some(packet) = self.unpark(slot) else {
            return;
        };
        let node = &mut self.nodes[packet.dst.0 as usize];
        if node.failed {
            node.counters.on_loss();
        } else {
            node.counters.on_received(packet.len);
            out.push((due, packet.dst, packet.payload));
        }
    }

    fn schedule(&mut self, time: Nanos, slot: u32, stage: Stage) {
        self.seq = self.seq.wrapping_add(1);
        self.events.push(Event {
            time,
            seq: self.seq,
            slot,
            stage,
        });
    }

    /// Stores a packet in a free slot; `None` only if 2³² slots are taken.
    fn park(&mut self, packet: InFlight<P>) -> Option<u32> {
        if let Some(slot) = self.free.pop() {
            self.slots[slot as usize] = Some(packet);
            return Some(slot);
        }
        let slot = u32::try_from(self.slots.len()).ok()?;
        self.slots.push(Some(packet));
        Some(slot)
    }

    fn unpark(&mut self, slot: u32) -> Option<InFlight<P>> {
        let packet = self.slots.get_mut(slot as usize)?.take()?;
        self.free.push(slot);
        Some(packet)
    }

    fn index(&self, node: NodeIdx) -> Result<usize, Dropped> {
        let i = node.0 as usize;
        if i < self.nodes.len() {
            Ok(i)
        } else {
            Err(Dropped::UnknownNode(node))
        }
    }

    fn node_mut(&mut self, node: NodeIdx) -> Result<&mut Node, ModelError> {
        self.nodes
            .get_mut(node.0 as usize)
            .ok_or(ModelError::UnknownNode(node))
    }
}
