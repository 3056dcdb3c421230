//! Why hand-written: rtnetlink was no faster here and costs 7 crates, 1.5 MB and a tokio runtime.
//!
//! A minimal rtnetlink client over a `NETLINK_ROUTE` socket: link state, policy-routing rules
//! and routes, one acknowledged request at a time. It knows nothing of namespaces: the socket
//! acts in the network namespace of the thread that opened it.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{
    self, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, sockopt,
};
use nix::sys::time::TimeVal;

use super::NetnsError;

// Message types, flags and attributes of <linux/netlink.h>, <linux/rtnetlink.h>,
// <linux/if_link.h> and <linux/fib_rules.h>.
const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWROUTE: u16 = 24;
const RTM_NEWRULE: u16 = 32;
const RTM_DELRULE: u16 = 33;

const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_STATS64: u16 = 23;
/// `rtnl_link_stats64.tx_dropped`: the eighth u64.
const STATS64_TX_DROPPED: usize = 7;
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
        let fd = socket::socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )
        .map_err(|e| NetnsError::os("open netlink socket", e))?;
        socket::bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))
            .map_err(|e| NetnsError::os("bind netlink socket", e))?;
        // Never wait forever for the kernel.
        socket::setsockopt(&fd, sockopt::ReceiveTimeout, &TimeVal::new(5, 0))
            .map_err(|e| NetnsError::os("set netlink receive timeout", e))?;
        Ok(Netlink { fd, next_seq: 1 })
    }

    /// Sets interface `ifindex` up, and its MTU if given.
    pub fn set_link_up(&mut self, ifindex: u32, mtu: Option<u32>) -> Result<(), NetnsError> {
        self.request("set link up", |buf, seq| {
            encode_link_up(buf, seq, ifindex, mtu)
        })
        .map(drop)
    }

    /// `ip link set IFINDEX txqueuelen QLEN`.
    pub fn set_txqlen(&mut self, ifindex: u32, qlen: u32) -> Result<(), NetnsError> {
        self.request("set txqueuelen", |buf, seq| {
            encode_txqlen(buf, seq, ifindex, qlen)
        })
        .map(drop)
    }

    /// The index of interface `name` (`ENODEV` if there is none).
    pub fn ifindex(&mut self, name: &str) -> Result<u32, NetnsError> {
        let replies = self.request("get link", |buf, seq| encode_get_link(buf, seq, name))?;
        replies
            .iter()
            .find(|(ty, payload)| *ty == RTM_NEWLINK && payload.len() >= 16)
            .map(|(_, payload)| read_u32(payload, 4))
            .ok_or_else(|| NetnsError::NetlinkReply {
                op: "get link",
                detail: "no link in the reply".into(),
            })
    }

    /// Packets the kernel dropped on their way out of interface `name` (`tx_dropped` of
    /// `ip -s link`); for a TUN device, those its reader left in a full queue.
    pub fn tx_dropped(&mut self, name: &str) -> Result<u64, NetnsError> {
        let replies = self.request("get link", |buf, seq| encode_get_link(buf, seq, name))?;
        replies
            .iter()
            .filter(|(ty, _)| *ty == RTM_NEWLINK)
            .find_map(|(_, payload)| link_tx_dropped(payload))
            .ok_or_else(|| NetnsError::NetlinkReply {
                op: "get link",
                detail: "no 64-bit statistics in the reply".into(),
            })
    }

    /// `ip rule add …`.
    pub fn add_rule(&mut self, rule: &Rule) -> Result<(), NetnsError> {
        self.request("add rule", |buf, seq| encode_rule(buf, seq, true, rule))
            .map(drop)
    }

    /// `ip rule del …`.
    pub fn del_rule(&mut self, rule: &Rule) -> Result<(), NetnsError> {
        self.request("delete rule", |buf, seq| encode_rule(buf, seq, false, rule))
            .map(drop)
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
        self.request("add local route", |buf, seq| {
            encode_route_of_type(buf, seq, &route, RT_SCOPE_HOST, RTN_LOCAL)
        })
        .map(drop)
    }

    /// `ip route add unreachable DST/LEN` in the main table: senders get an ICMP error at once
    /// instead of waiting for a reply that cannot come.
    pub fn add_unreachable_route(
        &mut self,
        dst: Ipv4Addr,
        prefix_len: u8,
    ) -> Result<(), NetnsError> {
        self.request("add unreachable route", |buf, seq| {
            encode_unreachable_route(buf, seq, dst, prefix_len)
        })
        .map(drop)
    }

    /// `ip route add DST/LEN dev OIF table TABLE` (unicast, scope link).
    pub fn add_route(&mut self, route: &Route) -> Result<(), NetnsError> {
        self.request("add route", |buf, seq| encode_route(buf, seq, route))
            .map(drop)
    }

    /// Sends the one request `encode` writes for the next sequence number, and reads until it
    /// is acknowledged. Returns the data messages received on the way, as (type, payload); an
    /// error ack becomes the error.
    fn request(
        &mut self,
        op: &'static str,
        encode: impl FnOnce(&mut Vec<u8>, u32),
    ) -> Result<Vec<(u16, Vec<u8>)>, NetnsError> {
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        let mut request = Vec::with_capacity(64);
        encode(&mut request, seq);
        self.send(op, &request)?;
        let mut replies = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let len = self.recv(op, &mut buf)?;
            for msg in Messages::new(&buf[..len]) {
                if msg.seq != seq {
                    continue; // a stale reply to an earlier, failed exchange
                }
                match msg.ty {
                    NLMSG_ERROR => {
                        return match ack_errno(msg.payload) {
                            Some(0) => Ok(replies),
                            Some(errno) => Err(NetnsError::Netlink { op, errno }),
                            None => Err(NetnsError::NetlinkReply {
                                op,
                                detail: "truncated ack".into(),
                            }),
                        };
                    }
                    NLMSG_DONE => {}
                    ty => replies.push((ty, msg.payload.to_vec())),
                }
            }
        }
    }

    fn send(&self, op: &'static str, buf: &[u8]) -> Result<(), NetnsError> {
        loop {
            match socket::send(self.fd.as_raw_fd(), buf, MsgFlags::empty()) {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(NetnsError::os(format!("netlink {op}: send"), e)),
            }
        }
    }

    fn recv(&self, op: &'static str, buf: &mut [u8]) -> Result<usize, NetnsError> {
        loop {
            match socket::recv(self.fd.as_raw_fd(), buf, MsgFlags::empty()) {
                Ok(n) => return Ok(n),
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => {
                    return Err(NetnsError::NetlinkReply {
                        op,
                        detail: "no ack from the kernel within 5 s".into(),
                    });
                }
                Err(e) => return Err(NetnsError::os(format!("netlink {op}: receive"), e)),
            }
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

/// `RTM_NEWLINK` setting `IFLA_TXQLEN` on `ifindex`.
fn encode_txqlen(buf: &mut Vec<u8>, seq: u32, ifindex: u32, qlen: u32) {
    let start = begin(buf, RTM_NEWLINK, 0, seq);
    ifinfomsg(buf, ifindex, 0, 0);
    attr(buf, IFLA_TXQLEN, &qlen.to_ne_bytes());
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

/// `RTM_NEWROUTE` of type unreachable in the main table (no interface).
fn encode_unreachable_route(buf: &mut Vec<u8>, seq: u32, dst: Ipv4Addr, prefix_len: u8) {
    let start = begin(buf, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, seq);
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
    attr(buf, RTA_DST, &dst.octets());
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

/// `tx_dropped` from the `IFLA_STATS64` attribute of an `RTM_NEWLINK` payload (an
/// `ifinfomsg`, then attributes, each padded to 4 bytes).
fn link_tx_dropped(payload: &[u8]) -> Option<u64> {
    let mut at = 16;
    while at + 4 <= payload.len() {
        let len = usize::from(u16::from_ne_bytes([payload[at], payload[at + 1]]));
        let ty = u16::from_ne_bytes([payload[at + 2], payload[at + 3]]);
        if len < 4 || at + len > payload.len() {
            return None;
        }
        if ty == IFLA_STATS64 {
            let field = at + 4 + STATS64_TX_DROPPED * 8;
            let bytes = payload.get(field..field + 8)?;
            return Some(u64::from_ne_bytes(bytes.try_into().ok()?));
        }
        at += (len + 3) & !3;
    }
    None
}

fn read_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

#[cfg(test)]
mod tests;
