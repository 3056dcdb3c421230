//! Whole scenarios: determinism from the seed, module import, the churn stdlib, and every
//! example in scripts/ (each must dry-run cleanly).

mod common;

use common::{Scenario, example_scripts, of};
use p2plab::run::{self, RunConfig};

fn churn_script() -> &'static str {
    r#"
    import "churn" as churn;
    let peers = alloc_ip(30, #{ group: "dsl" });
    churn::run(peers, 10, 600, #{
        session: #{ dist: "exp", mean: 60 },
        downtime: #{ dist: "pareto", scale: 5, shape: 1.5 },
        on_join: |n| spawn(n, "sleep 1000"),
    });
    sleep("10m");
    "#
}

fn events_text(s: &Scenario, seed: u64, out: &str) -> String {
    let mut cfg = s.config();
    cfg.seed = Some(seed);
    cfg.out = Some(s.dir.path().join(out));
    run::dry_run(cfg).expect("dry-run");
    std::fs::read_to_string(s.dir.path().join(out).join("events.jsonl")).unwrap()
}

#[test]
fn same_seed_same_bytes_other_seed_other_churn() {
    let s = Scenario::new(churn_script());
    let a = events_text(&s, 42, "a");
    let b = events_text(&s, 42, "b");
    let c = events_text(&s, 43, "c");
    assert_eq!(a, b, "same script and seed must give byte-identical events");
    assert_ne!(a, c, "another seed must give another churn");
    assert!(
        a.lines().count() > 100,
        "churn produced too few events:\n{a}"
    );
    // The seed is recorded so a run can be replayed.
    assert!(a.starts_with(r#"{"t":0.0,"event":"start","script":"main","seed":42"#));
}

#[test]
fn a_run_without_seed_picks_and_records_one() {
    let s = Scenario::new("log(`${rand()}`);");
    let mut cfg = s.config();
    cfg.seed = None;
    let out = run::dry_run(cfg).unwrap();
    let events = s.events();
    assert_eq!(events[0]["seed"], out.seed);
}

#[test]
fn churn_alternates_sessions_within_the_window() {
    let s = Scenario::new(churn_script());
    let events = s.run_ok();
    let fails = of(&events, "fail_node");
    let revives = of(&events, "revive");
    assert!(
        fails.len() > 30,
        "expected churn, got {} failures",
        fails.len()
    );
    for e in fails.iter().chain(&revives) {
        let t = e["t"].as_f64().unwrap();
        assert!((10.0..600.0).contains(&t), "event outside [10, 600): {e}");
    }
    // Every node joins at 10 s (online at start) and spawns its software each time it joins.
    let spawns = of(&events, "spawn");
    assert_eq!(spawns.iter().filter(|e| e["t"] == 10.0).count(), 30);
    assert_eq!(spawns.len(), 30 + revives.len());
    // No spawn ever lands on a failed node (it would have been a script error).
}

#[test]
fn churn_arrivals_follow_a_poisson_process() {
    let s = Scenario::new(
        r#"
        import "churn" as churn;
        let peers = alloc_ip(2000);
        let times = churn::poisson_arrivals(2.0, 0, 1000);
        metric("arrivals", times.len());
        let n = churn::arrivals(peers, 0.5, 0, 100, #{ session: 30, depart: "leave",
                                on_join: |p| spawn(p, "true") });
        metric("arrived", n);
        let w = [];
        for i in 0..2000 { w.push(churn::draw(#{ dist: "weibull", scale: 10, shape: 2 })); }
        metric("weibull_mean", w.reduce(|sum, x| sum + x, 0.0) / 2000.0);
        sleep(200);
        "#,
    );
    let events = s.run_ok();
    let metric = |name: &str| common::metric(&events, name);
    // 2 per second over 1000 s: 2000 ± 4 sigma (sigma = sqrt(2000) ≈ 45).
    assert!(
        (1820.0..2180.0).contains(&metric("arrivals")),
        "{}",
        metric("arrivals")
    );
    let arrived = metric("arrived");
    assert!((25.0..80.0).contains(&arrived), "{arrived}");
    assert_eq!(of(&events, "spawn").len() as f64, arrived);
    // Sessions of 30 s, then a graceful leave, unless the window (100 s) closes first.
    let spawns = of(&events, "spawn");
    let leaving = spawns
        .iter()
        .filter(|e| e["t"].as_f64().unwrap() + 30.0 < 100.0)
        .count();
    assert_eq!(of(&events, "leave").len(), leaving);
    // Weibull(scale 10, shape 2) has mean 10 * Γ(1.5) ≈ 8.86.
    assert!(
        (metric("weibull_mean") - 8.86).abs() < 0.4,
        "{}",
        metric("weibull_mean")
    );
}

#[test]
fn churn_rejects_bad_options() {
    let err = Scenario::new(
        "import \"churn\" as churn;\nchurn::run(alloc_ip(1), 0, 10, #{ sesion: 5 });\n",
    )
    .run_err();
    assert!(err.contains("stdlib/churn.rhai:"), "{err}");
    assert!(err.contains("needs a session model"), "{err}");
    assert!(err.contains("main.rhai:2:8 (in run())"), "{err}");
    let err = Scenario::new("import \"churn\" as churn;\nchurn::run(alloc_ip(1), 0, 10, #{ session: #{ dist: \"normal\" } });\nsleep(1);\n").run_err();
    assert!(err.contains("unknown dist normal"), "{err}");
}

#[test]
fn a_local_module_wins_and_modules_see_primitives() {
    let s = Scenario::new(
        "import \"topo\" as topo;\nlet g = topo::star(4);\nlog(`${g.len()} ${topo::NAME}`);\n",
    )
    .with_module(
        "topo",
        "export const NAME = \"star\";\nfn star(n) {\n    let nodes = alloc_ip(n, #{ group: \"star\" });\n    shape(\"star\", #{ latency: \"10ms\" });\n    nodes\n}\n",
    );
    let events = s.run_ok();
    assert_eq!(of(&events, "log")[0]["msg"], "4 star");
    assert_eq!(of(&events, "shape").len(), 4);

    // A module next to the script named like a stdlib module replaces it.
    let s = Scenario::new("import \"churn\" as c;\nlog(c::HELLO);\n")
        .with_module("churn", "export const HELLO = \"local churn\";\n");
    assert_eq!(of(&s.run_ok(), "log")[0]["msg"], "local churn");
}

#[test]
fn every_example_script_dry_runs() {
    let scripts = example_scripts();
    assert!(!scripts.is_empty(), "no example scripts found");
    for path in &scripts {
        let out = tempfile::tempdir().unwrap();
        let mut cfg = RunConfig::new(path);
        cfg.seed = Some(7);
        cfg.out = Some(out.path().to_path_buf());
        if let Err(e) = run::dry_run(cfg) {
            panic!("{}: {e}", path.display());
        }
    }
    let readme = std::fs::read_to_string("scripts/README.md").expect("scripts/README.md");
    for path in &scripts {
        let name = path.strip_prefix("scripts/").unwrap().to_string_lossy();
        assert!(
            readme.contains(name.as_ref()),
            "scripts/README.md does not describe {name}"
        );
    }
}
