//! The fidelity verdict of a run: did the emulator keep up? Fed once per interval with each
//! node's traffic and each data plane's health (`observe`), it judges, against stated bounds,
//! how late packets left, how busy the data-plane thread was, whether the kernel dropped
//! packets it did not read in time or refused its writes, and whether a node received faster
//! than its downlink allows; and, from what each node used (`programs`), whether its
//! programs waited for a CPU the machine did not have. Pure logic: the controller feeds it, `summary.json` stores it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::Serialize;

use crate::experiment::{DataplaneHealth, NodeCounters};
use crate::units::{Nanos, SEC};

/// What a clean run stays within.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bounds {
    /// Packet lateness at the 99th percentile, over the run, per worker.
    pub late_p99_ns: u64,
    /// Share of one core the data-plane thread may use in any second.
    pub cpu_share: f64,
    /// How far above its configured rate a link may seem to carry (timing of the readings).
    pub rate_tolerance: f64,
    /// Share of the time a node's programs were ready to run that they may have waited for
    /// a CPU (beyond their own quota).
    pub cpu_wait_share: f64,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            late_p99_ns: 1_000_000,
            cpu_share: 0.9,
            rate_tolerance: 0.05,
            cpu_wait_share: 0.1,
        }
    }
}

/// Below this wait per second of a node's life (10 ms a second) its programs are not judged:
/// a node that barely runs has a high share from wake-up and fork latency alone (on an idle
/// 2-core VM, a node starting `sh` and `curl` every second waits up to 2.2 ms a second, 20 %).
const MIN_WAIT_PER_SECOND: f64 = 10e-3;

/// How long a node's programs ran and waited for a CPU, from its `usage.json`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProgramWait {
    pub ip: Ipv4Addr,
    /// The node's life, since its first program or limit.
    pub seconds: f64,
    pub cpu_seconds: f64,
    /// Ready to run but not running, beyond the node's own CPU quota.
    pub wait_seconds: f64,
}

impl ProgramWait {
    /// The share of the time its programs were ready to run that they waited.
    fn share(&self) -> f64 {
        let ready = self.cpu_seconds + self.wait_seconds;
        if ready > 0.0 {
            self.wait_seconds / ready
        } else {
            0.0
        }
    }

    /// Its wait per second of its life.
    fn per_second(&self) -> f64 {
        self.wait_seconds / self.seconds.max(1e-9)
    }
}

/// Below this many timed packets a worker's 99th percentile is its few largest values, noise
/// of the machine rather than a property of the data plane: it is shown, not judged.
pub const MIN_TIMED_PACKETS: u64 = 100;

/// Intervals shorter than this (the run's last, partial one) are too short to judge a rate
/// or a CPU share.
const MIN_INTERVAL: Nanos = SEC / 2;

/// How many of a node's busiest intervals its throughput is averaged over.
const BUSIEST: usize = 3;

/// One node's traffic during an interval, with the rates in force throughout it (`None`:
/// unlimited, or changed during the interval, so not judged).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeInterval {
    pub ip: Ipv4Addr,
    pub counts: NodeCounters,
    pub up_bps: Option<u64>,
    pub down_bps: Option<u64>,
}

/// Collects the observations of one run.
#[derive(Debug, Default)]
pub struct Conformance {
    bounds: Bounds,
    workers: BTreeMap<u32, WorkerRecord>,
    nodes: BTreeMap<Ipv4Addr, NodeRecord>,
    programs: Vec<ProgramWait>,
}

#[derive(Debug, Default)]
struct WorkerRecord {
    seconds: f64,
    /// Readings of the health (about one a second; the last one may be shorter).
    intervals: u64,
    timed_packets: u64,
    worst_late_p99_ns: u64,
    late_max_ns: u64,
    /// Intervals whose p99 was above the bound.
    late_intervals: u64,
    max_cpu_share: f64,
    /// Intervals at or above the CPU bound.
    busy_intervals: u64,
    overruns: u64,
    write_errors: u64,
}

#[derive(Debug, Default)]
struct NodeRecord {
    /// Offered load of the uplink, bits/s, with the rate in force.
    up: Busiest,
    /// Delivered to the node, bits/s, with its downlink rate.
    down: Busiest,
}

/// The busiest intervals of one direction: (achieved bits/s, configured bits/s), highest first.
#[derive(Debug, Default)]
struct Busiest(Vec<(f64, Option<u64>)>);

impl Busiest {
    fn offer(&mut self, bps: f64, rate: Option<u64>) {
        if bps <= 0.0 {
            return;
        }
        let at = self.0.partition_point(|(b, _)| *b >= bps);
        if at < BUSIEST {
            self.0.insert(at, (bps, rate));
            self.0.truncate(BUSIEST);
        }
    }

    fn mean(&self) -> Option<f64> {
        (!self.0.is_empty())
            .then(|| self.0.iter().map(|(b, _)| b).sum::<f64>() / self.0.len() as f64)
    }

    /// The rate of the busiest interval, if one was configured then.
    fn rate(&self) -> Option<u64> {
        self.0.first().and_then(|(_, r)| *r)
    }

    /// The mean of achieved / configured over the busiest intervals that had a rate.
    fn ratio(&self) -> Option<f64> {
        let judged: Vec<f64> = self
            .0
            .iter()
            .filter_map(|(b, r)| r.map(|r| b / r as f64))
            .collect();
        (!judged.is_empty()).then(|| judged.iter().sum::<f64>() / judged.len() as f64)
    }
}

impl Conformance {
    pub fn new(bounds: Bounds) -> Self {
        Conformance {
            bounds,
            ..Conformance::default()
        }
    }

    /// One interval of `len` nanoseconds: the nodes that moved traffic in it, and the health
    /// of each worker's data plane during it.
    pub fn observe(
        &mut self,
        len: Nanos,
        nodes: &[NodeInterval],
        health: &[(u32, DataplaneHealth)],
    ) {
        let whole = len >= MIN_INTERVAL;
        let secs = len as f64 / SEC as f64;
        for (worker, h) in health {
            let w = self.workers.entry(*worker).or_default();
            w.seconds += secs;
            w.intervals += 1;
            w.timed_packets += h.timed_packets;
            w.worst_late_p99_ns = w.worst_late_p99_ns.max(h.late_p99_ns);
            w.late_max_ns = w.late_max_ns.max(h.late_max_ns);
            if h.late_p99_ns > self.bounds.late_p99_ns {
                w.late_intervals += 1;
            }
            if whole {
                let share = h.cpu_ns as f64 / len as f64;
                w.max_cpu_share = w.max_cpu_share.max(share);
                if share >= self.bounds.cpu_share {
                    w.busy_intervals += 1;
                }
            }
            w.overruns += h.overruns;
            w.write_errors += h.write_errors;
        }
        for n in nodes {
            let record = self.nodes.entry(n.ip).or_default();
            if whole {
                record
                    .up
                    .offer(n.counts.sent_bytes as f64 * 8.0 / secs, n.up_bps);
                record
                    .down
                    .offer(n.counts.recv_bytes as f64 * 8.0 / secs, n.down_bps);
            }
        }
    }

    /// What each node's programs used over the run, read once they ended.
    pub fn programs(&mut self, waits: Vec<ProgramWait>) {
        self.programs = waits;
    }

    /// The verdict. `run_p99` gives each worker's lateness p99 over the whole run, as its
    /// data plane reported it when it stopped; a worker missing there is judged by its worst
    /// interval instead.
    pub fn verdict(&self, run_p99: &BTreeMap<u32, u64>) -> Verdict {
        let b = self.bounds;
        let mut problems = Vec::new();
        let workers: Vec<WorkerVerdict> = self
            .workers
            .iter()
            .map(|(&worker, w)| {
                let late_p99_ns = run_p99.get(&worker).copied().unwrap_or(w.worst_late_p99_ns);
                let judged = w.timed_packets >= MIN_TIMED_PACKETS;
                if judged && late_p99_ns > b.late_p99_ns {
                    problems.push(format!(
                        "worker {worker}: packets left {} late at the 99th percentile (bound {}); \
                         {} of {} readings ({:.0} s) above it",
                        ms(late_p99_ns),
                        ms(b.late_p99_ns),
                        w.late_intervals,
                        w.intervals,
                        w.seconds
                    ));
                }
                if w.busy_intervals > 0 {
                    problems.push(format!(
                        "worker {worker}: the data plane used up to {:.0} % of a core, {} s at or \
                         above {:.0} %: it was close to falling behind",
                        w.max_cpu_share * 100.0,
                        w.busy_intervals,
                        b.cpu_share * 100.0
                    ));
                }
                if w.overruns > 0 {
                    problems.push(format!(
                        "worker {worker}: the kernel dropped {} packets the data plane did not \
                         read in time (its TUN queue was full)",
                        w.overruns
                    ));
                }
                if w.write_errors > 0 {
                    problems.push(format!(
                        "worker {worker}: {} packets could not be written back to the kernel",
                        w.write_errors
                    ));
                }
                WorkerVerdict {
                    worker,
                    seconds: w.seconds,
                    timed_packets: w.timed_packets,
                    late_p99_ns,
                    late_judged: judged,
                    worst_late_p99_ns: w.worst_late_p99_ns,
                    late_max_ns: w.late_max_ns,
                    late_seconds: w.late_intervals,
                    max_cpu_share: w.max_cpu_share,
                    overruns: w.overruns,
                    write_errors: w.write_errors,
                }
            })
            .collect();
        let nodes: Vec<NodeVerdict> = self
            .nodes
            .iter()
            .map(|(ip, n)| {
                let down_ratio = n.down.ratio();
                let fast = down_ratio.is_some_and(|r| r > 1.0 + b.rate_tolerance);
                if fast {
                    problems.push(format!(
                        "{ip} received {} in its busiest seconds, {:+.0} % of its downlink's rate \
                         (tolerance {:.0} %)",
                        mbit(n.down.mean().unwrap_or(0.0)),
                        (down_ratio.unwrap_or(1.0) - 1.0) * 100.0,
                        b.rate_tolerance * 100.0
                    ));
                }
                NodeVerdict {
                    ip: *ip,
                    up_bps: n.up.rate(),
                    up_busiest_bps: n.up.mean().map(|b| b.round() as u64),
                    down_bps: n.down.rate(),
                    down_busiest_bps: n.down.mean().map(|b| b.round() as u64),
                    down_ratio,
                    ok: !fast,
                }
            })
            .collect();
        let cpu_wait = self.cpu_wait(&mut problems);
        Verdict {
            measured: true,
            verdict: if problems.is_empty() {
                "clean"
            } else {
                "flagged"
            },
            why: None,
            bounds: Some(b),
            problems,
            workers,
            nodes,
            cpu_wait,
        }
    }

    /// Judges the programs' waits for a CPU, adding the problem if any node's waited too long.
    fn cpu_wait(&self, problems: &mut Vec<String>) -> Option<CpuWaitVerdict> {
        if self.programs.is_empty() {
            return None;
        }
        let bound = self.bounds.cpu_wait_share;
        let waited: Vec<&ProgramWait> = self
            .programs
            .iter()
            .filter(|p| p.share() > bound && p.per_second() > MIN_WAIT_PER_SECOND)
            .collect();
        let worst = self
            .programs
            .iter()
            .max_by(|a, b| a.share().total_cmp(&b.share()))?;
        if let Some(worst_waited) = waited.iter().max_by(|a, b| a.share().total_cmp(&b.share())) {
            problems.push(format!(
                "the programs of {} of {} nodes waited for a CPU more than {:.0} % of the time \
                 they were ready to run (worst: {}, {:.0} %, {:.0} ms a second): the machine was \
                 busy, so what they measured includes its other work, not only the network",
                waited.len(),
                self.programs.len(),
                bound * 100.0,
                worst_waited.ip,
                worst_waited.share() * 100.0,
                worst_waited.per_second() * 1e3
            ));
        }
        Some(CpuWaitVerdict {
            nodes: self.programs.len(),
            nodes_waited: waited.len(),
            worst_ip: worst.ip,
            worst_share: worst.share(),
            worst_ms_per_second: worst.per_second() * 1e3,
        })
    }
}

/// How the nodes' programs waited for a CPU: the nodes that ran programs, those that waited
/// beyond the bound, and the node that waited the largest share of its ready time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CpuWaitVerdict {
    pub nodes: usize,
    pub nodes_waited: usize,
    pub worst_ip: Ipv4Addr,
    pub worst_share: f64,
    pub worst_ms_per_second: f64,
}

/// `conformance` in `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub measured: bool,
    /// "clean", "flagged" or "not measured".
    pub verdict: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bounds: Option<Bounds>,
    pub problems: Vec<String>,
    pub workers: Vec<WorkerVerdict>,
    pub nodes: Vec<NodeVerdict>,
    /// `None` where no node ran programs, or their usage was not read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_wait: Option<CpuWaitVerdict>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerVerdict {
    pub worker: u32,
    pub seconds: f64,
    pub timed_packets: u64,
    /// Over the whole run.
    pub late_p99_ns: u64,
    /// False below `MIN_TIMED_PACKETS`.
    pub late_judged: bool,
    pub worst_late_p99_ns: u64,
    pub late_max_ns: u64,
    pub late_seconds: u64,
    pub max_cpu_share: f64,
    pub overruns: u64,
    pub write_errors: u64,
}

/// A node's busiest seconds: the uplink's offered load (shown, not judged: it counts packets
/// its queue then dropped) and what the downlink delivered (judged against its rate).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeVerdict {
    pub ip: Ipv4Addr,
    pub up_bps: Option<u64>,
    pub up_busiest_bps: Option<u64>,
    pub down_bps: Option<u64>,
    pub down_busiest_bps: Option<u64>,
    pub down_ratio: Option<f64>,
    pub ok: bool,
}

impl Verdict {
    /// The verdict of a run that moved no packets.
    pub fn not_measured(why: &str) -> Verdict {
        Verdict {
            measured: false,
            verdict: "not measured",
            why: Some(why.into()),
            bounds: None,
            problems: Vec::new(),
            workers: Vec::new(),
            nodes: Vec::new(),
            cpu_wait: None,
        }
    }

    pub fn is_clean(&self) -> bool {
        self.verdict == "clean"
    }

    /// The verdict for the terminal: one line, and one per problem.
    pub fn lines(&self) -> Vec<String> {
        if !self.measured {
            let why = self.why.as_deref().unwrap_or("");
            return vec![format!("fidelity: not measured ({why})")];
        }
        if self.problems.is_empty() {
            let worst = self
                .workers
                .iter()
                .map(|w| w.late_p99_ns)
                .max()
                .unwrap_or(0);
            let cpu = self
                .workers
                .iter()
                .map(|w| w.max_cpu_share)
                .fold(0.0, f64::max);
            let bound = self.bounds.map_or(0, |b| b.late_p99_ns);
            let judged = self.workers.iter().any(|w| w.late_judged);
            let late = if judged {
                format!("packet lateness p99 {} (bound {})", ms(worst), ms(bound))
            } else {
                format!("too few packets to judge lateness (p99 {})", ms(worst))
            };
            return vec![format!(
                "fidelity: clean: {late}, data plane at most {:.0} % of a core, no overruns",
                cpu * 100.0
            )];
        }
        let mut lines = vec![format!(
            "fidelity: FLAGGED, {} problem{}:",
            self.problems.len(),
            if self.problems.len() == 1 { "" } else { "s" }
        )];
        lines.extend(self.problems.iter().map(|p| format!("  - {p}")));
        lines
    }
}

fn ms(ns: u64) -> String {
    if ns < 1_000_000 {
        format!("{:.3} ms", ns as f64 / 1e6)
    } else {
        format!("{:.1} ms", ns as f64 / 1e6)
    }
}

fn mbit(bps: f64) -> String {
    format!("{:.2} Mbit/s", bps / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn health(timed: u64, p99: u64, cpu_ns: u64) -> DataplaneHealth {
        DataplaneHealth {
            timed_packets: timed,
            late_p50_ns: p99 / 2,
            late_p99_ns: p99,
            late_max_ns: p99 * 2,
            cpu_ns,
            ..DataplaneHealth::default()
        }
    }

    fn received(ip: Ipv4Addr, bytes: u64, down: Option<u64>) -> NodeInterval {
        NodeInterval {
            ip,
            counts: NodeCounters {
                recv_bytes: bytes,
                ..NodeCounters::ZERO
            },
            up_bps: None,
            down_bps: down,
        }
    }

    #[test]
    fn a_light_run_is_clean() {
        let mut c = Conformance::new(Bounds::default());
        for _ in 0..10 {
            c.observe(
                SEC,
                &[received(B, 240_000, Some(2_000_000))],
                &[(0, health(200, 40_000, 20_000_000))],
            );
        }
        let v = c.verdict(&BTreeMap::from([(0, 45_000)]));
        assert!(v.is_clean(), "{:?}", v.problems);
        assert_eq!(
            v.workers[0].late_p99_ns, 45_000,
            "the run's p99 is the stopped data plane's"
        );
        assert_eq!(v.workers[0].timed_packets, 2000);
        assert!((v.workers[0].max_cpu_share - 0.02).abs() < 1e-9);
        assert_eq!(v.nodes[0].down_busiest_bps, Some(1_920_000));
        assert_eq!(v.nodes[0].down_bps, Some(2_000_000));
        assert!(v.lines()[0].starts_with("fidelity: clean: packet lateness p99 0.045 ms"));
    }

    #[test]
    fn late_packets_a_busy_core_and_overruns_are_flagged() {
        let mut c = Conformance::new(Bounds::default());
        let mut overloaded = health(50_000, 4_000_000, 990_000_000);
        overloaded.overruns = 1234;
        overloaded.write_errors = 2;
        c.observe(
            SEC,
            &[],
            &[(0, overloaded), (1, health(500, 10_000, 1_000_000))],
        );
        let v = c.verdict(&BTreeMap::new());
        assert_eq!(v.verdict, "flagged");
        assert_eq!(v.problems.len(), 4, "{:#?}", v.problems);
        assert!(
            v.problems.iter().all(|p| p.starts_with("worker 0:")),
            "worker 1 is fine"
        );
        assert!(v.problems[0].contains("4.0 ms late"), "{}", v.problems[0]);
        assert!(
            v.problems[1].contains("99 % of a core"),
            "{}",
            v.problems[1]
        );
        assert!(v.problems[2].contains("1234 packets"), "{}", v.problems[2]);
        assert!(v.problems[3].contains("2 packets could not be written"));
        assert_eq!(v.lines().len(), 5);
        assert!(v.lines()[0].starts_with("fidelity: FLAGGED, 4 problems"));
    }

    #[test]
    fn a_few_late_packets_are_shown_not_judged() {
        let mut c = Conformance::new(Bounds::default());
        c.observe(SEC, &[], &[(0, health(40, 3_000_000, 1_000))]);
        let v = c.verdict(&BTreeMap::new());
        assert!(v.is_clean());
        assert!(!v.workers[0].late_judged);
        assert!(v.lines()[0].contains("too few packets"), "{}", v.lines()[0]);
    }

    #[test]
    fn receiving_faster_than_the_downlink_is_flagged_within_tolerance_not() {
        let mut c = Conformance::new(Bounds::default());
        // 2 Mbit/s downlink: A at +4 % (reading jitter), B at +20 %.
        for _ in 0..3 {
            c.observe(
                SEC,
                &[
                    received(A, 260_000, Some(2_000_000)),
                    received(B, 300_000, Some(2_000_000)),
                ],
                &[],
            );
        }
        let v = c.verdict(&BTreeMap::new());
        assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
        assert!(v.problems[0].starts_with("10.0.0.2 received 2.40 Mbit/s"));
        assert!(v.problems[0].contains("+20 %"), "{}", v.problems[0]);
        assert_eq!((v.nodes[0].ok, v.nodes[1].ok), (true, false));
    }

    #[test]
    fn the_busiest_intervals_are_averaged_and_short_or_unlimited_ones_not_judged() {
        let mut c = Conformance::new(Bounds::default());
        for bytes in [10_000, 250_000, 240_000, 230_000, 20_000] {
            c.observe(SEC, &[received(A, bytes, Some(2_000_000))], &[]);
        }
        // A last, partial interval that would look far too fast if it counted.
        c.observe(SEC / 10, &[received(A, 200_000, Some(2_000_000))], &[]);
        // Unlimited: shown, never judged.
        c.observe(SEC, &[received(B, 10_000_000, None)], &[]);
        let v = c.verdict(&BTreeMap::new());
        assert!(v.is_clean(), "{:?}", v.problems);
        assert_eq!(
            v.nodes[0].down_busiest_bps,
            Some(1_920_000),
            "mean of the top three"
        );
        assert_eq!((v.nodes[1].down_bps, v.nodes[1].down_ratio), (None, None));
    }

    fn program(ip: Ipv4Addr, seconds: f64, cpu_seconds: f64, wait_seconds: f64) -> ProgramWait {
        ProgramWait {
            ip,
            seconds,
            cpu_seconds,
            wait_seconds,
        }
    }

    #[test]
    fn programs_that_waited_for_a_cpu_are_flagged_short_waits_of_idle_ones_not() {
        let mut c = Conformance::new(Bounds::default());
        c.observe(SEC, &[], &[(0, health(200, 40_000, 20_000_000))]);
        c.programs(vec![
            // A `curl` a second on an idle machine: a quarter of its ready time waiting, from
            // wake-up and fork latency, but 2.2 ms a second.
            program(A, 300.0, 2.0, 0.66),
            // Ready for 100 s, waiting 20 of them: 20 %, 100 ms a second.
            program(B, 200.0, 80.0, 20.0),
        ]);
        let v = c.verdict(&BTreeMap::new());
        assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
        assert!(
            v.problems[0]
                .starts_with("the programs of 1 of 2 nodes waited for a CPU more than 10 %"),
            "{}",
            v.problems[0]
        );
        assert!(
            v.problems[0].contains("10.0.0.2, 20 %, 100 ms a second"),
            "{}",
            v.problems[0]
        );
        let wait = v.cpu_wait.expect("judged");
        assert_eq!((wait.nodes, wait.nodes_waited), (2, 1));
        assert_eq!(wait.worst_ip, A, "the largest share, judged or not");
    }

    #[test]
    fn programs_within_the_bound_keep_a_run_clean() {
        let mut c = Conformance::new(Bounds::default());
        c.observe(SEC, &[], &[(0, health(200, 40_000, 20_000_000))]);
        c.programs(vec![program(A, 100.0, 50.0, 5.0)]);
        let v = c.verdict(&BTreeMap::new());
        assert!(v.is_clean(), "{:?}", v.problems);
        assert_eq!(v.cpu_wait.map(|w| w.nodes_waited), Some(0));
    }

    #[test]
    fn a_dry_run_is_not_measured() {
        let v = Verdict::not_measured("a dry-run moves no packets");
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["verdict"], "not measured");
        assert_eq!(json["measured"], false);
        assert!(json.get("bounds").is_none());
        assert_eq!(
            v.lines(),
            ["fidelity: not measured (a dry-run moves no packets)"]
        );
    }
}
