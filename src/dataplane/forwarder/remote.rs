//! The link to the other workers' data planes: a packet for a node of another worker leaves,
//! after the sending half of the link model, in one UDP datagram (`encap`) that carries the
//! delay it still has; a datagram from another worker is accepted only from a peer, of this
//! run, framed like ours and for a node of this worker, and then takes the receiving half.

use std::io::{self, IoSlice};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use nix::sys::socket::{MsgFlags, SockaddrStorage, sendmsg};

use super::buffers::{MAX_PACKET, Packet};
use super::forwarding::{Forwarder, READ_BATCH};
use crate::dataplane::encap;
use crate::dataplane::packet::{VNET_HDR_LEN, ipv4_endpoints, wire_len};
use crate::units::Nanos;

/// The link to the other workers' data planes: one UDP socket (bound in the machine's own
/// network namespace) and the addresses it accepts datagrams from.
pub struct RemoteLinks {
    pub socket: UdpSocket,
    pub peers: Vec<SocketAddr>,
    /// The run's id: datagrams of another run are refused.
    pub run: u32,
    /// The run's data-plane key.
    pub key: [u8; 32],
}

/// The links as the forwarding thread holds them, with room for one datagram.
pub(super) struct Remote {
    links: RemoteLinks,
    datagram: Vec<u8>,
}

impl Remote {
    pub(super) fn new(links: RemoteLinks) -> Self {
        Remote {
            links,
            datagram: vec![0; encap::HEADER_LEN + VNET_HDR_LEN + MAX_PACKET],
        }
    }

    /// `sendmsg(2)` of header and packet in one datagram, without copying them together.
    fn send(&self, header: &[u8], packet: &[u8], to: SocketAddr) -> io::Result<()> {
        let bufs = [IoSlice::new(header), IoSlice::new(packet)];
        let to = SockaddrStorage::from(to);
        let socket = self.links.socket.as_raw_fd();
        sendmsg(socket, &bufs, &[], MsgFlags::empty(), Some(&to))?;
        Ok(())
    }
}

impl Forwarder {
    /// Sends a packet to the worker of its destination, which holds it for `remaining` ns
    /// and then offers it to the destination's downlink.
    pub(super) fn ship(&mut self, home: SocketAddr, remaining: Nanos, packet: &[u8]) {
        let Some(remote) = &self.remote else { return };
        let header = encap::header(remote.links.run, remaining, self.hdr);
        if remote.send(&header, packet, home).is_ok() {
            self.stats.remote_sent += 1;
        } else {
            self.stats.remote_send_errors += 1;
        }
    }

    /// Reads up to `READ_BATCH` datagrams from other workers; true when the batch was full.
    pub(super) fn read_remote_batch(&mut self) -> bool {
        let Some(Remote { links, datagram }) = &mut self.remote else {
            return false;
        };
        let mut accepted = Vec::new();
        let mut full = true;
        for _ in 0..READ_BATCH {
            let (n, from) = match links.socket.recv_from(datagram) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    full = false;
                    break;
                }
                // An interrupted call, or the socket's own trouble (an ICMP error from a peer
                // that went away), reported once: the datagrams behind it are fine, and must
                // be read now, since the socket signals only new arrivals (`wakeup`).
                Err(_) => continue,
            };
            if !links.peers.contains(&from) {
                self.stats.remote_rejected += 1;
                continue;
            }
            match encap::parse(&datagram[..n], links.run, self.hdr) {
                Ok((remaining, packet)) => accepted.push((remaining, Packet::from(packet))),
                Err(_) => self.stats.remote_rejected += 1,
            }
        }
        for (remaining, packet) in accepted {
            self.receive_remote(remaining, packet);
        }
        full
    }

    /// The receiving half for a packet from another worker: its destination must live here.
    fn receive_remote(&mut self, remaining: Nanos, packet: Packet) {
        let bytes = packet.bytes();
        let (vnet, ip) = bytes.split_at(self.hdr.min(bytes.len()));
        let dst = ipv4_endpoints(ip)
            .and_then(|(_, dst)| self.nodes.get(&dst).copied())
            .filter(|d| matches!(self.homes.get(d.0 as usize), Some(None)));
        let Some(dst) = dst else {
            self.stats.remote_rejected += 1;
            return;
        };
        self.stats.remote_received += 1;
        let len = wire_len(vnet, ip.len());
        let arrival = self.clock.now().saturating_add(remaining);
        let _ = self.fabric.receive_from_remote(arrival, dst, len, packet);
    }
}
