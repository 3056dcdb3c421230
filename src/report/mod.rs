//! `p2plab report DIR`: plots (SVG and PNG) and an `index.html` from a results folder, written
//! into `DIR/report/`. It owns reading a finished (or killed) run's files back; writing them
//! during a run is `results`' job. `series` and `lateness` turn the files into numbers,
//! `verdict` reads the run's fidelity verdict, `draw` draws one plot, `html` writes the page.
//!
//! ```no_run
//! let report = p2plab::report::write(std::path::Path::new("results/churn-20261125-203337"))?;
//! println!("{} plots in {}", report.shown.len(), report.dir.display());
//! # Ok::<(), p2plab::report::ReportError>(())
//! ```

pub mod draw;
pub mod html;
pub mod lateness;
pub mod series;
pub mod verdict;

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use draw::{Line, Plot, Stroke};
use html::{Shown, Skipped};
use lateness::DataplaneSeries;
use series::{EventSeries, TrafficSeries};
use verdict::{Bounds, Verdict};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0}: no such results folder")]
    NoFolder(PathBuf),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}:{line}: {message}")]
    Line {
        file: String,
        line: usize,
        message: String,
    },
    #[error("cannot draw {0}")]
    Draw(String),
}

/// What `write` made.
pub struct Report {
    /// `DIR/report/`.
    pub dir: PathBuf,
    pub shown: Vec<Shown>,
    pub skipped: Vec<Skipped>,
    /// What `summary.json` says of the run's fidelity.
    pub verdict: Verdict,
}

/// Reads `events.jsonl`, and `traffic.csv`, `dataplane.csv` and `summary.json` when they are
/// there, in `results`, and writes the plots and `index.html` into `results/report/`.
pub fn write(results: &Path) -> Result<Report, ReportError> {
    if !results.is_dir() {
        return Err(ReportError::NoFolder(results.to_path_buf()));
    }
    let events_path = results.join("events.jsonl");
    let events = series::read_events(open(&events_path)?, &events_path.display().to_string())?;
    let traffic_path = results.join("traffic.csv");
    let traffic = if traffic_path.exists() {
        let file = traffic_path.display().to_string();
        let input = open(&traffic_path)?;
        Some(series::read_traffic(
            input,
            &file,
            &events.nodes,
            events.end,
        )?)
    } else {
        None
    };
    let dataplane_path = results.join("dataplane.csv");
    let dataplane = if dataplane_path.exists() {
        let file = dataplane_path.display().to_string();
        Some(lateness::read_dataplane(open(&dataplane_path)?, &file)?)
    } else {
        None
    };
    let summary_path = results.join("summary.json");
    let summary = if summary_path.exists() {
        let text = std::fs::read_to_string(&summary_path).map_err(|source| ReportError::Io {
            path: summary_path.clone(),
            source,
        })?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| ReportError::Line {
                file: summary_path.display().to_string(),
                line: e.line(),
                message: e.to_string(),
            })?;
        Some(value)
    } else {
        None
    };

    let dir = results.join("report");
    std::fs::create_dir_all(&dir).map_err(|source| ReportError::Io {
        path: dir.clone(),
        source,
    })?;
    let verdict = verdict::read(summary.as_ref());
    let (mut plots, mut skipped) = plan(&events, traffic.as_ref());
    let (dp_plots, dp_skipped) = plan_dataplane(dataplane.as_ref(), &verdict.bounds(), events.end);
    // The data plane's plots go after the traffic's: fidelity next to what it qualifies.
    let at = plots
        .iter()
        .take_while(|(p, _)| p.stem == "received" || p.stem == "throughput")
        .count();
    plots.splice(at..at, dp_plots);
    skipped.extend(dp_skipped);
    let mut shown = Vec::new();
    for (plot, about) in plots {
        draw::write(&plot, &dir).map_err(ReportError::Draw)?;
        shown.push(Shown {
            stem: plot.stem,
            title: plot.title,
            about,
        });
    }
    let index = dir.join("index.html");
    let page = html::page(summary.as_ref(), &verdict, &shown, &skipped);
    std::fs::write(&index, page).map_err(|source| ReportError::Io {
        path: index,
        source,
    })?;
    Ok(Report {
        dir,
        shown,
        skipped,
        verdict,
    })
}

fn open(path: &Path) -> Result<BufReader<File>, ReportError> {
    File::open(path)
        .map(|f| BufReader::with_capacity(1 << 20, f))
        .map_err(|source| ReportError::Io {
            path: path.to_path_buf(),
            source,
        })
}

fn plot(stem: &str, title: &str, x_label: &str, y_label: &str, lines: Vec<Line>) -> Plot {
    Plot {
        stem: stem.into(),
        title: title.into(),
        x_label: x_label.into(),
        y_label: y_label.into(),
        lines,
        marks: false,
        y_log: false,
        legend_below: false,
    }
}

fn one(points: Vec<series::Point>) -> Vec<Line> {
    vec![Line::new("", points, 0)]
}

const TIME: &str = "experiment time (s)";

/// The plots the inputs allow, each with a sentence for the page, and those they do not.
fn plan(
    events: &EventSeries,
    traffic: Option<&TrafficSeries>,
) -> (Vec<(Plot, String)>, Vec<Skipped>) {
    let mut plots = Vec::new();
    let mut skipped = Vec::new();
    let no_traffic = match traffic {
        None => "no traffic.csv in the folder",
        // A dry-run writes the header line only.
        Some(_) => "no traffic in traffic.csv (a dry-run has none)",
    };
    match traffic.filter(|t| !t.throughput.is_empty()) {
        Some(t) => {
            let lines = t
                .cumulative
                .iter()
                .enumerate()
                .map(|(k, (ip, points))| {
                    let node = events.nodes.iter().position(|n| n == ip);
                    Line::new(
                        node.map_or(ip.clone(), |i| format!("node {i} ({ip})")),
                        points.iter().map(|&(x, b)| (x, b / 1e6)).collect(),
                        k,
                    )
                })
                .collect();
            let sample = if t.cumulative.len() < events.nodes.len() {
                format!(
                    "; {} of the {} nodes, evenly spaced in allocation order",
                    t.cumulative.len(),
                    events.nodes.len()
                )
            } else {
                String::new()
            };
            plots.push((
                plot(
                    "received",
                    "Bytes received per node",
                    TIME,
                    "received (MB)",
                    lines,
                ),
                format!("Each node's received bytes so far, from traffic.csv{sample}."),
            ));
            plots.push((
                plot(
                    "throughput",
                    "Aggregate throughput",
                    TIME,
                    "received by all nodes (Mbit/s)",
                    one(t.throughput.clone()),
                ),
                "The bytes that all nodes received in each second, from traffic.csv.".into(),
            ));
        }
        None => {
            skipped.push(Skipped {
                title: "Bytes received per node".into(),
                why: no_traffic.into(),
            });
            skipped.push(Skipped {
                title: "Aggregate throughput".into(),
                why: no_traffic.into(),
            });
        }
    }
    plots.push((
        plot(
            "alive",
            "Nodes alive",
            TIME,
            "nodes",
            one(events.alive.clone()),
        ),
        "Nodes alive at each moment, from events.jsonl: a node is alive from its alloc_ip, \
         down after fail_node or leave, up again at revive (after a failure) or at its next \
         spawn (after a leave)."
            .into(),
    ));
    if events.lifetimes.is_empty() {
        skipped.push(Skipped {
            title: "Process completion times".into(),
            why: "no process ended (events.jsonl has no exit of a spawned process)".into(),
        });
    } else {
        let mut lines = vec![Line::new(
            format!("all {} processes", events.lifetimes.len()),
            series::cdf(&events.lifetimes),
            0,
        )];
        // When every process exited on its own, or none did, the second line would add nothing.
        if !events.completions.is_empty() && events.completions.len() < events.lifetimes.len() {
            lines.push(Line::new(
                format!("{} that exited on their own", events.completions.len()),
                series::cdf(&events.completions),
                1,
            ));
        }
        plots.push((
            plot(
                "completion",
                "Process completion times (CDF)",
                "time from spawn to exit (s)",
                "fraction of processes",
                lines,
            ),
            "For each time, the fraction of processes that ended within it of their spawn, \
             from events.jsonl: all processes, including those ended by a signal (fail_node, \
             kill, leave, the end of the script), and those that exited on their own with an \
             exit code (a dry-run has none of these)."
                .into(),
        ));
    }
    if events.metrics.is_empty() {
        skipped.push(Skipped {
            title: "Metrics".into(),
            why: "the script recorded no metric()".into(),
        });
    }
    for (i, (name, points)) in events.metrics.iter().enumerate() {
        let safe: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let mut p = plot(
            // The index keeps two names that differ only in punctuation apart.
            &format!("metric-{}-{safe}", i + 1),
            &format!("Metric {name}"),
            TIME,
            name,
            one(points.clone()),
        );
        p.marks = true;
        plots.push((
            p,
            format!("The values the script recorded with metric(\"{name}\", value)."),
        ));
    }
    (plots, skipped)
}

/// The data plane's plots from `dataplane.csv`: lateness (log axis, in ms) and the thread's
/// CPU share, each worker with its own colour and the bound as a dashed black line.
fn plan_dataplane(
    dataplane: Option<&DataplaneSeries>,
    bounds: &Bounds,
    end: f64,
) -> (Vec<(Plot, String)>, Vec<Skipped>) {
    const LATENESS: &str = "Data-plane lateness";
    const CPU: &str = "Data-plane CPU share";
    let skip = |why: &str| {
        let skipped = [LATENESS, CPU].map(|title| Skipped {
            title: title.into(),
            why: why.into(),
        });
        (Vec::new(), skipped.into())
    };
    let dp = match dataplane {
        None => return skip("no dataplane.csv in the folder (a run of an older p2plab)"),
        Some(dp) if dp.is_empty() => {
            return skip("no rows in dataplane.csv (a dry-run has no data plane)");
        }
        Some(dp) => dp,
    };
    let end = end.max(dp.end());
    let bound = |label: String, y: f64| Line {
        label,
        points: vec![(0.0, y), (end, y)],
        color: 0,
        stroke: Stroke::Bound,
    };
    let mut plots = Vec::new();
    let mut skipped = Vec::new();
    if dp.timed_any() {
        let ms = |points: &[series::Point]| points.iter().map(|&(t, ns)| (t, ns / 1e6)).collect();
        let mut lines = Vec::new();
        for (k, w) in dp.workers.iter().enumerate() {
            lines.push(Line::new(format!("worker {} p99", w.worker), ms(&w.p99), k));
            lines.push(Line {
                stroke: Stroke::Thin,
                ..Line::new(format!("worker {} max", w.worker), ms(&w.max), k)
            });
        }
        lines.push(bound(
            format!("bound: p99 {}", verdict::duration_ns(bounds.late_p99_ns)),
            bounds.late_p99_ns / 1e6,
        ));
        let mut p = plot(
            "lateness",
            LATENESS,
            TIME,
            "lateness (ms, log scale)",
            lines,
        );
        p.y_log = true;
        plots.push((
            p,
            "How late the data plane delivered packets to the nodes after their deadline, \
             per second and per worker, from dataplane.csv: the 99th percentile (thick) and \
             the worst packet (thin), against the p99 bound (dashed). Lateness adds to every \
             delay a packet was given; seconds without packets have no point, and a lateness \
             of 0 is not drawn on the log axis."
                .into(),
        ));
    } else {
        skipped.push(Skipped {
            title: LATENESS.into(),
            why: "dataplane.csv timed no packet (the nodes exchanged no traffic)".into(),
        });
    }
    let mut lines: Vec<Line> = dp
        .workers
        .iter()
        .enumerate()
        .map(|(k, w)| {
            let percent = w.cpu_share.iter().map(|&(t, s)| (t, s * 100.0)).collect();
            Line::new(format!("worker {}", w.worker), percent, k)
        })
        .collect();
    lines.push(bound(
        format!("bound: {:.0} %", bounds.cpu_share * 100.0),
        bounds.cpu_share * 100.0,
    ));
    let mut p = plot(
        "cpu",
        CPU,
        TIME,
        "data-plane thread CPU (% of a core, log scale)",
        lines,
    );
    // A log axis: an idle thread's 1 % and the bound's 90 % both show, the legend below them.
    p.y_log = true;
    p.legend_below = true;
    plots.push((
        p,
        "The CPU time the data-plane thread of each worker used in each interval, over the \
         interval's length, from dataplane.csv: near 100 % it cannot keep up, and lateness \
         grows."
            .into(),
    ));
    (plots, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]

        /// Whatever a data plane counts, its rows read and both plots draw (plotters panics on
        /// some ranges; a log axis has none for 0).
        #[test]
        fn any_dataplane_rows_draw(
            rows in proptest::collection::vec(
                (0u64..3, 0u64..3, 0u64..1 << 40, 0u64..1 << 40, 0u64..1 << 40, 0.01f64..5.0),
                0..30,
            ),
            bound in 1u64..1 << 40,
        ) {
            let mut csv = format!("{}\n", lateness::HEADER);
            // Steps of 0.01 s or more stay apart at three decimals.
            let mut t = [0.0f64; 3];
            for (worker, timed, p99, max, cpu, dt) in rows {
                let w = worker as usize;
                t[w] += dt;
                csv += &format!("{:.3},{worker},{timed},0,{p99},{max},{cpu},0,0\n", t[w]);
            }
            let dp = lateness::read_dataplane(csv.as_bytes(), "dataplane.csv").unwrap();
            let bounds = Bounds { late_p99_ns: bound as f64, ..Bounds::default() };
            let (plots, _) = plan_dataplane(Some(&dp), &bounds, 0.0);
            let dir = tempfile::tempdir().unwrap();
            for (plot, _) in &plots {
                prop_assert!(draw::write(plot, dir.path()).is_ok(), "{}", plot.stem);
            }
        }
    }
}
