//! When the TUN device may hand over TCP super-packets (segmentation offload), and which of
//! them travel whole. The device offloads unless another worker exists (a super-packet does
//! not fit a UDP datagram to it) or a node is captured (a capture shows the packets a real
//! link carries). A super-packet between unlimited, lossless links travels as one packet:
//! they deliver a burst at once anyway. On any other route it is a burst of segments, each
//! with its own place in the FIFOs, serialisation time and loss draw (`segments`).

use std::collections::HashSet;
use std::net::Ipv4Addr;

use crate::experiment::{GroupLink, LinkShape};

pub(super) struct SuperPackets {
    /// Whether the device can offload at all (it frames packets with a virtio-net header)
    /// and no other worker exists.
    possible: bool,
    /// Nodes with a rate limit or loss (Bernoulli or bursty).
    impaired_nodes: HashSet<Ipv4Addr>,
    /// Group pairs (smaller index first) with loss (Bernoulli or bursty).
    lossy_groups: HashSet<(u32, u32)>,
    /// Whether some node's packets are captured.
    capturing: bool,
}

impl SuperPackets {
    pub(super) fn new(vnet_header: bool, remote: bool) -> Self {
        SuperPackets {
            possible: vnet_header && !remote,
            impaired_nodes: HashSet::new(),
            lossy_groups: HashSet::new(),
            capturing: false,
        }
    }

    pub(super) fn node_shaped(&mut self, ip: Ipv4Addr, shape: &LinkShape) {
        // A rate of 0 reads as unlimited, and a NaN loss as none (see `LinkShape`).
        let limited = |rate: Option<u64>| rate.is_some_and(|r| r > 0);
        let lossy = shape.loss > 0.0 || shape.burst.is_some();
        // A trace-driven direction is rate-limited too: segments leave one opportunity apart.
        let traced = shape.traces.up.is_some() || shape.traces.down.is_some();
        if lossy || limited(shape.up) || limited(shape.down) || traced {
            self.impaired_nodes.insert(ip);
        } else {
            self.impaired_nodes.remove(&ip);
        }
    }

    pub(super) fn groups_linked(&mut self, a: u32, b: u32, link: &GroupLink) {
        let pair = (a.min(b), a.max(b));
        if link.loss > 0.0 || link.burst.is_some() {
            self.lossy_groups.insert(pair);
        } else {
            self.lossy_groups.remove(&pair);
        }
    }

    pub(super) fn capturing(&mut self, on: bool) {
        self.capturing = on;
    }

    pub(super) fn allowed(&self) -> bool {
        self.possible && !self.capturing
    }

    /// Whether a super-packet from `src` (in group `a`) to `dst` (in group `b`) may travel
    /// as one packet.
    pub(super) fn whole(&self, src: Ipv4Addr, dst: Ipv4Addr, a: u32, b: u32) -> bool {
        !self.impaired_nodes.contains(&src)
            && !self.impaired_nodes.contains(&dst)
            && !self.lossy_groups.contains(&(a.min(b), a.max(b)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::GilbertElliott;

    #[test]
    fn super_packets_travel_whole_only_between_unlimited_lossless_links() {
        let (a, b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let mut sp = SuperPackets::new(true, false);
        assert!(sp.allowed() && sp.whole(a, b, 0, 0));
        let slow = LinkShape {
            up: Some(1_000_000),
            ..LinkShape::default()
        };
        sp.node_shaped(a, &slow);
        sp.node_shaped(b, &slow);
        assert!(
            sp.allowed(),
            "shaped links take super-packets too, in segments"
        );
        assert!(!sp.whole(a, b, 0, 0) && !sp.whole(b, a, 0, 0));
        sp.node_shaped(a, &LinkShape::default());
        assert!(!sp.whole(a, b, 0, 0), "b is still limited");
        let latency_only = LinkShape {
            latency: 5_000_000,
            up: Some(0),
            ..LinkShape::default()
        };
        sp.node_shaped(b, &latency_only);
        assert!(
            sp.whole(a, b, 0, 0),
            "latency and a rate of 0 (unlimited) keep bursts intact"
        );

        let lossy = GroupLink {
            loss: 0.01,
            ..GroupLink::default()
        };
        sp.groups_linked(2, 1, &lossy);
        assert!(!sp.whole(a, b, 1, 2) && !sp.whole(a, b, 2, 1));
        assert!(sp.whole(a, b, 0, 1), "another pair of groups");
        sp.groups_linked(1, 2, &GroupLink::default());
        assert!(
            sp.whole(a, b, 1, 2),
            "a group pair is the same either way round"
        );
        sp.capturing(true);
        assert!(!sp.allowed(), "a capture shows MTU-sized packets");
        sp.capturing(false);
        assert!(sp.allowed());

        assert!(
            !SuperPackets::new(false, false).allowed(),
            "no virtio-net header"
        );
        assert!(!SuperPackets::new(true, true).allowed(), "other workers");
    }

    #[test]
    fn burst_loss_counts_as_loss() {
        let burst = Some(GilbertElliott {
            p: 0.01,
            r: 0.3,
            loss_bad: 1.0,
            loss_good: 0.0,
        });
        let mut sp = SuperPackets::new(true, false);
        let node = LinkShape {
            burst,
            ..LinkShape::default()
        };
        let (a, b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        sp.node_shaped(a, &node);
        assert!(!sp.whole(a, b, 0, 1));
        sp.node_shaped(a, &LinkShape::default());
        let group = GroupLink {
            burst,
            ..GroupLink::default()
        };
        sp.groups_linked(0, 1, &group);
        assert!(!sp.whole(a, b, 0, 1));
        sp.groups_linked(0, 1, &GroupLink::default());
        assert!(sp.whole(a, b, 0, 1));
    }
}
