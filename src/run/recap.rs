//! What the terminal says when a run ends: the lab's size, how its processes ended, the
//! traffic, the verdict, where the results are, how to plot and replay them. Text only; the
//! command line prints it.

use std::collections::BTreeMap;

use super::RunOutcome;
use super::progress::bytes;
use crate::experiment::{ExitStatus, ProcStatus, signal_name};
use crate::units::secs;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    DryRun,
    Real,
}

/// The end summary, one line each:
///
/// ```text
/// run finished at 15.581 s: 3 nodes (0 failed), 13 events
/// procs: 2 exited 0, 1 killed by SIGTERM
/// traffic: 48.1 kB moved
/// results: results/shaped-20261125-210520
/// report: p2plab report results/shaped-20261125-210520
/// seed 1: --seed 1 repeats the script's random choices and the links' loss and jitter, not the programs' own behaviour
/// ```
///
/// A dry-run has no traffic line, and its seed replays all of it. Verdict lines come after
/// the traffic.
pub fn end_summary(mode: RunMode, o: &RunOutcome) -> Vec<String> {
    let r = &o.report;
    let name = match mode {
        RunMode::DryRun => "dry-run",
        RunMode::Real => "run",
    };
    let mut lines = vec![
        format!(
            "{name} finished at {:.3} s: {} nodes ({} failed), {} events",
            secs(r.end_time),
            r.nodes,
            r.failed,
            r.events
        ),
        format!("procs: {}", procs_line(&r.procs)),
    ];
    if mode == RunMode::Real {
        let moved = r.traffic.iter().map(|(_, c)| c.recv_bytes).sum::<u64>();
        lines.push(format!("traffic: {} moved", bytes(moved)));
    }
    lines.extend(o.verdict.iter().cloned());
    if let Some(dir) = &o.results {
        let dir = dir.display().to_string();
        lines.push(format!("results: {dir}"));
        lines.push(format!(
            "report: p2plab report {}",
            shell_words::quote(&dir)
        ));
    }
    let seed = o.seed;
    lines.push(match mode {
        RunMode::DryRun => format!("seed {seed}: replay with --seed {seed}"),
        RunMode::Real => format!(
            "seed {seed}: --seed {seed} repeats the script's random choices and the links' \
             loss and jitter, not the programs' own behaviour"
        ),
    });
    lines
}

/// `2 exited 0, 1 exited 1, 5 killed by SIGKILL`: exit codes in order, then signals, then
/// those whose end was never heard of (a lost worker).
pub fn procs_line(procs: &[ProcStatus]) -> String {
    #[derive(PartialEq, Eq, PartialOrd, Ord)]
    enum End {
        Code(i32),
        Signal(i32),
        Running,
    }
    let mut tally = BTreeMap::new();
    for status in procs {
        let end = match status {
            ProcStatus::Exited(ExitStatus::Code(c)) => End::Code(*c),
            ProcStatus::Exited(ExitStatus::Signal(s)) => End::Signal(*s),
            ProcStatus::Running => End::Running,
        };
        *tally.entry(end).or_insert(0usize) += 1;
    }
    if tally.is_empty() {
        return "none".into();
    }
    tally
        .into_iter()
        .map(|(end, n)| match end {
            End::Code(c) => format!("{n} exited {c}"),
            End::Signal(s) => format!("{n} killed by {}", signal_name(s)),
            End::Running => format!("{n} never reported an end"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::NodeCounters;
    use crate::script::ScriptReport;
    use std::net::Ipv4Addr;

    fn outcome() -> RunOutcome {
        let counters = |recv_bytes| NodeCounters {
            recv_bytes,
            sent_bytes: 7,
            ..NodeCounters::default()
        };
        RunOutcome {
            seed: 42,
            results: Some("results/my run-20261201".into()),
            report: ScriptReport {
                end_time: 12_345_678_901,
                traffic: vec![
                    (Ipv4Addr::new(10, 0, 0, 1), counters(1_000_000)),
                    (Ipv4Addr::new(10, 0, 0, 2), counters(200_000)),
                ],
                events: 17,
                unread_params: Vec::new(),
                pending_callbacks: 0,
                nodes: 3,
                failed: 1,
                procs: vec![
                    ProcStatus::Exited(ExitStatus::Signal(9)),
                    ProcStatus::Exited(ExitStatus::Code(0)),
                    ProcStatus::Exited(ExitStatus::Code(0)),
                ],
            },
            verdict: vec!["fidelity: good".into()],
        }
    }

    #[test]
    fn real_summary() {
        assert_eq!(
            end_summary(RunMode::Real, &outcome()),
            [
                "run finished at 12.346 s: 3 nodes (1 failed), 17 events",
                "procs: 2 exited 0, 1 killed by SIGKILL",
                "traffic: 1.2 MB moved",
                "fidelity: good",
                "results: results/my run-20261201",
                "report: p2plab report 'results/my run-20261201'",
                "seed 42: --seed 42 repeats the script's random choices and the links' loss \
                 and jitter, not the programs' own behaviour",
            ]
        );
    }

    #[test]
    fn dry_run_summary() {
        let mut o = outcome();
        o.verdict.clear();
        o.results = Some("out".into());
        assert_eq!(
            end_summary(RunMode::DryRun, &o),
            [
                "dry-run finished at 12.346 s: 3 nodes (1 failed), 17 events",
                "procs: 2 exited 0, 1 killed by SIGKILL",
                "results: out",
                "report: p2plab report out",
                "seed 42: replay with --seed 42",
            ]
        );
    }

    #[test]
    fn procs_by_how_they_ended() {
        use ExitStatus::{Code, Signal};
        let ended = |s| ProcStatus::Exited(s);
        assert_eq!(procs_line(&[]), "none");
        let procs = [
            ended(Signal(15)),
            ended(Code(1)),
            ProcStatus::Running,
            ended(Code(0)),
            ended(Signal(9)),
            ended(Code(-1)),
            ended(Signal(9)),
            ended(Signal(64)),
        ];
        assert_eq!(
            procs_line(&procs),
            "1 exited -1, 1 exited 0, 1 exited 1, 2 killed by SIGKILL, 1 killed by SIGTERM, \
             1 killed by SIG64, 1 never reported an end"
        );
    }
}
