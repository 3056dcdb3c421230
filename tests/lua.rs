//! Lua scenarios: every scenario of `scripts/` and `scripts/labs/` and its Lua twin write
//! byte-identical `events.jsonl` in a dry-run with the same seed; the error cases of the Rhai tests give the
//! same messages and lines from Lua; the stdlib modules in Lua are twins of the Rhai ones;
//! `scripts/churn.lua` runs in real mode (root).

mod common;

use std::path::{Path, PathBuf};

use common::{can_run_real_mode_with, example_scripts, read_events};
use p2plab::run::{self, RunConfig, RunError};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Dry-runs `script` with `seed` and `params` into `out`: the bytes of its events, or the error.
fn dry_run(
    script: &Path,
    out: &Path,
    seed: u64,
    params: &[(&str, &str)],
) -> Result<Vec<u8>, String> {
    let mut cfg = RunConfig::new(script);
    cfg.out = Some(out.to_path_buf());
    cfg.seed = Some(seed);
    for (k, v) in params {
        cfg.params.insert(k.to_string(), v.to_string());
    }
    match run::dry_run(cfg) {
        Ok(_) => Ok(std::fs::read(out.join("events.jsonl")).expect("events.jsonl")),
        Err(RunError::Script(e)) => Err(e.to_string()),
        Err(e) => Err(format!("not a script error: {e}")),
    }
}

/// Both versions of a scenario, dry-run alike: panics unless their events are the same bytes.
fn assert_twins(rhai: &Path, lua: &Path, seed: u64, params: &[(&str, &str)]) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let a = dry_run(rhai, &dir.path().join("rhai"), seed, params)
        .unwrap_or_else(|e| panic!("{}: {e}", rhai.display()));
    let b = dry_run(lua, &dir.path().join("lua"), seed, params)
        .unwrap_or_else(|e| panic!("{}: {e}", lua.display()));
    if a != b {
        let (a, b) = (String::from_utf8_lossy(&a), String::from_utf8_lossy(&b));
        let first = a
            .lines()
            .zip(b.lines())
            .position(|(x, y)| x != y)
            .unwrap_or(a.lines().count().min(b.lines().count()));
        panic!(
            "{} and {} differ from event {first}:\n  rhai: {}\n  lua:  {}",
            rhai.display(),
            lua.display(),
            a.lines().nth(first).unwrap_or("(end)"),
            b.lines().nth(first).unwrap_or("(end)")
        );
    }
    a.iter().filter(|&&c| c == b'\n').count()
}

#[test]
fn every_scenario_has_a_lua_twin_with_the_same_events() {
    let scenarios = example_scripts();
    assert!(scenarios.len() >= 10, "{scenarios:?}");
    let missing: Vec<_> = scenarios
        .iter()
        .filter(|p| !p.with_extension("lua").is_file())
        .collect();
    assert!(missing.is_empty(), "no Lua twin for {missing:?}");
    for rhai in &scenarios {
        let lua = rhai.with_extension("lua");
        for seed in [1, 3, 77] {
            let events = assert_twins(rhai, &lua, seed, &[]);
            assert!(events > 10, "{}: {events} events", lua.display());
        }
    }
    // Parameters reach both alike.
    let churn = repo().join("scripts/churn.rhai");
    assert_twins(
        &churn,
        &churn.with_extension("lua"),
        5,
        &[("peers", "40"), ("minutes", "20")],
    );
}

/// A Rhai scenario and its Lua twin in a fresh folder, named `main.rhai` and `main.lua`.
struct Pair {
    dir: tempfile::TempDir,
}

impl Pair {
    fn new(rhai: &str, lua: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.rhai"), rhai).unwrap();
        std::fs::write(dir.path().join("main.lua"), lua).unwrap();
        Pair { dir }
    }

    fn path(&self, ext: &str) -> PathBuf {
        self.dir.path().join(format!("main.{ext}"))
    }

    fn err(&self, ext: &str, max_operations: Option<u64>) -> String {
        let mut cfg = RunConfig::new(self.path(ext));
        cfg.out = Some(self.dir.path().join(format!("out-{ext}")));
        cfg.seed = Some(1);
        if let Some(m) = max_operations {
            cfg.max_operations = m;
        }
        match run::dry_run(cfg) {
            Ok(_) => panic!("main.{ext} succeeded but should have failed"),
            Err(e) => e.to_string(),
        }
    }
}

/// `main.EXT:line[:col]: message` split into its line, its column and its message.
fn place(err: &str, ext: &str) -> (usize, Option<usize>, String) {
    let rest = err
        .split_once(&format!("main.{ext}:"))
        .unwrap_or_else(|| panic!("no place in {err:?}"))
        .1;
    let (line, rest) = rest.split_once(':').unwrap();
    let line = line.parse().unwrap();
    match rest.split_once(':') {
        Some((col, msg)) if col.parse::<usize>().is_ok() => {
            (line, col.parse().ok(), msg.trim().to_string())
        }
        _ => (line, None, rest.trim().to_string()),
    }
}

#[test]
fn errors_say_the_same_from_lua_as_from_rhai() {
    // (Rhai, Lua): the same mistake on the same line.
    let cases: &[(&str, &str)] = &[
        (
            "let n = alloc_ip(1);\nteleport(n);\n",
            "local n = alloc_ip(1)\nteleport(n)\n",
        ),
        (
            "let n = alloc_ip(1);\nif false { shap(n, #{}); }\n",
            "local n = alloc_ip(1)\nif false then shap(n, {}) end\n",
        ),
        (
            "let n = alloc_ip(1);\nshape(n, #{ up: \"fast\" });\n",
            "local n = alloc_ip(1)\nshape(n, { up = \"fast\" })\n",
        ),
        (
            "let n = alloc_ip(1);\nshape(n, #{ latency: -5 });\n",
            "local n = alloc_ip(1)\nshape(n, { latency = -5 })\n",
        ),
        (
            "let n = alloc_ip(1);\nshape(n, #{ latency: \"-5ms\" });\n",
            "local n = alloc_ip(1)\nshape(n, { latency = \"-5ms\" })\n",
        ),
        (
            "let n = alloc_ip(1);\nshape(n, #{ loss: 1.5 });\n",
            "local n = alloc_ip(1)\nshape(n, { loss = 1.5 })\n",
        ),
        (
            "alloc_ip(1, #{ group: \"dsl\" });\nshape(\"cable\", #{ up: \"1mbit\" });\n",
            "alloc_ip(1, { group = \"dsl\" })\nshape(\"cable\", { up = \"1mbit\" })\n",
        ),
        (
            "alloc_ip(1, #{ group: \"dsl\" });\nlink_groups(\"dsl\", \"fibre\", #{ latency: \"5ms\" });\n",
            "alloc_ip(1, { group = \"dsl\" })\nlink_groups(\"dsl\", \"fibre\", { latency = \"5ms\" })\n",
        ),
        (
            "let n = alloc_ip(1);\nshape(n, #{ upload: \"1mbit\" });\n",
            "local n = alloc_ip(1)\nshape(n, { upload = \"1mbit\" })\n",
        ),
        (
            "let n = alloc_ip(1);\nshape(n, 5);\n",
            "local n = alloc_ip(1)\nshape(n, 5)\n",
        ),
        (
            "let n = alloc_ip(1);\nsleep(\"5 parsecs\");\n",
            "local n = alloc_ip(1)\nsleep(\"5 parsecs\")\n",
        ),
        ("let n = alloc_ip(0);\n", "local n = alloc_ip(0)\n"),
        (
            "let x = param(\"missing\");\nat(-1, || x);\n",
            "local x = param(\"missing\")\nat(-1, function() return x end)\n",
        ),
    ];
    let mut wrong = Vec::new();
    for (rhai, lua) in cases {
        let pair = Pair::new(rhai, lua);
        let (r, l) = (pair.err("rhai", None), pair.err("lua", None));
        let (rl, rc, rm) = place(&r, "rhai");
        let (ll, lc, lm) = place(&l, "lua");
        // Lua knows lines; a column when the primitive's name stands once in its line. The
        // twins' lines differ (`let` and `local`), so the columns must point at the same word.
        let word = |text: &str, col: Option<usize>| {
            let line = text.lines().nth(rl - 1).unwrap_or_default();
            let rest: String = line.chars().skip(col.unwrap_or(1) - 1).collect();
            rest.chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect::<String>()
        };
        let same_word = lc.is_none_or(|_| word(lua, lc) == word(rhai, rc) && rc.is_some());
        if rl != ll || rm != lm || !same_word {
            wrong.push(format!("{lua:?}\n  rhai: {r}\n  lua:  {l}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn syntax_errors_and_runaway_loops_are_stopped_at_their_line() {
    let pair = Pair::new(
        "let n = alloc_ip(1);\nlet x = ;\n",
        "local n = alloc_ip(1)\nlocal x = = 2\n",
    );
    let (rl, _, rm) = place(&pair.err("rhai", None), "rhai");
    let (ll, _, lm) = place(&pair.err("lua", None), "lua");
    assert_eq!(rl, ll);
    assert!(
        rm.starts_with("syntax error") && lm.starts_with("syntax error"),
        "{rm} / {lm}"
    );

    let pair = Pair::new(
        "let n = alloc_ip(1);\nloop {\n    let x = 1;\n}\n",
        "local n = alloc_ip(1)\nwhile true do\n    local x = 1\nend\n",
    );
    let r = pair.err("rhai", Some(200_000));
    let l = pair.err("lua", Some(200_000));
    let want = "ran 200000 operations without sleeping: an endless loop?";
    assert!(r.contains(want) && l.contains(want), "{r}\n{l}");
    let (ll, _, _) = place(&l, "lua");
    assert!((2..=4).contains(&ll), "{l}");
}

#[test]
fn lua_tables_stand_for_arrays_and_maps_and_handles_have_methods() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("main.lua");
    std::fs::write(
        &script,
        r#"
local n = alloc_ip(3, { group = "g" })
assert(#n == 3 and n[1].ip == "10.0.0.1" and n[3].group == "g")
assert(n[1] == nodes("g")[1] and n[1] ~= n[2])
shape(n, { up = "1mbit" })
shape("g", { loss = { p = 0.1 } })
-- A group name as target is looked up in the lab: no lock may be held meanwhile.
fail_node("g")
revive("g")
local p = spawn(n[1], "true")
assert(p:wait() == 0 and p.exit_code == 0 and p.node == n[1])
local t = every(1, function() metric("x", 1) end)
sleep(2.5)
t:cancel()
assert(not t.pending)
log({ b = { 1, 2.5, "x" }, a = true })
local ok, err = pcall(function() shape(n, { up = "fast" }) end)
assert(not ok and tostring(err):find("is not a rate"))
sleep(1)
"#,
    )
    .unwrap();
    let out = dir.path().join("out");
    dry_run(&script, &out, 1, &[]).unwrap_or_else(|e| panic!("{e}"));
    let events = read_events(&out.join("events.jsonl"));
    let kinds = |k: &str| events.iter().filter(|e| e["event"] == k).count();
    assert_eq!(kinds("shape"), 6, "{events:?}");
    assert_eq!(kinds("metric"), 2, "{events:?}");
    let log = events.iter().find(|e| e["event"] == "log").unwrap();
    assert_eq!(log["msg"], r#"#{"a": true, "b": [1, 2.5, "x"]}"#, "{log}");
}

#[test]
fn the_lua_churn_scenario_runs_real_programs() {
    if !can_run_real_mode_with(
        "the_lua_churn_scenario_runs_real_programs",
        &["python3", "curl"],
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut cfg = RunConfig::new(repo().join("scripts/churn.lua"));
    cfg.out = Some(out.clone());
    cfg.seed = Some(3);
    cfg.params.insert("peers".into(), "6".into());
    cfg.params.insert("minutes".into(), "1".into());
    let outcome = run::real(cfg).unwrap_or_else(|e| panic!("real run failed: {e}"));
    let events = read_events(&out.join("events.jsonl"));
    assert_eq!(events.last().unwrap()["outcome"], "ok", "{events:?}");
    let spawns = events.iter().filter(|e| e["event"] == "spawn").count();
    assert!(spawns >= 4 + 6, "{spawns} spawns: {events:?}");
    let fails = events.iter().filter(|e| e["event"] == "fail_node").count();
    assert!(
        fails >= 1,
        "no peer failed in a minute of churn: {events:?}"
    );
    // The servers answered the peers' fetches: their uplinks carried pages.
    let served: u64 = outcome
        .report
        .traffic
        .iter()
        .filter(|(ip, _)| ip.octets()[3] <= 4)
        .map(|(_, c)| c.sent_bytes)
        .sum();
    assert!(served > 10_000, "servers sent {served} bytes");
    assert!(
        std::fs::read_to_string(out.join("events.jsonl"))
            .unwrap()
            .contains("online_peers"),
        "no online_peers metric"
    );
}

#[test]
fn the_lua_stdlib_modules_are_twins_of_the_rhai_ones() {
    // Every module of stdlib/ has its twin, and every function of each is called, in both
    // languages, by tests/lua_twins/.
    let twins = std::fs::read_to_string(repo().join("tests/lua_twins/stdlib.lua")).unwrap();
    for entry in std::fs::read_dir(repo().join("stdlib")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rhai") {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            assert!(
                path.with_extension("lua").is_file(),
                "stdlib/{name} has no Lua twin"
            );
            assert!(
                twins.contains(&format!("require \"{name}\"")),
                "tests/lua_twins/stdlib.lua does not require {name}"
            );
        }
    }
    let dir = repo().join("tests/lua_twins");
    for seed in [1, 2, 9] {
        let events = assert_twins(&dir.join("stdlib.rhai"), &dir.join("stdlib.lua"), seed, &[]);
        assert!(events > 40, "{events} events");
    }
}

/// `FILE:line[:col]` as the file without its extension and the line: the columns differ
/// where `local` stands for `let`.
fn file_line(place: &str) -> (String, usize) {
    let mut parts = place.split(':');
    let file = parts
        .next()
        .unwrap()
        .replace(".rhai", "")
        .replace(".lua", "");
    (file, parts.next().unwrap().parse().unwrap())
}

/// The first line of an error, `FILE:line[:col]: message`, as (file, line, message).
fn leaf(err: &str) -> (String, usize, String) {
    let first = err.lines().next().unwrap_or_default();
    let (place, msg) = first
        .split_once(": ")
        .expect("an error starts with its place");
    let (file, line) = file_line(place);
    (file, line, msg.to_string())
}

/// The frames under an error, `called from FILE:line[:col] (what)`, as (file, line, what).
fn frames(err: &str) -> Vec<(String, usize, String)> {
    err.lines()
        .filter_map(|l| l.trim().strip_prefix("called from "))
        .map(|f| {
            let (place, what) = f.split_once(" (").expect("a frame names what was called");
            let (file, line) = file_line(place);
            (file, line, what.trim_end_matches(')').to_string())
        })
        .collect()
}

#[test]
fn callbacks_and_modules_trace_their_errors_as_in_rhai() {
    let cases: &[(&str, &str)] = &[
        // A scheduled callback that fails in a function, run by a sleep inside a function.
        (
            "let n = alloc_ip(2);\nfn boom(p) {\n    shape(p, #{ up: \"fast\" });\n}\n\
             fn run() {\n    sleep(10);\n}\nat(5, || boom(n[0]));\nrun();\n",
            "local n = alloc_ip(2)\nfunction boom(p)\n    shape(p, { up = \"fast\" })\nend\n\
             local function run()\n    sleep(10)\nend\nat(5, function() boom(n[1]) end)\nrun()\n",
        ),
        // A condition of wait_until: a direct callback.
        (
            "let n = alloc_ip(1);\nlet ok = wait_until(|| n[0].nosuch > 1, 5);\n",
            "local n = alloc_ip(1)\nlocal ok = wait_until(function() return n[1].nosuch > 1 end, 5)\n",
        ),
        // A module's function, and a module that does not compile.
        (
            "let n = alloc_ip(1);\nimport \"h\" as h;\nh::setup(n);\n",
            "local n = alloc_ip(1)\nlocal h = require \"h\"\nh.setup(n)\n",
        ),
        (
            "let n = alloc_ip(1);\nimport \"broken\" as b;\n",
            "local n = alloc_ip(1)\nlocal b = require \"broken\"\n",
        ),
    ];
    let modules = [
        (
            "h.rhai",
            "fn setup(n) {\n    shape(n, #{ down: \"10 potatoes\" });\n}\n",
        ),
        (
            "h.lua",
            "local M = {} function M.setup(n)\n    shape(n, { down = \"10 potatoes\" })\nend\nreturn M\n",
        ),
        ("broken.rhai", "fn f( {\n"),
        ("broken.lua", "local function f(\n"),
    ];
    let mut wrong = Vec::new();
    for (rhai, lua) in cases {
        let pair = Pair::new(rhai, lua);
        for (name, text) in modules {
            std::fs::write(pair.dir.path().join(name), text).unwrap();
        }
        let (r, l) = (pair.err("rhai", None), pair.err("lua", None));
        let same_leaf = if r.contains("syntax error") {
            l.contains("syntax error")
        } else {
            leaf(&r) == leaf(&l)
        };
        let (rf, lf) = (frames(&r), frames(&l));
        if !same_leaf || rf != lf || rf.is_empty() {
            wrong.push(format!("rhai: {r}\nlua:  {l}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

/// Lua would call `function(p)` with p = nil; as Rhai refuses `|p| ...` when it falls due, so
/// does the Lua binding, at the same place and with the same trace.
#[test]
fn a_callback_with_parameters_is_refused_as_in_rhai() {
    let pair = Pair::new(
        "let n = alloc_ip(1);\nat(5, |p| fail_node(p));\nsleep(10);\n",
        "local n = alloc_ip(1)\nat(5, function(p) fail_node(p) end)\nsleep(10)\n",
    );
    let (r, l) = (pair.err("rhai", None), pair.err("lua", None));
    let (rl, _, rm) = place(&r, "rhai");
    let (ll, _, lm) = place(&l, "lua");
    assert_eq!(rl, ll, "{r}\n{l}");
    let words = "a closure was called with no argument, which does not match its parameters";
    assert!(rm.starts_with(words) && lm.starts_with(words), "{r}\n{l}");
    assert_eq!(frames(&r), frames(&l));
    assert!(l.contains("write function() ... end"), "{l}");
}
