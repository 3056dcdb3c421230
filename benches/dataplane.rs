//! Data-plane benchmarks on real traffic (needs root: network namespaces and a TUN device).
//! Every figure is measured side by side with its baseline in the same run, repetitions
//! interleaved (in a rotating order) so that noise from other work on the machine hits all
//! alike. Every count printed is measured, none is typed in.
//!
//!     cargo bench --bench dataplane [-- throughput control senders]
//!
//! 1. TCP throughput (iperf3) between two node addresses, each p2plab case against a bare TUN
//!    echo loop: (a) unshaped, with TCP segmentation offload (a virtio-net header on every
//!    packet, TSO on: super-packets travel whole), against the loop with TSO on; (b) shaped
//!    at a rate far above what is reached and (d) shaped at 10 Gbit/s, where every segment
//!    of a super-packet goes through the link model on its own, against the per-packet loop
//!    (TSO off: what a forwarder that handles MTU packets can do); (e) shaped at 1 Gbit/s,
//!    against the payload the link can carry; plus plain loopback (no TUN at all), the
//!    ceiling. Also the CPU time the forwarding thread spends per GB received, which depends
//!    less than the throughput on how the machine's cores happen to be shared.
//! 2. Scale of control: `alloc_ip` + `shape` of 10,000 nodes in real mode vs dry-run, the
//!    clock stopped only once the data plane has applied the last shape.
//! 3. 1000 UDP senders shaped to 128 kbit, each offering 200 kbit/s: per-node achieved rate
//!    from the data plane's counters, vs the same with 10 senders; every error counted.
//!
//! Labs are namespaces `p2plab-<pid>-bench...`, removed at the end (also on panic).
//! Figures that miss their target are flagged, not failed: the machine is shared and noisy.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, poll};
use nix::time::{ClockId, clock_gettime};
use p2plab::clock::MonotonicClock;
use p2plab::dataplane::packet::{VNET_HDR_LEN, wire_len};
use p2plab::dataplane::{Command as DpCommand, Dataplane, ForwarderStats, TunDevice};
use p2plab::experiment::AddressPlan;
use p2plab::experiment::{LinkShape, NodeCounters};
use p2plab::netns::LabNamespace;
use p2plab::run::{self, RunConfig};

const TUN: &str = "p2p0";
/// The name `Dataplane::start` gives its thread.
const FORWARDER_THREAD: &str = "p2plab-dataplane";
const MTU: u32 = 1500;

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

fn median(xs: &[f64]) -> f64 {
    percentile(xs, 0.5)
}

/// Nearest-rank percentile of `xs` (`q` in [0, 1]).
fn percentile(xs: &[f64], q: f64) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// Median of the element-wise ratios x[i] / y[i] (repetition i of both).
fn pair_ratio(x: &[f64], y: &[f64]) -> f64 {
    median(&x.iter().zip(y).map(|(x, y)| x / y).collect::<Vec<_>>())
}

fn runs(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.2}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn flag(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

fn node_ip(index: u32) -> Ipv4Addr {
    AddressPlan::address(0, index).expect("address in the plan")
}

/// A command that runs inside `lab`'s network namespace.
fn in_lab(lab: &LabNamespace, program: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null());
    let fd = lab.ns_fd();
    // SAFETY: only setns(2), async-signal-safe, runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// `tx_dropped` of the TUN device as the lab sees it: packets the kernel dropped because the
/// device's queue was full (the reader was late).
fn tun_tx_dropped(lab: &LabNamespace) -> u64 {
    let text = lab
        .run_in(|| std::fs::read_to_string("/proc/thread-self/net/dev"))
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    text.lines()
        .find_map(|l| {
            l.trim_start()
                .strip_prefix(&format!("{TUN}:"))
                .map(str::to_string)
        })
        .and_then(|rest| rest.split_whitespace().nth(11)?.parse().ok())
        .unwrap_or(0)
}

/// The MTU of `dev` inside the lab, as `ip link` reports it.
fn lab_mtu(lab: &LabNamespace, dev: &str) -> u32 {
    let out = in_lab(lab, "ip", &["-o", "link", "show", dev])
        .output()
        .expect("ip link");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    words
        .find(|w| *w == "mtu")
        .and_then(|_| words.next()?.parse().ok())
        .unwrap_or_else(|| panic!("no mtu for {dev} in {text:?}"))
}

/// Threads of this process named `name` (as far as the kernel keeps it: 15 bytes).
fn threads_named(name: &str) -> Vec<i32> {
    let name = &name[..name.len().min(15)];
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|e| {
            let e = e.ok()?;
            let tid = e.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            (comm.trim_end() == name).then_some(tid)
        })
        .collect()
}

/// Nanoseconds thread `tid` of this process has run on a CPU so far.
fn cpu_ns(tid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no schedstat for thread {tid}"))
}

/// Whether a TCP socket listens on `port` inside the lab.
fn listening(lab: &LabNamespace, port: u16) -> bool {
    let text = lab
        .run_in(|| std::fs::read_to_string("/proc/thread-self/net/tcp"))
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let needle = format!(":{port:04X} 00000000:0000 0A");
    text.lines().any(|l| l.contains(&needle))
}

/// A lab namespace with `lo` up and worker 0's node block local on it (AnyIP, as
/// `LocalWorker` sets it up): every node address can be bound without adding it.
fn lab_with_nodes(hint: &str) -> LabNamespace {
    let lab = LabNamespace::create(hint).expect("create lab namespace");
    lab.bring_up_loopback().expect("lo up");
    let mut nl = lab.netlink().expect("netlink");
    let lo = nl.ifindex("lo").expect("lo");
    let (block, len) = AddressPlan::block(0);
    nl.add_local_route(block, len, lo)
        .expect("local route of the node block");
    lab
}

/// A lab with node-to-node traffic steered into TUN device `TUN` (virtio-net header on every
/// packet, TSO on, as the worker creates it).
fn lab_with_tun(hint: &str) -> (LabNamespace, TunDevice) {
    let lab = lab_with_nodes(hint);
    let tun = lab
        .run_in(|| TunDevice::create(TUN, true))
        .expect("thread")
        .expect("TUN");
    lab.install_hairpin(TUN, AddressPlan::PREFIX, AddressPlan::PREFIX_LEN, MTU)
        .expect("hairpin");
    (lab, tun)
}

/// A lab with TUN + hairpin and p2plab's data plane forwarding between `addrs` (all nodes,
/// group 0, unshaped until `SetParams`).
struct DataplaneLab {
    // Field order is drop order: the data plane (and its TUN fd) goes before the namespace.
    dp: Option<Dataplane>,
    lab: LabNamespace,
    /// The forwarding thread, whose CPU time is measured.
    thread: i32,
}

impl DataplaneLab {
    fn new(hint: &str, addrs: &[Ipv4Addr], seed: u64) -> Self {
        let (lab, tun) = lab_with_tun(hint);
        let before = threads_named(FORWARDER_THREAD);
        let dp = Dataplane::start(tun, MonotonicClock::start(), seed, None).expect("data plane");
        for &ip in addrs {
            dp.send(DpCommand::AddNode {
                ip,
                group: 0,
                home: None,
            });
        }
        // Answered by the thread once it runs, and so bears its name.
        dp.barrier();
        let thread = threads_named(FORWARDER_THREAD)
            .into_iter()
            .find(|t| !before.contains(t))
            .expect("the new forwarding thread");
        DataplaneLab {
            dp: Some(dp),
            lab,
            thread,
        }
    }

    fn dp(&self) -> &Dataplane {
        self.dp.as_ref().expect("running")
    }

    /// Stops the data plane and removes the lab; the forwarder's statistics.
    fn finish(mut self) -> ForwarderStats {
        self.dp
            .take()
            .expect("running")
            .stop()
            .expect("data plane stopped cleanly")
    }
}

/// The forwarder's error, pass-through and datagram counts, as printed.
fn stats_line(s: &ForwarderStats) -> String {
    serde_json::to_string(s).expect("counts serialize")
}

// ---------------------------------------------------------------------------------------------
// 1. Throughput against a bare echo loop
// ---------------------------------------------------------------------------------------------

/// What the echo loop saw: packets read, their bytes on the wire (a super-packet counts as
/// its segments, as p2plab charges it), and every error.
#[derive(Debug, Default, Clone, Copy)]
struct EchoCounts {
    packets: u64,
    wire_bytes: u64,
    read_errors: u64,
    write_errors: u64,
}

/// The minimal forwarder: every packet read from the TUN device is written straight back,
/// framed as the device frames it (with offload, the virtio-net header goes back as read).
fn echo(tun: &TunDevice, stop: &AtomicBool) -> EchoCounts {
    let hdr = if tun.offload() { VNET_HDR_LEN } else { 0 };
    let mut buf = vec![0u8; hdr + 65_535];
    let mut c = EchoCounts::default();
    while !stop.load(Ordering::Relaxed) {
        let mut fds = [PollFd::new(tun.as_fd(), PollFlags::POLLIN)];
        // Woken every 100 ms at least, to see `stop`.
        if poll(&mut fds, 100u16).unwrap_or(0) == 0 {
            continue;
        }
        loop {
            match tun.read(&mut buf) {
                Ok(n) => {
                    c.packets += 1;
                    c.wire_bytes += wire_len(&buf[..hdr], n.saturating_sub(hdr)) as u64;
                    if tun.write(&buf[..n]).is_err() {
                        c.write_errors += 1;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    c.read_errors += 1;
                    break;
                }
            }
        }
    }
    c
}

struct EchoLab {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<EchoCounts>>,
    tid: i32,
    lab: LabNamespace,
}

impl EchoLab {
    /// An echo loop on a TUN device with a virtio-net header, TSO `tso`.
    fn new(hint: &str, tso: bool) -> Self {
        let (lab, tun) = lab_with_tun(hint);
        tun.set_tso(tso).expect("TUNSETOFFLOAD");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("bench-echo".into())
            .spawn(move || {
                let _ = tx.send(nix::unistd::gettid().as_raw());
                echo(&tun, &flag)
            })
            .expect("echo thread");
        EchoLab {
            stop,
            thread: Some(thread),
            tid: rx.recv().expect("the echo thread's id"),
            lab,
        }
    }

    fn finish(mut self) -> EchoCounts {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .expect("running")
            .join()
            .expect("echo thread")
    }
}

impl Drop for EchoLab {
    /// The loop ends (and closes the TUN device) before the namespace goes, also on panic.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

enum Setup {
    P2plab(DataplaneLab),
    Echo(EchoLab),
    Loopback(LabNamespace),
}

impl Setup {
    fn lab(&self) -> &LabNamespace {
        match self {
            Setup::P2plab(d) => &d.lab,
            Setup::Echo(e) => &e.lab,
            Setup::Loopback(l) => l,
        }
    }

    /// The thread that moves packets between the TUN device and the kernel, if any.
    fn forwarder(&self) -> Option<i32> {
        match self {
            Setup::P2plab(d) => Some(d.thread),
            Setup::Echo(e) => Some(e.tid),
            Setup::Loopback(_) => None,
        }
    }
}

/// One iperf3 TCP test of `secs` seconds from node 0 to node 1: Gbit/s and bytes received.
fn iperf3(lab: &LabNamespace, secs: u32) -> (f64, f64) {
    let (client, server, port) = (node_ip(0).to_string(), node_ip(1).to_string(), 5201u16);
    let port_s = port.to_string();
    let mut srv = in_lab(lab, "iperf3", &["-s", "-1", "-B", &server, "-p", &port_s]);
    srv.stdout(Stdio::null()).stderr(Stdio::null());
    // Removing the lab kills every process still in it, this one too on a panic.
    let mut srv = srv.spawn().expect("iperf3 server");
    let deadline = Instant::now() + Duration::from_secs(3);
    while !listening(lab, port) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let t = secs.to_string();
    let out = in_lab(
        lab,
        "iperf3",
        &["-c", &server, "-B", &client, "-p", &port_s, "-t", &t, "-J"],
    )
    .output()
    .expect("iperf3 client");
    srv.wait().expect("iperf3 server");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("iperf3 JSON: {e}: {}", String::from_utf8_lossy(&out.stdout)));
    let received = &json["end"]["sum_received"];
    let (Some(bps), Some(bytes)) = (
        received["bits_per_second"].as_f64(),
        received["bytes"].as_f64(),
    ) else {
        panic!("iperf3 failed: {}", json["error"]);
    };
    (bps / 1e9, bytes)
}

/// The rate of the far-shaped case: far above what one TCP flow reaches here, so the shape
/// costs the forwarder its per-segment path (every segment through the FIFOs) but no speed.
const FAR_RATE: u64 = 100_000_000_000;
/// The shaped cases whose speed is judged.
const FAST_RATE: u64 = 10_000_000_000;
const GIGABIT: u64 = 1_000_000_000;
/// p2plab unshaped against a like-for-like echo loop: p2plab does more per packet, but its
/// data plane should keep within 10 % of the loop.
const TARGET_VS_ECHO: f64 = 0.9;
/// A shaped link against the per-packet echo loop: super-packets charged per segment.
const TARGET_SHAPED_VS_PER_PACKET: f64 = 3.0;
/// TCP payload per 1500-byte packet (timestamps on): what a link's rate can carry.
const PAYLOAD_SHARE: f64 = 1448.0 / 1500.0;
/// Goodput on the gigabit link within 3 % of that.
const GIGABIT_TOLERANCE: f64 = 0.03;

/// What one case measured: Gbit/s and the forwarding thread's CPU milliseconds per GB
/// received, per repetition; packets and their wire bytes read from the TUN device; errors.
struct CaseResult {
    label: String,
    gbps: Vec<f64>,
    cpu_ms_per_gb: Vec<f64>,
    read: Option<(u64, u64)>,
    /// Super-packets the data plane read and cut into segments (0 for the others).
    cut: u64,
    tun_drops: u64,
    errors: String,
}

fn bench_throughput() {
    const REPS: usize = 5;
    const SECS: u32 = 5;
    let addrs = [node_ip(0), node_ip(1)];
    let shaped_at = |hint: &str, rate: u64| {
        let lab = DataplaneLab::new(hint, &addrs, 1);
        for &ip in &addrs {
            lab.dp().send(DpCommand::SetParams {
                ip,
                params: LinkShape {
                    up: Some(rate),
                    down: Some(rate),
                    ..LinkShape::default()
                },
            });
        }
        lab.dp().barrier();
        lab
    };
    let lo = lab_with_nodes("bench-tput-lo");
    let lo_mtu = lab_mtu(&lo, "lo");
    let far = FAR_RATE as f64 / 1e9;
    let mut setups = vec![
        (
            "a. p2plab, unshaped (vnet header, TSO on)".to_string(),
            Setup::P2plab(DataplaneLab::new("bench-tput-p2plab", &addrs, 1)),
        ),
        (
            "   echo loop        (vnet header, TSO on)".to_string(),
            Setup::Echo(EchoLab::new("bench-tput-echo-tso", true)),
        ),
        (
            format!("b. p2plab, shaped {far:.0} Gbit/s (segments)"),
            Setup::P2plab(shaped_at("bench-tput-far", FAR_RATE)),
        ),
        (
            "   echo loop        (vnet header, TSO off)".to_string(),
            Setup::Echo(EchoLab::new("bench-tput-echo", false)),
        ),
        (
            format!("c. loopback, no TUN (lo mtu {lo_mtu})"),
            Setup::Loopback(lo),
        ),
        (
            "d. p2plab, shaped 10 Gbit/s (segments)".to_string(),
            Setup::P2plab(shaped_at("bench-tput-10g", FAST_RATE)),
        ),
        (
            "e. p2plab, shaped 1 Gbit/s (segments)".to_string(),
            Setup::P2plab(shaped_at("bench-tput-1g", GIGABIT)),
        ),
    ];
    let n = setups.len();
    let (mut gbps, mut cpu) = (vec![Vec::new(); n], vec![Vec::new(); n]);
    let drops_before: Vec<u64> = setups
        .iter()
        .map(|(_, s)| tun_tx_dropped(s.lab()))
        .collect();
    for rep in 0..REPS {
        for i in 0..n {
            let k = (i + rep) % n;
            let setup = &setups[k].1;
            let cpu_before = setup.forwarder().map(cpu_ns);
            let (g, bytes) = iperf3(setup.lab(), SECS);
            gbps[k].push(g);
            if let (Some(t), Some(c)) = (setup.forwarder(), cpu_before) {
                cpu[k].push((cpu_ns(t) - c) as f64 / 1e6 / (bytes / 1e9));
            }
        }
    }
    let mut results = Vec::new();
    for (k, (label, setup)) in setups.drain(..).enumerate() {
        let tun_drops = tun_tx_dropped(setup.lab()) - drops_before[k];
        let (read, errors, cut) = match setup {
            Setup::P2plab(d) => {
                let c = d.dp().counters(false).0;
                let read = c.iter().fold((0, 0), |(p, b), (_, c)| {
                    (p + c.sent_packets, b + c.sent_bytes)
                });
                let stats = d.finish();
                (Some(read), stats_line(&stats), stats.cut_super_packets)
            }
            Setup::Echo(e) => {
                let c = e.finish();
                (
                    Some((c.packets, c.wire_bytes)),
                    format!(
                        "write errors {}, read errors {}",
                        c.write_errors, c.read_errors
                    ),
                    0,
                )
            }
            Setup::Loopback(_) => (None, String::new(), 0),
        };
        results.push(CaseResult {
            label,
            gbps: std::mem::take(&mut gbps[k]),
            cpu_ms_per_gb: std::mem::take(&mut cpu[k]),
            read,
            cut,
            tun_drops,
            errors,
        });
    }
    println!(
        "\n1. TCP throughput, iperf3 -t {SECS} between two node addresses (TUN mtu {MTU}), median of {REPS} (interleaved):"
    );
    for r in &results {
        let per_packet = r.read.map_or(String::new(), |(packets, bytes)| {
            format!(
                "   CPU {:>5.0} ms/GB   {packets} packets read, {:.0} B/packet, TUN queue drops {}, {}",
                median(&r.cpu_ms_per_gb),
                bytes as f64 / packets as f64,
                r.tun_drops,
                r.errors
            )
        });
        println!(
            "  {:<44} {:>6.2} Gbit/s   runs: {}{per_packet}",
            r.label,
            median(&r.gbps),
            runs(&r.gbps)
        );
    }
    let super_packets = |r: &CaseResult| {
        r.read
            .is_some_and(|(p, b)| b as f64 / p as f64 > f64::from(MTU))
    };
    let (a, echo_tso, echo) = (&results[0], &results[1], &results[3]);
    let ratio = median(&a.gbps) / median(&echo_tso.gbps);
    println!(
        "  a: p2plab/echo (TSO on) {ratio:>5.2}   (median of per-repetition ratios {:.2}; target >= {TARGET_VS_ECHO}: {}; super-packets on both: {})",
        pair_ratio(&a.gbps, &echo_tso.gbps),
        flag(ratio >= TARGET_VS_ECHO),
        flag(super_packets(a) && super_packets(echo_tso))
    );
    println!(
        "  a: forwarding thread's CPU per GB, p2plab/echo {:>5.2}   (median of per-repetition ratios {:.2})",
        median(&a.cpu_ms_per_gb) / median(&echo_tso.cpu_ms_per_gb),
        pair_ratio(&a.cpu_ms_per_gb, &echo_tso.cpu_ms_per_gb)
    );
    println!(
        "  echo loop: per-packet (TSO off) {:.2} Gbit/s, {} B/packet: the baseline of b and d",
        median(&echo.gbps),
        echo.read.map_or(0.0, |(p, b)| b as f64 / p as f64).round()
    );
    for (name, p) in [("b", &results[2]), ("d", &results[5])] {
        let ratio = median(&p.gbps) / median(&echo.gbps);
        println!(
            "  {name}: p2plab shaped / per-packet echo {ratio:>5.2}   (median of per-repetition ratios {:.2}; target >= {TARGET_SHAPED_VS_PER_PACKET}: {}; {} super-packets cut into segments)",
            pair_ratio(&p.gbps, &echo.gbps),
            flag(ratio >= TARGET_SHAPED_VS_PER_PACKET),
            p.cut
        );
    }
    let b = median(&results[2].gbps);
    println!(
        "  b: shaped rate / reached {:>7.1} x   (far above: >= 5: {})",
        far / b,
        flag(far / b >= 5.0)
    );
    let e = &results[6];
    let capacity = GIGABIT as f64 * PAYLOAD_SHARE / 1e9;
    let worst = e
        .gbps
        .iter()
        .map(|g| (g / capacity - 1.0).abs())
        .fold(0.0, f64::max);
    let off = median(&e.gbps) / capacity - 1.0;
    println!(
        "  e: goodput / payload capacity ({capacity:.3} Gbit/s) {:>+6.1} %   (worst run {:.1} %; target within {:.0} %: {})",
        off * 100.0,
        worst * 100.0,
        GIGABIT_TOLERANCE * 100.0,
        flag(off.abs() <= GIGABIT_TOLERANCE)
    );
    println!(
        "  a: p2plab/loopback {:>5.2}   (median of per-repetition ratios {:.2})",
        median(&results[0].gbps) / median(&results[4].gbps),
        pair_ratio(&results[0].gbps, &results[4].gbps)
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Scale of control
// ---------------------------------------------------------------------------------------------

const CONTROL_NODES: usize = 10_000;

/// The script of §2. `shape` is pipelined: it returns once the commands are sent. The clock
/// stops after `fail_node` of a node of the (only) worker, which the controller awaits and
/// the worker answers only after a data-plane barrier: every shape before it is then in force.
fn control_script() -> String {
    format!(
        r#"
let t0 = now();
let nodes = alloc_ip({CONTROL_NODES}, #{{ group: "dsl" }});
let t1 = now();
shape(nodes, #{{ up: "1mbit", down: "8mbit", latency: "20ms" }});
let t2 = now();
fail_node(nodes[nodes.len() - 1]);
let t3 = now();
metric("nodes", nodes.len());
metric("alloc_s", t1 - t0);
metric("shape_sent_s", t2 - t1);
metric("shape_s", t3 - t1);
"#
    )
}

/// The `metric` values of a run's `events.jsonl`, by name.
fn metrics(dir: &Path) -> Vec<(String, f64)> {
    std::fs::read_to_string(dir.join("events.jsonl"))
        .expect("events.jsonl")
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "metric")
        .map(|e| {
            (
                e["name"].as_str().unwrap_or("").to_string(),
                e["value"].as_f64().unwrap_or(0.0),
            )
        })
        .collect()
}

fn bench_control(dir: &Path) {
    const REPS: usize = 3;
    let script = dir.join("control.rhai");
    std::fs::write(&script, control_script()).unwrap();
    let config = |name: String| {
        let mut cfg = RunConfig::new(&script);
        cfg.seed = Some(1);
        cfg.out = Some(dir.join(name));
        cfg
    };
    let (mut alloc, mut sent, mut shape, mut real_wall, mut dry_wall) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut nodes = 0.0;
    for i in 0..REPS {
        let start = Instant::now();
        let out = run::real(config(format!("real{i}"))).expect("real run");
        real_wall.push(start.elapsed().as_secs_f64());
        let m = metrics(out.results.as_deref().expect("results"));
        let get = |n: &str| {
            m.iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| *v)
                .expect("metric")
        };
        alloc.push(get("alloc_s"));
        sent.push(get("shape_sent_s"));
        shape.push(get("shape_s"));
        nodes = get("nodes");

        let start = Instant::now();
        run::dry_run(config(format!("dry{i}"))).expect("dry run");
        dry_wall.push(start.elapsed().as_secs_f64());
    }
    let in_script: Vec<f64> = alloc.iter().zip(&shape).map(|(a, s)| a + s).collect();
    let (ins, rw, dw) = (median(&in_script), median(&real_wall), median(&dry_wall));
    println!(
        "\n2. scale of control: alloc_ip + shape of all {nodes:.0} nodes, median of {REPS} (interleaved):"
    );
    println!(
        "  real mode, in script (now())    {:>8.0} ms   (alloc {:.0} ms + shape {:.0} ms until in force, {:.0} ms until sent; target < 1000 ms: {})",
        ins * 1e3,
        median(&alloc) * 1e3,
        median(&shape) * 1e3,
        median(&sent) * 1e3,
        flag(ins < 1.0)
    );
    println!(
        "  real mode, whole run            {:>8.0} ms   (check + lab setup + script + teardown)",
        rw * 1e3
    );
    println!("  dry-run, whole run (baseline)   {:>8.0} ms", dw * 1e3);
    println!("  real in-script / dry-run        {:>8.2} x", ins / dw);
    println!("  real whole run / dry-run        {:>8.2} x", rw / dw);
    println!(
        "  per node, real in-script        {:>8.1} us",
        ins * 1e6 / nodes
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Many shaped senders
// ---------------------------------------------------------------------------------------------

/// Paced UDP senders: argv = start (CLOCK_MONOTONIC s), duration s, IP packet size, rate
/// bit/s, file of "src dst" lines. Each pair gets a receiver socket on dst (never read: a full
/// buffer drops silently, while a closed port would answer with ICMP and refuse the next
/// send) and a sender socket bound to src. Sends are spread evenly: event m is due at
/// start + m × interval / n, from sender m mod n. Prints the sends made and the sends that
/// failed.
const SENDER_PY: &str = r#"
import socket, sys, time
start, dur, size, rate = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
pairs = [l.split() for l in open(sys.argv[5]) if l.strip()]
payload = b"x" * (size - 28)
keep, socks = [], []
for src, dst in pairs:
    r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    r.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    r.bind((dst, 9000))
    keep.append(r)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 0))
    s.connect((dst, 9000))
    socks.append(s)
n = len(socks)
step = size * 8 / rate / n
total = int(dur / step)
m, errors = 0, 0
now = time.monotonic()
if start > now:
    time.sleep(start - now)
while m < total:
    due = min(total, int((time.monotonic() - start) / step) + 1)
    while m < due:
        try:
            socks[m % n].send(payload)
        except OSError:
            errors += 1
        m += 1
    time.sleep(0.001)
print(m, errors)
"#;

const RATE: u64 = 128_000;
const OFFERED: f64 = 200_000.0;
const PACKET: usize = 1000;
const WARMUP: f64 = 1.0;
const WINDOW: f64 = 5.0;
const PER_PROCESS: usize = 100;

fn monotonic_secs() -> f64 {
    let ts = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC");
    ts.tv_sec() as f64 + ts.tv_nsec() as f64 * 1e-9
}

fn sleep_until(t: f64) {
    let now = monotonic_secs();
    if t > now {
        std::thread::sleep(Duration::from_secs_f64(t - now));
    }
}

fn counters_of(counters: &[(Ipv4Addr, NodeCounters)], ip: Ipv4Addr) -> NodeCounters {
    counters
        .iter()
        .find(|(a, _)| *a == ip)
        .map_or(NodeCounters::ZERO, |(_, c)| *c)
}

/// Every error and drop of one run of §3, summed over runs.
#[derive(Default)]
struct SendersErrors {
    sends: u64,
    send_errors: u64,
    queue_drops: u64,
    loss_drops: u64,
    tun_drops: u64,
    write_errors: u64,
    passed_through: u64,
}

struct SendersResult {
    /// Achieved rate / `RATE`, one per sender.
    ratios: Vec<f64>,
    /// Offered rate (what the sender handed the data plane) / `RATE`, one per sender.
    offered: Vec<f64>,
    errors: SendersErrors,
}

/// `n` senders (nodes 0..n, up `RATE`) each to its own receiver (nodes n..2n, unshaped),
/// offering `OFFERED`; achieved = the receiver's delivered bytes over the window.
fn senders_once(n: usize, rep: usize, python: &str, dir: &Path) -> SendersResult {
    let addrs: Vec<Ipv4Addr> = (0..2 * n as u32).map(node_ip).collect();
    let lab = DataplaneLab::new(&format!("bench-udp{n}-{rep}"), &addrs, 1);
    for &ip in &addrs[..n] {
        lab.dp().send(DpCommand::SetParams {
            ip,
            params: LinkShape {
                up: Some(RATE),
                ..LinkShape::default()
            },
        });
    }
    let script = dir.join("senders.py");
    std::fs::write(&script, SENDER_PY).unwrap();
    let chunks: Vec<_> = (0..n)
        .collect::<Vec<_>>()
        .chunks(PER_PROCESS)
        .map(<[usize]>::to_vec)
        .collect();
    // Python startup and 2 × 100 socket binds take well under a second here.
    let start = monotonic_secs() + 1.0 + chunks.len() as f64 * 0.05;
    let dur = WARMUP + WINDOW + 0.5;
    let mut procs = Vec::new();
    for (k, chunk) in chunks.iter().enumerate() {
        let pairs = dir.join(format!("pairs-{n}-{rep}-{k}.txt"));
        let text: String = chunk
            .iter()
            .map(|&i| format!("{} {}\n", addrs[i], addrs[n + i]))
            .collect();
        std::fs::write(&pairs, text).unwrap();
        let args = [
            script.to_str().unwrap(),
            &format!("{start:.6}"),
            &format!("{dur}"),
            &PACKET.to_string(),
            &OFFERED.to_string(),
            pairs.to_str().unwrap(),
        ];
        let mut cmd = in_lab(&lab.lab, python, &args);
        // One line at the very end: the pipe never fills while the sender runs.
        cmd.stdout(Stdio::piped());
        procs.push(cmd.spawn().expect("sender"));
    }
    let tun_before = tun_tx_dropped(&lab.lab);
    sleep_until(start + WARMUP);
    let (c0, t0) = (lab.dp().counters(false).0, monotonic_secs());
    sleep_until(start + WARMUP + WINDOW);
    let (c1, t1) = (lab.dp().counters(false).0, monotonic_secs());
    let mut errors = SendersErrors {
        tun_drops: tun_tx_dropped(&lab.lab) - tun_before,
        ..SendersErrors::default()
    };
    for p in &mut procs {
        let mut out = String::new();
        io::Read::read_to_string(p.stdout.as_mut().expect("piped"), &mut out).expect("stdout");
        let status = p.wait().expect("sender");
        assert!(status.success(), "a sender process failed: {status}");
        let counts: Vec<u64> = out
            .split_whitespace()
            .map(|w| w.parse().expect("a count"))
            .collect();
        let [sends, failed] = counts[..] else {
            panic!("sender printed {out:?}, not two counts");
        };
        errors.sends += sends;
        errors.send_errors += failed;
    }
    let secs = t1 - t0;
    let rate = |bytes: u64| bytes as f64 * 8.0 / secs / RATE as f64;
    let ratios = (0..n)
        .map(|i| {
            let rx = addrs[n + i];
            rate(counters_of(&c1, rx).recv_bytes - counters_of(&c0, rx).recv_bytes)
        })
        .collect();
    let offered = (0..n)
        .map(|i| {
            rate(counters_of(&c1, addrs[i]).sent_bytes - counters_of(&c0, addrs[i]).sent_bytes)
        })
        .collect();
    // Drops over the whole run, the warm-up included: none is expected anywhere but the
    // uplink queues.
    let end = lab.dp().counters(false).0;
    errors.queue_drops = end.iter().map(|(_, c)| c.dropped_queue).sum();
    errors.loss_drops = end.iter().map(|(_, c)| c.dropped_loss).sum();
    let stats = lab.finish();
    errors.write_errors = stats.write_errors;
    errors.passed_through = stats.passed_through;
    SendersResult {
        ratios,
        offered,
        errors,
    }
}

fn bench_senders(dir: &Path) {
    const REPS: usize = 2;
    let python = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "python3".into());
    let sizes = [10usize, 1000];
    let mut pooled: Vec<Vec<f64>> = vec![Vec::new(); sizes.len()];
    let mut offered: Vec<Vec<f64>> = vec![Vec::new(); sizes.len()];
    let mut errors: Vec<SendersErrors> = sizes.iter().map(|_| SendersErrors::default()).collect();
    for rep in 0..REPS {
        for i in 0..sizes.len() {
            let k = (i + rep) % sizes.len();
            let r = senders_once(sizes[k], rep, &python, dir);
            pooled[k].extend(r.ratios);
            offered[k].extend(r.offered);
            let (e, r) = (&mut errors[k], r.errors);
            e.sends += r.sends;
            e.send_errors += r.send_errors;
            e.queue_drops += r.queue_drops;
            e.loss_drops += r.loss_drops;
            e.tun_drops += r.tun_drops;
            e.write_errors += r.write_errors;
            e.passed_through += r.passed_through;
        }
    }
    println!(
        "\n3. senders shaped up {:.0} kbit offering {:.0} kbit/s of {PACKET}-byte UDP packets, each to its own receiver;",
        RATE as f64 / 1e3,
        OFFERED / 1e3
    );
    println!(
        "   achieved / {:.0} kbit over a {WINDOW} s window after {WARMUP} s warm-up (data-plane counters), {REPS} runs pooled (interleaved):",
        RATE as f64 / 1e3
    );
    println!(
        "  senders      min      p5  median     p95     max   within ±5 %   offered (median)   uplink drops   TUN drops"
    );
    for (k, &n) in sizes.iter().enumerate() {
        let v = &pooled[k];
        let within = v.iter().filter(|r| (*r - 1.0).abs() <= 0.05).count();
        println!(
            "  {:>7}  {:>6.3}  {:>6.3}  {:>6.3}  {:>6.3}  {:>6.3}   {:>5.1} % {}   {:>16.3}   {:>12}   {:>9}",
            n,
            percentile(v, 0.0),
            percentile(v, 0.05),
            median(v),
            percentile(v, 0.95),
            percentile(v, 1.0),
            100.0 * within as f64 / v.len() as f64,
            if within == v.len() {
                "(met)   "
            } else {
                "(MISSED)"
            },
            median(&offered[k]),
            errors[k].queue_drops,
            errors[k].tun_drops
        );
    }
    for (k, &n) in sizes.iter().enumerate() {
        let e = &errors[k];
        println!(
            "  {n:>7} senders: {} sends, {} send errors; loss drops {}; forwarder write errors {}, passed through {}",
            e.sends, e.send_errors, e.loss_drops, e.write_errors, e.passed_through
        );
    }
    let (small, large) = (median(&pooled[0]), median(&pooled[sizes.len() - 1]));
    println!(
        "  median achieved, {} senders / {} senders: {:.3}",
        sizes[sizes.len() - 1],
        sizes[0],
        large / small
    );
}

// ---------------------------------------------------------------------------------------------

/// Namespaces of this process still listed by `ip netns`.
fn leftover_namespaces() -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns");
    let prefix = format!("p2plab-{}-", std::process::id());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&prefix))
        .map(str::to_string)
        .collect()
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping the data-plane benchmarks: they need root (network namespaces, TUN)");
        return;
    }
    // `cargo bench --bench dataplane -- control senders` runs only those sections; cargo
    // itself passes `--bench`, which is not a section.
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let run = |name: &str| wanted.is_empty() || wanted.iter().any(|w| w == name);
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    if run("throughput") {
        bench_throughput();
    }
    if run("control") {
        bench_control(dir.path());
    }
    if run("senders") {
        bench_senders(dir.path());
    }
    let left = leftover_namespaces();
    println!("\n(total {:.0} s)", started.elapsed().as_secs_f64());
    if !left.is_empty() {
        eprintln!("namespaces left behind: {left:?}");
        std::process::exit(1);
    }
}
