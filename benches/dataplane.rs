//! Data-plane benchmarks on real traffic (needs root: network namespaces and a TUN device).
//! Every figure is measured side by side with its baseline in the same run, repetitions
//! interleaved so that noise from other work on the machine hits both alike.
//!
//!     cargo bench --bench dataplane [-- throughput control senders]
//!
//! 1. Unshaped TCP throughput (iperf3) between two node addresses: p2plab's forwarder vs a
//!    bare TUN echo loop vs plain loopback (no TUN at all, the ceiling).
//! 2. Scale of control: `alloc_ip(10000)` + `shape` of all of them in real mode vs dry-run.
//! 3. 1000 UDP senders shaped to 128 kbit, each offering 200 kbit/s: per-node achieved rate
//!    from the data plane's counters, vs the same with 10 senders.
//!
//! Labs are namespaces `p2plab-<pid>-bench...`, removed at the end (also on panic).
//! Figures that miss their target are flagged, not failed: the machine is shared and noisy.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use p2plab::experiment::{LinkShape, NodeCounters};
use p2plab::clock::MonotonicClock;
use p2plab::dataplane::{Command as DpCommand, Dataplane, TunDevice};
use p2plab::experiment::AddressPlan;
use p2plab::netns::LabNamespace;
use p2plab::run::{self, RunConfig};

const TUN: &str = "p2p0";
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

/// Starts `cmd` and records it in the lab's ledger, so removing the lab kills it.
fn spawn_in(lab: &LabNamespace, mut cmd: Command) -> Child {
    let child = cmd.spawn().expect("spawn in the lab");
    lab.record_pid(child.id()).expect("ledger");
    child
}

fn reap(lab: &LabNamespace, child: &mut Child) -> std::process::ExitStatus {
    let status = child.wait().expect("wait");
    let _ = lab.forget_pid(child.id());
    status
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

/// A lab with TUN + hairpin and p2plab's data plane forwarding between `addrs` (all nodes,
/// group 0, unshaped until `SetParams`).
struct DataplaneLab {
    // Field order is drop order: the data plane (and its TUN fd) goes before the namespace.
    dp: Option<Dataplane>,
    lab: LabNamespace,
}

impl DataplaneLab {
    fn new(hint: &str, addrs: &[Ipv4Addr], seed: u64) -> Self {
        let lab = lab_with_nodes(hint);
        let tun = lab
            .run_in(|| TunDevice::create(TUN, true))
            .expect("thread")
            .expect("TUN");
        lab.install_hairpin(TUN, AddressPlan::PREFIX, AddressPlan::PREFIX_LEN, MTU)
            .expect("hairpin");
        let dp = Dataplane::start(tun, MonotonicClock::start(), seed, None).expect("data plane");
        for &ip in addrs {
            dp.send(DpCommand::AddNode {
                ip,
                group: 0,
                home: None,
            });
        }
        DataplaneLab { dp: Some(dp), lab }
    }

    fn dp(&self) -> &Dataplane {
        self.dp.as_ref().expect("running")
    }

    /// Stops the data plane (reporting its write errors) and removes the lab.
    fn finish(mut self) -> u64 {
        let stats = self
            .dp
            .take()
            .map(|d| d.stop().expect("data plane stopped cleanly"));
        stats.map_or(0, |s| s.write_errors)
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Unshaped throughput
// ---------------------------------------------------------------------------------------------

/// The minimal forwarder: every packet read from the TUN device is written straight back.
struct EchoForwarder {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl EchoForwarder {
    fn start(tun: TunDevice) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            let mut packets = 0u64;
            while !flag.load(Ordering::Relaxed) {
                let mut pfd = libc::pollfd {
                    fd: tun.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                if unsafe { libc::poll(&mut pfd, 1, 100) } <= 0 {
                    continue;
                }
                loop {
                    match tun.read(&mut buf) {
                        Ok(n) => {
                            let _ = tun.write(&buf[..n]);
                            packets += 1;
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
            }
            packets
        });
        EchoForwarder {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EchoForwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct EchoLab {
    _echo: EchoForwarder,
    lab: LabNamespace,
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
}

/// One iperf3 TCP test of `secs` seconds from node 1 to node 2; Gbit/s received.
fn iperf3(lab: &LabNamespace, secs: u32) -> f64 {
    let (client, server, port) = (node_ip(0).to_string(), node_ip(1).to_string(), 5201u16);
    let port_s = port.to_string();
    let mut srv = in_lab(lab, "iperf3", &["-s", "-1", "-B", &server, "-p", &port_s]);
    srv.stdout(Stdio::null()).stderr(Stdio::null());
    let mut srv = spawn_in(lab, srv);
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
    reap(lab, &mut srv);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("iperf3 JSON: {e}: {}", String::from_utf8_lossy(&out.stdout)));
    let bps = json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("iperf3 failed: {}", json["error"]));
    bps / 1e9
}

fn bench_throughput() {
    const REPS: usize = 3;
    const SECS: u32 = 5;
    let addrs = [node_ip(0), node_ip(1)];
    let setups = [
        Setup::P2plab(DataplaneLab::new("bench-tput-p2plab", &addrs, 1)),
        Setup::Echo({
            let lab = lab_with_nodes("bench-tput-echo");
            let tun = lab
                .run_in(|| TunDevice::create(TUN, false))
                .expect("thread")
                .expect("TUN");
            lab.install_hairpin(TUN, AddressPlan::PREFIX, AddressPlan::PREFIX_LEN, MTU)
                .expect("hairpin");
            EchoLab {
                _echo: EchoForwarder::start(tun),
                lab,
            }
        }),
        Setup::Loopback(lab_with_nodes("bench-tput-lo")),
    ];
    let mut gbps = [Vec::new(), Vec::new(), Vec::new()];
    let drops_before: Vec<u64> = setups.iter().map(|s| tun_tx_dropped(s.lab())).collect();
    for _ in 0..REPS {
        for (s, out) in setups.iter().zip(gbps.iter_mut()) {
            out.push(iperf3(s.lab(), SECS));
        }
    }
    let drops: Vec<u64> = setups
        .iter()
        .zip(&drops_before)
        .map(|(s, b)| tun_tx_dropped(s.lab()) - b)
        .collect();
    let mut write_errors = 0;
    for s in setups {
        if let Setup::P2plab(d) = s {
            write_errors = d.finish();
        }
    }
    let pair_ratio =
        |x: &[f64], y: &[f64]| median(&x.iter().zip(y).map(|(x, y)| x / y).collect::<Vec<_>>());
    let (ab_pairs, ac_pairs) = (
        pair_ratio(&gbps[0], &gbps[1]),
        pair_ratio(&gbps[0], &gbps[2]),
    );
    let [a, b, c] = gbps.map(|v| (median(&v), v));
    let fmt = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "\n1. unshaped TCP throughput, iperf3 -t {SECS} between two node addresses, median of {REPS} (interleaved):"
    );
    println!(
        "  a. p2plab data plane (mtu {MTU}, GSO)  {:>7.2} Gbit/s   runs: {}   TUN queue drops {}, write errors {}",
        a.0,
        fmt(&a.1),
        drops[0],
        write_errors
    );
    println!(
        "  b. bare TUN echo loop (mtu {MTU})      {:>7.2} Gbit/s   runs: {}   TUN queue drops {}",
        b.0,
        fmt(&b.1),
        drops[1]
    );
    println!(
        "  c. loopback, no TUN (lo mtu 65536)   {:>7.2} Gbit/s   runs: {}",
        c.0,
        fmt(&c.1)
    );
    let ab = a.0 / b.0;
    println!(
        "  a/b  {ab:>5.2}   (median of per-repetition ratios {ab_pairs:.2}; target >= 1.0: {})",
        if ab >= 1.0 { "met" } else { "MISSED" }
    );
    println!(
        "  a/c  {:>5.2}   (median of per-repetition ratios {ac_pairs:.2})",
        a.0 / c.0
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Scale of control
// ---------------------------------------------------------------------------------------------

const CONTROL_SCRIPT: &str = r#"
let t0 = now();
let nodes = alloc_ip(10000, #{ group: "dsl" });
let t1 = now();
shape(nodes, #{ up: "1mbit", down: "8mbit", latency: "20ms" });
let t2 = now();
metric("alloc_s", t1 - t0);
metric("shape_s", t2 - t1);
"#;

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
    std::fs::write(&script, CONTROL_SCRIPT).unwrap();
    let config = |name: String| {
        let mut cfg = RunConfig::new(&script);
        cfg.seed = Some(1);
        cfg.out = Some(dir.join(name));
        cfg
    };
    let (mut alloc, mut shape, mut real_wall, mut dry_wall) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
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
        shape.push(get("shape_s"));

        let start = Instant::now();
        run::dry_run(config(format!("dry{i}"))).expect("dry run");
        dry_wall.push(start.elapsed().as_secs_f64());
    }
    let in_script: Vec<f64> = alloc.iter().zip(&shape).map(|(a, s)| a + s).collect();
    let (ins, rw, dw) = (median(&in_script), median(&real_wall), median(&dry_wall));
    println!(
        "\n2. scale of control: alloc_ip(10000) + shape of all 10,000 nodes, median of {REPS} (interleaved):"
    );
    println!(
        "  real mode, in script (now())    {:>8.0} ms   (alloc {:.0} ms + shape {:.0} ms; target < 2000 ms: {})",
        ins * 1e3,
        median(&alloc) * 1e3,
        median(&shape) * 1e3,
        if ins < 2.0 { "met" } else { "MISSED" }
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
        ins * 1e6 / 10_000.0
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Many shaped senders
// ---------------------------------------------------------------------------------------------

/// Paced UDP senders: argv = start (CLOCK_MONOTONIC s), duration s, IP packet size, rate
/// bit/s, file of "src dst" lines. Each pair gets a receiver socket on dst (never read: a full
/// buffer drops silently, while a closed port would answer with ICMP and refuse the next
/// send) and a sender socket bound to src. Sends are spread evenly: event m is due at
/// start + m × interval / n, from sender m mod n.
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
m = 0
now = time.monotonic()
if start > now:
    time.sleep(start - now)
while m < total:
    due = min(total, int((time.monotonic() - start) / step) + 1)
    while m < due:
        try:
            socks[m % n].send(payload)
        except OSError:
            pass
        m += 1
    time.sleep(0.001)
"#;

const RATE: u64 = 128_000;
const OFFERED: f64 = 200_000.0;
const PACKET: usize = 1000;
const WARMUP: f64 = 1.0;
const WINDOW: f64 = 5.0;
const PER_PROCESS: usize = 100;

fn monotonic_secs() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
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

struct SendersResult {
    /// Achieved rate / 128 kbit, one per sender.
    ratios: Vec<f64>,
    /// Offered rate (what the sender handed the data plane) / 128 kbit, one per sender.
    offered: Vec<f64>,
    queue_drops: u64,
    tun_drops: u64,
}

/// `n` senders (nodes 0..n, up 128 kbit) each to its own receiver (nodes n..2n, unshaped),
/// offering 200 kbit/s; achieved = the receiver's delivered bytes over the window.
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
        cmd.stdout(Stdio::null());
        procs.push(spawn_in(&lab.lab, cmd));
    }
    let tun_before = tun_tx_dropped(&lab.lab);
    sleep_until(start + WARMUP);
    let (c0, t0) = (lab.dp().counters(), monotonic_secs());
    sleep_until(start + WARMUP + WINDOW);
    let (c1, t1) = (lab.dp().counters(), monotonic_secs());
    let tun_drops = tun_tx_dropped(&lab.lab) - tun_before;
    for p in &mut procs {
        let status = reap(&lab.lab, p);
        assert!(status.success(), "a sender process failed: {status}");
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
    let queue_drops = c1.iter().map(|(_, c)| c.dropped_queue).sum();
    lab.finish();
    SendersResult {
        ratios,
        offered,
        queue_drops,
        tun_drops,
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
    let mut drops = vec![(0u64, 0u64); sizes.len()];
    for rep in 0..REPS {
        for (k, &n) in sizes.iter().enumerate() {
            let r = senders_once(n, rep, &python, dir);
            pooled[k].extend(r.ratios);
            offered[k].extend(r.offered);
            drops[k].0 += r.queue_drops;
            drops[k].1 += r.tun_drops;
        }
    }
    println!(
        "\n3. senders shaped up 128kbit offering {:.0} kbit/s of {PACKET}-byte UDP packets, each to its own receiver;",
        OFFERED / 1e3
    );
    println!(
        "   achieved / 128 kbit over a {WINDOW} s window after {WARMUP} s warm-up (data-plane counters), {REPS} runs pooled (interleaved):"
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
            drops[k].0,
            drops[k].1
        );
    }
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
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
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
