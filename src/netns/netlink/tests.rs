//! Byte-exact tests of the netlink messages, and of ack parsing, without a socket.

use super::*;

/// The nlmsghdr `encode_*` writes: len, type, flags (always REQUEST|ACK added), seq, pid 0.
fn header(len: u32, ty: u16, flags: u16, seq: u32) -> Vec<u8> {
    let mut h = len.to_ne_bytes().to_vec();
    h.extend_from_slice(&ty.to_ne_bytes());
    h.extend_from_slice(&(flags | 0x5).to_ne_bytes());
    h.extend_from_slice(&seq.to_ne_bytes());
    h.extend_from_slice(&[0; 4]);
    h
}

fn rta(ty: u16, payload: &[u8]) -> Vec<u8> {
    let mut a = ((4 + payload.len()) as u16).to_ne_bytes().to_vec();
    a.extend_from_slice(&ty.to_ne_bytes());
    a.extend_from_slice(payload);
    while !a.len().is_multiple_of(4) {
        a.push(0);
    }
    a
}

#[test]
fn link_up_with_mtu() {
    let mut buf = Vec::new();
    encode_link_up(&mut buf, 3, 4, Some(1400));
    let mut want = header(40, 16, 0, 3);
    want.extend_from_slice(&[0, 0, 0, 0]);
    want.extend_from_slice(&4u32.to_ne_bytes());
    want.extend_from_slice(&1u32.to_ne_bytes());
    want.extend_from_slice(&1u32.to_ne_bytes());
    want.extend(rta(4, &1400u32.to_ne_bytes()));
    assert_eq!(buf, want);
}

#[test]
fn get_link_pads_the_name() {
    let mut buf = Vec::new();
    encode_get_link(&mut buf, 9, "p2p0");
    let mut want = header(16 + 16 + 12, 18, 0, 9);
    want.extend_from_slice(&[0; 16]);
    want.extend(rta(3, b"p2p0\0"));
    assert_eq!(buf.len(), 44);
    assert_eq!(buf, want);
}

#[test]
fn hairpin_rule_message() {
    let rule = Rule {
        priority: 100,
        table: 100,
        iifname: Some("lo".into()),
        dst: Some((Ipv4Addr::new(10, 0, 0, 0), 16)),
    };
    let mut buf = Vec::new();
    encode_rule(&mut buf, 11, true, &rule);
    let mut want = header(16 + 12 + 8 + 8 + 8 + 8, 32, 0x600, 11);
    want.extend_from_slice(&[2, 16, 0, 0, 100, 0, 0, 1, 0, 0, 0, 0]);
    want.extend(rta(6, &100u32.to_ne_bytes()));
    want.extend(rta(15, &100u32.to_ne_bytes()));
    want.extend(rta(3, b"lo\0"));
    want.extend(rta(1, &[10, 0, 0, 0]));
    assert_eq!(buf, want);
}

#[test]
fn delete_local_rule_message() {
    let rule = Rule {
        priority: 0,
        table: TABLE_LOCAL,
        iifname: None,
        dst: None,
    };
    let mut buf = Vec::new();
    encode_rule(&mut buf, 2, false, &rule);
    let mut want = header(44, 33, 0, 2);
    want.extend_from_slice(&[2, 0, 0, 0, 255, 0, 0, 1, 0, 0, 0, 0]);
    want.extend(rta(6, &0u32.to_ne_bytes()));
    want.extend(rta(15, &255u32.to_ne_bytes()));
    assert_eq!(buf, want);
}

#[test]
fn table_above_255_only_in_attribute() {
    let rule = Rule {
        priority: 5,
        table: 1000,
        iifname: None,
        dst: None,
    };
    let mut buf = Vec::new();
    encode_rule(&mut buf, 2, true, &rule);
    assert_eq!(buf[16 + 4], 0);
}

#[test]
fn route_message() {
    let route = Route {
        dst: Ipv4Addr::new(10, 1, 0, 0),
        prefix_len: 16,
        oif: 5,
        table: 100,
    };
    let mut buf = Vec::new();
    encode_route(&mut buf, 4, &route);
    let mut want = header(16 + 12 + 24, 24, 0x600, 4);
    want.extend_from_slice(&[2, 16, 0, 0, 100, 3, 253, 1, 0, 0, 0, 0]);
    want.extend(rta(1, &[10, 1, 0, 0]));
    want.extend(rta(4, &5u32.to_ne_bytes()));
    want.extend(rta(15, &100u32.to_ne_bytes()));
    assert_eq!(buf, want);
}

#[test]
fn local_route_message() {
    // `ip route add local 10.3.0.0/16 dev lo table local`: scope host, type local.
    let route = Route {
        dst: Ipv4Addr::new(10, 3, 0, 0),
        prefix_len: 16,
        oif: 1,
        table: TABLE_LOCAL,
    };
    let mut buf = Vec::new();
    encode_route_of_type(&mut buf, 6, &route, RT_SCOPE_HOST, RTN_LOCAL);
    let mut want = header(16 + 12 + 24, 24, 0x600, 6);
    want.extend_from_slice(&[2, 16, 0, 0, 255, 3, 254, 2, 0, 0, 0, 0]);
    want.extend(rta(1, &[10, 3, 0, 0]));
    want.extend(rta(4, &1u32.to_ne_bytes()));
    want.extend(rta(15, &255u32.to_ne_bytes()));
    assert_eq!(buf, want);
}

#[test]
fn unreachable_route_message() {
    // `ip route add unreachable 10.0.0.0/8`: main table, no interface.
    let mut buf = Vec::new();
    encode_unreachable_route(&mut buf, 12, Ipv4Addr::new(10, 0, 0, 0), 8);
    let mut want = header(16 + 12 + 8, 24, 0x600, 12);
    want.extend_from_slice(&[2, 8, 0, 0, 254, 3, 0, 7, 0, 0, 0, 0]);
    want.extend(rta(1, &[10, 0, 0, 0]));
    assert_eq!(buf, want);
}

#[test]
fn txqlen_message() {
    let mut buf = Vec::new();
    encode_txqlen(&mut buf, 5, 4, 4096);
    let mut want = header(40, 16, 0, 5);
    want.extend_from_slice(&[0; 4]);
    want.extend_from_slice(&4u32.to_ne_bytes());
    want.extend_from_slice(&[0; 8]);
    want.extend(rta(13, &4096u32.to_ne_bytes()));
    assert_eq!(buf, want);
}

#[test]
fn one_datagram_holds_several_messages() {
    // A `get link` answer comes as the link and then the ack, in one datagram.
    let mut buf = Vec::new();
    encode_link_up(&mut buf, 100, 1, Some(1400));
    encode_get_link(&mut buf, 101, "lo");
    encode_link_up(&mut buf, 102, 1, None);
    let seqs: Vec<u32> = Messages::new(&buf).map(|m| m.seq).collect();
    assert_eq!(seqs, [100, 101, 102]);
}

#[test]
fn acks_are_parsed() {
    // An error ack for seq 8 followed by a positive ack for seq 9 (nlmsgerr: the error, then
    // the request's header; the kernel may append the request's payload, which is skipped).
    let mut buf = Vec::new();
    for (seq, err) in [(8u32, -libc::EEXIST), (9, 0)] {
        buf.extend_from_slice(&36u32.to_ne_bytes());
        buf.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        buf.extend_from_slice(&0u16.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&err.to_ne_bytes());
        buf.extend_from_slice(&[0; 16]);
    }
    let msgs: Vec<_> = Messages::new(&buf).collect();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0].ty, NLMSG_ERROR);
    assert_eq!(ack_errno(msgs[0].payload), Some(libc::EEXIST));
    assert_eq!((msgs[1].seq, ack_errno(msgs[1].payload)), (9, Some(0)));
    assert_eq!(ack_errno(&[1, 2]), None);
}

#[test]
fn truncated_datagram_stops_parsing() {
    let mut buf = Vec::new();
    encode_link_up(&mut buf, 1, 1, None);
    buf.truncate(buf.len() - 4);
    assert_eq!(Messages::new(&buf).count(), 0);
}

#[test]
fn tx_dropped_is_read_from_the_stats64_attribute() {
    // ifinfomsg, an IFLA_MTU attribute, then IFLA_STATS64 with tx_dropped = 4242.
    let mut payload = vec![0u8; 16];
    payload.extend(rta(IFLA_MTU, &1500u32.to_ne_bytes()));
    let stats: Vec<u8> = (0..24u64)
        .flat_map(|i| if i == 7 { 4242u64 } else { i }.to_ne_bytes())
        .collect();
    payload.extend(rta(IFLA_STATS64, &stats));
    assert_eq!(link_tx_dropped(&payload), Some(4242));
    assert_eq!(link_tx_dropped(&payload[..16 + 8]), None, "no statistics");
    assert_eq!(link_tx_dropped(&payload[..40]), None, "cut short");
}
