//! The forwarding loop: apply the commands that came in, read what the TUN device (and the
//! other workers) have, run each packet through the link model, write back what is due, arm
//! the timer at the next deadline, sleep. Packets that do not go from one node to another
//! pass through unshaped. Each packet the model delivers is timed: how long after its
//! deadline it was written (`lateness`), and at the end, the thread's own CPU time. Captured
//! nodes' packets are tapped where they enter their uplink and where they are delivered.
//! A TCP super-packet on a shaped or lossy route enters the model as its segments, which
//! share its buffer, and leaves in runs of segments due together (`runs`).

use std::collections::HashMap;
use std::io::{self, IoSlice};
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::mpsc;

use nix::time::{ClockId, clock_gettime};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::buffers::{Buffers, Packet};
use super::offload::SuperPackets;
use super::remote::{Remote, RemoteLinks};
use super::runs::{Flow, Run, Runs, Segment};
use super::wakeup::Wakeups;
use super::{Command, ForwarderStats};
use crate::clock::MonotonicClock;
use crate::dataplane::capture::Captures;
use crate::dataplane::lateness::Histogram;
use crate::dataplane::model::{Fabric, GroupIdx, NodeIdx};
use crate::dataplane::packet::{VNET_HDR_LEN, ipv4_endpoints, wire_len};
use crate::dataplane::segments::Layout;
use crate::dataplane::tun::TunDevice;
use crate::experiment::DataplaneHealth;
use crate::units::Nanos;

/// Packets (or datagrams) read per wake-up before delivering what is due, so that a flood
/// cannot starve timers; a super-packet cut into segments counts as its segments.
pub(super) const READ_BATCH: usize = 256;

/// What the link model carries: a packet, or one segment of a super-packet.
pub(super) enum Carried {
    Whole(Packet),
    Segment { burst: Rc<Burst>, index: usize },
}

/// A super-packet travelling as its segments; freed (or its buffer reused) when the last
/// of them is written or dropped.
pub(super) struct Burst {
    id: u64,
    flow: Flow,
    layout: Layout,
    packet: Packet,
}

pub(super) struct Forwarder {
    tun: TunDevice,
    /// Bytes of virtio-net header in front of each packet (0 without offload).
    pub(super) hdr: usize,
    buffers: Buffers,
    super_packets: SuperPackets,
    /// Whether the TUN device hands over super-packets now.
    tso: bool,
    pub(super) remote: Option<Remote>,
    /// Per node index: the data plane of the worker it lives on, `None` for this one.
    pub(super) homes: Vec<Option<SocketAddr>>,
    wakeups: Wakeups,
    pub(super) clock: MonotonicClock,
    pub(super) fabric: Fabric<Carried>,
    /// Segments delivered and waiting for the rest of their run; runs ready to be written.
    runs: Runs<Rc<Burst>>,
    ended: Vec<Run<Rc<Burst>>>,
    /// The headers of the run being written.
    run_headers: Vec<u8>,
    bursts: u64,
    pub(super) nodes: HashMap<Ipv4Addr, NodeIdx>,
    ips: Vec<Ipv4Addr>,
    rng: ChaCha8Rng,
    pub(super) stats: ForwarderStats,
    /// Per packet the model delivered: nanoseconds from its deadline to its write.
    lateness: Histogram,
    /// The same, since the last interval reading; and the CPU time and write errors then.
    interval_lateness: Histogram,
    interval_cpu_ns: u64,
    interval_write_errors: u64,
    /// Drops at the socket to the other workers, as of the last interval reading.
    interval_socket_drops: u64,
    captures: Captures,
}

impl Forwarder {
    pub(super) fn new(
        tun: TunDevice,
        wakeups: Wakeups,
        clock: MonotonicClock,
        seed: u64,
        remote: Option<RemoteLinks>,
    ) -> Self {
        let hdr = if tun.offload() { VNET_HDR_LEN } else { 0 };
        Forwarder {
            hdr,
            buffers: Buffers::new(hdr),
            super_packets: SuperPackets::new(tun.offload(), remote.is_some()),
            // The device starts with TSO on when it offloads at all (`TunDevice::create`).
            tso: tun.offload(),
            remote: remote.map(|links| Remote::new(links, hdr)),
            homes: Vec::new(),
            tun,
            wakeups,
            clock,
            fabric: Fabric::new(),
            runs: Runs::default(),
            ended: Vec::new(),
            run_headers: Vec::new(),
            bursts: 0,
            nodes: HashMap::new(),
            ips: Vec::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            stats: ForwarderStats::default(),
            lateness: Histogram::default(),
            interval_lateness: Histogram::default(),
            interval_cpu_ns: 0,
            interval_write_errors: 0,
            interval_socket_drops: 0,
            captures: Captures::default(),
        }
    }

    /// Forwards until `Stop`; an error of the TUN device or the timer ends it early.
    pub(super) fn run(&mut self, commands: mpsc::Receiver<Command>) -> io::Result<ForwarderStats> {
        let mut due = Vec::new();
        // With other workers, no super-packets from the start: they would not fit a datagram.
        self.update_tso();
        loop {
            while let Ok(cmd) = commands.try_recv() {
                if !self.apply(cmd) {
                    return Ok(self.final_stats());
                }
            }
            let full_batch = self.read_batch()? | self.read_remote_batch();
            self.fabric.poll(self.clock.now(), &mut due);
            for (deadline, _, carried) in due.drain(..) {
                self.deliver(deadline, carried);
            }
            self.runs.due(self.clock.now(), &mut self.ended);
            self.write_runs();
            // What this pass shipped leaves before the thread may sleep.
            self.flush_remote();
            if self.captures.flush_deadline().is_some() {
                self.captures.flush_due(self.clock.now());
            }
            // While segments wait for their run, the thread wakes when the run is due, not at
            // each deadline before: one wake-up per run rather than per segment (12 µs apart
            // at 1 Gbit/s), as a NIC's interrupt coalescing does. What comes due meanwhile
            // leaves then, at most `runs::WINDOW` late, and is timed so.
            let model = self.runs.next_due().or(self.fabric.next_deadline());
            let wake = [model, self.captures.flush_deadline()]
                .into_iter()
                .flatten()
                .min();
            self.wakeups.arm(wake, &self.clock)?;
            if !full_batch {
                self.wakeups.wait()?;
            }
        }
    }

    /// Returns false on `Stop`.
    fn apply(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::AddNode { ip, group, home } => {
                if !self.nodes.contains_key(&ip) {
                    let idx = self.fabric.add_node(GroupIdx(group));
                    self.nodes.insert(ip, idx);
                    self.ips.push(ip);
                    self.homes.push(home);
                }
            }
            Command::SetParams { ip, params } => {
                if let Some(&idx) = self.nodes.get(&ip) {
                    let _ = self.fabric.set_params(self.clock.now(), idx, params);
                    self.super_packets.node_shaped(ip, &params);
                    self.update_tso();
                }
            }
            Command::SetGroupLink { a, b, params } => {
                let _ = self.fabric.set_group_link(GroupIdx(a), GroupIdx(b), params);
                self.super_packets.groups_linked(a, b, &params);
                self.update_tso();
            }
            Command::SetGroupRow { a, links } => {
                for (b, params) in links {
                    let _ = self.fabric.set_group_link(GroupIdx(a), GroupIdx(b), params);
                    self.super_packets.groups_linked(a, b, &params);
                }
                self.update_tso();
            }
            Command::LoadTrace { id, trace } => self.fabric.load_trace(id, trace),
            Command::SetFailed { ip, failed } => {
                if let Some(&idx) = self.nodes.get(&ip) {
                    let _ = self.fabric.set_failed(idx, failed);
                }
            }
            Command::Capture { ip, capture } => {
                self.captures.start(ip, capture);
                self.captures_changed();
            }
            Command::StopCapture { ip } => {
                self.captures.stop(ip);
                self.captures_changed();
            }
            Command::StopCaptures(reply) => {
                self.captures.stop_all();
                self.captures_changed();
                let _ = reply.send(());
            }
            Command::Counters { interval, reply } => {
                // Only this worker's nodes: the counts of the others are on their machines.
                let all = self
                    .ips
                    .iter()
                    .zip(&self.homes)
                    .filter(|(_, home)| home.is_none())
                    .map(|(ip, _)| (*ip, *self.fabric.counters(self.nodes[ip])))
                    .collect();
                let health = interval.then(|| self.end_interval());
                let _ = reply.send((all, health));
            }
            Command::Barrier(reply) => {
                let _ = reply.send(());
            }
            Command::Stop => return false,
        }
        true
    }

    fn captures_changed(&mut self) {
        self.super_packets.capturing(!self.captures.is_empty());
        self.update_tso();
    }

    /// Turns TSO on or off as the links now want; a device that refuses keeps its state, and
    /// the next change tries again.
    fn update_tso(&mut self) {
        let want = self.super_packets.allowed();
        if want != self.tso && self.tun.set_tso(want).is_ok() {
            self.tso = want;
        }
    }

    /// Reads up to `READ_BATCH` packets; true when the batch was full (more may wait).
    fn read_batch(&mut self) -> io::Result<bool> {
        let mut read = 0;
        while read < READ_BATCH {
            match self.tun.read(self.buffers.read_buffer()) {
                Ok(n) => {
                    let packet = self.buffers.take(n);
                    read += self.ingress(packet);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Takes a packet read from the device; returns how many packets it makes for the model.
    fn ingress(&mut self, packet: Packet) -> usize {
        let bytes = packet.bytes();
        let (vnet, ip) = bytes.split_at(self.hdr.min(bytes.len()));
        self.captures.sent(vnet, ip, wall_clock);
        let route = ipv4_endpoints(ip)
            .and_then(|flow| Some((flow, *self.nodes.get(&flow.0)?, *self.nodes.get(&flow.1)?)));
        let Some((flow, src, dst)) = route else {
            self.stats.passed_through += 1;
            self.emit(packet);
            return 1;
        };
        let len = wire_len(vnet, ip.len());
        let now = self.clock.now();
        match self.homes.get(dst.0 as usize).copied().flatten() {
            None => {
                if let Some(layout) = self.cut(flow, src, dst, vnet, ip) {
                    self.send_segments(now, flow, src, dst, layout, packet);
                    return layout.count();
                }
                // A dropped packet is counted by the fabric; its buffer is simply freed.
                let payload = Carried::Whole(packet);
                let _ = self.fabric.send(now, src, dst, len, payload, &mut self.rng);
            }
            Some(home) => {
                if let Ok(arrival) = self
                    .fabric
                    .send_to_remote(now, src, dst, len, &mut self.rng)
                {
                    self.ship(home, arrival.saturating_sub(now), packet.bytes());
                }
                self.buffers.recycle(packet);
            }
        }
        1
    }

    /// The segments of a TCP super-packet whose route charges them one by one.
    fn cut(
        &self,
        flow: Flow,
        src: NodeIdx,
        dst: NodeIdx,
        vnet: &[u8],
        ip: &[u8],
    ) -> Option<Layout> {
        // The header first: most packets are no super-packet, and it costs no lookup.
        let layout = Layout::of(vnet, ip)?;
        let groups = (self.fabric.group(src)?.0, self.fabric.group(dst)?.0);
        (!self.super_packets.whole(flow.0, flow.1, groups.0, groups.1)).then_some(layout)
    }

    /// Each segment through the model on its own: its place in the FIFOs, its
    /// serialisation time, its loss draw. A dropped one is counted by the fabric.
    fn send_segments(
        &mut self,
        now: Nanos,
        flow: Flow,
        src: NodeIdx,
        dst: NodeIdx,
        layout: Layout,
        packet: Packet,
    ) {
        self.bursts += 1;
        self.stats.cut_super_packets += 1;
        let burst = Rc::new(Burst {
            id: self.bursts,
            flow,
            layout,
            packet,
        });
        for index in 0..layout.count() {
            let segment = Carried::Segment {
                burst: burst.clone(),
                index,
            };
            let len = layout.wire_len(index);
            let _ = self.fabric.send(now, src, dst, len, segment, &mut self.rng);
        }
    }

    /// What the model delivered, on its way out: a packet leaves after the run of its flow
    /// that waits, a segment joins its run.
    fn deliver(&mut self, deadline: Nanos, carried: Carried) {
        match carried {
            Carried::Whole(packet) => {
                if !self.runs.is_empty() {
                    let ip = &packet.bytes()[self.hdr.min(packet.bytes().len())..];
                    if let Some(flow) = ipv4_endpoints(ip) {
                        self.runs.before_packet(flow, &mut self.ended);
                        self.write_runs();
                    }
                }
                self.emit_due(deadline, packet);
            }
            Carried::Segment { burst, index } => {
                let segment = Segment {
                    flow: burst.flow,
                    id: burst.id,
                    count: burst.layout.count(),
                    index,
                    deadline,
                    burst,
                };
                self.runs.segment(segment, &mut self.ended);
                self.write_runs();
            }
        }
    }

    fn write_runs(&mut self) {
        let mut ended = std::mem::take(&mut self.ended);
        for run in ended.drain(..) {
            self.write_run(run);
        }
        self.ended = ended;
    }

    /// Writes a run of segments as one packet: the super-packet as read when the run is all
    /// of it, else new headers before the run's payload. Each segment is timed.
    fn write_run(&mut self, run: Run<Rc<Burst>>) {
        let now = self.clock.now();
        for &deadline in &run.deadlines {
            let late = now.saturating_sub(deadline);
            self.lateness.record(late);
            self.interval_lateness.record(late);
        }
        self.stats.segment_runs += 1;
        let burst = &*run.burst;
        let (bytes, segments) = (burst.packet.bytes(), run.segments());
        let ip = &bytes[self.hdr..];
        let whole = segments == (0..burst.layout.count());
        let mut payload: &[u8] = &[];
        let written = if whole {
            self.tun.write(bytes)
        } else {
            burst
                .layout
                .run_headers(ip, segments.clone(), &mut self.run_headers);
            payload = &ip[burst.layout.payload(segments)];
            self.tun
                .write_vectored(&[IoSlice::new(&self.run_headers), IoSlice::new(payload)])
        };
        match written {
            Err(_) => self.stats.write_errors += 1,
            // Only while a capture starts with segments in flight: a capture turns the
            // device's offload off.
            Ok(_) if !self.captures.is_empty() => {
                let packet = if whole {
                    bytes.to_vec()
                } else {
                    [&self.run_headers[..], payload].concat()
                };
                let (vnet, ip) = packet.split_at(self.hdr);
                self.captures.received(vnet, ip, wall_clock);
            }
            Ok(_) => {}
        }
        if let Some(burst) = Rc::into_inner(run.burst) {
            self.buffers.recycle(burst.packet);
        }
    }

    /// `emit`, timed: the clock is read per packet, so that the writes before it in the
    /// same pass count in its lateness.
    fn emit_due(&mut self, deadline: Nanos, packet: Packet) {
        let late = self.clock.now().saturating_sub(deadline);
        self.lateness.record(late);
        self.interval_lateness.record(late);
        self.emit(packet);
    }

    /// The health since the last interval reading, which starts a new interval. Its overruns
    /// are the datagrams from other workers dropped at a full socket; the worker adds the
    /// TUN device's.
    fn end_interval(&mut self) -> DataplaneHealth {
        let cpu_ns = thread_cpu_ns();
        let socket_drops = self
            .remote
            .as_ref()
            .and_then(|r| r.receive_drops())
            .unwrap_or(self.interval_socket_drops);
        let h = &self.interval_lateness;
        let health = DataplaneHealth {
            timed_packets: h.count(),
            late_p50_ns: h.quantile(0.5),
            late_p99_ns: h.quantile(0.99),
            late_max_ns: h.max(),
            cpu_ns: cpu_ns.saturating_sub(self.interval_cpu_ns),
            overruns: socket_drops.saturating_sub(self.interval_socket_drops),
            write_errors: self.stats.write_errors - self.interval_write_errors,
        };
        self.interval_lateness.clear();
        self.interval_cpu_ns = cpu_ns;
        self.interval_write_errors = self.stats.write_errors;
        self.interval_socket_drops = socket_drops;
        health
    }

    /// The counters, with the lateness figures and the CPU time this thread used so far;
    /// called on the data-plane thread itself, as its CPU clock is its own.
    fn final_stats(&mut self) -> ForwarderStats {
        self.captures.stop_all();
        let cpu_ns = thread_cpu_ns();
        ForwarderStats {
            timed_packets: self.lateness.count(),
            late_p50_ns: self.lateness.quantile(0.5),
            late_p99_ns: self.lateness.quantile(0.99),
            late_max_ns: self.lateness.max(),
            cpu_ns,
            captured_packets: self.captures.packets,
            capture_capped: self.captures.capped,
            capture_errors: self.captures.failed,
            ..self.stats
        }
    }

    /// Hands a packet back to the kernel, which delivers it locally.
    fn emit(&mut self, packet: Packet) {
        if self.tun.write(packet.bytes()).is_err() {
            self.stats.write_errors += 1;
        } else {
            let (vnet, ip) = packet.bytes().split_at(self.hdr.min(packet.bytes().len()));
            self.captures.received(vnet, ip, wall_clock);
        }
        self.buffers.recycle(packet);
    }
}

/// CPU time of the calling thread, user and system. The clock exists since Linux 2.6.12;
/// without it, 0 says "not measured".
fn thread_cpu_ns() -> u64 {
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).map_or(0, |t| {
        (t.tv_sec() as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(t.tv_nsec() as u64)
    })
}

/// Now on the wall clock, in ns since the Unix epoch: the time a capture gives a packet.
fn wall_clock() -> Nanos {
    // CLOCK_REALTIME exists on every Linux; 0 would only say "unknown time".
    clock_gettime(ClockId::CLOCK_REALTIME).map_or(0, |t| {
        (t.tv_sec() as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(t.tv_nsec() as u64)
    })
}
