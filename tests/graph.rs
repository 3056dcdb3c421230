//! `p2plab graph`: the topology pictures of the example scenarios (dry-run only, no root),
//! their determinism, errors and exit codes, and the book's pictures, which must be what the
//! command draws today.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use p2plab::run::RunConfig;

fn p2plab(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_p2plab"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run p2plab")
}

fn draw(script: &str) -> String {
    let (svg, _) =
        p2plab::graph::draw(&RunConfig::new(script)).unwrap_or_else(|e| panic!("{script}: {e}"));
    // Well-formed, whatever it says.
    roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{script}: {e}\n{svg}"));
    svg
}

fn assert_shows(svg: &str, words: &[&str]) {
    for w in words {
        assert!(svg.contains(w), "the picture does not show {w:?}:\n{svg}");
    }
}

#[test]
fn churn_shows_both_groups_their_shapes_and_their_link() {
    let svg = draw("scripts/churn.rhai");
    assert_shows(
        &svg,
        &[
            "churn.rhai: 24 nodes in 2 groups",
            ">fiber</text>",
            ">dsl</text>",
            ">4 nodes</text>",
            ">20 nodes</text>",
            "100 mbit/s up, 100 mbit/s down",
            "1 mbit/s up, 8 mbit/s down",
            "latency 20 ms ± 2 ms",
            "loss 0.1 %",
            // The group link, labelled.
            ">30 ms</text>",
            "fiber – dsl: 30 ms",
        ],
    );
}

#[test]
fn bittorrent_shows_its_three_groups_without_links() {
    let svg = draw("scripts/bittorrent.rhai");
    assert_shows(
        &svg,
        &[
            ">infra</text>",
            ">seed</text>",
            ">dsl</text>",
            "10 mbit/s up, 10 mbit/s down",
            "2 mbit/s up, 8 mbit/s down",
            "latency 20 ms ± 1 ms",
            ">unshaped</text>",
            "no group links",
        ],
    );
    assert!(!svg.contains("<line"), "no group link, no line:\n{svg}");
}

#[test]
fn a_gml_world_shows_every_city_and_its_latencies() {
    let svg = draw("scripts/world.rhai");
    for city in [
        "frankfurt",
        "london",
        "new_york",
        "sao_paulo",
        "johannesburg",
        "singapore",
        "tokyo",
        "sydney",
    ] {
        assert_shows(&svg, &[&format!(">{city}</text>")]);
    }
    assert_shows(
        &svg,
        &[
            "50 mbit/s up, 200 mbit/s down",
            // A vertex's self-loop is the group's link with itself.
            "inside: + 2 ms",
            "inside: + 4 ms ± 1 ms",
            // Every pair is linked (shortest paths): too many to label, so each line has its
            // values in its tooltip, and a legend says what the colours mean.
            "frankfurt – london: 8 ms",
            "28 group links, coloured by one-way latency",
            "group link 0 to 50 ms",
        ],
    );
    assert_eq!(
        svg.matches("<line ").count(),
        28 + 5,
        "28 links, 5 legend rows"
    );
}

#[test]
fn the_command_writes_the_same_bytes_for_the_same_seed() {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/churn.rhai");
    let script = script.to_str().unwrap();
    let mut pictures = Vec::new();
    for name in ["a.svg", "b.svg"] {
        let out = p2plab(
            &[
                "graph", script, "--seed", "7", "--set", "peers=5", "-o", name,
            ],
            dir.path(),
        );
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!("wrote {name}\n")
        );
        pictures.push(std::fs::read(dir.path().join(name)).unwrap());
    }
    assert_eq!(pictures[0], pictures[1]);
    let text = String::from_utf8(pictures[0].clone()).unwrap();
    assert!(text.contains("churn.rhai: 9 nodes in 2 groups"), "{text}");
    assert!(text.contains("--seed 7 --set peers=5"), "{text}");
}

#[test]
fn without_out_the_picture_is_named_after_the_script_here() {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cellular.rhai");
    let out = p2plab(&["graph", script.to_str().unwrap()], dir.path());
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "wrote cellular.svg\n");
    let svg = std::fs::read_to_string(dir.path().join("cellular.svg")).unwrap();
    assert!(svg.contains("up: trace lte-like.up"), "{svg}");
    assert!(svg.contains("queue 1 MiB"), "{svg}");
}

#[test]
fn a_script_error_names_its_file_and_line_with_exit_code_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.rhai"),
        "let peers = alloc_ip(2, #{ group: \"dsl\" });\n\nshape(peers, #{ up: \"fast\" });\n",
    )
    .unwrap();
    let out = p2plab(&["graph", "bad.rhai"], dir.path());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.rhai:3:"), "{err}");
    assert!(
        !dir.path().join("bad.svg").exists(),
        "no picture of a failed script"
    );
}

#[test]
fn an_unwritable_output_is_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/churn.rhai");
    let out = p2plab(
        &[
            "graph",
            script.to_str().unwrap(),
            "-o",
            "no/such/folder/x.svg",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot write no/such/folder/x.svg"), "{err}");
}

/// The script a book picture `img/graph-<name>.svg` is of.
fn script_of(picture: &Path) -> PathBuf {
    let name = picture
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.strip_prefix("graph-"))
        .expect("graph-<name>.svg");
    ["scripts", "scripts/labs"]
        .iter()
        .map(|folder| Path::new(folder).join(format!("{name}.rhai")))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{}: no scripts/{name}.rhai", picture.display()))
}

#[test]
fn the_books_pictures_are_what_graph_draws_today() {
    let mut pictures: Vec<PathBuf> = std::fs::read_dir("book/src/img")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("graph-") && n.ends_with(".svg"))
        })
        .collect();
    pictures.sort();
    let regenerate = "regenerate the book's pictures with \
        `for s in scripts/*.rhai scripts/labs/*.rhai; do p2plab graph $s -o book/src/img/graph-$(basename $s .rhai).svg; done`";
    // Every example scenario and every lab has its picture.
    let scripts = ["scripts", "scripts/labs"]
        .iter()
        .flat_map(|folder| std::fs::read_dir(folder).unwrap());
    for entry in scripts {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rhai") {
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            let picture = PathBuf::from(format!("book/src/img/graph-{stem}.svg"));
            assert!(
                pictures.contains(&picture),
                "{} is missing: {regenerate}",
                picture.display()
            );
        }
    }
    for picture in &pictures {
        let script = script_of(picture);
        let today = draw(script.to_str().unwrap());
        let committed = std::fs::read_to_string(picture).unwrap();
        assert!(
            committed == today,
            "{} is not what `p2plab graph {}` draws today: {regenerate}",
            picture.display(),
            script.display()
        );
        // Some chapter shows it.
        let shown = std::fs::read_dir("book/src").unwrap().any(|e| {
            let path = e.unwrap().path();
            path.extension().is_some_and(|x| x == "md")
                && std::fs::read_to_string(&path).unwrap().contains(&format!(
                    "(img/{})",
                    picture.file_name().unwrap().to_string_lossy()
                ))
        });
        assert!(shown, "no chapter of book/src shows {}", picture.display());
    }
}
