//! Tests of the whole path through `Fabric`, exact to the nanosecond, plus the shared test RNG
//! and the micro-benchmark (`cargo test --release -- --ignored --nocapture bench_`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::num::NonZeroU64;
use std::time::Instant;

use rand::{Rng, SeedableRng, TryRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::units::{MS, SEC, US};

/// A seeded ChaCha8 that counts the words drawn, to prove what consumes randomness.
pub(crate) struct CountingRng {
    inner: ChaCha8Rng,
    pub draws: usize,
}

impl CountingRng {
    pub fn seeded(seed: u64) -> Self {
        CountingRng {
            inner: ChaCha8Rng::seed_from_u64(seed),
            draws: 0,
        }
    }
}

impl TryRng for CountingRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        self.draws += 1;
        Ok(self.inner.next_u32())
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        self.draws += 1;
        Ok(self.inner.next_u64())
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.draws += 1;
        self.inner.fill_bytes(dst);
        Ok(())
    }
}

fn shaped(up: Option<u64>, down: Option<u64>, latency: Nanos) -> LinkShape {
    LinkShape {
        up,
        down,
        latency,
        ..LinkShape::default()
    }
}

/// A fabric with `params.len()` nodes in group 0.
fn fabric<P>(params: &[LinkShape]) -> (Fabric<P>, Vec<NodeIdx>) {
    let mut f = Fabric::new();
    let nodes = params
        .iter()
        .map(|p| {
            let n = f.add_node(GroupIdx(0));
            f.set_params(0, n, *p).unwrap();
            n
        })
        .collect();
    (f, nodes)
}

/// Polls at each deadline until nothing is pending; returns (delivery time, dst, payload).
fn drain<P>(f: &mut Fabric<P>) -> Vec<(Nanos, NodeIdx, P)> {
    let mut log = Vec::new();
    let mut out = Vec::new();
    while let Some(t) = f.next_deadline() {
        // Polled right at the deadline, each packet's delivery time is the poll's.
        f.poll(t, &mut out);
        log.append(&mut out);
    }
    log
}

/// Σ sent = Σ received + Σ dropped + in flight, over all nodes.
fn assert_conserved<P>(f: &Fabric<P>) {
    let mut total = NodeCounters::default();
    for i in 0..f.node_count() {
        total.add(f.counters(NodeIdx(i as u32)));
    }
    assert_eq!(
        total.sent_packets,
        total.recv_packets + total.dropped() + f.in_flight() as u64,
        "{total:?} with {} in flight",
        f.in_flight()
    );
}

#[test]
fn unshaped_lab_adds_nothing() {
    let (mut f, n) = fabric(&[LinkShape::default(); 2]);
    let mut rng = CountingRng::seeded(0);
    f.send(777, n[0], n[1], 1500, 1, &mut rng).unwrap();
    assert_eq!(f.next_deadline(), Some(777));
    let mut out = Vec::new();
    assert_eq!(f.poll(777, &mut out), 1);
    assert_eq!(out, vec![(777, n[1], 1)]);
    assert_eq!((f.in_flight(), f.next_deadline(), rng.draws), (0, None, 0));
    let c = f.counters(n[0]);
    assert_eq!((c.sent_packets, c.sent_bytes), (1, 1500));
    let c = f.counters(n[1]);
    assert_eq!((c.recv_packets, c.recv_bytes), (1, 1500));
}

#[test]
fn two_30ms_nodes_give_60ms_one_way_and_120ms_rtt() {
    let (mut f, n) = fabric(&[shaped(None, None, 30 * MS); 2]);
    let mut rng = CountingRng::seeded(0);
    f.send(0, n[0], n[1], 64, "ping", &mut rng).unwrap();
    let got = drain(&mut f);
    assert_eq!(got, vec![(60 * MS, n[1], "ping")]);
    f.send(got[0].0, n[1], n[0], 64, "pong", &mut rng).unwrap();
    assert_eq!(drain(&mut f), vec![(120 * MS, n[0], "pong")]);
}

#[test]
fn serialisation_on_both_links_is_exact() {
    // 1500 B: 93.75 ms at 128 kbit up, 6 ms at 2 mbit down, plus 2 × 30 ms.
    let dsl = shaped(Some(128_000), Some(2_000_000), 30 * MS);
    let (mut f, n) = fabric(&[dsl; 2]);
    let mut rng = CountingRng::seeded(0);
    f.send(0, n[0], n[1], 1500, (), &mut rng).unwrap();
    f.send(0, n[0], n[1], 1500, (), &mut rng).unwrap();
    let times: Vec<_> = drain(&mut f).into_iter().map(|(t, ..)| t).collect();
    assert_eq!(times, vec![159_750_000, 253_500_000]);
}

#[test]
fn group_latency_is_added_once_per_direction_and_only_between_linked_groups() {
    let mut f = Fabric::new();
    let dsl = [f.add_node(GroupIdx(0)), f.add_node(GroupIdx(0))];
    let fiber = f.add_node(GroupIdx(1));
    let other = f.add_node(GroupIdx(2));
    for n in [dsl[0], dsl[1], fiber, other] {
        f.set_params(0, n, shaped(None, None, 10 * MS)).unwrap();
    }
    let link = |ms| GroupLink {
        latency: ms * MS,
        ..GroupLink::default()
    };
    f.set_group_link(GroupIdx(1), GroupIdx(0), link(40))
        .unwrap();
    let mut rng = CountingRng::seeded(0);
    let mut t0 = 0;
    let mut one_way = |f: &mut Fabric<()>, a, b| {
        t0 += SEC;
        f.send(t0, a, b, 100, (), &mut rng).unwrap();
        drain(f)[0].0 - t0
    };
    assert_eq!(one_way(&mut f, dsl[0], fiber), 60 * MS);
    assert_eq!(one_way(&mut f, fiber, dsl[1]), 60 * MS);
    assert_eq!(one_way(&mut f, dsl[0], dsl[1]), 20 * MS);
    assert_eq!(one_way(&mut f, dsl[0], other), 20 * MS);
    assert_eq!(one_way(&mut f, fiber, other), 20 * MS);
    // A group with itself, and a change applies to the next packet.
    f.set_group_link(GroupIdx(0), GroupIdx(0), link(5)).unwrap();
    assert_eq!(one_way(&mut f, dsl[1], dsl[0]), 25 * MS);
    assert_eq!(one_way(&mut f, dsl[0], fiber), 60 * MS);
}

#[test]
fn downlink_serves_two_senders_in_arrival_order() {
    // s1 is 10 ms away, s2 5 ms; both send 1000 B at t = 0 into one 1 mbit/s downlink
    // (8 ms per packet). s2's packet arrives first and is served first, though sent second.
    let (mut f, n) = fabric(&[
        shaped(None, None, 10 * MS),
        shaped(None, None, 5 * MS),
        shaped(None, Some(1_000_000), 0),
    ]);
    let mut rng = CountingRng::seeded(0);
    f.send(0, n[0], n[2], 1000, "s1", &mut rng).unwrap();
    f.send(0, n[1], n[2], 1000, "s2", &mut rng).unwrap();
    // A third from s2 at 4 ms arrives at 9 ms, before s1's: it queues behind s2's first.
    f.send(4 * MS, n[1], n[2], 1000, "s2b", &mut rng).unwrap();
    let expected = vec![
        (13 * MS, n[2], "s2"),
        (21 * MS, n[2], "s2b"),
        (29 * MS, n[2], "s1"),
    ];
    assert_eq!(drain(&mut f), expected);

    // Polling late does not change the order nor the counters: the downlink saw the
    // packets at their arrival times, not at the poll.
    let (mut late, n) = fabric(&[
        shaped(None, None, 10 * MS),
        shaped(None, None, 5 * MS),
        shaped(None, Some(1_000_000), 0),
    ]);
    late.send(0, n[0], n[2], 1000, "s1", &mut rng).unwrap();
    late.send(0, n[1], n[2], 1000, "s2", &mut rng).unwrap();
    late.send(4 * MS, n[1], n[2], 1000, "s2b", &mut rng)
        .unwrap();
    let mut out = Vec::new();
    late.poll(28 * MS, &mut out);
    assert_eq!(out, expected[..2]);
    // Each packet still carries the time the model delivers it at, not the late poll's.
    late.poll(SEC, &mut out);
    assert_eq!(out, expected);
    assert_eq!(late.counters(n[2]), f.counters(n[2]));
}

#[test]
fn queue_drops_are_counted_on_the_queue_owner() {
    // Uplink: 1 mbit/s, 2000 B limit. Downlink of n[2]: 100 kbit/s, 1000 B limit.
    let limited = |up, down, queue| LinkShape {
        queue: Some(queue),
        ..shaped(up, down, 0)
    };
    let (mut f, n) = fabric(&[
        limited(Some(1_000_000), None, 2000),
        LinkShape::default(),
        limited(None, Some(100_000), 1000),
    ]);
    let mut rng = CountingRng::seeded(0);
    assert!(f.send(0, n[0], n[1], 1000, (), &mut rng).is_ok());
    assert!(f.send(0, n[0], n[1], 1000, (), &mut rng).is_ok());
    assert_eq!(
        f.send(0, n[0], n[1], 1000, (), &mut rng),
        Err(Dropped::Queue)
    );
    assert_eq!(f.counters(n[0]).dropped_queue, 1);
    // Into n[2]'s downlink: the first fits, the second is dropped on arrival.
    f.send(0, n[1], n[2], 1000, (), &mut rng).unwrap();
    f.send(0, n[1], n[2], 1, (), &mut rng).unwrap();
    assert_eq!(f.in_flight(), 4);
    assert_conserved(&f);
    let got = drain(&mut f);
    assert_eq!(got.len(), 3);
    assert_eq!(f.counters(n[2]).dropped_queue, 1);
    assert_eq!(f.counters(n[1]).sent_packets, 2);
    assert_eq!(f.counters(n[1]).dropped(), 0);
    assert_conserved(&f);
}

#[test]
fn default_queue_limit_applies_in_the_fabric() {
    // 128 kbit/s: the default limit is 64 KiB = 43 packets of 1500 B and 1036 B more.
    let (mut f, n) = fabric(&[shaped(Some(128_000), None, 0), LinkShape::default()]);
    let mut rng = CountingRng::seeded(0);
    let accepted = (0..100)
        .filter(|_| f.send(0, n[0], n[1], 1500, (), &mut rng).is_ok())
        .count();
    assert_eq!(accepted, 43);
    assert!(f.send(0, n[0], n[1], 1036, (), &mut rng).is_ok());
    assert_eq!(f.send(0, n[0], n[1], 1, (), &mut rng), Err(Dropped::Queue));
    assert_eq!(f.counters(n[0]).dropped_queue, 58);
}

#[test]
fn loss_one_drops_everything_and_loss_zero_draws_nothing() {
    let lossy = LinkShape {
        loss: 1.0,
        ..LinkShape::default()
    };
    let (mut f, n) = fabric(&[LinkShape::default(), lossy, LinkShape::default()]);
    let mut rng = CountingRng::seeded(0);
    for _ in 0..100 {
        assert_eq!(f.send(0, n[0], n[1], 10, (), &mut rng), Err(Dropped::Loss));
        assert_eq!(f.send(0, n[1], n[2], 10, (), &mut rng), Err(Dropped::Loss));
        assert_eq!(f.send(0, n[0], n[2], 10, (), &mut rng), Ok(()));
    }
    assert_eq!(f.counters(n[0]).dropped_loss, 100);
    assert_eq!(f.counters(n[1]).dropped_loss, 100);
    assert_eq!(rng.draws, 0);
    assert_eq!(drain(&mut f).len(), 100);
    assert_conserved(&f);
}

#[test]
fn failed_nodes_drop_silently_and_count() {
    let (mut f, n) = fabric(&[
        shaped(None, None, 10 * MS),
        shaped(None, Some(1_000_000), 10 * MS),
    ]);
    let mut rng = CountingRng::seeded(0);
    f.set_failed(n[1], true).unwrap();
    assert_eq!(
        f.send(0, n[0], n[1], 100, 0, &mut rng),
        Err(Dropped::Failed)
    );
    assert_eq!(
        f.send(0, n[1], n[0], 100, 1, &mut rng),
        Err(Dropped::Failed)
    );
    assert_eq!(f.counters(n[0]).dropped_loss, 1);
    assert_eq!(f.counters(n[1]).dropped_loss, 1);
    assert_eq!(f.counters(n[1]).sent_packets, 1);
    // Revived: flows again. Then failed while the packet is on the wire (arrives at 20 ms).
    f.set_failed(n[1], false).unwrap();
    f.send(0, n[0], n[1], 1000, 2, &mut rng).unwrap();
    let mut out = Vec::new();
    f.poll(5 * MS, &mut out);
    f.set_failed(n[1], true).unwrap();
    f.poll(SEC, &mut out);
    assert!(out.is_empty());
    assert_eq!(f.counters(n[1]).dropped_loss, 2);
    // Failed while in its downlink (arrives at 1020 ms, leaves at 1028 ms).
    f.set_failed(n[1], false).unwrap();
    f.send(SEC, n[0], n[1], 1000, 3, &mut rng).unwrap();
    f.poll(SEC + 25 * MS, &mut out);
    assert_eq!(f.next_deadline(), Some(SEC + 28 * MS));
    f.set_failed(n[1], true).unwrap();
    f.poll(2 * SEC, &mut out);
    assert!(out.is_empty());
    assert_eq!(f.counters(n[1]).dropped_loss, 3);
    assert_eq!(f.counters(n[1]).recv_packets, 0);
    assert_eq!(rng.draws, 0);
    assert_conserved(&f);
}

#[test]
fn unknown_nodes_are_errors_not_panics() {
    let (mut f, n) = fabric::<()>(&[LinkShape::default()]);
    let ghost = NodeIdx(99);
    let mut rng = CountingRng::seeded(0);
    assert_eq!(
        f.send(0, n[0], ghost, 1, (), &mut rng),
        Err(Dropped::UnknownNode(ghost))
    );
    assert_eq!(
        f.send(0, ghost, n[0], 1, (), &mut rng),
        Err(Dropped::UnknownNode(ghost))
    );
    assert_eq!(
        f.receive_from_remote(0, ghost, 1, ()),
        Err(Dropped::UnknownNode(ghost))
    );
    assert_eq!(
        f.set_failed(ghost, true),
        Err(ModelError::UnknownNode(ghost))
    );
    assert_eq!(
        f.set_params(0, ghost, LinkShape::default()),
        Err(ModelError::UnknownNode(ghost))
    );
    assert_eq!(f.counters(ghost), &NodeCounters::ZERO);
    assert_eq!(f.counters(n[0]).sent_packets, 0);
}

#[test]
fn param_changes_apply_to_the_next_packet_without_reordering_the_flow() {
    let (mut f, n) = fabric(&[shaped(None, None, 10 * MS), LinkShape::default()]);
    let mut rng = CountingRng::seeded(0);
    f.send(0, n[0], n[1], 100, "a", &mut rng).unwrap();
    f.set_params(0, n[0], shaped(None, None, 50 * MS)).unwrap();
    f.send(0, n[0], n[1], 100, "b", &mut rng).unwrap();
    // Shorter again: "c" would overtake "b", so it is held to b's arrival.
    f.set_params(0, n[0], shaped(None, None, MS)).unwrap();
    f.send(0, n[0], n[1], 100, "c", &mut rng).unwrap();
    let expected = vec![
        (10 * MS, n[1], "a"),
        (50 * MS, n[1], "b"),
        (50 * MS, n[1], "c"),
    ];
    assert_eq!(drain(&mut f), expected);
    // Once the flow has drained, the new latency holds.
    f.send(SEC, n[0], n[1], 100, "d", &mut rng).unwrap();
    assert_eq!(drain(&mut f), vec![(SEC + MS, n[1], "d")]);
}

#[test]
fn late_remote_arrivals_are_not_scheduled_in_the_past() {
    let (mut f, n) = fabric::<u8>(&[LinkShape::default(); 2]);
    let mut out = Vec::new();
    f.poll(SEC, &mut out);
    f.receive_from_remote(SEC / 2, n[1], 10, 7).unwrap();
    assert_eq!(f.next_deadline(), Some(SEC));
}

/// One planned send: (time, src, dst, len).
type Planned = (Nanos, u32, u32, usize);

/// A random lab and random traffic over it, sends in time order.
fn random_lab(seed: u64, nodes: usize) -> (Vec<LinkShape>, Vec<Planned>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let rate = |rng: &mut ChaCha8Rng| match rng.next_u32() % 3 {
        0 => None,
        _ => Some(64_000 + u64::from(rng.next_u32() % 10_000_000)),
    };
    let params = (0..nodes)
        .map(|_| LinkShape {
            up: rate(&mut rng),
            down: rate(&mut rng),
            latency: u64::from(rng.next_u32() % 50) * MS,
            jitter: u64::from(rng.next_u32() % 3) * MS,
            loss: f64::from(rng.next_u32() % 3) * 0.01,
            queue: (rng.next_u32() % 2 == 0).then_some(20_000),
            ..LinkShape::default()
        })
        .collect();
    let mut t = 0;
    let sends = (0..20_000)
        .map(|_| {
            t += u64::from(rng.next_u32() % 200) * US;
            let src = rng.next_u32() % nodes as u32;
            let dst = rng.next_u32() % nodes as u32;
            (t, src, dst, 40 + (rng.next_u32() % 1460) as usize)
        })
        .collect();
    (params, sends)
}

#[test]
fn remote_halves_compose_to_the_same_result_as_send() {
    let (params, sends) = random_lab(9, 12);
    let link = GroupLink {
        latency: 7 * MS,
        jitter: MS,
        loss: 0.01,
        ..GroupLink::NONE
    };
    let setup = || {
        let mut f = Fabric::new();
        for (i, p) in params.iter().enumerate() {
            let n = f.add_node(GroupIdx((i % 2) as u32));
            f.set_params(0, n, *p).unwrap();
        }
        f.set_group_link(GroupIdx(0), GroupIdx(1), link).unwrap();
        f
    };
    let (mut whole, mut sender, mut receiver) = (setup(), setup(), setup());
    let (mut rng_a, mut rng_b) = (CountingRng::seeded(1), CountingRng::seeded(1));
    let (mut log_a, mut log_b) = (Vec::new(), Vec::new());
    let mut out = Vec::new();
    for (i, &(t, src, dst, len)) in sends.iter().enumerate() {
        for (f, log) in [(&mut whole, &mut log_a), (&mut receiver, &mut log_b)] {
            while let Some(d) = f.next_deadline().filter(|&d| d <= t) {
                f.poll(d, &mut out);
                log.extend(out.drain(..).map(|(_, n, p)| (d, n, p)));
            }
        }
        let a = whole.send(t, NodeIdx(src), NodeIdx(dst), len, i, &mut rng_a);
        let b = sender
            .send_to_remote(t, NodeIdx(src), NodeIdx(dst), len, &mut rng_b)
            .and_then(|arrival| receiver.receive_from_remote(arrival, NodeIdx(dst), len, i));
        assert_eq!(a, b);
    }
    log_a.extend(drain(&mut whole));
    log_b.extend(drain(&mut receiver));
    assert!(log_a.len() > 10_000, "{}", log_a.len());
    assert_eq!(log_a, log_b);
    assert_eq!(rng_a.draws, rng_b.draws);
    for i in 0..params.len() as u32 {
        let mut split = *sender.counters(NodeIdx(i));
        split.add(receiver.counters(NodeIdx(i)));
        assert_eq!(whole.counters(NodeIdx(i)), &split);
    }
}

#[test]
fn randomized_lab_keeps_flows_ordered_and_counters_balanced() {
    for seed in 0..4 {
        let (params, sends) = random_lab(100 + seed, 20);
        let (mut f, _) = fabric(&params);
        let mut rng = CountingRng::seeded(seed);
        let mut chance = ChaCha8Rng::seed_from_u64(seed);
        let mut out = Vec::new();
        let mut last_seen: HashMap<(u32, u32), usize> = HashMap::new();
        let mut sent_from: HashMap<usize, (u32, u32)> = HashMap::new();
        let mut last_poll = 0;
        for (i, &(t, src, dst, len)) in sends.iter().enumerate() {
            if chance.next_u32() % 500 == 0 {
                let node = NodeIdx(chance.next_u32() % 20);
                f.set_failed(node, !f.is_failed(node)).unwrap();
            }
            if chance.next_u32() % 7 == 0 {
                f.poll(t, &mut out);
                assert!(t >= last_poll);
                last_poll = t;
                for (_, dst, id) in out.drain(..) {
                    let flow = sent_from[&id];
                    assert_eq!(flow.1, dst.0);
                    // Within one (src, dst) flow, packets come out in the order sent.
                    if let Some(prev) = last_seen.insert(flow, id) {
                        assert!(prev < id, "flow {flow:?}: {id} after {prev}");
                    }
                }
            }
            if f.send(t, NodeIdx(src), NodeIdx(dst), len, i, &mut rng)
                .is_ok()
            {
                sent_from.insert(i, (src, dst));
            }
            assert_conserved(&f);
        }
        drain(&mut f);
        assert_eq!(f.in_flight(), 0);
        assert_conserved(&f);
    }
}

#[test]
fn randomized_fifo_departures_never_decrease_nor_precede_now() {
    let mut chance = ChaCha8Rng::seed_from_u64(77);
    let mut fifo = LinkFifo::new(NonZeroU64::new(1_000_000), Some(30_000));
    let (mut now, mut last) = (0, 0);
    let mut accepted = 0;
    for _ in 0..200_000 {
        now += u64::from(chance.next_u32() % 2_000_000);
        match chance.next_u32() % 1000 {
            0 => fifo.set_rate(NonZeroU64::new(u64::from(chance.next_u32() % 20_000_000))),
            1 => fifo.set_limit(
                (chance.next_u32() % 4 != 0).then(|| u64::from(chance.next_u32() % 100_000)),
            ),
            _ => {}
        }
        let len = u64::from(chance.next_u32() % 1500);
        if let Ok(t) = fifo.offer(now, len) {
            assert!(t >= last && t >= now, "{t} after {last} at {now}");
            last = t;
            accepted += 1;
        }
    }
    assert!(accepted > 100_000, "{accepted}");
}

/// Sends 1500 B packets as fast as the first queue takes them for 10 s; returns the rate
/// achieved in bits/s: bytes delivered after the first delivery over the time since.
fn saturate(src: LinkShape, dst: LinkShape) -> f64 {
    let (mut f, n) = fabric(&[src, dst]);
    let mut rng = CountingRng::seeded(0);
    let mut out = Vec::new();
    let (mut first, mut last, mut bytes) = (None, 0, 0u64);
    let step = 100 * US;
    for tick in 0..=(10 * SEC / step) {
        let now = tick * step;
        while let Some(d) = f.next_deadline().filter(|&d| d <= now) {
            if f.poll(d, &mut out) > 0 {
                // The first packet only marks the start: its bytes left before it.
                bytes += 1500 * (out.len() as u64 - u64::from(first.is_none()));
                first.get_or_insert(d);
                last = d;
            }
            out.clear();
        }
        // Keep offering until the uplink refuses; on an unlimited uplink, offer a burst.
        for _ in 0..20 {
            if f.send(now, n[0], n[1], 1500, (), &mut rng) == Err(Dropped::Queue) {
                break;
            }
        }
    }
    let elapsed = last - first.unwrap_or(0);
    assert!(elapsed > 9 * SEC);
    bytes as f64 * 8.0 * SEC as f64 / elapsed as f64
}

#[test]
fn saturating_sender_achieves_the_configured_rate() {
    for rate in [128_000, 10_000_000, 100_000_000] {
        let expected = rate as f64;
        let up = saturate(shaped(Some(rate), None, 5 * MS), LinkShape::default());
        let down = saturate(LinkShape::default(), shaped(None, Some(rate), 5 * MS));
        for (what, got) in [("uplink", up), ("downlink", down)] {
            let err = (got - expected).abs() / expected;
            assert!(err < 0.001, "{what} at {rate}: {got} bit/s ({err:.6})");
        }
    }
}

/// Throughput of `send` + `poll`: `cargo test --release -- --ignored --nocapture bench_`.
#[test]
#[ignore = "benchmark: run with --release --ignored --nocapture"]
fn bench_send_and_poll_1000_nodes() {
    let packets = 5_000_000u64;
    let shaped_lab = LinkShape {
        up: Some(100_000_000),
        down: Some(100_000_000),
        latency: 10 * MS,
        jitter: MS,
        loss: 0.001,
        queue: None,
        ..LinkShape::default()
    };
    for (name, params) in [("unshaped", LinkShape::default()), ("shaped", shaped_lab)] {
        let mut f = Fabric::new();
        for i in 0..1000 {
            let n = f.add_node(GroupIdx(i % 4));
            f.set_params(0, n, params).unwrap();
        }
        f.set_group_link(
            GroupIdx(0),
            GroupIdx(1),
            GroupLink {
                latency: 20 * MS,
                jitter: MS,
                loss: 0.001,
                ..GroupLink::NONE
            },
        )
        .unwrap();
        let mut chance = ChaCha8Rng::seed_from_u64(1);
        let pairs: Vec<(NodeIdx, NodeIdx)> = (0..65_536)
            .map(|_| {
                (
                    NodeIdx(chance.next_u32() % 1000),
                    NodeIdx(chance.next_u32() % 1000),
                )
            })
            .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut out = Vec::with_capacity(1024);
        let mut delivered = 0;
        let start = Instant::now();
        for i in 0..packets {
            // One packet per simulated µs across the lab: 1 Mpkt/s, 12 Gbit/s in total.
            let now = i * US;
            let (src, dst) = pairs[(i % 65_536) as usize];
            let _ = f.send(now, src, dst, 1500, i, &mut rng);
            if i % 64 == 63 {
                delivered += f.poll(now, &mut out);
                out.clear();
            }
        }
        delivered += drain(&mut f).len();
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{name:>8}: {packets} sends, {delivered} delivered, 1000 nodes: {:.2} M packets/s",
            packets as f64 / secs / 1e6
        );
    }
}
