//! The report's `index.html` as a reader's browser shows it: headless Chromium loads the page of a
//! dry-run's folder (with a real run's `traffic.csv`, `dataplane.csv` and verdict written by
//! hand), and the DOM it dumps must say every image loaded, and show the verdict. With one plot
//! deleted, the page must say, in the DOM and in words, that it did not load.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Scenario, has_program, results_folder};

const TEST: &str = "report_browser";

const SCRIPT: &str = r#"
let nodes = alloc_ip(3, #{ group: "peers" });
spawn(nodes[0], "sleep 100");
spawn(nodes[1], "sleep 100");
sleep(2.0);
metric("peers", 3.0);
fail_node(nodes[1]);
sleep(3.0);
revive(nodes[1]);
metric("peers", 2.0);
sleep(4.5);
"#;

/// The DOM of `page` after its scripts ran, as headless Chromium dumps it.
fn rendered(page: &Path, profile: &Path) -> String {
    let out = Command::new("timeout")
        .arg("120")
        .arg("chromium")
        .args([
            "--headless",
            // As root, Chromium refuses to start without it.
            "--no-sandbox",
            "--disable-gpu",
            "--dump-dom",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("a UTF-8 DOM")
}

/// Each `<img>` of the DOM: its id and its `data-loaded` (empty when the script did not run).
fn images(dom: &str) -> Vec<(String, String)> {
    let attr = |tag: &str, name: &str| {
        tag.split(&format!(" {name}=\""))
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_default()
            .to_string()
    };
    dom.split("<img ")
        .skip(1)
        .map(|rest| {
            let tag = format!(" {}", rest.split('>').next().unwrap_or_default());
            (attr(&tag, "id"), attr(&tag, "data-loaded"))
        })
        .collect()
}

#[test]
fn every_image_of_the_page_loads_in_chromium() {
    if !has_program(TEST, "chromium") {
        return;
    }
    let s = Scenario::new(SCRIPT);
    s.run_ok();
    results_folder::add_real_files(&s.out());
    let out = Command::new(env!("CARGO_BIN_EXE_p2plab"))
        .arg("report")
        .arg(s.out())
        .output()
        .expect("run p2plab report");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = s.out().join("report/index.html");
    // A profile of its own for each load: no image comes from a cache.
    let dom = rendered(&page, &s.dir.path().join("profile-1"));
    let shown = images(&dom);
    assert!(shown.len() >= 5, "only {} images: {dom}", shown.len());
    for (id, loaded) in &shown {
        assert!(
            id.starts_with("plot-"),
            "an image without a plot id: {id:?}"
        );
        assert_eq!(loaded, "yes", "{id} did not load");
    }
    for id in ["plot-lateness", "plot-cpu", "plot-received", "plot-alive"] {
        assert!(shown.iter().any(|(i, _)| i == id), "no {id}: {shown:?}");
    }
    assert!(dom.contains("<b>flagged</b>"), "{dom}");
    assert!(dom.contains("<table id=\"workers\""), "{dom}");
    assert!(!dom.contains("<p class=\"broken\">"), "{dom}");

    // A plot gone missing: the page must say so, not just show a blank.
    std::fs::remove_file(s.out().join("report/lateness.svg")).expect("remove a plot");
    let dom = rendered(&page, &s.dir.path().join("profile-2"));
    let shown = images(&dom);
    for (id, loaded) in &shown {
        let expected = if id == "plot-lateness" { "no" } else { "yes" };
        assert_eq!(loaded, expected, "{id}");
    }
    assert!(
        dom.contains("<p class=\"broken\">This image failed to load: lateness.svg</p>"),
        "{dom}"
    );
}
