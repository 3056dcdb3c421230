//! Dry-run speed: a 1000-node scenario with 10,000 actions, against a baseline of the same
//! script in a bare Rhai engine whose primitives do nothing (the interpreter's own cost).
//! Prints medians of several runs and the time per action, the actions counted in the
//! `events.jsonl` each run wrote; the target is < 1 s for the dry-run. The same scenario in
//! Lua runs alongside, and must write the same events byte for byte.
//!
//!     cargo bench --bench dry_run

use std::time::{Duration, Instant};

use p2plab::run::{self, RunConfig};
use rhai::{Array, Dynamic, Engine, Map};

const RUNS: usize = 7;

/// 1000 alloc_ip + 1000 shape + 1000 spawn + 3500 × (fail_node + revive) = 10,000 actions,
/// with 3500 sleeps and an every() callback on the way.
const SCENARIO: &str = r#"
let peers = alloc_ip(1000, #{ group: "dsl" });
for p in peers { shape(p, #{ up: "1mbit", down: "8mbit", latency: "20ms" }); }
for p in peers { spawn(p, "sleep 1000"); }
let ticks = 0;
every("10s", || { ticks += 1; });
for i in 0..3500 {
    sleep(0.1);
    let p = peers[rand_int(0, 999)];
    fail_node(p);
    revive(p);
}
"#;

/// The same scenario in Lua.
const SCENARIO_LUA: &str = r#"
local peers = alloc_ip(1000, { group = "dsl" })
for _, p in ipairs(peers) do shape(p, { up = "1mbit", down = "8mbit", latency = "20ms" }) end
for _, p in ipairs(peers) do spawn(p, "sleep 1000") end
local ticks = 0
every("10s", function() ticks = ticks + 1 end)
for i = 0, 3499 do
    sleep(0.1)
    local p = peers[rand_int(0, 999) + 1]
    fail_node(p)
    revive(p)
end
"#;

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

/// Events that are not actions of the script: the run's own start and end, process
/// events, and what the script writes into the log.
const NOT_ACTIONS: &[&str] = &["start", "end", "exit", "log", "metric"];

/// One timed dry-run: its duration, the events it reports and the actions in its
/// `events.jsonl`.
fn dry_run_once(dir: &std::path::Path, i: usize, lua: bool) -> (Duration, u64, usize) {
    let (name, text) = if lua {
        ("bench.lua", SCENARIO_LUA)
    } else {
        ("bench.rhai", SCENARIO)
    };
    let script = dir.join(name);
    std::fs::write(&script, text).unwrap();
    let out_dir = dir.join(format!("run{i}-{name}"));
    let mut cfg = RunConfig::new(&script);
    cfg.seed = Some(1);
    cfg.out = Some(out_dir.clone());
    let start = Instant::now();
    let out = run::dry_run(cfg).expect("dry-run");
    let took = start.elapsed();
    let events = std::fs::read_to_string(out_dir.join("events.jsonl")).expect("events.jsonl");
    let mut lines: u64 = 0;
    let mut actions = 0;
    for line in events.lines() {
        let event: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        lines += 1;
        let kind = event["event"].as_str().expect("an event name");
        if !NOT_ACTIONS.contains(&kind) {
            actions += 1;
        }
    }
    assert_eq!(
        lines, out.report.events,
        "events.jsonl has {lines} lines, the report counts {}",
        out.report.events
    );
    (took, out.report.events, actions)
}

fn baseline_once() -> Duration {
    let mut engine = Engine::new();
    engine.set_optimization_level(rhai::OptimizationLevel::None);
    engine.register_fn("alloc_ip", |n: i64, _: Map| -> Array {
        (0..n).map(Dynamic::from).collect()
    });
    engine.register_fn("shape", |_: Dynamic, _: Map| {});
    engine.register_fn("spawn", |_: Dynamic, _: &str| {});
    engine.register_fn("every", |_: &str, _: rhai::FnPtr| {});
    engine.register_fn("sleep", |_: f64| {});
    engine.register_fn("rand_int", |lo: i64, _: i64| lo);
    engine.register_fn("fail_node", |_: Dynamic| {});
    engine.register_fn("revive", |_: Dynamic| {});
    #[allow(deprecated)]
    engine.on_parse_token(|token, _, _| match token {
        rhai::Token::Reserved(s) if s.as_str() == "spawn" => rhai::Token::Identifier(s),
        other => other,
    });
    let start = Instant::now();
    engine.run(SCENARIO).expect("baseline");
    start.elapsed()
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mut ours = Vec::new();
    let mut lua = Vec::new();
    let mut base = Vec::new();
    let mut counted = None;
    // Interleaved so that noise from other work on the machine hits both alike.
    for i in 0..RUNS {
        let (t, events, actions) = dry_run_once(dir.path(), i, false);
        ours.push(t);
        let (t, lua_events, lua_actions) = dry_run_once(dir.path(), i, true);
        lua.push(t);
        let read =
            |name: &str| std::fs::read(dir.path().join(format!("run{i}-{name}/events.jsonl")));
        assert!(
            read("bench.rhai").unwrap() == read("bench.lua").unwrap(),
            "run {i}: the Lua twin wrote other events ({lua_events} events, {lua_actions} actions)"
        );
        // The seed is fixed: every run does the same.
        assert!(
            counted.is_none_or(|c| c == (events, actions)),
            "run {i}: {events} events, {actions} actions; an earlier run: {counted:?}"
        );
        counted = Some((events, actions));
        base.push(baseline_once());
    }
    let (events, actions) = counted.expect("at least one run");
    let (ours, lua, base) = (median(ours), median(lua), median(base));
    println!(
        "dry-run of 1000 nodes, {actions} actions ({events} events written), median of {RUNS}:"
    );
    println!(
        "  p2plab dry-run          {:>8.1} ms   (target < 1000 ms)",
        ours.as_secs_f64() * 1e3
    );
    println!(
        "  p2plab dry-run, Lua     {:>8.1} ms   (the same events; {:.2} x the Rhai run)",
        lua.as_secs_f64() * 1e3,
        lua.as_secs_f64() / ours.as_secs_f64()
    );
    println!(
        "  bare Rhai, no-op prims  {:>8.1} ms",
        base.as_secs_f64() * 1e3
    );
    println!(
        "  ratio                   {:>8.2} x",
        ours.as_secs_f64() / base.as_secs_f64()
    );
    println!(
        "  per action              {:>8.1} us",
        ours.as_secs_f64() * 1e6 / actions as f64
    );
    if ours.max(lua) >= Duration::from_secs(1) {
        eprintln!("dry-run slower than the 1 s target");
        std::process::exit(1);
    }
}
