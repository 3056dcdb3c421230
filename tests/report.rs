//! `p2plab report DIR`, run as the binary on the folder of a dry-run: with a `traffic.csv`, a
//! `dataplane.csv` and a verdict written here in the formats a real run writes, and without. Each plot's SVG must parse
//! with its title in it, each PNG must decode at the plot's size, and `index.html` must show
//! every image it has and only images that exist.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use common::Scenario;
use common::results_folder::{self, DATAPLANE_HEADER};

const SCRIPT: &str = r#"
let nodes = alloc_ip(3, #{ group: "peers" });
let p = spawn(nodes[0], "sleep 100");
spawn(nodes[1], "sleep 100");
sleep(2.0);
metric("peers", 3.0);
fail_node(nodes[1]);
metric("peers", 2.0);
sleep(3.0);
metric("rate", 1.5);
revive(nodes[1]);
p.kill();
sleep(5.0);
metric("peers", 3.0);
metric("rate", 2.5);
"#;

fn report(dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_p2plab"))
        .arg("report")
        .arg(dir)
        .output()
        .expect("run p2plab report")
}

fn dry_run() -> Scenario {
    let s = Scenario::new(SCRIPT);
    s.run_ok();
    s
}

/// The text of every `<text>` element of an SVG file, which must be well-formed XML.
fn svg_texts(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("read svg");
    let doc = roxmltree::Document::parse(&text)
        .unwrap_or_else(|e| panic!("{} is not XML: {e}", path.display()));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or_default().trim().to_string())
        .collect()
}

/// Decodes a PNG; returns its size and whether it has more than one colour.
fn png_info(path: &Path) -> (u32, u32, bool) {
    let file = std::fs::File::open(path).expect("open png");
    let mut reader = png::Decoder::new(file)
        .read_info()
        .unwrap_or_else(|e| panic!("{} does not decode: {e}", path.display()));
    let mut pixels = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut pixels).expect("png frame");
    let pixels = &pixels[..frame.buffer_size()];
    let step = frame.color_type.samples();
    let drawn = pixels.chunks(step).any(|p| p != &pixels[..step]);
    (frame.width, frame.height, drawn)
}

/// The files `index.html` points at (`src="…"` and `href="…"`).
fn referenced(index: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for attr in ["src=\"", "href=\""] {
        for piece in index.split(attr).skip(1) {
            found.insert(piece.split('"').next().unwrap_or_default().to_string());
        }
    }
    found
}

/// Checks every plot in `report/` and the page; returns the plots' names.
fn check_report(results: &Path, titles: &[(&str, &str)]) -> String {
    let dir = results.join("report");
    let index = std::fs::read_to_string(dir.join("index.html")).expect("index.html");
    let refs = referenced(&index);
    for name in &refs {
        assert!(
            dir.join(name).is_file(),
            "index.html shows {name}, which is missing"
        );
    }
    let mut stems = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("report dir") {
        let name = entry
            .expect("entry")
            .file_name()
            .into_string()
            .expect("utf-8");
        if name != "index.html" {
            assert!(refs.contains(&name), "index.html does not show {name}");
            stems.insert(name.rsplit_once('.').expect("extension").0.to_string());
        }
    }
    for stem in &stems {
        let texts = svg_texts(&dir.join(format!("{stem}.svg")));
        let (width, height, drawn) = png_info(&dir.join(format!("{stem}.png")));
        assert_eq!((width, height), (960, 540), "{stem}.png");
        assert!(drawn, "{stem}.png is one colour");
        let title = titles
            .iter()
            .find(|(s, _)| s == stem)
            .unwrap_or_else(|| panic!("unexpected plot {stem}"))
            .1;
        assert!(
            texts.iter().any(|t| t == title),
            "{stem}.svg has no title {title:?}: {texts:?}"
        );
        assert!(index.contains(title), "index.html lacks {title:?}");
    }
    assert_eq!(stems.len(), titles.len(), "plots: {stems:?}");
    index
}

const EVENT_PLOTS: &[(&str, &str)] = &[
    ("alive", "Nodes alive"),
    ("completion", "Process completion times (CDF)"),
    ("metric-1-peers", "Metric peers"),
    ("metric-2-rate", "Metric rate"),
];

#[test]
fn a_dry_run_with_traffic_gets_every_plot() {
    let s = dry_run();
    results_folder::add_real_files(&s.out());
    let out = report(&s.out());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut titles = EVENT_PLOTS.to_vec();
    titles.push(("received", "Bytes received per node"));
    titles.push(("throughput", "Aggregate throughput"));
    titles.push(("lateness", "Data-plane lateness"));
    titles.push(("cpu", "Data-plane CPU share"));
    let index = check_report(&s.out(), &titles);
    assert!(!index.contains("Skipped"), "{index}");
    assert!(index.contains("<b>flagged</b>"), "{index}");
    assert!(index.contains("worker 0: p99 lateness 2.5 ms"), "{index}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.ends_with("fidelity: flagged\n"), "{stderr}");
    // The axes say their units, and the legend names the nodes.
    let texts = svg_texts(&s.out().join("report/received.svg"));
    for label in ["received (MB)", "experiment time (s)", "node 0 (10.0.0.1)"] {
        assert!(texts.iter().any(|t| t == label), "no {label:?}: {texts:?}");
    }
    let texts = svg_texts(&s.out().join("report/throughput.svg"));
    assert!(texts.iter().any(|t| t == "received by all nodes (Mbit/s)"));
    // One pair of lines per worker, and the bound from the verdict.
    let texts = svg_texts(&s.out().join("report/lateness.svg"));
    for label in [
        "lateness (ms, log scale)",
        "worker 0 p99",
        "worker 1 max",
        "bound: p99 1 ms",
    ] {
        assert!(texts.iter().any(|t| t == label), "no {label:?}: {texts:?}");
    }
    let texts = svg_texts(&s.out().join("report/cpu.svg"));
    for label in ["worker 1", "bound: 90 %"] {
        assert!(texts.iter().any(|t| t == label), "no {label:?}: {texts:?}");
    }
}

#[test]
fn without_traffic_the_event_plots_remain_and_the_page_says_why() {
    let s = dry_run();
    // What a dry-run writes: header lines only.
    std::fs::write(s.out().join("dataplane.csv"), DATAPLANE_HEADER).expect("write");
    let out = report(&s.out());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let index = check_report(&s.out(), EVENT_PLOTS);
    assert!(index.contains("<h2>Skipped</h2>"), "{index}");
    // A dry-run's traffic.csv has its header line only.
    for title in ["Bytes received per node", "Aggregate throughput"] {
        assert!(
            index.contains(&format!("<li><b>{title}</b>: no traffic in traffic.csv")),
            "{index}"
        );
    }
    assert!(
        index.contains("<li><b>Data-plane lateness</b>: no rows in dataplane.csv"),
        "{index}"
    );
    // A dry-run's summary says its fidelity was not measured, or (older) says nothing.
    assert!(
        index.contains("<b>not measured</b>") || index.contains("<b>no verdict recorded</b>"),
        "{index}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("4 plots in"), "{stderr}");
    assert!(stderr.contains("skipped Aggregate throughput"), "{stderr}");
    assert!(stderr.contains("skipped Data-plane CPU share"), "{stderr}");
    // Without the files at all, the page says that instead.
    std::fs::remove_file(s.out().join("traffic.csv")).unwrap();
    std::fs::remove_file(s.out().join("dataplane.csv")).unwrap();
    let out = report(&s.out());
    assert!(out.status.success());
    let index = check_report(&s.out(), EVENT_PLOTS);
    assert!(
        index.contains("<li><b>Aggregate throughput</b>: no traffic.csv in the folder"),
        "{index}"
    );
    assert!(
        index.contains("<li><b>Data-plane CPU share</b>: no dataplane.csv in the folder"),
        "{index}"
    );
}

#[test]
fn errors_name_the_folder_or_the_file_and_line() {
    let missing = report(Path::new("/nonexistent/results"));
    assert_eq!(missing.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("/nonexistent/results: no such results folder"),
        "{stderr}"
    );

    let s = dry_run();
    let events = s.out().join("events.jsonl");
    let mut text = std::fs::read_to_string(&events).expect("events");
    text.insert_str(text.find('\n').expect("a line") + 1, "{\"t\": oops}\n");
    std::fs::write(&events, text).expect("write events");
    let broken = report(&s.out());
    assert_eq!(broken.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&broken.stderr);
    assert!(
        stderr.contains(&format!("{}:2: ", events.display())),
        "{stderr}"
    );

    let s = dry_run();
    std::fs::write(s.out().join("traffic.csv"), "t,ip,sent_bytes\n").expect("write");
    let stderr = String::from_utf8_lossy(&report(&s.out()).stderr).into_owned();
    assert!(
        stderr.contains("traffic.csv:1: expected the header"),
        "{stderr}"
    );

    let s = dry_run();
    let csv = format!("{DATAPLANE_HEADER}1,0,5,1,2,3,late,0,0\n");
    std::fs::write(s.out().join("dataplane.csv"), csv).expect("write");
    let broken = report(&s.out());
    assert_eq!(broken.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&broken.stderr);
    assert!(
        stderr.contains("dataplane.csv:2: cpu_ns is not a number: \"late\""),
        "{stderr}"
    );
}
