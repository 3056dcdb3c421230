//! The link to the other workers' data planes: a packet for a node of another worker leaves,
//! after the sending half of the link model, in one authenticated UDP datagram (`encap`) that
//! carries the delay it still has; datagrams queue during a pass and leave in batches
//! (`batch`). A datagram from another worker is accepted only from a peer, of this run,
//! framed like ours, with a tag that verifies, new to the replay window (`peers`) and for a
//! node of this worker; then the receiving half takes it. Each refusal has its own count.

use std::net::{SocketAddr, UdpSocket};

use super::ForwarderStats;
use super::batch::{Inbox, Outbox};
use super::buffers::Packet;
use super::forwarding::{Carried, Forwarder, READ_BATCH};
use crate::dataplane::packet::{ipv4_endpoints, wire_len};
use crate::dataplane::peers::{Peers, Refused};
use crate::units::Nanos;

/// The link to the other workers' data planes: one UDP socket (bound in the machine's own
/// network namespace) and the workers it exchanges datagrams with.
pub struct RemoteLinks {
    pub socket: UdpSocket,
    /// This worker's number: the sender of what it sends, the receiver of what it accepts.
    pub index: u32,
    /// The other workers: number and data-plane address.
    pub peers: Vec<(u32, SocketAddr)>,
    /// The run's id: datagrams of another run are refused.
    pub run: u32,
    /// The run's data-plane key, from which each direction's key is derived.
    pub key: [u8; 32],
}

/// The links as the forwarding thread holds them.
pub(super) struct Remote {
    socket: UdpSocket,
    peers: Peers,
    outbox: Outbox,
    inbox: Inbox,
}

impl Remote {
    /// The links for packets framed with `vnet_len` bytes of virtio-net header.
    pub(super) fn new(links: RemoteLinks, vnet_len: usize) -> Self {
        Remote {
            peers: Peers::new(&links.key, links.run, links.index, &links.peers, vnet_len),
            socket: links.socket,
            outbox: Outbox::new(),
            inbox: Inbox::new(),
        }
    }
}

impl Remote {
    /// Datagrams the kernel dropped because the socket's receive buffer was full: the data
    /// plane did not read them in time. `None` where the kernel does not say.
    pub(super) fn receive_drops(&self) -> Option<u64> {
        socket_drops(&self.socket)
    }
}

/// `SO_MEMINFO` of asm-generic/socket.h (x86, arm, riscv), which the libc crate does not export.
const SO_MEMINFO: libc::c_int = 55;

/// The socket's own drop count, read with `SO_MEMINFO`: exact and atomic, where the
/// `/proc/net/udp` table can skip a socket while others open and close during the read.
fn socket_drops(socket: &UdpSocket) -> Option<u64> {
    use std::os::fd::AsRawFd;
    let drops = libc::SK_MEMINFO_DROPS as usize;
    let mut info = [0u32; 16];
    let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `info` and sets `len` to what it wrote.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    (rc == 0 && len as usize >= (drops + 1) * 4).then(|| u64::from(info[drops]))
}

fn count_refused(stats: &mut ForwarderStats, refused: Refused) {
    let count = match refused {
        Refused::Stranger => &mut stats.remote_stranger,
        Refused::Malformed => &mut stats.remote_malformed,
        Refused::OtherRun => &mut stats.remote_other_run,
        Refused::Forged => &mut stats.remote_forged,
        Refused::Replayed => &mut stats.remote_replayed,
    };
    *count += 1;
}

impl Forwarder {
    /// Queues a packet for the worker of its destination, which holds it for `remaining` ns
    /// and then offers it to the destination's downlink. It leaves with the rest of the pass
    /// (`flush_remote`), or at once when a batch is full.
    pub(super) fn ship(&mut self, home: SocketAddr, remaining: Nanos, packet: &[u8]) {
        let Some(remote) = &mut self.remote else {
            return;
        };
        if !remote
            .peers
            .seal(home, remaining, packet, remote.outbox.spare())
        {
            // No worker of the run lives there: nothing to seal it for.
            self.stats.remote_send_errors += 1;
            return;
        }
        if remote.outbox.push(home) {
            self.flush_remote();
        }
    }

    /// Sends the datagrams queued so far; the loop calls it before it sleeps.
    pub(super) fn flush_remote(&mut self) {
        let Some(remote) = &mut self.remote else {
            return;
        };
        let (sent, failed) = remote.outbox.flush(&remote.socket);
        self.stats.remote_sent += sent;
        self.stats.remote_send_errors += failed;
    }

    /// Reads up to `READ_BATCH` datagrams from other workers; true when the batch was full.
    pub(super) fn read_remote_batch(&mut self) -> bool {
        let Some(remote) = &mut self.remote else {
            return false;
        };
        let mut accepted = Vec::new();
        let mut read = 0;
        while read < READ_BATCH {
            let n = match remote.inbox.read(&remote.socket, READ_BATCH - read) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // An interrupted call, or the socket's own trouble (an ICMP error from a peer
                // that went away), reported once: the datagrams behind it are fine, and must
                // be read now, since the socket signals only new arrivals (`wakeup`).
                Err(_) => {
                    read += 1;
                    continue;
                }
            };
            read += n;
            for i in 0..n {
                let (datagram, from) = remote.inbox.datagram(i);
                let opened = from
                    .ok_or(Refused::Stranger)
                    .and_then(|from| remote.peers.open(from, datagram));
                match opened {
                    Ok((remaining, packet)) => accepted.push((remaining, Packet::from(packet))),
                    Err(refused) => count_refused(&mut self.stats, refused),
                }
            }
        }
        for (remaining, packet) in accepted {
            self.receive_remote(remaining, packet);
        }
        read >= READ_BATCH
    }

    /// The receiving half for a packet from another worker: its destination must live here.
    fn receive_remote(&mut self, remaining: Nanos, packet: Packet) {
        let bytes = packet.bytes();
        let (vnet, ip) = bytes.split_at(self.hdr.min(bytes.len()));
        let dst = ipv4_endpoints(ip)
            .and_then(|(_, dst)| self.nodes.get(&dst).copied())
            .filter(|d| matches!(self.homes.get(d.0 as usize), Some(None)));
        let Some(dst) = dst else {
            self.stats.remote_misaddressed += 1;
            return;
        };
        self.stats.remote_received += 1;
        let len = wire_len(vnet, ip.len());
        let arrival = self.clock.now().saturating_add(remaining);
        let _ = self
            .fabric
            .receive_from_remote(arrival, dst, len, Carried::Whole(packet));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_that_find_the_buffer_full_are_counted_as_drops() {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_eq!(socket_drops(&receiver), Some(0));
        nix::sys::socket::setsockopt(&receiver, nix::sys::socket::sockopt::RcvBuf, &1).unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sent = 200;
        for _ in 0..sent {
            sender
                .send_to(&[7u8; 1000], receiver.local_addr().unwrap())
                .unwrap();
        }
        receiver.set_nonblocking(true).unwrap();
        let mut read = 0;
        let mut buf = [0u8; 2000];
        while receiver.recv(&mut buf).is_ok() {
            read += 1;
        }
        let drops = socket_drops(&receiver).unwrap();
        assert!(drops > 0, "a buffer of one byte holds {read} of {sent}");
        // On loopback a datagram is either queued or dropped at the socket.
        assert_eq!(drops + read, sent);
    }
}
