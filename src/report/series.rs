//! Reading a results folder's `events.jsonl` and `traffic.csv` into the series the plots draw.
//! Pure: lines in, numbers out, one line at a time, so an hour of a thousand nodes never sits
//! in memory as text. Drawing and files are elsewhere.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;

use serde::Deserialize;

use super::ReportError;

/// One `(time in seconds, value)` point.
pub type Point = (f64, f64);

/// What `events.jsonl` says, as series.
#[derive(Debug, Default, PartialEq)]
pub struct EventSeries {
    /// Node addresses in allocation order (the order `alloc_ip` created them).
    pub nodes: Vec<String>,
    /// Nodes alive over time, as steps: at a change, the old count then the new one.
    pub alive: Vec<Point>,
    /// Seconds from spawn to exit, for every process that ended.
    pub lifetimes: Vec<f64>,
    /// Seconds from spawn to exit, for the processes that exited on their own (with a code,
    /// not a signal): the completion times of downloads, say.
    pub completions: Vec<f64>,
    /// Each `metric` name's values over time.
    pub metrics: BTreeMap<String, Vec<Point>>,
    /// The experiment's last time: the `end` event's, or the last event's.
    pub end: f64,
}

/// The fields of an event line the report reads; serde skips the others.
#[derive(Deserialize)]
struct EventLine {
    t: f64,
    event: String,
    ip: Option<String>,
    pid: Option<u64>,
    code: Option<i64>,
    name: Option<String>,
    value: Option<f64>,
}

/// Whether a node counts as alive, and why not.
#[derive(Clone, Copy, PartialEq)]
enum NodeState {
    Alive,
    /// `fail_node`: alive again at `revive`.
    Failed,
    /// `leave`: alive again when something is spawned on it.
    Left,
}

/// Reads `events.jsonl` line by line. `file` names it in errors.
///
/// A node is alive from its `alloc_ip`, down from a `fail_node` or a `leave`, and up again at a
/// `revive` (after a failure) or its next `spawn` (after a leave: a graceful departure is not a
/// failure, so nothing else marks the return).
pub fn read_events(input: impl BufRead, file: &str) -> Result<EventSeries, ReportError> {
    let mut out = EventSeries::default();
    let mut state: HashMap<String, NodeState> = HashMap::new();
    let mut alive = 0usize;
    let mut spawned: HashMap<u64, f64> = HashMap::new();
    let mut last = 0.0;
    for (i, line) in input.lines().enumerate() {
        let at = |message: String| ReportError::Line {
            file: file.to_string(),
            line: i + 1,
            message,
        };
        let line = line.map_err(|e| at(e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        let e: EventLine = serde_json::from_str(&line).map_err(|e| at(e.to_string()))?;
        last = e.t;
        let before = alive;
        let ip = e.ip.as_deref();
        match (e.event.as_str(), ip) {
            ("alloc_ip", Some(ip)) => {
                out.nodes.push(ip.to_string());
                state.insert(ip.to_string(), NodeState::Alive);
                alive += 1;
            }
            ("fail_node" | "leave", Some(ip)) => {
                let to = if e.event == "leave" {
                    NodeState::Left
                } else {
                    NodeState::Failed
                };
                if let Some(s) = state.get_mut(ip) {
                    if *s == NodeState::Alive {
                        alive -= 1;
                    }
                    // A failed node that is asked to leave stays failed: only revive helps.
                    if *s != NodeState::Failed {
                        *s = to;
                    }
                }
            }
            ("revive", Some(ip)) | ("spawn", Some(ip)) => {
                let back = if e.event == "revive" {
                    NodeState::Failed
                } else {
                    NodeState::Left
                };
                if let Some(s) = state.get_mut(ip)
                    && *s == back
                {
                    *s = NodeState::Alive;
                    alive += 1;
                }
                if let (true, Some(pid)) = (e.event == "spawn", e.pid) {
                    spawned.insert(pid, e.t);
                }
            }
            ("exit", _) => {
                if let Some(start) = e.pid.and_then(|pid| spawned.remove(&pid)) {
                    out.lifetimes.push(e.t - start);
                    if e.code.is_some() {
                        out.completions.push(e.t - start);
                    }
                }
            }
            ("metric", _) => {
                let (Some(name), Some(value)) = (e.name, e.value) else {
                    return Err(at("a metric needs a name and a value".into()));
                };
                out.metrics.entry(name).or_default().push((e.t, value));
            }
            ("end", _) => out.end = e.t,
            _ => {}
        }
        if out.alive.is_empty() {
            out.alive.push((e.t, before as f64));
        }
        if alive != before {
            // A step, drawn as one: the old count up to this instant, the new one from it.
            if out.alive.last() != Some(&(e.t, before as f64)) {
                out.alive.push((e.t, before as f64));
            }
            out.alive.push((e.t, alive as f64));
        }
    }
    if out.end == 0.0 {
        out.end = last;
    }
    // The step function runs to the end of the experiment.
    if let Some(&(_, n)) = out.alive.last() {
        out.alive.push((out.end, n));
    }
    out.lifetimes.sort_by(f64::total_cmp);
    out.completions.sort_by(f64::total_cmp);
    Ok(out)
}

/// What `traffic.csv` says, as series.
#[derive(Debug, Default, PartialEq)]
pub struct TrafficSeries {
    /// For each sampled node (address, in allocation order): bytes received so far, over time.
    pub cumulative: Vec<(String, Vec<Point>)>,
    /// Received bytes of all nodes per second, in Mbit/s, at the end of each interval.
    pub throughput: Vec<Point>,
}

/// At most this many nodes get a line of their own in the cumulative plot.
pub const MAX_LINES: usize = 12;

/// Which nodes (indices in allocation order) the cumulative plot shows: every one of up to
/// [`MAX_LINES`], else every k-th from the first, k a round number (1, 2, 5, 10, 20, 50...)
/// so that the legend reads "node 0, 50, 100".
pub fn sampled(nodes: usize) -> Vec<usize> {
    let step = (0..)
        .flat_map(|k| [1, 2, 5].map(|m| m * 10usize.pow(k)))
        .find(|&step| nodes.div_ceil(step) <= MAX_LINES)
        .expect("some power of ten exceeds any node count");
    (0..nodes).step_by(step).collect()
}

/// Reads `traffic.csv` line by line. `nodes` is the allocation order from the events: the
/// cumulative plot samples it, and a node missing there counts in the throughput only.
pub fn read_traffic(
    input: impl BufRead,
    file: &str,
    nodes: &[String],
    end: f64,
) -> Result<TrafficSeries, ReportError> {
    const HEADER: &str =
        "t,ip,sent_bytes,sent_packets,recv_bytes,recv_packets,dropped_queue,dropped_loss";
    // Only the sampled nodes keep a series: a thousand nodes' hour would be millions of points.
    let mut lines: Vec<(String, f64, Vec<Point>)> = Vec::new();
    let mut slot: HashMap<&str, usize> = HashMap::new();
    for i in sampled(nodes.len()) {
        slot.insert(&nodes[i], lines.len());
        lines.push((nodes[i].clone(), 0.0, vec![(0.0, 0.0)]));
    }
    let mut throughput: Vec<Point> = Vec::new();
    csv_rows(input, file, HEADER, |line, at| {
        let mut fields = line.split(',');
        let mut field = |what: &str| {
            fields
                .next()
                .ok_or_else(|| at(format!("missing {what}: expected 8 fields")))
        };
        let t: f64 = parse(field("t")?, "t").map_err(at)?;
        let ip = field("ip")?;
        field("sent_bytes")?;
        field("sent_packets")?;
        let recv: f64 = parse(field("recv_bytes")?, "recv_bytes").map_err(at)?;
        // An interval ends at t: a whole second, or the last, partial one.
        let start = t.ceil() - 1.0;
        if let Some(&k) = slot.get(ip) {
            let (_, total, points) = &mut lines[k];
            // Rows of nothing are omitted: the node stayed flat until this interval began.
            if points.last().is_some_and(|&(lt, _)| lt < start) {
                points.push((start, *total));
            }
            *total += recv;
            points.push((t, *total));
        }
        let rate = recv * 8.0 / (t - start) / 1e6;
        match throughput.last_mut() {
            Some((lt, r)) if *lt == t => *r += rate,
            Some((lt, _)) if *lt > t => return Err(at(format!("t {t} is before t {lt}"))),
            _ => {
                // Seconds that no row names carried nothing.
                let mut gap = throughput.last().map_or(1.0, |&(lt, _)| lt + 1.0);
                while gap < start + 1.0 && gap < t {
                    throughput.push((gap, 0.0));
                    gap += 1.0;
                }
                throughput.push((t, rate));
            }
        }
        Ok(())
    })?;
    let end = end.max(throughput.last().map_or(0.0, |&(t, _)| t));
    let cumulative = lines
        .into_iter()
        .map(|(ip, total, mut points)| {
            points.push((end, total));
            (ip, points)
        })
        .collect();
    Ok(TrafficSeries {
        cumulative,
        throughput,
    })
}

/// Calls `row` with each line of a CSV file after its `header` (checked), skipping empty
/// lines, and with what turns a message into an error at that line of `file`.
pub(super) fn csv_rows(
    mut input: impl BufRead,
    file: &str,
    header: &str,
    mut row: impl FnMut(&str, &dyn Fn(String) -> ReportError) -> Result<(), ReportError>,
) -> Result<(), ReportError> {
    let mut text = String::new();
    for i in 0.. {
        let at = |message: String| ReportError::Line {
            file: file.to_string(),
            line: i + 1,
            message,
        };
        text.clear();
        if input.read_line(&mut text).map_err(|e| at(e.to_string()))? == 0 {
            break;
        }
        let line = text.trim_end();
        if i == 0 {
            if line != header {
                return Err(at(format!("expected the header {header}")));
            }
        } else if !line.is_empty() {
            row(line, &at)?;
        }
    }
    Ok(())
}

/// A finite number: Rust reads "NaN" and "inf" as floats, which no axis can place.
pub(super) fn parse(text: &str, what: &str) -> Result<f64, String> {
    text.trim()
        .parse()
        .ok()
        .filter(|x: &f64| x.is_finite())
        .ok_or_else(|| format!("{what} is not a number: {text:?}"))
}

/// The empirical CDF of sorted values: the fraction of values at most x, as steps.
pub fn cdf(sorted: &[f64]) -> Vec<Point> {
    let n = sorted.len() as f64;
    let mut out = Vec::with_capacity(sorted.len() * 2 + 1);
    out.push((0.0, 0.0));
    for (i, &x) in sorted.iter().enumerate() {
        out.push((x, i as f64 / n));
        out.push((x, (i + 1) as f64 / n));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENTS: &str = r#"{"t":0.0,"event":"start","script":"x.rhai","seed":1,"params":{}}
{"t":0.0,"event":"alloc_ip","node":0,"ip":"10.0.0.1","group":"a","worker":0}
{"t":0.0,"event":"alloc_ip","node":1,"ip":"10.0.0.2","group":"a","worker":0}
{"t":1.0,"event":"spawn","node":0,"ip":"10.0.0.1","pid":100000,"cmd":"a"}
{"t":2.0,"event":"fail_node","node":1,"ip":"10.0.0.2"}
{"t":3.0,"event":"exit","node":0,"ip":"10.0.0.1","pid":100000,"code":0}
{"t":4.0,"event":"revive","node":1,"ip":"10.0.0.2"}
{"t":4.0,"event":"metric","name":"peers","value":2.0}
{"t":5.0,"event":"leave","node":0,"ip":"10.0.0.1","grace":1.0}
{"t":6.0,"event":"spawn","node":0,"ip":"10.0.0.1","pid":100001,"cmd":"b"}
{"t":9.0,"event":"exit","node":0,"ip":"10.0.0.1","pid":100001,"signal":"SIGTERM"}
{"t":9.0,"event":"end","outcome":"ok","pending_callbacks":0}
"#;

    #[test]
    fn events_become_nodes_churn_lifetimes_and_metrics() {
        let s = read_events(EVENTS.as_bytes(), "events.jsonl").unwrap();
        assert_eq!(s.nodes, ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(
            s.alive,
            [
                (0.0, 0.0),
                (0.0, 1.0),
                (0.0, 2.0),
                (2.0, 2.0),
                (2.0, 1.0),
                (4.0, 1.0),
                (4.0, 2.0),
                (5.0, 2.0),
                (5.0, 1.0),
                (6.0, 1.0),
                (6.0, 2.0),
                (9.0, 2.0)
            ]
        );
        assert_eq!(s.lifetimes, [2.0, 3.0]);
        assert_eq!(s.completions, [2.0]);
        assert_eq!(s.metrics["peers"], [(4.0, 2.0)]);
        assert_eq!(s.end, 9.0);
    }

    #[test]
    fn a_malformed_event_line_names_its_line() {
        let text = "{\"t\":0.0,\"event\":\"start\"}\n{\"t\":1.0,\"event\":\n";
        let err = read_events(text.as_bytes(), "run/events.jsonl").unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with("run/events.jsonl:2: "), "{message}");
    }

    #[test]
    fn a_run_cut_short_ends_at_its_last_event() {
        let text = "{\"t\":0.0,\"event\":\"alloc_ip\",\"ip\":\"10.0.0.1\"}\n\
                    {\"t\":7.5,\"event\":\"log\",\"msg\":\"x\"}\n";
        let s = read_events(text.as_bytes(), "e").unwrap();
        assert_eq!(s.end, 7.5);
        assert_eq!(s.alive.last(), Some(&(7.5, 1.0)));
    }

    const HEADER: &str =
        "t,ip,sent_bytes,sent_packets,recv_bytes,recv_packets,dropped_queue,dropped_loss\n";

    #[test]
    fn traffic_adds_up_per_node_and_fills_silent_seconds() {
        let text = format!(
            "{HEADER}1,10.0.0.2,0,0,1000,1,0,0\n1,10.0.0.1,0,0,250000,2,0,0\n\
             3,10.0.0.1,0,0,125000,1,0,0\n3.5,10.0.0.2,0,0,500,1,0,0\n"
        );
        let nodes = ["10.0.0.1".to_string(), "10.0.0.2".to_string()];
        let s = read_traffic(text.as_bytes(), "traffic.csv", &nodes, 4.0).unwrap();
        assert_eq!(s.cumulative[0].0, "10.0.0.1");
        assert_eq!(
            s.cumulative[0].1,
            [
                (0.0, 0.0),
                (1.0, 250000.0),
                (2.0, 250000.0),
                (3.0, 375000.0),
                (4.0, 375000.0)
            ]
        );
        assert_eq!(
            s.cumulative[1].1,
            [
                (0.0, 0.0),
                (1.0, 1000.0),
                (3.0, 1000.0),
                (3.5, 1500.0),
                (4.0, 1500.0)
            ]
        );
        // 251 kB in second 1 is 2.008 Mbit/s; second 2 is silent; 500 B in half a second.
        assert_eq!(
            s.throughput,
            [(1.0, 2.008), (2.0, 0.0), (3.0, 1.0), (3.5, 0.008)]
        );
    }

    #[test]
    fn a_bad_traffic_row_names_its_line() {
        let text = format!("{HEADER}1,10.0.0.1,0,0,lots,1,0,0\n");
        let err = read_traffic(text.as_bytes(), "traffic.csv", &[], 1.0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "traffic.csv:2: recv_bytes is not a number: \"lots\""
        );
        let text = format!("{HEADER}NaN,10.0.0.1,0,0,1,1,0,0\n");
        let err = read_traffic(text.as_bytes(), "traffic.csv", &[], 1.0).unwrap_err();
        assert_eq!(err.to_string(), "traffic.csv:2: t is not a number: \"NaN\"");
        let err = read_traffic("t,ip\n".as_bytes(), "traffic.csv", &[], 1.0).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("traffic.csv:1: expected the header")
        );
    }

    #[test]
    fn many_nodes_are_sampled_at_round_steps() {
        assert_eq!(sampled(3), [0, 1, 2]);
        assert_eq!(sampled(12).len(), 12);
        assert_eq!(sampled(20), (0..20).step_by(2).collect::<Vec<_>>());
        assert_eq!(sampled(1000), (0..1000).step_by(100).collect::<Vec<_>>());
        assert_eq!(sampled(600), (0..600).step_by(50).collect::<Vec<_>>());
    }

    #[test]
    fn cdf_steps_up_to_one() {
        assert_eq!(
            cdf(&[1.0, 3.0]),
            [(0.0, 0.0), (1.0, 0.0), (1.0, 0.5), (3.0, 0.5), (3.0, 1.0)]
        );
    }
}
