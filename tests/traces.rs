//! Trace-driven links: rate traces in Mahimahi's format and delay traces, from scripts.
//! Dry-runs check how traces load and what errors say; real runs (root) check that iperf3
//! reaches a trace's rate, that per-second throughput follows a square wave, and that ping
//! follows a delay trace while a flow through it is never reordered.

mod common;

use std::path::Path;

use common::{Scenario, can_run_real_mode_with, node_file, of, ping_rtts, real_run};

/// A scenario with the repository's example traces next to it.
/// One lab at a time: the delay-trace test judges every ping within 1 ms, which the other
/// tests' iperf3 floods (two data planes at real-time priority on two cores) would break.
static ONE_LAB: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_lab() -> std::sync::MutexGuard<'static, ()> {
    ONE_LAB.lock().unwrap_or_else(|p| p.into_inner())
}

fn with_traces(text: &str) -> Scenario {
    let s = Scenario::new(text);
    let traces = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/traces");
    for entry in std::fs::read_dir(&traces).expect("scripts/traces") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, s.dir.path().join(path.file_name().unwrap())).expect("copy");
    }
    s
}

#[test]
fn a_trace_loads_once_and_each_node_gets_its_own_offset() {
    let s = with_traces(
        r#"
        let n = alloc_ip(4);
        shape(n, #{ down_trace: "square-10-2mbit.trace", up_trace: "lte-like.up" });
        shape(n[0], #{ down_trace: "square-10-2mbit.trace", trace_offset: "1.5s" });
        shape(n[1], #{ delay_trace: "delay-steps.trace" });
        shape(n[2], #{ down: "1mbit" });
        "#,
    );
    let events = s.run_ok();
    let loads = of(&events, "load_trace");
    assert_eq!(loads.len(), 3, "{loads:?}");
    // Up, down, then delay: in that order, each file once.
    assert_eq!(loads[0]["file"], "lte-like.up");
    assert_eq!(loads[1]["file"], "square-10-2mbit.trace");
    assert_eq!(loads[1]["kind"], "rate");
    assert_eq!(loads[1]["period"], 4.0);
    // 2 s at 10 Mbit/s and 2 s at 2 Mbit/s: 6 Mbit/s on average.
    assert_eq!(loads[1]["mean_rate"], 6_000_000);
    assert_eq!(loads[2]["kind"], "delay");
    assert_eq!(loads[2]["period"], 3.0);
    let shapes = of(&events, "shape");
    let offsets: Vec<f64> = shapes[..4]
        .iter()
        .map(|e| e["trace_offset"].as_f64().unwrap())
        .collect();
    // Drawn within the shortest period (4 s and 20 s: 4 s), and all different.
    assert!(
        offsets.iter().all(|&o| (0.0..4.0).contains(&o)),
        "{offsets:?}"
    );
    let mut distinct = offsets.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "{offsets:?}");
    assert_eq!(shapes[4]["trace_offset"], 1.5);
    assert_eq!(shapes[5]["delay_trace"], "delay-steps.trace");
    // The same seed draws the same offsets.
    let again = s.run_ok();
    assert_eq!(of(&again, "shape")[0], shapes[0]);
}

#[test]
fn trace_errors_say_which_file_line_and_what_was_expected() {
    let cases = [
        (
            r#"shape(alloc_ip(1), #{ down_trace: "delay-steps.trace" });"#,
            "delay-steps.trace:1: expected a whole number of milliseconds",
        ),
        (
            r#"shape(alloc_ip(1), #{ delay_trace: "const-12mbit.trace" });"#,
            "const-12mbit.trace:1: expected `<time ms> <latency ms>`, found a time only",
        ),
        (
            r#"shape(alloc_ip(1), #{ up: "1mbit", up_trace: "const-12mbit.trace" });"#,
            "give `up` or `up_trace`, not both",
        ),
        (
            r#"shape(alloc_ip(1), #{ trace_offset: "1s", loss: 0.1 });"#,
            "`trace_offset` without a trace",
        ),
        (
            r#"shape(alloc_ip(1), #{ down_trace: "missing.trace" });"#,
            "cannot read the down_trace file",
        ),
        (
            r#"shape(alloc_ip(1), #{ down_trace: 42 });"#,
            "`down_trace` takes a trace file's name",
        ),
        (
            r#"shape(alloc_ip(1), #{ down_trace: "unsorted.trace" });"#,
            "unsorted.trace:3: timestamps must be non-decreasing",
        ),
    ];
    for (text, needle) in cases {
        let s = with_traces(&format!("\n{text}\n"));
        std::fs::write(s.dir.path().join("unsorted.trace"), "1\n5\n3\n").unwrap();
        let err = s.run_err();
        assert!(err.contains("main.rhai:2:1"), "{text}: {err}");
        assert!(err.contains(needle), "{text}: {err}");
        // Nothing was applied: no shape event, no trace loaded.
        let events = s.events();
        assert!(of(&events, "shape").is_empty(), "{text}: {events:?}");
        assert!(of(&events, "load_trace").is_empty(), "{text}: {events:?}");
    }
}

/// The goodput a saturating TCP flow gets from `rate` bits/s of 1500-byte packets.
fn goodput(rate: f64) -> f64 {
    // 1448 payload bytes per packet: 20 IP + 20 TCP + 12 of timestamp option.
    rate * 1448.0 / 1500.0
}

fn iperf_received(s: &Scenario, ip: &str, file: &str) -> serde_json::Value {
    serde_json::from_str(&node_file(s, ip, file))
        .unwrap_or_else(|e| panic!("{ip}: iperf3 JSON: {e}"))
}

/// One run of two saturating iperf3 flows, over a constant trace and the LTE-like one:
/// each receiver's address, its trace's mean rate and the goodput iperf3 measured.
fn goodputs_over_traces() -> Vec<(&'static str, f64, f64)> {
    // The LTE-like trace over 20 s (one pass) averages 14.9 Mbit/s, from 1 to 30 Mbit/s.
    // Any 20 s window of a 20 s periodic trace holds the same opportunities, so the flow's
    // start time does not change its mean.
    let s = with_traces(
        r#"
        let n = alloc_ip(4);
        shape(n[1], #{ down_trace: "const-12mbit.trace" });
        shape(n[3], #{ down_trace: "lte-like.down", trace_offset: 0 });
        spawn(n[1], "iperf3 -s -1 -B {ip}");
        spawn(n[3], "iperf3 -s -1 -B {ip}");
        sleep(0.3);
        let a = spawn(n[0], `iperf3 -c ${n[1].ip} -B {ip} -t 8 -J > iperf.json`, #{ shell: true });
        let b = spawn(n[2], `iperf3 -c ${n[3].ip} -B {ip} -t 20 -J > iperf.json`, #{ shell: true });
        a.wait();
        b.wait();
        "#,
    );
    real_run(&s);
    let lte = std::fs::read_to_string(s.dir.path().join("lte-like.down")).unwrap();
    let lte_mean = lte.lines().count() as f64 * 12_000.0 / 20.0;
    [("10.0.0.1", 12e6), ("10.0.0.3", lte_mean)]
        .into_iter()
        .map(|(ip, rate)| {
            let json = iperf_received(&s, ip, "iperf.json");
            let got = json["end"]["sum_received"]["bits_per_second"]
                .as_f64()
                .unwrap();
            (ip, rate, got)
        })
        .collect()
}

#[test]
fn iperf3_reaches_the_mean_rate_of_a_trace() {
    if !can_run_real_mode_with("iperf3_reaches_the_mean_rate_of_a_trace", &["iperf3"]) {
        return;
    }
    let _lab = one_lab();
    // A trace's opportunity lapses when the data plane is late for it, so a host stall
    // (CI once lost 4.5 % of a 20 s run) only ever lowers the goodput. A second run is
    // allowed when one falls short; going above the trace's mean fails at once.
    const ATTEMPTS: usize = 2;
    for attempt in 1..=ATTEMPTS {
        let mut short = Vec::new();
        for (ip, rate, got) in goodputs_over_traces() {
            let want = goodput(rate);
            let err = (got - want) / want;
            eprintln!(
                "run {attempt}: {ip}: trace mean {rate:.0} bit/s, goodput {got:.0}, {:+.2} %",
                err * 100.0
            );
            assert!(
                err < 0.03,
                "{ip}: goodput {got:.0} bit/s is above a trace of mean {rate:.0} \
                 (want {want:.0}, {:+.1} %)",
                err * 100.0
            );
            if err <= -0.03 {
                short.push(format!(
                    "{ip}: goodput {got:.0} bit/s over a trace of mean {rate:.0}: want {want:.0} \
                     ({:+.1} %)",
                    err * 100.0
                ));
            }
        }
        if short.is_empty() {
            return;
        }
        assert!(attempt < ATTEMPTS, "{}", short.join("; "));
    }
}

#[test]
fn per_second_throughput_follows_a_square_wave_trace() {
    if !can_run_real_mode_with(
        "per_second_throughput_follows_a_square_wave_trace",
        &["iperf3"],
    ) {
        return;
    }
    let _lab = one_lab();
    // 2 s at 10 Mbit/s, 2 s at 2 Mbit/s, from the start of the trace when shaped at t = 0.
    let s = with_traces(
        r#"
        let n = alloc_ip(2);
        shape(n[1], #{ down_trace: "square-10-2mbit.trace", trace_offset: 0 });
        spawn(n[1], "iperf3 -s -1 -B {ip}");
        sleep(0.2);
        spawn(n[0], `iperf3 -c ${n[1].ip} -B {ip} -t 11.5`).wait();
        "#,
    );
    real_run(&s);
    let csv = std::fs::read_to_string(s.out().join("traffic.csv")).expect("traffic.csv");
    let mut seconds = Vec::new();
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f[1] == "10.0.0.2" {
            let t: f64 = f[0].parse().unwrap();
            let bytes: f64 = f[4].parse().unwrap();
            seconds.push((t, bytes * 8.0));
        }
    }
    // Judge the whole seconds well inside a phase: (1, 2], (3, 4], (5, 6], ...; a second
    // that straddles a change mixes both rates and the queue that built up.
    let mut judged = 0;
    for &(t, bits) in &seconds {
        if !(2.0..=12.0).contains(&t)
            || (t.round() - t).abs() > 0.01
            || !(t as u64).is_multiple_of(2)
        {
            continue;
        }
        let high = (t as u64 - 1) % 4 < 2;
        let want = if high { 10e6 } else { 2e6 };
        let err = (bits - want) / want;
        eprintln!(
            "second ending at {t}: {bits:.0} bit/s, want {want:.0}, {:+.2} %",
            err * 100.0
        );
        assert!(
            err.abs() < 0.05,
            "second ending at {t}: {bits:.0} bit/s received, want {want:.0} ({:+.1} %)\n{csv}",
            err * 100.0
        );
        judged += 1;
    }
    assert!(judged >= 5, "only {judged} seconds judged:\n{csv}");
}

#[test]
fn ping_follows_a_delay_trace_and_a_flow_is_never_reordered() {
    if !can_run_real_mode_with(
        "ping_follows_a_delay_trace_and_a_flow_is_never_reordered",
        &["ping", "python3", "iperf3", "nstat"],
    ) {
        return;
    }
    let _lab = one_lab();
    // Node 2's latency: 20 ms, then 80, then 40, one second each, repeating. Node 3 sends
    // numbered datagrams every millisecond through the same link (the 80 → 40 step would
    // reorder them if packets were not held behind earlier ones); node 4 checks the order.
    // A TCP flow runs through it too: the lab's kernel counts the segments it received out of
    // order (`TcpExtTCPOFOQueue`) and the reorderings it detected.
    let s = with_traces(
        r#"
        const REORDER = "TcpExtTCPOFOQueue TcpExtTCPSACKReorder TcpExtTCPTSReorder";
        let n = alloc_ip(4);
        shape(n[1], #{ delay_trace: "delay-steps.trace", trace_offset: 0 });
        shape(n[3], #{ delay_trace: "delay-steps.trace", trace_offset: 0 });
        let rx = spawn(n[3], `python3 order.py recv {ip}`);
        let tcp_rx = spawn(n[3], "iperf3 -s -1 -B {ip}");
        spawn(n[0], `nstat -az ${REORDER} > before.txt`, #{ shell: true }).wait();
        sleep(0.2);
        let tx = spawn(n[2], `python3 order.py send ${n[3].ip}`);
        let tcp_tx = spawn(n[2], `iperf3 -c ${n[3].ip} -B {ip} -b 50M -t 5 -J > iperf.json`,
                           #{ shell: true });
        spawn(n[0], `ping -c 60 -i 0.1 -I {ip} ${n[1].ip}`).wait();
        tx.wait();
        rx.wait();
        tcp_tx.wait();
        tcp_rx.wait();
        spawn(n[0], `nstat -az ${REORDER} > after.txt`, #{ shell: true }).wait();
        "#,
    );
    std::fs::write(
        s.dir.path().join("order.py"),
        r#"
import socket, struct, sys, time
mode, ip = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
if mode == "send":
    for i in range(4000):
        s.sendto(struct.pack("!I", i), (ip, 9000))
        time.sleep(0.001)
    s.sendto(struct.pack("!I", 0xFFFFFFFF), (ip, 9000))
else:
    s.bind((ip, 9000))
    s.settimeout(20)
    last, got, out_of_order = -1, 0, 0
    while True:
        (i,) = struct.unpack("!I", s.recv(4))
        if i == 0xFFFFFFFF:
            break
        got += 1
        if i < last:
            out_of_order += 1
        last = max(last, i)
    print(f"received {got} out_of_order {out_of_order}")
"#,
    )
    .unwrap();
    // Programs run in their node's folder: name the helper by its full path.
    let helper = s.dir.path().join("order.py");
    let text = std::fs::read_to_string(&s.path).unwrap();
    std::fs::write(
        &s.path,
        text.replace("order.py", &helper.display().to_string()),
    )
    .unwrap();
    real_run(&s);
    let rtts = ping_rtts(&node_file(&s, "10.0.0.1", "stdout.log"));
    assert!(rtts.len() >= 55, "{rtts:?}");
    // A ping's RTT is node 2's latency when the request leaves plus its latency when the
    // reply leaves: 2 × one step's latency, or the sum of two consecutive steps.
    let steps = [20.0, 80.0, 40.0];
    let possible: Vec<f64> = (0..3)
        .flat_map(|i| [2.0 * steps[i], steps[i] + steps[(i + 1) % 3]])
        .collect();
    let mut pure = [0; 3];
    let mut off = 0;
    for &rtt in &rtts {
        let nearest = possible
            .iter()
            .map(|p| (rtt - p).abs())
            .fold(f64::INFINITY, f64::min);
        // Every ping follows the trace; within 1 ms all but a few, which a busy machine
        // delays by a few ms (the lab's programs share its two cores).
        assert!(
            nearest < 10.0,
            "RTT {rtt} ms is none of {possible:?}: {rtts:?}"
        );
        // ping prints an RTT of 100 ms or more in whole ms: half a ms more of tolerance.
        let printed = if rtt >= 100.0 { 0.5 } else { 0.0 };
        off += usize::from(nearest >= 1.0 + printed);
        for (i, step) in steps.iter().enumerate() {
            pure[i] += usize::from((rtt - 2.0 * step).abs() < 1.0);
        }
    }
    eprintln!(
        "pings at 2 × each step {pure:?} of {}; RTTs {rtts:?}",
        rtts.len()
    );
    // At most one in ten: a fresh-clone CI run here delayed 4 of 60 by 1.5 to 3 ms while
    // the machine ran other tests (each ping still within 10 ms of the trace, as above).
    assert!(
        off * 10 <= rtts.len(),
        "{off} of {} RTTs more than 1 ms off the trace: {rtts:?}",
        rtts.len()
    );
    // Each step shows for most of its second (ten pings, minus those that straddle).
    assert!(
        pure.iter().all(|&n| n >= 10),
        "pings per step {pure:?}: {rtts:?}"
    );
    let log = node_file(&s, "10.0.0.4", "stdout.log");
    let line = log.lines().find(|l| l.starts_with("received")).expect(&log);
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(nums[0] >= 3900, "{line}");
    assert_eq!(nums[1], 0, "datagrams reordered: {line}");
    let tcp = iperf_received(&s, "10.0.0.3", "iperf.json");
    let bytes = tcp["end"]["sum_received"]["bytes"].as_f64().unwrap();
    assert!(bytes > 10e6, "the TCP flow carried only {bytes} bytes");
    let counters = |file| -> Vec<(String, u64)> {
        node_file(&s, "10.0.0.1", file)
            .lines()
            .filter(|l| l.starts_with("TcpExt"))
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f[0].to_string(), f[1].parse().unwrap())
            })
            .collect()
    };
    let (before, after) = (counters("before.txt"), counters("after.txt"));
    assert_eq!(before.len(), 3, "{before:?}");
    eprintln!("TCP {bytes} bytes; reordering counters before {before:?}, after {after:?}");
    assert_eq!(before, after, "the TCP flow saw reordering");
}
