//! The other workers as one data plane knows them: the key of each direction with each, the
//! counter of the next datagram to each, and the replay window of what came from each. Seals
//! datagrams to them and checks datagrams from them, cheap checks first, the MAC before
//! anything is believed, the window last; no socket here (`forwarder::remote` has it).

use std::collections::HashMap;
use std::net::SocketAddr;

use super::encap::{self, Header, Key, Rejected};
use super::replay::ReplayWindow;
use crate::units::Nanos;

/// Why a datagram from the network was refused; each has its count in `ForwarderStats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not from the data-plane address of another worker of the run.
    Stranger,
    /// Too short, not of this protocol, or framed differently from ours.
    Malformed,
    /// Of another run (say, a late datagram of the previous one).
    OtherRun,
    /// Its tag does not verify, or its header names another pair of workers than the one
    /// it came between: no key of ours sealed it.
    Forged,
    /// Its counter was taken already, or is older than the window.
    Replayed,
}

struct Peer {
    index: u32,
    /// Seals what this worker sends to the peer.
    to: Key,
    /// Checks what comes from the peer.
    from: Key,
    /// Counter of the next datagram to the peer.
    next: u64,
    window: ReplayWindow,
}

pub struct Peers {
    run: u32,
    /// This worker's number.
    index: u32,
    /// Bytes of virtio-net header in front of this worker's packets, as the peers' must be.
    vnet_len: usize,
    peers: Vec<Peer>,
    by_addr: HashMap<SocketAddr, usize>,
}

impl Peers {
    /// Worker `index` of run `run`, whose other workers are `peers` (number, data-plane
    /// address), with the run's key.
    pub fn new(
        run_key: &[u8; 32],
        run: u32,
        index: u32,
        peers: &[(u32, SocketAddr)],
        vnet_len: usize,
    ) -> Peers {
        let by_addr = peers
            .iter()
            .enumerate()
            .map(|(slot, (_, addr))| (*addr, slot))
            .collect();
        let peers = peers
            .iter()
            .map(|&(peer, _)| Peer {
                index: peer,
                to: Key::derive(run_key, run, index, peer),
                from: Key::derive(run_key, run, peer, index),
                next: 0,
                window: ReplayWindow::default(),
            })
            .collect();
        Peers {
            run,
            index,
            vnet_len,
            peers,
            by_addr,
        }
    }

    /// Writes the datagram that carries `packet` to the worker at `to` into `out`; false
    /// when `to` is no worker of the run (there is no key for it).
    pub fn seal(
        &mut self,
        to: SocketAddr,
        remaining: Nanos,
        packet: &[u8],
        out: &mut Vec<u8>,
    ) -> bool {
        let Some(&slot) = self.by_addr.get(&to) else {
            return false;
        };
        let peer = &mut self.peers[slot];
        let header = Header {
            run: self.run,
            sender: self.index,
            receiver: peer.index,
            counter: peer.next,
            remaining,
            vnet_len: self.vnet_len,
        };
        peer.next += 1;
        encap::seal(&peer.to, &header, packet, out);
        true
    }

    /// Checks a datagram that came from `from`: the time its packet still has to travel, and
    /// the packet (virtio-net header included).
    pub fn open<'d>(
        &mut self,
        from: SocketAddr,
        datagram: &'d [u8],
    ) -> Result<(Nanos, &'d [u8]), Refused> {
        let peer = self
            .by_addr
            .get(&from)
            .map(|&slot| &mut self.peers[slot])
            .ok_or(Refused::Stranger)?;
        let header = encap::peek(datagram, self.run, self.vnet_len).map_err(|e| match e {
            Rejected::OtherRun => Refused::OtherRun,
            Rejected::Forged => Refused::Forged,
            Rejected::Short | Rejected::NotOurs | Rejected::Framing => Refused::Malformed,
        })?;
        if header.sender != peer.index || header.receiver != self.index {
            return Err(Refused::Forged);
        }
        if !peer.window.fresh(header.counter) {
            return Err(Refused::Replayed);
        }
        let packet = encap::open(&peer.from, &header, datagram).map_err(|_| Refused::Forged)?;
        peer.window.record(header.counter);
        Ok((header.remaining, packet))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [4; 32];

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 168, 1, 1], port))
    }

    /// Workers 0 and 1 of run 7, at ports 1000 and 1001.
    fn pair() -> (Peers, Peers) {
        (
            Peers::new(&KEY, 7, 0, &[(1, addr(1001))], 10),
            Peers::new(&KEY, 7, 1, &[(0, addr(1000))], 10),
        )
    }

    fn sealed(from: &mut Peers, to: u16, packet: &[u8]) -> Vec<u8> {
        let mut d = Vec::new();
        assert!(from.seal(addr(to), 5_000, packet, &mut d));
        d
    }

    #[test]
    fn datagrams_pass_once_in_any_order_within_the_window() {
        let (mut a, mut b) = pair();
        let packet = [1u8; 40];
        let ds: Vec<Vec<u8>> = (0..3).map(|_| sealed(&mut a, 1001, &packet)).collect();
        for d in [&ds[2], &ds[0], &ds[1]] {
            assert_eq!(b.open(addr(1000), d), Ok((5_000, &packet[..])));
        }
        for d in &ds {
            assert_eq!(b.open(addr(1000), d), Err(Refused::Replayed));
        }
        // And the other way, with its own counters.
        let back = sealed(&mut b, 1000, &packet);
        assert_eq!(a.open(addr(1001), &back), Ok((5_000, &packet[..])));
    }

    #[test]
    fn strangers_other_runs_and_reflections_are_refused() {
        let (mut a, mut b) = pair();
        let d = sealed(&mut a, 1001, &[1u8; 40]);
        assert_eq!(b.open(addr(999), &d), Err(Refused::Stranger));
        let mut other_run = Peers::new(&KEY, 8, 0, &[(1, addr(1001))], 10);
        let late = sealed(&mut other_run, 1001, &[1u8; 40]);
        assert_eq!(b.open(addr(1000), &late), Err(Refused::OtherRun));
        // Worker 1's own datagram, sent back to it from worker 0's address.
        let own = sealed(&mut b, 1000, &[1u8; 40]);
        assert_eq!(b.open(addr(1000), &own), Err(Refused::Forged));
        assert_eq!(b.open(addr(1000), &[0u8; 10]), Err(Refused::Malformed));
        let mut unknown = Vec::new();
        assert!(
            !a.seal(addr(2000), 0, &[1u8; 40], &mut unknown),
            "no key for a stranger"
        );
    }

    #[test]
    fn a_forgery_does_not_move_the_window() {
        let (mut a, mut b) = pair();
        let real: Vec<Vec<u8>> = (0..2).map(|_| sealed(&mut a, 1001, &[1u8; 40])).collect();
        // Counter 0's datagram rewritten to claim a counter far ahead, which would make the
        // real ones too old if the window believed it.
        let mut forged = real[0].clone();
        forged[18..26].copy_from_slice(&1_000_000u64.to_be_bytes());
        assert_eq!(b.open(addr(1000), &forged), Err(Refused::Forged));
        for d in &real {
            assert!(b.open(addr(1000), d).is_ok());
        }
    }
}
