//! Datagrams from the network at a worker's data-plane port (needs root): a test socket plays
//! the other worker of the run. Forged, replayed, other-run, strange, malformed and
//! misaddressed datagrams are all dropped, each counted under its own reason, and none
//! reaches a node; authentic ones, even out of order, do.

mod common;

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use p2plab::clock::MonotonicClock;
use p2plab::dataplane::encap::{self, Header, Key};
use p2plab::dataplane::packet::VNET_HDR_LEN;
use p2plab::dataplane::{Command, Dataplane, ForwarderStats, RemoteLinks, TunDevice};
use p2plab::netns::LabNamespace;

const RUN: u32 = 0x5eed;
const RUN_KEY: [u8; 32] = [0x42; 32];
/// The node of worker 0 (the data plane under test) and one of worker 1 (the test socket).
const NODE: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const FAR_NODE: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
const PORT: u16 = 9000;

/// A UDP packet from `FAR_NODE` to `dst`, as an offloading TUN device frames it: a zeroed
/// virtio-net header (no offload asked), then IPv4 with its checksum, and UDP without one.
fn udp_packet(dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    let total = 20 + 8 + payload.len();
    let mut ip = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0x40,
        0,
        64,
        17,
        0,
        0,
    ];
    ip.extend_from_slice(&FAR_NODE.octets());
    ip.extend_from_slice(&dst.octets());
    let sum = ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let sum = !((sum & 0xffff) + (sum >> 16)) as u16;
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let udp_len = (8 + payload.len()) as u16;
    let mut packet = vec![0u8; VNET_HDR_LEN];
    packet.extend_from_slice(&ip);
    packet.extend_from_slice(&(PORT + 1).to_be_bytes());
    packet.extend_from_slice(&PORT.to_be_bytes());
    packet.extend_from_slice(&udp_len.to_be_bytes());
    packet.extend_from_slice(&[0, 0]);
    packet.extend_from_slice(payload);
    packet
}

/// What worker `sender` of run `run` would send worker `receiver` under `run_key`.
fn datagram(
    run_key: &[u8; 32],
    run: u32,
    (sender, receiver): (u32, u32),
    counter: u64,
    packet: &[u8],
) -> Vec<u8> {
    let header = Header {
        run,
        sender,
        receiver,
        counter,
        remaining: 0,
        vnet_len: VNET_HDR_LEN,
    };
    let mut d = Vec::new();
    encap::seal(
        &Key::derive(run_key, run, sender, receiver),
        &header,
        packet,
        &mut d,
    );
    d
}

/// An authentic datagram from worker 1 to worker 0 for `NODE`, saying `payload`.
fn authentic(counter: u64, payload: &[u8]) -> Vec<u8> {
    datagram(&RUN_KEY, RUN, (1, 0), counter, &udp_packet(NODE, payload))
}

/// A lab with the node `NODE` of worker 0 listening on UDP, its data plane, whose socket is
/// on the host's loopback, and knowing `FAR_NODE` to live on worker 1 at `peer`.
struct Lab {
    dp: Option<Dataplane>,
    node: UdpSocket,
    port: SocketAddr,
    // Last: removed once the data plane has stopped.
    _lab: LabNamespace,
}

impl Lab {
    fn start(peer: SocketAddr) -> Lab {
        let lab = LabNamespace::create("datagrams").expect("a lab namespace");
        lab.bring_up_loopback().unwrap();
        let tun = lab
            .run_in(|| TunDevice::create("p2p0", true))
            .unwrap()
            .expect("a TUN device");
        let (block, len) = (Ipv4Addr::new(10, 0, 0, 0), 16);
        lab.install_hairpin("p2p0", block, len, 1500).unwrap();
        let mut netlink = lab.netlink().unwrap();
        let lo = netlink.ifindex("lo").unwrap();
        netlink.add_local_route(block, len, lo).unwrap();
        let node = lab
            .run_in(|| UdpSocket::bind((NODE, PORT)))
            .unwrap()
            .expect("the node's socket");
        node.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap();
        let links = RemoteLinks {
            socket,
            index: 0,
            peers: vec![(1, peer)],
            run: RUN,
            key: RUN_KEY,
        };
        let dp = Dataplane::start(tun, MonotonicClock::start(), 1, Some(links)).unwrap();
        for (ip, home) in [(NODE, None), (FAR_NODE, Some(peer))] {
            dp.send(Command::AddNode { ip, group: 0, home });
        }
        dp.barrier();
        Lab {
            dp: Some(dp),
            node,
            port,
            _lab: lab,
        }
    }

    /// What the node receives next, waiting up to 5 s.
    fn node_receives(&self) -> Vec<u8> {
        let mut buf = [0u8; 2048];
        let n = self.node.recv(&mut buf).expect("a packet at the node");
        buf[..n].to_vec()
    }

    fn stop(&mut self) -> ForwarderStats {
        self.dp.take().expect("running").stop().unwrap()
    }
}

#[test]
fn forged_replayed_and_other_run_datagrams_are_dropped_counted_and_reach_no_node() {
    if !common::can_run_real_mode(
        "forged_replayed_and_other_run_datagrams_are_dropped_counted_and_reach_no_node",
    ) {
        return;
    }
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut lab = Lab::start(peer.local_addr().unwrap());
    let send = |from: &UdpSocket, d: &[u8]| {
        from.send_to(d, lab.port).unwrap();
    };

    // An authentic datagram reaches the node: the way in works.
    let first = authentic(0, b"first");
    send(&peer, &first);
    assert_eq!(lab.node_receives(), b"first");

    // Replayed: the same datagram again, three times.
    for _ in 0..3 {
        send(&peer, &first);
    }
    // Forged, all with the unused counter 1: a flipped bit in the packet, in the tag and in
    // the delay; a guessed key; sealed for worker 2 (sent on to 0); and from worker 2.
    let second = authentic(1, b"forged");
    for at in [second.len() - 20, second.len() - 1, 30] {
        let mut bad = second.clone();
        bad[at] ^= 1;
        send(&peer, &bad);
    }
    let packet = udp_packet(NODE, b"forged");
    send(&peer, &datagram(&[0; 32], RUN, (1, 0), 1, &packet));
    send(&peer, &datagram(&RUN_KEY, RUN, (1, 2), 1, &packet));
    send(&peer, &datagram(&RUN_KEY, RUN, (2, 0), 1, &packet));
    // Of another run: the right pair and counter, the other run's id and key.
    for run in [RUN + 1, RUN - 1] {
        send(&peer, &datagram(&RUN_KEY, run, (1, 0), 1, &packet));
    }
    // From a stranger: an authentic datagram, from the wrong address.
    send(&stranger, &authentic(1, b"stranger"));
    // Malformed: too short, not ours, framed without a virtio-net header.
    send(&peer, &[0u8; 10]);
    send(&peer, &[0x55u8; 200]);
    let unframed = Header {
        run: RUN,
        sender: 1,
        receiver: 0,
        counter: 1,
        remaining: 0,
        vnet_len: 0,
    };
    let mut d = Vec::new();
    encap::seal(
        &Key::derive(&RUN_KEY, RUN, 1, 0),
        &unframed,
        &packet[VNET_HDR_LEN..],
        &mut d,
    );
    send(&peer, &d);
    // Misaddressed: authentic, for a node of worker 1 and for no node at all.
    for (counter, dst) in [(2, FAR_NODE), (3, Ipv4Addr::new(10, 0, 0, 99))] {
        send(
            &peer,
            &datagram(&RUN_KEY, RUN, (1, 0), counter, &udp_packet(dst, b"x")),
        );
    }
    // Counter 1, behind 3 but inside the window, never taken by the forgeries: accepted.
    // Datagrams are read in the order they were sent, so once it arrives the node has been
    // offered everything above.
    send(&peer, &authentic(1, b"last"));
    assert_eq!(lab.node_receives(), b"last");
    lab.node.set_nonblocking(true).unwrap();
    let nothing = lab.node.recv(&mut [0u8; 2048]).unwrap_err();
    assert_eq!(
        nothing.kind(),
        ErrorKind::WouldBlock,
        "nothing else arrived"
    );

    let stats = lab.stop();
    let want = ForwarderStats {
        // Whatever the kernel itself sent through the TUN device (IPv6 router solicitations).
        passed_through: stats.passed_through,
        write_errors: 0,
        remote_sent: 0,
        remote_send_errors: 0,
        remote_received: 2,
        remote_stranger: 1,
        remote_malformed: 3,
        remote_other_run: 2,
        remote_forged: 6,
        remote_replayed: 3,
        remote_misaddressed: 2,
        // The two accepted packets, delivered through the link model; how late they left
        // and the CPU time vary from run to run.
        timed_packets: 2,
        late_p50_ns: stats.late_p50_ns,
        late_p99_ns: stats.late_p99_ns,
        late_max_ns: stats.late_max_ns,
        cpu_ns: stats.cpu_ns,
        cut_super_packets: 0,
        segment_runs: 0,
        captured_packets: 0,
        capture_capped: 0,
        capture_errors: 0,
    };
    assert_eq!(stats, want);
}
