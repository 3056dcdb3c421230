//! `p2plab report DIR`, run as the binary on the folder of a dry-run: with a `traffic.csv`
//! written here in the format a real run writes, and without one. Each plot's SVG must parse
//! with its title in it, each PNG must decode at the plot's size, and `index.html` must show
//! every image it has and only images that exist.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use common::Scenario;

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

/// One-second deltas for the three nodes; silent rows are left out, as a real run does.
fn traffic_csv() -> String {
    let mut csv = String::from(
        "t,ip,sent_bytes,sent_packets,recv_bytes,recv_packets,dropped_queue,dropped_loss\n",
    );
    for t in 1..=9 {
        csv += &format!("{t},10.0.0.1,{},10,2000,20,0,0\n", 125_000 * t);
        if t % 2 == 1 {
            csv += &format!("{t},10.0.0.2,1000,2,{},90,1,0\n", 125_000 * t);
        }
        csv += &format!("{t},10.0.0.3,500,1,500,1,0,0\n");
    }
    // The last, partial interval.
    csv += "9.5,10.0.0.1,100,1,250000,200,0,0\n";
    csv
}

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
    std::fs::write(s.out().join("traffic.csv"), traffic_csv()).expect("write traffic.csv");
    let out = report(&s.out());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut titles = EVENT_PLOTS.to_vec();
    titles.push(("received", "Bytes received per node"));
    titles.push(("throughput", "Aggregate throughput"));
    let index = check_report(&s.out(), &titles);
    assert!(!index.contains("Skipped"), "{index}");
    // The axes say their units, and the legend names the nodes.
    let texts = svg_texts(&s.out().join("report/received.svg"));
    for label in ["received (MB)", "experiment time (s)", "node 0 (10.0.0.1)"] {
        assert!(texts.iter().any(|t| t == label), "no {label:?}: {texts:?}");
    }
    let texts = svg_texts(&s.out().join("report/throughput.svg"));
    assert!(texts.iter().any(|t| t == "received by all nodes (Mbit/s)"));
}

#[test]
fn without_traffic_the_event_plots_remain_and_the_page_says_why() {
    let s = dry_run();
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
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("4 plots in"), "{stderr}");
    assert!(stderr.contains("skipped Aggregate throughput"), "{stderr}");
    // Without the file at all, the page says that instead.
    std::fs::remove_file(s.out().join("traffic.csv")).unwrap();
    let out = report(&s.out());
    assert!(out.status.success());
    let index = check_report(&s.out(), EVENT_PLOTS);
    assert!(
        index.contains("<li><b>Aggregate throughput</b>: no traffic.csv in the folder"),
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
}
