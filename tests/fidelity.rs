//! The fidelity verdict on real runs (needs root): a light run is clean, a run that sends far
//! more packets than one forwarding thread can move is flagged, and `dataplane.csv`
//! holds every interval of each, summing to the data plane's own counters. One test runs
//! both, one after the other, so the light run never shares the machine with the flood; a
//! thread of the data plane's priority beside the light run tells a stalled machine apart.
//! Programs that wait for a CPU are flagged, and a node's own quota is not counted as a wait.
//! The tests of this file take the machine in turn (`MACHINE`): each judges its load.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::{Scenario, can_run_real_mode_with, real_run};
use p2plab::results::health::HEADER;
use serde_json::Value;

/// 300 pings, 100 a second, over 10 Mbit/s links.
const LIGHT: &str = r#"
let n = alloc_ip(2);
shape(n, #{ up: "10mbit", down: "10mbit", latency: "5ms" });
spawn(n[0], "ping -c 300 -i 0.01 -q -I {ip} " + n[1].ip).wait();
"#;

/// Two UDP floods of 60 kB datagrams: the senders' kernels cut each into 41 fragments, so
/// every cheap send is 41 packets for the data plane to read, time and write, far more
/// than one forwarding thread moves on any machine (10 Gbit/s links: the model drops none).
const FLOOD: &str = r#"
let n = alloc_ip(4);
shape(n, #{ up: "10gbit", down: "10gbit", latency: "1ms" });
for i in 0..2 {
    spawn(n[2 * i + 1], "iperf3 -s -1");
}
sleep("1s");
for i in 0..2 {
    spawn(n[2 * i], `iperf3 -u -b 0 -l 60000 -t 5 -c ${n[2 * i + 1].ip}`);
}
sleep("7s");
"#;

/// Held by each test of this file for its whole run.
static MACHINE: Mutex<()> = Mutex::new(());

/// One CPU-bound program on each of `jobs` nodes, for 4 s of wall time each, on nodes
/// limited to `cpu` cores (0: unlimited).
fn busy_loops(jobs: usize, cpu: f64) -> String {
    let limit = if cpu > 0.0 {
        format!("shape(n, #{{ cpu: {cpu} }});")
    } else {
        String::new()
    };
    format!(
        r#"
let n = alloc_ip({jobs});
{limit}
let loops = [];
for node in n {{
    loops.push(spawn(node, "python3 -c 'import time\nt = time.time() + 4\nwhile time.time() < t: pass'"));
}}
for l in loops {{ l.wait(); }}
"#
    )
}

/// `dataplane.csv` as numbers, one row per worker and interval; panics on a broken line.
fn read_health(path: &Path) -> Vec<Vec<f64>> {
    let text = std::fs::read_to_string(path).expect("dataplane.csv");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(HEADER));
    lines
        .map(|l| {
            let row: Vec<f64> = l.split(',').map(|v| v.parse().expect(l)).collect();
            assert_eq!(row.len(), 9, "{l}");
            row
        })
        .collect()
}

fn conformance(s: &Scenario) -> Value {
    let text = std::fs::read_to_string(s.out().join("summary.json")).unwrap();
    serde_json::from_str::<Value>(&text).unwrap()["conformance"].clone()
}

fn summary_counter(s: &Scenario, name: &str) -> u64 {
    let text = std::fs::read_to_string(s.out().join("summary.json")).unwrap();
    let summary: Value = serde_json::from_str(&text).unwrap();
    summary["dataplane"][0][name].as_u64().expect(name)
}

/// A baseline's p99 wake-up lateness above this says the machine stalled: a quiet one wakes
/// a real-time thread within some tens of µs.
const STALLED_NS: u64 = 500_000;

/// A thread at the data plane's real-time priority (where allowed) that sleeps to a deadline
/// every millisecond and records how late it woke: the machine's own lateness.
struct TimerProbe {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<u64>>,
}

struct Wakeups {
    count: usize,
    p99_ns: u64,
    max_ns: u64,
}

impl std::fmt::Debug for Wakeups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a thread of the same priority woke {:.2} ms late at p99, {:.2} ms at most, of {}",
            self.p99_ns as f64 / 1e6,
            self.max_ns as f64 / 1e6,
            self.count
        )
    }
}

impl TimerProbe {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let param = libc::sched_param { sched_priority: 10 };
            // SAFETY: a valid sched_param for the calling thread (pid 0).
            unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
            let mut late = Vec::new();
            let mut deadline = now_ns();
            while !flag.load(Ordering::Relaxed) {
                deadline += 1_000_000;
                let ts = libc::timespec {
                    tv_sec: (deadline / 1_000_000_000) as libc::time_t,
                    tv_nsec: (deadline % 1_000_000_000) as libc::c_long,
                };
                // SAFETY: an absolute sleep on the monotonic clock; `ts` outlives the call.
                unsafe {
                    libc::clock_nanosleep(
                        libc::CLOCK_MONOTONIC,
                        libc::TIMER_ABSTIME,
                        &ts,
                        std::ptr::null_mut(),
                    )
                };
                let woke = now_ns();
                late.push(woke.saturating_sub(deadline));
                deadline = deadline.max(woke);
            }
            late
        });
        TimerProbe { stop, thread }
    }

    fn finish(self) -> Wakeups {
        self.stop.store(true, Ordering::Relaxed);
        let mut late = self.thread.join().expect("timer probe");
        late.sort_unstable();
        let at = |q: f64| late[((late.len() - 1) as f64 * q) as usize];
        Wakeups {
            count: late.len(),
            p99_ns: at(0.99),
            max_ns: at(1.0),
        }
    }
}

fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC exists on every Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[test]
fn a_light_run_is_clean_and_a_flood_is_flagged() {
    if !can_run_real_mode_with(
        "a_light_run_is_clean_and_a_flood_is_flagged",
        &["ping", "iperf3"],
    ) {
        return;
    }
    let _machine = MACHINE.lock().unwrap_or_else(|p| p.into_inner());
    // A clean verdict needs the machine to wake the data plane within 1 ms. A shared virtual
    // machine now and then stalls for longer (CI saw a light run's p99 at 1.5 to 4.6 ms, at
    // 2.5 % of a core), and the verdict rightly flags that. So beside each light run a
    // thread of the same real-time priority times its own wake-ups: a flagged light run is
    // excused only when that baseline was late too, and the data plane not much later.
    let mut excused = Vec::new();
    let light = loop {
        let light = Scenario::new(LIGHT);
        let baseline = TimerProbe::start();
        let outcome = real_run(&light);
        let baseline = baseline.finish();
        for file in [
            "events.jsonl",
            "traffic.csv",
            "dataplane.csv",
            "summary.json",
            "nodes/10.0.0.1/stdout.log",
            "nodes/10.0.0.1/stderr.log",
        ] {
            assert!(light.out().join(file).is_file(), "a real run writes {file}");
        }
        let verdict = conformance(&light);
        if verdict["verdict"] == "clean" {
            assert!(
                outcome.verdict[0].starts_with("fidelity: clean"),
                "{:?}",
                outcome.verdict
            );
            break light;
        }
        let problems = verdict["problems"].as_array().unwrap();
        assert!(
            problems.iter().all(|p| {
                let p = p.as_str().unwrap();
                p.contains("late at the 99th percentile") || p.starts_with("the programs of")
            }),
            "only a stalled machine may flag a light run: {verdict:#}"
        );
        assert!(
            baseline.p99_ns > STALLED_NS,
            "the light run was flagged while a thread of the same priority woke on time \
             ({baseline:?}): {verdict:#}"
        );
        // Stalls hit both alike: the data plane is no later than twice the baseline's p99
        // (its 600 packets sample the tail more coarsely than the baseline's 4000 wake-ups)
        // plus the bound.
        let late = verdict["workers"][0]["late_p99_ns"].as_u64().unwrap();
        assert!(
            late <= 2 * baseline.p99_ns + 1_000_000,
            "the data plane was late by far more than the machine ({baseline:?}): {verdict:#}"
        );
        eprintln!("light run flagged on a stalling machine ({baseline:?}): {problems:?}");
        excused.push(baseline);
        if excused.len() == 5 {
            eprintln!(
                "the machine stalled through five light runs: a clean verdict was not seen, \
                 and each flag was the machine's"
            );
            break light;
        }
    };
    let rows = read_health(&light.out().join("dataplane.csv"));
    let timed: f64 = rows.iter().map(|r| r[2]).sum();
    assert_eq!(
        timed as u64,
        summary_counter(&light, "timed_packets"),
        "every timed packet is in one interval"
    );
    assert!(timed >= 600.0, "300 requests and 300 replies: {timed}");
    let seconds: Vec<f64> = rows.iter().map(|r| r[0]).collect();
    assert!(seconds.windows(2).all(|w| w[0] < w[1]), "{seconds:?}");

    let flood = Scenario::new(FLOOD);
    let outcome = real_run(&flood);
    let verdict = conformance(&flood);
    assert_eq!(verdict["verdict"], "flagged", "{verdict:#}");
    assert!(
        outcome.verdict[0].starts_with("fidelity: FLAGGED"),
        "{:?}",
        outcome.verdict
    );
    let problems = verdict["problems"].as_array().unwrap();
    // iperf3 may also wait for the core the data plane keeps busy: that is flagged too.
    assert!(
        problems.iter().all(|p| {
            let p = p.as_str().unwrap();
            p.starts_with("worker 0:") || p.starts_with("the programs of")
        }),
        "the data plane is blamed, not a link: {problems:?}"
    );
    let rows = read_health(&flood.out().join("dataplane.csv"));
    let busiest = rows.iter().map(|r| r[6] / 1e9).fold(0.0, f64::max);
    let overruns: f64 = rows.iter().map(|r| r[7]).sum();
    assert!(
        overruns > 0.0,
        "the kernel dropped what the data plane could not read: cpu {busiest}, overruns {overruns}"
    );
}

#[test]
fn programs_that_wait_for_a_cpu_are_flagged_and_a_quota_is_not_a_wait() {
    if !can_run_real_mode_with(
        "programs_that_wait_for_a_cpu_are_flagged_and_a_quota_is_not_a_wait",
        &["python3"],
    ) {
        return;
    }
    let _machine = MACHINE.lock().unwrap_or_else(|p| p.into_inner());
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    // Twice as many busy loops as cores: each waits about half the time it is ready to run.
    let jobs = 2 * cores;
    let crowded = Scenario::new(&busy_loops(jobs, 0.0));
    let outcome = real_run(&crowded);
    let verdict = conformance(&crowded);
    assert_eq!(verdict["verdict"], "flagged", "{verdict:#}");
    let problems: Vec<&str> = verdict["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    let expected = format!("the programs of {jobs} of {jobs} nodes waited for a CPU");
    assert!(
        problems.iter().any(|p| p.starts_with(&expected)),
        "{expected}: {problems:?}"
    );
    assert!(
        outcome.verdict.iter().any(|l| l.contains(&expected)),
        "{:?}",
        outcome.verdict
    );
    let wait = &verdict["cpu_wait"];
    assert_eq!(wait["nodes_waited"], jobs, "{wait:#}");
    assert!(wait["worst_share"].as_f64().unwrap() > 0.3, "{wait:#}");

    // One loop held to a fifth of a core: held back by its quota most of the time, which is
    // the node's model, not a wait for the machine.
    let held = Scenario::new(&busy_loops(1, 0.2));
    real_run(&held);
    let verdict = conformance(&held);
    assert_eq!(verdict["cpu_wait"]["nodes_waited"], 0, "{verdict:#}");
    let text = std::fs::read_to_string(held.out().join("summary.json")).unwrap();
    let usage = &serde_json::from_str::<Value>(&text).unwrap()["usage"][0];
    let throttled = usage["cpu_throttled_seconds"].as_f64().unwrap();
    let waited = usage["cpu_wait_seconds"].as_f64().unwrap();
    assert!(throttled > 2.0, "4 s at a fifth of a core: {usage:#}");
    assert!(waited < 0.4, "{usage:#}");
}
