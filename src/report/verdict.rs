//! The run's fidelity verdict, `summary.json`'s `conformance`: read into types, and shown as the
//! page's "Fidelity" section (the verdict, its problems, a table of workers and of nodes).
//! Pure: a JSON value in, HTML text out. Deciding the verdict is the run's job, not this one's.

use serde::Deserialize;
use serde_json::Value;

use super::html::escape;

/// Nodes listed on the page; the others are counted, and are all in `summary.json`.
const NODE_ROWS: usize = 50;

/// What `summary.json` says of the run's fidelity.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// No `summary.json`, or one without `conformance` (a run of an older p2plab).
    NotRecorded,
    /// A dry-run, which has no data plane.
    NotMeasured {
        why: String,
    },
    Measured(Conformance),
    /// `conformance` is there but not in the expected shape: the page says so.
    Unreadable(String),
}

#[derive(Debug, Default, PartialEq, Deserialize)]
pub struct Conformance {
    /// `"clean"` or `"flagged"`.
    pub verdict: String,
    #[serde(default)]
    pub bounds: Bounds,
    /// What broke a bound, one sentence each.
    #[serde(default)]
    pub problems: Vec<String>,
    #[serde(default)]
    pub workers: Vec<WorkerFidelity>,
    #[serde(default)]
    pub nodes: Vec<NodeFidelity>,
    /// How the nodes' programs waited for a CPU; absent in runs of an older p2plab.
    #[serde(default)]
    pub cpu_wait: Option<CpuWait>,
}

/// The nodes that ran programs, those whose programs waited for a CPU beyond the bound, and
/// the largest share of its ready time a node waited.
#[derive(Debug, Default, PartialEq, Deserialize)]
pub struct CpuWait {
    pub nodes: Option<f64>,
    pub nodes_waited: Option<f64>,
    pub worst_ip: Option<String>,
    pub worst_share: Option<f64>,
}

/// The limits the verdict was judged against.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(default)]
pub struct Bounds {
    pub late_p99_ns: f64,
    /// Of one core.
    pub cpu_share: f64,
    /// How far a node's busiest second may exceed its rate, as a fraction.
    pub rate_tolerance: f64,
    /// Of the time a node's programs were ready to run.
    pub cpu_wait_share: f64,
}

impl Default for Bounds {
    /// What p2plab judges by when a run does not say: 1 ms, 90 % of a core, 5 %, 10 %.
    fn default() -> Self {
        Bounds {
            late_p99_ns: 1e6,
            cpu_share: 0.9,
            rate_tolerance: 0.05,
            cpu_wait_share: 0.1,
        }
    }
}

/// One worker's data plane over the run. Numbers are `f64` so that any JSON number reads.
#[derive(Debug, Default, PartialEq, Deserialize)]
pub struct WorkerFidelity {
    pub worker: Option<f64>,
    pub seconds: Option<f64>,
    pub worst_late_p99_ns: Option<f64>,
    pub late_max_ns: Option<f64>,
    pub late_seconds: Option<f64>,
    pub max_cpu_share: Option<f64>,
    pub overruns: Option<f64>,
    pub write_errors: Option<f64>,
}

/// One node's link: its rates as set (`None`: unlimited) and the busiest second it carried.
#[derive(Debug, Default, PartialEq, Deserialize)]
pub struct NodeFidelity {
    pub ip: String,
    pub up_bps: Option<f64>,
    pub up_busiest_bps: Option<f64>,
    pub down_bps: Option<f64>,
    pub down_busiest_bps: Option<f64>,
    pub ok: Option<bool>,
}

/// The verdict in `summary`, the parsed `summary.json`.
pub fn read(summary: Option<&Value>) -> Verdict {
    let Some(c) = summary.and_then(|s| s.get("conformance")) else {
        return Verdict::NotRecorded;
    };
    if c["measured"] == Value::Bool(false) {
        let why = c["why"].as_str().unwrap_or("the run did not measure it");
        return Verdict::NotMeasured { why: why.into() };
    }
    match Conformance::deserialize(c) {
        Ok(conformance) => Verdict::Measured(conformance),
        Err(e) => Verdict::Unreadable(e.to_string()),
    }
}

impl Verdict {
    /// The verdict in a few words: `clean`, `flagged`, `not measured`, `no verdict recorded`.
    pub fn word(&self) -> &str {
        match self {
            Verdict::NotRecorded => "no verdict recorded",
            Verdict::NotMeasured { .. } => "not measured",
            Verdict::Unreadable(_) => "unreadable",
            Verdict::Measured(c) => &c.verdict,
        }
    }

    /// The bounds to draw on the plots: the run's, or the defaults.
    pub fn bounds(&self) -> Bounds {
        match self {
            Verdict::Measured(c) => c.bounds,
            _ => Bounds::default(),
        }
    }
}

/// The page's "Fidelity" section.
pub fn section(verdict: &Verdict) -> String {
    let mut html = String::from("<section id=\"fidelity\">\n<h2>Fidelity</h2>\n");
    let (class, text) = match verdict {
        Verdict::NotRecorded => (
            "none",
            "summary.json has no conformance: a run of an older p2plab, or one that did not \
             finish."
                .to_string(),
        ),
        Verdict::NotMeasured { why } => ("not-measured", why.clone()),
        Verdict::Unreadable(why) => (
            "none",
            format!("summary.json's conformance is not in the expected shape: {why}"),
        ),
        Verdict::Measured(c) => {
            let class = if c.verdict == "clean" {
                "clean"
            } else {
                "flagged"
            };
            let b = &c.bounds;
            // The programs' waits are judged only where the run measured them.
            let text = match c.cpu_wait {
                Some(_) => format!(
                    "judged against a p99 lateness of {}, a data-plane CPU share of {} of a \
                     core, rates within {} and programs waiting for a CPU at most {} of the \
                     time they were ready to run.",
                    duration_ns(b.late_p99_ns),
                    percent(b.cpu_share),
                    percent(b.rate_tolerance),
                    percent(b.cpu_wait_share)
                ),
                None => format!(
                    "judged against a p99 lateness of {}, a data-plane CPU share of {} of a \
                     core and rates within {}.",
                    duration_ns(b.late_p99_ns),
                    percent(b.cpu_share),
                    percent(b.rate_tolerance)
                ),
            };
            (class, text)
        }
    };
    html += &format!(
        "<p id=\"verdict\" class=\"verdict {class}\"><b>{}</b>: {}</p>\n",
        escape(verdict.word()),
        escape(&text)
    );
    if let Verdict::Measured(c) = verdict {
        if !c.problems.is_empty() {
            html += "<ul id=\"problems\">\n";
            for p in &c.problems {
                html += &format!("<li>{}</li>\n", escape(p));
            }
            html += "</ul>\n";
        }
        if let Some(w) = &c.cpu_wait {
            html += &format!(
                "<p id=\"cpu-wait\">Programs: {} of {} nodes waited for a CPU beyond the bound; \
                 the largest share of its ready time: {} ({}).</p>\n",
                count(w.nodes_waited),
                count(w.nodes),
                w.worst_share.map_or("-".into(), percent),
                escape(w.worst_ip.as_deref().unwrap_or("-"))
            );
        }
        html += &workers_table(&c.workers);
        html += &nodes_table(&c.nodes);
    }
    html + "</section>\n"
}

fn workers_table(workers: &[WorkerFidelity]) -> String {
    if workers.is_empty() {
        return String::new();
    }
    let mut html = String::from(
        "<h3>Workers' data planes</h3>\n<table id=\"workers\" class=\"fidelity\">\n<tr><th>worker</th><th>seconds</th>\
         <th>worst p99 lateness</th><th>max lateness</th><th>late seconds</th>\
         <th>max CPU share</th><th>overruns</th><th>write errors</th></tr>\n",
    );
    for w in workers {
        let cells = [
            count(w.worker),
            count(w.seconds),
            w.worst_late_p99_ns.map_or("-".into(), duration_ns),
            w.late_max_ns.map_or("-".into(), duration_ns),
            count(w.late_seconds),
            w.max_cpu_share.map_or("-".into(), percent),
            count(w.overruns),
            count(w.write_errors),
        ];
        html += &row(&cells, false);
    }
    html + "</table>\n"
}

fn nodes_table(nodes: &[NodeFidelity]) -> String {
    if nodes.is_empty() {
        return String::new();
    }
    // The nodes that broke a bound first: past the cut they would be hidden.
    let mut order: Vec<&NodeFidelity> = nodes.iter().collect();
    order.sort_by_key(|n| n.ok != Some(false));
    let bad = nodes.iter().filter(|n| n.ok == Some(false)).count();
    // Folded when every node is fine: a thousand rows of "yes" would bury the plots.
    let open = if bad > 0 { " open" } else { "" };
    let mut html = format!(
        "<details id=\"nodes-list\"{open}><summary>Nodes' links: {} nodes, {bad} not ok\
         </summary>\n<table id=\"nodes\" class=\"fidelity\">\n<tr><th>node</th><th>up</th>\
         <th>up, busiest second</th><th>down</th><th>down, busiest second</th><th>ok</th></tr>\n",
        nodes.len()
    );
    for n in order.iter().take(NODE_ROWS) {
        let set = |bps: Option<f64>| bps.map_or("unlimited".into(), rate);
        let busiest = |bps: Option<f64>| bps.map_or("-".into(), rate);
        let cells = [
            n.ip.clone(),
            set(n.up_bps),
            busiest(n.up_busiest_bps),
            set(n.down_bps),
            busiest(n.down_busiest_bps),
            match n.ok {
                Some(true) => "yes".into(),
                Some(false) => "no".into(),
                None => "-".into(),
            },
        ];
        html += &row(&cells, n.ok == Some(false));
    }
    html += "</table>\n";
    if nodes.len() > NODE_ROWS {
        html += &format!(
            "<p id=\"nodes-more\">{} more nodes not listed ({bad} of all {} not ok, listed \
             first); every node is in summary.json.</p>\n",
            nodes.len() - NODE_ROWS,
            nodes.len()
        );
    }
    html + "</details>\n"
}

fn row(cells: &[String], bad: bool) -> String {
    let class = if bad { " class=\"bad\"" } else { "" };
    let mut html = format!("<tr{class}>");
    for c in cells {
        html += &format!("<td>{}</td>", escape(c));
    }
    html + "</tr>\n"
}

fn count(n: Option<f64>) -> String {
    n.map_or("-".into(), short)
}

/// Three significant digits at most, without trailing zeros: 37, 1.25, 0.12.
fn short(x: f64) -> String {
    let text = if x.abs() >= 100.0 || x.fract() == 0.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    };
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').into()
    } else {
        text
    }
}

/// A duration in ns, in the unit that fits: 850 ns, 37 µs, 1.2 ms, 2 s.
pub fn duration_ns(ns: f64) -> String {
    let (value, unit) = if ns < 1e3 {
        (ns, "ns")
    } else if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    format!("{} {unit}", short(value))
}

/// A rate in bit/s, in the unit that fits: 2 Mbit/s, 512 kbit/s.
fn rate(bps: f64) -> String {
    let (value, unit) = if bps < 1e3 {
        (bps, "bit/s")
    } else if bps < 1e6 {
        (bps / 1e3, "kbit/s")
    } else if bps < 1e9 {
        (bps / 1e6, "Mbit/s")
    } else {
        (bps / 1e9, "Gbit/s")
    };
    format!("{} {unit}", short(value))
}

fn percent(fraction: f64) -> String {
    format!("{} %", short(fraction * 100.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn measured(nodes: usize) -> Value {
        let nodes: Vec<Value> = (0..nodes)
            .map(|i| {
                json!({"ip": format!("10.0.0.{}", i + 1), "up_bps": if i == 0 { Value::Null } else { json!(2000000) },
                       "up_busiest_bps": 1990000, "down_bps": 8000000, "down_busiest_bps": 8500000,
                       "ok": i != 7})
            })
            .collect();
        json!({"conformance": {
            "measured": true, "verdict": "flagged",
            "bounds": {"late_p99_ns": 500000, "cpu_share": 0.8, "rate_tolerance": 0.05,
                       "cpu_wait_share": 0.2},
            "problems": ["worker 0: p99 lateness 2.1 ms > 0.5 ms in 3 of 30 seconds"],
            "workers": [{"worker": 0, "seconds": 30, "worst_late_p99_ns": 2100000,
                         "late_max_ns": 12500000, "late_seconds": 3, "max_cpu_share": 0.123,
                         "overruns": 0, "write_errors": 1}],
            "nodes": nodes,
            "cpu_wait": {"nodes": 12, "nodes_waited": 3, "worst_ip": "10.0.0.5",
                         "worst_share": 0.4567, "worst_ms_per_second": 33.0}}})
    }

    #[test]
    fn the_verdict_reads_in_each_of_its_forms() {
        assert_eq!(read(None), Verdict::NotRecorded);
        assert_eq!(read(Some(&json!({"script": "x"}))), Verdict::NotRecorded);
        let dry = json!({"conformance": {"measured": false, "verdict": "not measured",
                                         "why": "a dry-run has no data plane"}});
        assert_eq!(
            read(Some(&dry)),
            Verdict::NotMeasured {
                why: "a dry-run has no data plane".into()
            }
        );
        let Verdict::Measured(c) = read(Some(&measured(2))) else {
            panic!("not measured");
        };
        assert_eq!(c.verdict, "flagged");
        assert_eq!(c.bounds.late_p99_ns, 500000.0);
        assert_eq!(c.workers[0].max_cpu_share, Some(0.123));
        assert_eq!(c.nodes[0].up_bps, None);
        assert_eq!(c.nodes[1].up_bps, Some(2e6));
        let odd = json!({"conformance": {"measured": true, "verdict": 3}});
        assert!(matches!(read(Some(&odd)), Verdict::Unreadable(_)));
        // Bounds left out are the defaults.
        let bare = json!({"conformance": {"measured": true, "verdict": "clean"}});
        assert_eq!(read(Some(&bare)).bounds(), Bounds::default());
    }

    #[test]
    fn the_section_shows_verdict_problems_and_tables() {
        let html = section(&read(Some(&measured(2))));
        assert!(
            html.contains(
                "<p id=\"verdict\" class=\"verdict flagged\"><b>flagged</b>: judged \
                           against a p99 lateness of 500 µs, a data-plane CPU share of 80 % of a \
                           core, rates within 5 % and programs waiting for a CPU at most 20 % of \
                           the time they were ready to run.</p>"
            ),
            "{html}"
        );
        assert!(
            html.contains("<li>worker 0: p99 lateness 2.1 ms &gt; 0.5 ms in 3 of 30 seconds</li>")
        );
        assert!(html.contains(
            "<p id=\"cpu-wait\">Programs: 3 of 12 nodes waited for a CPU beyond the bound; the \
             largest share of its ready time: 45.7 % (10.0.0.5).</p>"
        ));
        assert!(html.contains(
            "<tr><td>0</td><td>30</td><td>2.1 ms</td><td>12.5 ms</td><td>3</td><td>12.3 %</td>\
             <td>0</td><td>1</td></tr>"
        ));
        assert!(html.contains(
            "<tr><td>10.0.0.1</td><td>unlimited</td><td>1.99 Mbit/s</td><td>8 Mbit/s</td>\
             <td>8.5 Mbit/s</td><td>yes</td></tr>"
        ));
        assert!(!html.contains("nodes-more"));
        assert!(
            html.contains("<details id=\"nodes-list\"><summary>Nodes' links: 2 nodes, 0 not ok")
        );
        let mut older = measured(2);
        older["conformance"]
            .as_object_mut()
            .unwrap()
            .remove("cpu_wait");
        let html = section(&read(Some(&older)));
        assert!(
            html.contains("core and rates within 5 %.</p>") && !html.contains("cpu-wait"),
            "a run that did not measure the waits is not said to be judged by them: {html}"
        );
        let html = section(&Verdict::NotMeasured {
            why: "dry <run>".into(),
        });
        assert!(
            html.contains("class=\"verdict not-measured\"><b>not measured</b>: dry &lt;run&gt;")
        );
        assert!(!html.contains("<table"));
        assert!(section(&Verdict::NotRecorded).contains("<b>no verdict recorded</b>"));
    }

    #[test]
    fn many_nodes_are_cut_after_the_ones_not_ok() {
        let html = section(&read(Some(&measured(120))));
        assert_eq!(html.matches("<tr").count(), 1 + 1 + 1 + NODE_ROWS);
        // Node 7 is not ok: it leads the table, though allocated eighth.
        let first = html
            .find("<tr class=\"bad\"><td>10.0.0.8</td>")
            .expect("node 7 listed");
        assert!(first < html.find("<td>10.0.0.1</td>").expect("node 0 listed"));
        assert!(html.contains("70 more nodes not listed (1 of all 120 not ok, listed first)"));
        assert!(html.contains(
            "<details id=\"nodes-list\" open><summary>Nodes' links: 120 nodes, 1 not ok"
        ));
    }

    #[test]
    fn numbers_get_units_that_fit() {
        assert_eq!(duration_ns(850.0), "850 ns");
        assert_eq!(duration_ns(37_400.0), "37.4 µs");
        assert_eq!(duration_ns(1e6), "1 ms");
        assert_eq!(duration_ns(1_250_000.0), "1.25 ms");
        assert_eq!(duration_ns(2.5e9), "2.5 s");
        assert_eq!(rate(2e6), "2 Mbit/s");
        assert_eq!(rate(512_000.0), "512 kbit/s");
        assert_eq!(rate(1.5e9), "1.5 Gbit/s");
        assert_eq!(percent(0.9), "90 %");
        assert_eq!(percent(0.001234), "0.12 %");
    }
}
