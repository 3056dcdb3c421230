//! A minimal rtnetlink client over a raw `NETLINK_ROUTE` socket: IPv4 addresses, link state,
//! policy-routing rules and routes, every request acknowledged. It knows nothing of
//! namespaces: the socket acts in the network namespace of the thread that opened it.

use std::io;
use std::mem;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::NetnsError;

/// How many requests go to the kernel in one `send` before their acks are collected.
pub const BATCH: usize = 256;

// Message types, flags and attributes of <linux/netlink.h>, <linux/rtnetlink.h>,
// <linux/if_addr.h>, <linux/if_link.h> and <linux/fib_rules.h>.
const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_NEWROUTE: u16 = 24;
const RTM_NEWRULE: u16 = 32;
const RTM_DELRULE: u16 = 33;

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_TABLE: u16 = 15;
const FRA_DST: u16 = 1;
const FRA_IIFNAME: u16 = 3;
const FRA_PRIORITY: u16 = 6;
const FRA_TABLE: u16 = 15;

const AF_INET: u8 = libc::AF_INET as u8;
const IFF_UP: u32 = 0x1;
const IFLA_TXQLEN: u16 = 13;
const FR_ACT_TO_TBL: u8 = 1;
const RTN_UNICAST: u8 = 1;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_LINK: u8 = 253;
const RT_SCOPE_HOST: u8 = 254;
const RTN_LOCAL: u8 = 2;
const RTN_UNREACHABLE: u8 = 7;
const TABLE_MAIN: u32 = 254;

/// The kernel's local table (`lookup local`).
pub const TABLE_LOCAL: u32 = 255;

/// A policy-routing rule (`ip rule`): IPv4, action "lookup `table`".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub priority: u32,
    pub table: u32,
    /// `iif NAME`: only packets arriving on (or, for `lo`, sent by) this interface.
    pub iifname: Option<String>,
    /// `to PREFIX/LEN`.
    pub dst: Option<(Ipv4Addr, u8)>,
}

/// A unicast, scope-link IPv4 route `dst/prefix_len dev <oif> table <table>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    pub dst: Ipv4Addr,
    pub prefix_len: u8,
    pub oif: u32,
    pub table: u32,
}

/// An open `NETLINK_ROUTE` socket, bound to the network namespace it was opened in.
#[derive(Debug)]
pub struct Netlink {
    fd: OwnedFd,
    next_seq: u32,
}

impl Netlink {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<Netlink, NetnsError> {
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if raw < 0 {
            return Err(NetnsError::last_os("open netlink socket"));
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_nl is plain data; all-zero is a valid value.
        let mut addr: libc::sockaddr_nl = unsafe { mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: `addr` is a valid sockaddr_nl of the given length.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(NetnsError::last_os("bind netlink socket"));
        }
        // Acks without a copy of the request; room for a whole batch of acks (FORCE needs
        // CAP_NET_ADMIN, which real mode has; the plain option is capped by rmem_max);
        // never wait forever for the kernel.
        let _ = setsockopt(&fd, libc::SOL_NETLINK, libc::NETLINK_CAP_ACK, 1);
        if setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 4 << 20).is_err() {
            let _ = setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, 4 << 20);
        }
        let timeout = libc::timeval {
            tv_sec: 5,
            tv_usec: 0,
        };
        // SAFETY: `timeout` is a valid timeval of the given length.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        Ok(Netlink { fd, next_seq: 1 })
    }

    /// Adds each address as a /32 on interface `ifindex`, [`BATCH`] requests per `send`.
    /// Every request is acknowledged; the first failure is reported after the batch.
    pub fn add_addresses(&mut self, ifindex: u32, addrs: &[Ipv4Addr]) -> Result<(), NetnsError> {
        for chunk in addrs.chunks(BATCH) {
            let first = self.next_seq;
            let mut buf = Vec::with_capacity(chunk.len() * 40);
            for (i, addr) in chunk.iter().enumerate() {
                encode_address(&mut buf, first.wrapping_add(i as u32), true, ifindex, *addr);
            }
            self.exchange("add address", &buf, chunk.len())?;
        }
        Ok(())
    }

    /// Removes the /32 `addr` from interface `ifindex`.
    pub fn del_address(&mut self, ifindex: u32, addr: Ipv4Addr) -> Result<(), NetnsError> {
        let mut buf = Vec::new();
        encode_address(&mut buf, self.next_seq, false, ifindex, addr);
        self.exchange("delete address", &buf, 1).map(drop)
    }

    /// Sets interface `ifindex` up, and its MTU if given.
    pub fn set_link_up(&mut self, ifindex: u32, mtu: Option<u32>) -> Result<(), NetnsError> {
        let mut buf = Vec::new();
        encode_link_up(&mut buf, self.next_seq, ifindex, mtu);
        self.exchange("set link up", &buf, 1).map(drop)
    }

    /// `ip link set IFINDEX txqueuelen QLEN`.
    pub fn set_txqlen(&mut self, ifindex: u32, qlen: u32) -> Result<(), NetnsError> {
        let mut buf = Vec::new();
        let start = begin(&mut buf, RTM_NEWLINK, 0, self.next_seq);
        ifinfomsg(&mut buf, ifindex, 0, 0);
        attr(&mut buf, IFLA_TXQLEN, &qlen.to_ne_bytes());
        end(&mut buf, start);
        self.exchange("set txqueuelen", &buf, 1).map(drop)
    }

    /// The index of interface `name` (`ENODEV` if there is none).
    pub fn ifindex(&mut self, name: &str) -> Result<u32, NetnsError> {
        let mut buf = Vec::new();
        encode_get_link(&mut buf, self.next_seq, name);
        let replies = self.exchange("get link", &buf, 1)?;
        replies
            .iter()
            .find(|(ty, payload)| *ty == RTM_NEWLINK && payload.len() >= 16)
            .map(|(_, payload)| read_u32(payload, 4))
            .ok_or_else(|| NetnsError::NetlinkReply {
                op: "get link",
                detail: "no link in the reply".into(),
            })
    }

    /// `ip rule add …`.
    pub fn add_rule(&mut self, rule: &Rule) -> Result<(), NetnsError> {
        let mut buf = Vec::new();
        encode_rule(&mut buf, self.next_seq, true, rule);
        self.exchange("add rule", &buf, 1).map(drop)
    }

    /// `ip rule del …`.
    pub fn del_rule(&mut self, rule: &Rule) -> Result<(), NetnsError> {
        let mut buf = Vec::new();
        encode_rule(&mut buf, self.next_seq, false, rule);
        self.exchange("delete rule", &buf, 1).map(drop)
    }

    /// `ip route add local DST/LEN dev OIF table local`: every address of the prefix is an
    /// address of this host (AnyIP), with no per-address cost.
    pub fn add_local_route(
        &mut self,
        dst: Ipv4Addr,
        prefix_len: u8,
        oif: u32,
    ) -> Result<(), NetnsError> {
        let route = Route {
            dst,
            prefix_len,
            oif,
            table: TABLE_LOCAL,
        };
        let mut buf = Vec::new();
        encode_route_of_type(&mut buf, self.next_seq, &route, RT_SCOPE_HOST, RTN_LOCAL);
        self.exchange("add local route", &buf, 1).map(drop)
    }

    /// `ip route add unreachable DST/LEN` in the main table: senders get an ICMP error at once
    /// instead of waiting for a reply that cannot come.
    pub fn add_unreachable_route(
        &mut self,
        dst: Ipv4Addr,
        prefix_len: u8,
    ) -> Result<(), NetnsError> {
        let mut buf = Vec::new();
        let start = begin(
            &mut buf,
            RTM_NEWROUTE,
            NLM_F_CREATE | NLM_F_EXCL,
            self.next_seq,
        );
        buf.extend_from_slice(&[
            AF_INET,
            prefix_len,
            0,
            0,
            TABLE_MAIN as u8,
            RTPROT_BOOT,
            RT_SCOPE_UNIVERSE,
            RTN_UNREACHABLE,
        ]);
        buf.extend_from_slice(&0u32.to_ne_bytes());
        attr(&mut buf, RTA_DST, &dst.octets());
        end(&mut buf, start);
        self.exchange("add unreachable route", &buf, 1).map(drop)
    }

    /// `ip route add DST/LEN dev OIF table TABLE` (unicast, scope link).
    pub fn add_route(&mut self, route: &Route) -> Result<(), NetnsError> {
        let mut buf = Vec::new();
        encode_route(&mut buf, self.next_seq, route);
        self.exchange("add route", &buf, 1).map(drop)
    }

    /// Sends `count` requests (sequence numbers from `self.next_seq` on) in one datagram and
    /// reads until each is acknowledged. Returns the data messages received on the way, as
    /// (type, payload); the first error ack becomes the error.
    fn exchange(
        &mut self,
        op: &'static str,
        requests: &[u8],
        count: usize,
    ) -> Result<Vec<(u16, Vec<u8>)>, NetnsError> {
        let first = self.next_seq;
        self.next_seq = first.wrapping_add(count as u32);
        send_all(&self.fd, op, requests)?;
        let mut acked = vec![false; count];
        let mut remaining = count;
        let mut first_error = None;
        let mut replies = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        while remaining > 0 {
            let len = recv(&self.fd, op, &mut buf)?;
            for msg in Messages::new(&buf[..len]) {
                let index = msg.seq.wrapping_sub(first) as usize;
                if index >= count {
                    continue; // a stale reply to an earlier, failed exchange
                }
                match msg.ty {
                    NLMSG_ERROR => {
                        let errno = ack_errno(msg.payload).ok_or(NetnsError::NetlinkReply {
                            op,
                            detail: "truncated ack".into(),
                        })?;
                        if !acked[index] {
                            acked[index] = true;
                            remaining -= 1;
                        }
                        if errno != 0 && first_error.is_none() {
                            first_error = Some(errno);
                        }
                    }
                    NLMSG_DONE => {}
                    ty => replies.push((ty, msg.payload.to_vec())),
                }
            }
        }
        match first_error {
            Some(errno) => Err(NetnsError::Netlink { op, errno }),
            None => Ok(replies),
        }
    }
}

fn setsockopt(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` is a valid c_int of the given length.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn send_all(fd: &OwnedFd, op: &'static str, buf: &[u8]) -> Result<(), NetnsError> {
    loop {
        // SAFETY: `buf` is valid for reads of its length.
        let n = unsafe { libc::send(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), 0) };
        if n >= 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(NetnsError::io(format!("netlink {op}: send"), err));
        }
    }
}

fn recv(fd: &OwnedFd, op: &'static str, buf: &mut [u8]) -> Result<usize, NetnsError> {
    loop {
        // SAFETY: `buf` is valid for writes of its length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => {
                return Err(NetnsError::NetlinkReply {
                    op,
                    detail: "no ack from the kernel within 5 s".into(),
                });
            }
            _ => return Err(NetnsError::io(format!("netlink {op}: receive"), err)),
        }
    }
}

// ---- encoding: plain bytes, no socket ----

/// Starts a message; returns its offset, to be passed to [`end`].
fn begin(buf: &mut Vec<u8>, ty: u16, flags: u16, seq: u32) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_len, set by `end`
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel fills it in
    start
}

fn end(buf: &mut [u8], start: usize) {
    let len = (buf.len() - start) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
}

/// Appends an attribute, padded to 4 bytes.
fn attr(buf: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    buf.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(payload);
    pad(buf);
}

fn pad(buf: &mut Vec<u8>) {
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

fn name_bytes(name: &str) -> Vec<u8> {
    let mut bytes = name.as_bytes().to_vec();
    bytes.push(0);
    bytes
}

/// `RTM_NEWADDR`/`RTM_DELADDR` of `addr/32` on `ifindex`.
fn encode_address(buf: &mut Vec<u8>, seq: u32, add: bool, ifindex: u32, addr: Ipv4Addr) {
    let (ty, flags) = if add {
        (RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL)
    } else {
        (RTM_DELADDR, 0)
    };
    let start = begin(buf, ty, flags, seq);
    // ifaddrmsg: family, prefixlen, flags, scope, index
    buf.extend_from_slice(&[AF_INET, 32, 0, RT_SCOPE_UNIVERSE]);
    buf.extend_from_slice(&ifindex.to_ne_bytes());
    attr(buf, IFA_LOCAL, &addr.octets());
    attr(buf, IFA_ADDRESS, &addr.octets());
    end(buf, start);
}

/// `RTM_NEWLINK` setting `IFF_UP` (and `IFLA_MTU`) on `ifindex`.
fn encode_link_up(buf: &mut Vec<u8>, seq: u32, ifindex: u32, mtu: Option<u32>) {
    let start = begin(buf, RTM_NEWLINK, 0, seq);
    ifinfomsg(buf, ifindex, IFF_UP, IFF_UP);
    if let Some(mtu) = mtu {
        attr(buf, IFLA_MTU, &mtu.to_ne_bytes());
    }
    end(buf, start);
}

/// `RTM_GETLINK` of the interface called `name`.
fn encode_get_link(buf: &mut Vec<u8>, seq: u32, name: &str) {
    let start = begin(buf, RTM_GETLINK, 0, seq);
    ifinfomsg(buf, 0, 0, 0);
    attr(buf, IFLA_IFNAME, &name_bytes(name));
    end(buf, start);
}

fn ifinfomsg(buf: &mut Vec<u8>, ifindex: u32, flags: u32, change: u32) {
    // family, pad, type (u16), index (i32), flags, change
    buf.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
    buf.extend_from_slice(&ifindex.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&change.to_ne_bytes());
}

/// `RTM_NEWRULE`/`RTM_DELRULE`: IPv4, action `FR_ACT_TO_TBL`.
fn encode_rule(buf: &mut Vec<u8>, seq: u32, add: bool, rule: &Rule) {
    let (ty, flags) = if add {
        (RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL)
    } else {
        (RTM_DELRULE, 0)
    };
    let start = begin(buf, ty, flags, seq);
    let dst_len = rule.dst.map_or(0, |(_, len)| len);
    let table8 = if rule.table < 256 {
        rule.table as u8
    } else {
        0
    };
    // fib_rule_hdr: family, dst_len, src_len, tos, table, res1, res2, action, flags (u32)
    buf.extend_from_slice(&[AF_INET, dst_len, 0, 0, table8, 0, 0, FR_ACT_TO_TBL]);
    buf.extend_from_slice(&0u32.to_ne_bytes());
    attr(buf, FRA_PRIORITY, &rule.priority.to_ne_bytes());
    attr(buf, FRA_TABLE, &rule.table.to_ne_bytes());
    if let Some(iif) = &rule.iifname {
        attr(buf, FRA_IIFNAME, &name_bytes(iif));
    }
    if let Some((dst, _)) = rule.dst {
        attr(buf, FRA_DST, &dst.octets());
    }
    end(buf, start);
}

/// `RTM_NEWROUTE`: unicast, scope link, protocol boot (as `ip route add` makes it).
fn encode_route(buf: &mut Vec<u8>, seq: u32, route: &Route) {
    encode_route_of_type(buf, seq, route, RT_SCOPE_LINK, RTN_UNICAST);
}

/// `RTM_NEWROUTE` with a given scope and type (`local` routes are scope host, type local).
fn encode_route_of_type(buf: &mut Vec<u8>, seq: u32, route: &Route, scope: u8, kind: u8) {
    let start = begin(buf, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, seq);
    let table8 = if route.table < 256 {
        route.table as u8
    } else {
        0
    };
    // rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags (u32)
    buf.extend_from_slice(&[
        AF_INET,
        route.prefix_len,
        0,
        0,
        table8,
        RTPROT_BOOT,
        scope,
        kind,
    ]);
    buf.extend_from_slice(&0u32.to_ne_bytes());
    attr(buf, RTA_DST, &route.dst.octets());
    attr(buf, RTA_OIF, &route.oif.to_ne_bytes());
    attr(buf, RTA_TABLE, &route.table.to_ne_bytes());
    end(buf, start);
}

// ---- decoding ----

struct Message<'a> {
    ty: u16,
    seq: u32,
    payload: &'a [u8],
}

/// The messages of one received datagram.
struct Messages<'a> {
    rest: &'a [u8],
}

impl<'a> Messages<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Messages { rest: buf }
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = Message<'a>;

    fn next(&mut self) -> Option<Message<'a>> {
        if self.rest.len() < NLMSG_HDRLEN {
            return None;
        }
        let len = read_u32(self.rest, 0) as usize;
        if len < NLMSG_HDRLEN || len > self.rest.len() {
            self.rest = &[];
            return None;
        }
        let msg = Message {
            ty: u16::from_ne_bytes([self.rest[4], self.rest[5]]),
            seq: read_u32(self.rest, 8),
            payload: &self.rest[NLMSG_HDRLEN..len],
        };
        let aligned = (len + 3) & !3;
        self.rest = &self.rest[aligned.min(self.rest.len())..];
        Some(msg)
    }
}

/// The errno of an `NLMSG_ERROR` payload (0 for a positive ack).
fn ack_errno(payload: &[u8]) -> Option<i32> {
    let bytes: [u8; 4] = payload.get(..4)?.try_into().ok()?;
    Some(-i32::from_ne_bytes(bytes))
}

fn read_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

#[cfg(test)]
mod tests;
