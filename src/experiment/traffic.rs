//! `NodeCounters`: per-node traffic counters that feed `traffic.csv` and `summary.json`.
//! Only the counting rule lives here; the link model decides which node an event belongs to.

/// Bytes and packets of one node.
///
/// The rule (every packet is counted exactly once as sent, and at most once as delivered or
/// dropped, so summed over all nodes `sent = received + dropped + in flight`):
///
/// - `sent_*`: on the **sender**, for every packet it offered, whatever becomes of it
///   (counted by the sending half, so on the sender's machine in the decentralized mode).
/// - `recv_*`: on the **receiver**, for every packet delivered to it.
/// - `dropped_queue`: on the node **whose FIFO** dropped it: the sender for its uplink, the
///   receiver for its downlink.
/// - `dropped_loss`: on the **sender** for a loss draw, or for a failed source or destination
///   seen when sending; on the **receiver** when it is found failed after the packet left
///   (arrival at or delivery from its downlink), because the receiving half may run on another
///   machine that does not count for the sender.
///
/// All counts saturate instead of wrapping.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeCounters {
    /// Bytes of every packet this node offered.
    pub sent_bytes: u64,
    /// Packets this node offered.
    pub sent_packets: u64,
    /// Bytes delivered to this node.
    pub recv_bytes: u64,
    /// Packets delivered to this node.
    pub recv_packets: u64,
    /// Packets dropped by this node's uplink or downlink queue.
    pub dropped_queue: u64,
    /// Packets lost on the link or to a failed node (see the rule above).
    pub dropped_loss: u64,
}

impl NodeCounters {
    /// All zero; usable in a `static`.
    pub const ZERO: NodeCounters = NodeCounters {
        sent_bytes: 0,
        sent_packets: 0,
        recv_bytes: 0,
        recv_packets: 0,
        dropped_queue: 0,
        dropped_loss: 0,
    };

    pub(crate) fn on_sent(&mut self, len: u64) {
        self.sent_bytes = self.sent_bytes.saturating_add(len);
        self.sent_packets = self.sent_packets.saturating_add(1);
    }

    pub(crate) fn on_received(&mut self, len: u64) {
        self.recv_bytes = self.recv_bytes.saturating_add(len);
        self.recv_packets = self.recv_packets.saturating_add(1);
    }

    pub(crate) fn on_queue_drop(&mut self) {
        self.dropped_queue = self.dropped_queue.saturating_add(1);
    }

    pub(crate) fn on_loss(&mut self) {
        self.dropped_loss = self.dropped_loss.saturating_add(1);
    }

    /// Packets dropped for any reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_queue.saturating_add(self.dropped_loss)
    }

    /// What was counted since the reading `earlier` (zero where a count did not grow).
    pub fn since(&self, earlier: &NodeCounters) -> NodeCounters {
        NodeCounters {
            sent_bytes: self.sent_bytes.saturating_sub(earlier.sent_bytes),
            sent_packets: self.sent_packets.saturating_sub(earlier.sent_packets),
            recv_bytes: self.recv_bytes.saturating_sub(earlier.recv_bytes),
            recv_packets: self.recv_packets.saturating_sub(earlier.recv_packets),
            dropped_queue: self.dropped_queue.saturating_sub(earlier.dropped_queue),
            dropped_loss: self.dropped_loss.saturating_sub(earlier.dropped_loss),
        }
    }

    /// Adds `other` to `self` (to total several nodes or machines).
    pub fn add(&mut self, other: &NodeCounters) {
        self.sent_bytes = self.sent_bytes.saturating_add(other.sent_bytes);
        self.sent_packets = self.sent_packets.saturating_add(other.sent_packets);
        self.recv_bytes = self.recv_bytes.saturating_add(other.recv_bytes);
        self.recv_packets = self.recv_packets.saturating_add(other.recv_packets);
        self.dropped_queue = self.dropped_queue.saturating_add(other.dropped_queue);
        self.dropped_loss = self.dropped_loss.saturating_add(other.dropped_loss);
    }
}

/// How one worker's data plane kept up during an interval between two readings: how late it
/// delivered the packets the link model timed, its thread's CPU time, packets the kernel
/// dropped because the data plane did not read them in time (the TUN device's queue
/// overflowed), and writes back to the kernel that failed. Lateness is of that interval's
/// packets only; the rest are counts during it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataplaneHealth {
    pub timed_packets: u64,
    /// Median and 99th percentile (< 0.8 % above the true value) and exact maximum.
    pub late_p50_ns: u64,
    pub late_p99_ns: u64,
    pub late_max_ns: u64,
    pub cpu_ns: u64,
    pub overruns: u64,
    pub write_errors: u64,
}

/// One reading of the data planes: every node's running totals and, for a reading that ends
/// an interval, each worker's health since the previous one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrafficReading {
    pub nodes: Vec<(std::net::Ipv4Addr, NodeCounters)>,
    /// By worker number; empty unless the reading was asked to end an interval.
    pub health: Vec<(u32, DataplaneHealth)>,
}
