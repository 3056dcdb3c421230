//! Socket addresses as the shim sees them, and every decision about them: which are wildcards,
//! which destinations make a socket bind first, what a wildcard becomes. No system calls here.

use core::mem::size_of;
use core::ptr;

use libc::{
    AF_INET, AF_INET6, in_addr, in6_addr, sa_family_t, sockaddr, sockaddr_in, sockaddr_in6,
    socklen_t,
};

/// The node's address: `in_addr.s_addr` of `$BINDIP`, that is network byte order in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Node(pub(crate) u32);

/// A copy of a socket address a caller gave or `getsockname(2)` returned.
#[derive(Clone, Copy)]
pub(crate) enum SockAddr {
    V4(sockaddr_in),
    V6(sockaddr_in6),
    /// Another family, or too short to be one of the two above: never touched.
    Other,
}

/// The shortest `sockaddr_in6` the kernel accepts (RFC 2133, without `sin6_scope_id`).
const SIN6_LEN_RFC2133: usize = 24;

impl SockAddr {
    /// Copies the address at `addr`, reading at most `len` bytes of it.
    ///
    /// # Safety
    /// `addr` is null or points to `len` readable bytes (what the kernel would read).
    pub(crate) unsafe fn read(addr: *const sockaddr, len: socklen_t) -> SockAddr {
        let len = len as usize;
        if addr.is_null() || len < size_of::<sa_family_t>() {
            return SockAddr::Other;
        }
        // SAFETY: at least the family is readable (checked above); unaligned is allowed.
        let family = unsafe { ptr::read_unaligned(addr.cast::<sa_family_t>()) };
        match c_int_of(family) {
            AF_INET if len >= size_of::<sockaddr_in>() => {
                // SAFETY: `len` covers a whole sockaddr_in.
                SockAddr::V4(unsafe { ptr::read_unaligned(addr.cast::<sockaddr_in>()) })
            }
            AF_INET6 if len >= SIN6_LEN_RFC2133 => {
                let mut out = v6(in6_addr { s6_addr: [0; 16] }, 0);
                let n = len.min(size_of::<sockaddr_in6>());
                // SAFETY: `n` bytes are readable at `addr` and fit in `out`; no overlap.
                unsafe {
                    ptr::copy_nonoverlapping(
                        addr.cast::<u8>(),
                        ptr::addr_of_mut!(out).cast::<u8>(),
                        n,
                    )
                };
                SockAddr::V6(out)
            }
            _ => SockAddr::Other,
        }
    }

    /// The pointer and length to hand to the kernel, or `None` for [`SockAddr::Other`].
    pub(crate) fn as_raw(&self) -> Option<(*const sockaddr, socklen_t)> {
        match self {
            SockAddr::V4(a) => Some((ptr::from_ref(a).cast(), size_of::<sockaddr_in>() as _)),
            SockAddr::V6(a) => Some((ptr::from_ref(a).cast(), size_of::<sockaddr_in6>() as _)),
            SockAddr::Other => None,
        }
    }

    /// True for an unbound socket's own address: wildcard and port 0. A socket bound with
    /// `IP_BIND_ADDRESS_NO_PORT` shows port 0 but a real address, so it counts as bound.
    pub(crate) fn is_unbound(&self) -> bool {
        match self {
            SockAddr::V4(a) => a.sin_port == 0 && a.sin_addr.s_addr == 0,
            SockAddr::V6(a) => a.sin6_port == 0 && is_v6_wildcard(&a.sin6_addr),
            SockAddr::Other => false,
        }
    }

    /// The node's version of a wildcard address given to `bind`, port kept: `0.0.0.0` becomes
    /// `$BINDIP`, `::` (or `::ffff:0.0.0.0`) becomes `::ffff:$BINDIP`. `None` when the address
    /// is specific. (For `::` the caller checks first that the socket is dual-stack.)
    pub(crate) fn node_instead_of_wildcard(&self, node: Node) -> Option<SockAddr> {
        match self {
            SockAddr::V4(a) if a.sin_addr.s_addr == 0 => Some(SockAddr::V4(v4(node, a.sin_port))),
            SockAddr::V6(a) if is_v6_wildcard(&a.sin6_addr) => {
                Some(SockAddr::V6(v6(v4_mapped(node), a.sin6_port)))
            }
            _ => None,
        }
    }

    /// True when a socket sending to (or connecting to) this destination must first be bound
    /// to the node: an IPv4 address, plain or v4-mapped, outside 127.0.0.0/8. Loopback is the
    /// machine, shared by all its nodes (a local resolver, a local daemon), so it is left alone;
    /// so is native IPv6, which the lab does not isolate.
    pub(crate) fn needs_node_source(&self) -> bool {
        match self {
            SockAddr::V4(a) => !is_loopback(a.sin_addr.s_addr),
            SockAddr::V6(a) => unmapped(&a.sin6_addr).is_some_and(|s| !is_loopback(s)),
            SockAddr::Other => false,
        }
    }

    /// The node's address with port 0 in the family of `self` (the socket's own address).
    pub(crate) fn node_source(&self, node: Node) -> SockAddr {
        match self {
            SockAddr::V6(_) => SockAddr::V6(v6(v4_mapped(node), 0)),
            _ => SockAddr::V4(v4(node, 0)),
        }
    }
}

/// Parses `$BINDIP`: a dotted quad that is not `0.0.0.0`.
pub(crate) fn parse_node(text: &[u8]) -> Option<Node> {
    let ip: core::net::Ipv4Addr = core::str::from_utf8(text).ok()?.parse().ok()?;
    (!ip.is_unspecified()).then(|| Node(u32::from_ne_bytes(ip.octets())))
}

fn c_int_of(family: sa_family_t) -> libc::c_int {
    libc::c_int::from(family)
}

fn is_loopback(s_addr: u32) -> bool {
    let [first, ..] = s_addr.to_ne_bytes();
    first == 127
}

fn is_v6_wildcard(a: &in6_addr) -> bool {
    a.s6_addr == [0; 16] || unmapped(a) == Some(0)
}

/// The IPv4 address inside a v4-mapped IPv6 address (`::ffff:a.b.c.d`).
fn unmapped(a: &in6_addr) -> Option<u32> {
    let [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, b0, b1, b2, b3] = a.s6_addr else {
        return None;
    };
    Some(u32::from_ne_bytes([b0, b1, b2, b3]))
}

fn v4_mapped(node: Node) -> in6_addr {
    let [b0, b1, b2, b3] = node.0.to_ne_bytes();
    in6_addr {
        s6_addr: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, b0, b1, b2, b3],
    }
}

fn v4(node: Node, port_be: u16) -> sockaddr_in {
    sockaddr_in {
        sin_family: AF_INET as sa_family_t,
        sin_port: port_be,
        sin_addr: in_addr { s_addr: node.0 },
        sin_zero: [0; 8],
    }
}

fn v6(addr: in6_addr, port_be: u16) -> sockaddr_in6 {
    sockaddr_in6 {
        sin6_family: AF_INET6 as sa_family_t,
        sin6_port: port_be,
        sin6_flowinfo: 0,
        sin6_addr: addr,
        sin6_scope_id: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    const NODE: Node = Node(u32::from_ne_bytes([10, 99, 0, 1]));

    fn a4(ip: [u8; 4], port: u16) -> SockAddr {
        SockAddr::V4(v4(Node(u32::from_ne_bytes(ip)), port.to_be()))
    }

    fn a6(ip: Ipv6Addr, port: u16) -> SockAddr {
        SockAddr::V6(v6(
            in6_addr {
                s6_addr: ip.octets(),
            },
            port.to_be(),
        ))
    }

    fn ip_port(a: &SockAddr) -> (String, u16) {
        match a {
            SockAddr::V4(a) => (
                Ipv4Addr::from(a.sin_addr.s_addr.to_ne_bytes()).to_string(),
                u16::from_be(a.sin_port),
            ),
            SockAddr::V6(a) => (
                Ipv6Addr::from(a.sin6_addr.s6_addr).to_string(),
                u16::from_be(a.sin6_port),
            ),
            SockAddr::Other => ("other".into(), 0),
        }
    }

    #[test]
    fn bindip_must_be_a_specific_ipv4_address() {
        assert_eq!(parse_node(b"10.99.0.1"), Some(NODE));
        for bad in [
            &b""[..],
            b"0.0.0.0",
            b"::1",
            b"10.99.0",
            b"10.99.0.1 ",
            b"\xff",
        ] {
            assert_eq!(parse_node(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn wildcards_become_the_node_and_keep_their_port() {
        let v4 = a4([0, 0, 0, 0], 8000).node_instead_of_wildcard(NODE);
        assert_eq!(ip_port(&v4.unwrap()), ("10.99.0.1".into(), 8000));
        let v6 = a6(Ipv6Addr::UNSPECIFIED, 8000).node_instead_of_wildcard(NODE);
        assert_eq!(ip_port(&v6.unwrap()), ("::ffff:10.99.0.1".into(), 8000));
        let mapped_any = a6("::ffff:0.0.0.0".parse().unwrap(), 1).node_instead_of_wildcard(NODE);
        assert_eq!(
            ip_port(&mapped_any.unwrap()),
            ("::ffff:10.99.0.1".into(), 1)
        );
        assert!(
            a4([10, 99, 0, 2], 1)
                .node_instead_of_wildcard(NODE)
                .is_none()
        );
        assert!(
            a6(Ipv6Addr::LOCALHOST, 1)
                .node_instead_of_wildcard(NODE)
                .is_none()
        );
        assert!(SockAddr::Other.node_instead_of_wildcard(NODE).is_none());
    }

    #[test]
    fn loopback_and_native_ipv6_destinations_are_left_alone() {
        assert!(a4([10, 99, 0, 2], 80).needs_node_source());
        assert!(a4([0, 0, 0, 0], 80).needs_node_source());
        assert!(!a4([127, 0, 0, 53], 53).needs_node_source());
        assert!(a6("::ffff:10.99.0.2".parse().unwrap(), 80).needs_node_source());
        assert!(!a6("::ffff:127.0.0.1".parse().unwrap(), 80).needs_node_source());
        assert!(!a6(Ipv6Addr::LOCALHOST, 80).needs_node_source());
        assert!(!a6("2001:db8::1".parse().unwrap(), 80).needs_node_source());
        assert!(!SockAddr::Other.needs_node_source());
    }

    #[test]
    fn unbound_means_wildcard_and_port_zero() {
        assert!(a4([0, 0, 0, 0], 0).is_unbound());
        assert!(!a4([0, 0, 0, 0], 5).is_unbound());
        assert!(!a4([10, 99, 0, 1], 0).is_unbound()); // IP_BIND_ADDRESS_NO_PORT
        assert!(a6(Ipv6Addr::UNSPECIFIED, 0).is_unbound());
        assert!(!a6("::ffff:10.99.0.1".parse().unwrap(), 0).is_unbound());
        assert!(!SockAddr::Other.is_unbound());
    }

    #[test]
    fn the_source_has_the_sockets_family() {
        let src = a6(Ipv6Addr::UNSPECIFIED, 0).node_source(NODE);
        assert_eq!(ip_port(&src), ("::ffff:10.99.0.1".into(), 0));
        let src = a4([0, 0, 0, 0], 0).node_source(NODE);
        assert_eq!(ip_port(&src), ("10.99.0.1".into(), 0));
    }

    #[test]
    fn reading_respects_the_callers_length() {
        let full = v6(in6_addr { s6_addr: [0; 16] }, 7u16.to_be());
        let p = ptr::from_ref(&full).cast::<sockaddr>();
        // SAFETY: every length below is within `full`.
        unsafe {
            assert!(matches!(SockAddr::read(p, 24), SockAddr::V6(_)));
            assert!(matches!(SockAddr::read(p, 23), SockAddr::Other));
            assert!(matches!(SockAddr::read(p, 1), SockAddr::Other));
            assert!(matches!(SockAddr::read(ptr::null(), 28), SockAddr::Other));
        }
        let short = v4(NODE, 0);
        let p = ptr::from_ref(&short).cast::<sockaddr>();
        // SAFETY: as above.
        unsafe {
            assert!(matches!(SockAddr::read(p, 16), SockAddr::V4(_)));
            assert!(matches!(SockAddr::read(p, 15), SockAddr::Other));
        }
    }
}
