//! Batched UDP I/O for the link to other workers: the datagrams shipped during one pass of the
//! forwarding loop wait in an `Outbox` and leave together in one sendmmsg(2), and an `Inbox`
//! reads up to `BATCH` datagrams per recvmmsg(2): one system call per batch instead of one per
//! datagram pays for the MAC (`encap`).

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::sys::socket::{
    ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg,
};

/// Datagrams per system call. A queued datagram waits at most for this many more packets of
/// the same pass, which bounds the latency batching adds.
pub(super) const BATCH: usize = 64;
/// Room for any UDP datagram (IPv4 allows 65,507 payload bytes, IPv6 65,527), so none is
/// truncated.
const MAX_DATAGRAM: usize = 65_536;

pub(super) struct Outbox {
    /// Buffers of the queued datagrams (the first `len`), kept for reuse.
    datagrams: Vec<Vec<u8>>,
    to: Vec<Option<SockaddrStorage>>,
    len: usize,
    headers: MultiHeaders<SockaddrStorage>,
}

impl Outbox {
    pub(super) fn new() -> Self {
        Outbox {
            datagrams: (0..BATCH).map(|_| Vec::new()).collect(),
            to: Vec::with_capacity(BATCH),
            len: 0,
            headers: MultiHeaders::preallocate(BATCH, None),
        }
    }

    /// The buffer the next datagram is written into; `push` queues it.
    pub(super) fn spare(&mut self) -> &mut Vec<u8> {
        &mut self.datagrams[self.len]
    }

    /// Queues the datagram just written into `spare`, for `to`; true when the outbox is full
    /// and must be flushed.
    pub(super) fn push(&mut self, to: SocketAddr) -> bool {
        self.to.push(Some(SockaddrStorage::from(to)));
        self.len += 1;
        self.len == BATCH
    }

    /// Sends every queued datagram: how many left and how many the socket refused.
    pub(super) fn flush(&mut self, socket: &UdpSocket) -> (u64, u64) {
        let (mut sent, mut failed) = (0, 0);
        let mut at = 0;
        while at < self.len {
            let slices: Vec<[IoSlice<'_>; 1]> = self.datagrams[at..self.len]
                .iter()
                .map(|d| [IoSlice::new(d)])
                .collect();
            let none: [ControlMessage<'_>; 0] = [];
            let result = sendmmsg(
                socket.as_raw_fd(),
                &mut self.headers,
                &slices,
                &self.to[at..self.len],
                none,
                MsgFlags::empty(),
            );
            match result.map(Iterator::count) {
                Ok(n) if n > 0 => {
                    sent += n as u64;
                    at += n;
                }
                Err(Errno::EINTR) => {}
                // A full socket buffer refuses the rest as well: dropped, like a full queue.
                Err(Errno::EAGAIN) => {
                    failed += (self.len - at) as u64;
                    break;
                }
                // The first datagram's own trouble (say, no route to its worker): the ones
                // behind it may be fine.
                _ => {
                    failed += 1;
                    at += 1;
                }
            }
        }
        self.len = 0;
        self.to.clear();
        (sent, failed)
    }
}

pub(super) struct Inbox {
    /// `BATCH` buffers of `MAX_DATAGRAM` bytes in one allocation, whose pages the kernel
    /// provides only once a datagram is written into them (a few kilobytes each, normally).
    buffers: Vec<u8>,
    headers: MultiHeaders<SockaddrStorage>,
    /// Length and source of each datagram of the last read.
    got: Vec<(usize, Option<SocketAddr>)>,
}

fn socket_addr(s: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = s.as_sockaddr_in() {
        return Some(SocketAddrV4::from(*v4).into());
    }
    s.as_sockaddr_in6().map(|v6| SocketAddrV6::from(*v6).into())
}

impl Inbox {
    pub(super) fn new() -> Self {
        Inbox {
            buffers: vec![0; BATCH * MAX_DATAGRAM],
            headers: MultiHeaders::preallocate(BATCH, None),
            got: Vec::with_capacity(BATCH),
        }
    }

    /// Reads up to `max` (at most `BATCH`) of the datagrams waiting: how many it read, or
    /// `WouldBlock` when none is.
    pub(super) fn read(&mut self, socket: &UdpSocket, max: usize) -> io::Result<usize> {
        self.got.clear();
        let mut slices: Vec<[IoSliceMut<'_>; 1]> = self
            .buffers
            .chunks_exact_mut(MAX_DATAGRAM)
            .take(max.min(BATCH))
            .map(|b| [IoSliceMut::new(b)])
            .collect();
        let received = recvmmsg(
            socket.as_raw_fd(),
            &mut self.headers,
            slices.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )?;
        for msg in received {
            let from = msg.address.as_ref().and_then(socket_addr);
            self.got.push((msg.bytes, from));
        }
        Ok(self.got.len())
    }

    /// Datagram `i` of the last read and where it came from (`None`: not from an IP
    /// address, which no peer has).
    pub(super) fn datagram(&self, i: usize) -> (&[u8], Option<SocketAddr>) {
        let (len, from) = self.got[i];
        let start = i * MAX_DATAGRAM;
        (&self.buffers[start..start + len], from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_leaves_in_order_and_is_read_in_batches() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        let to = rx.local_addr().unwrap();
        let mut out = Outbox::new();
        let mut full = false;
        for i in 0..BATCH {
            let d = out.spare();
            d.clear();
            d.extend_from_slice(&[i as u8; 100]);
            d.push(i as u8);
            full = out.push(to);
        }
        assert!(full, "BATCH datagrams fill it");
        assert_eq!(out.flush(&tx), (BATCH as u64, 0));
        assert_eq!(out.flush(&tx), (0, 0), "flushed means empty");

        let mut inbox = Inbox::new();
        let mut seen = Vec::new();
        while seen.len() < BATCH {
            let n = inbox.read(&rx, 10).unwrap();
            assert!(n <= 10);
            for i in 0..n {
                let (d, from) = inbox.datagram(i);
                assert_eq!(from, Some(tx.local_addr().unwrap()));
                assert_eq!(d.len(), 101);
                seen.push(d[100]);
            }
        }
        assert_eq!(seen, (0..BATCH as u8).collect::<Vec<_>>());
        let empty = inbox.read(&rx, BATCH).unwrap_err();
        assert_eq!(empty.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn a_refused_datagram_does_not_stop_the_others() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut out = Outbox::new();
        for len in [10, MAX_DATAGRAM, 10] {
            let d = out.spare();
            d.clear();
            d.resize(len, 1);
            out.push(rx.local_addr().unwrap());
        }
        assert_eq!(out.flush(&tx), (2, 1), "the oversized one fails alone");
    }
}
