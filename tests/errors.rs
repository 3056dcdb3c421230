//! Bad scripts: each error names file:line:col and what was expected, `check` and `script`
//! exit 1, and nothing was executed (no results folder, no action).

mod common;

use std::process::Command;

use common::{Scenario, has_program};

/// (script, line:col of the error, words the message must contain)
const CASES: &[(&str, &str, &str)] = &[
    ("let x = ;\n", "1:9", "syntax error"),
    (
        "let n = alloc_ip(1);\nteleport(n);\n",
        "2:1",
        "unknown function teleport()",
    ),
    (
        "let n = alloc_ip(1);\nif false { shap(n, #{}); }\n",
        "2:12",
        "unknown function shap() (did you mean shape?)",
    ),
    (
        "let n = alloc_ip(1);\nshape(n, #{ up: \"fast\" });\n",
        "2:1",
        "shape: up: \"fast\" is not a rate (try \"2mbit\" or \"128kbit\")",
    ),
    (
        "let n = alloc_ip(1);\nshape(n, #{ latency: -5 });\n",
        "2:1",
        "shape: latency: a duration must be between 0 and 100 days, got -5 s",
    ),
    (
        "let n = alloc_ip(1);\nshape(n, #{ latency: \"-5ms\" });\n",
        "2:1",
        "latency: a duration must be zero or more",
    ),
    (
        "let n = alloc_ip(1);\nshape(n, #{ loss: 1.5 });\n",
        "2:1",
        "shape: loss: a loss rate must be between 0.0 and 1.0",
    ),
    (
        "alloc_ip(1, #{ group: \"dsl\" });\nshape(\"cable\", #{ up: \"1mbit\" });\n",
        "2:1",
        "unknown group \"cable\" (known groups: \"dsl\")",
    ),
    (
        "alloc_ip(1, #{ group: \"dsl\" });\nlink_groups(\"dsl\", \"fibre\", #{ latency: \"5ms\" });\n",
        "2:1",
        "unknown group \"fibre\"",
    ),
    (
        "let n = alloc_ip(1);\nshape(n, #{ upload: \"1mbit\" });\n",
        "2:1",
        "unknown option \"upload\" (expected one of: up, down, latency, jitter, jitter_dist, \
         jitter_correlation, loss, queue, cpu, cpu_weight, memory, up_trace, down_trace, \
         delay_trace, trace_offset)",
    ),
    (
        "let n = alloc_ip(1);\nshape(n, #{ jitter: \"5ms\", jitter_dist: \"gauss\" });\n",
        "2:1",
        "shape: jitter_dist: \"gauss\" is not a distribution (expected one of: uniform, normal, \
         pareto, paretonormal)",
    ),
    (
        "let n = alloc_ip(1);\nshape(n, #{ jitter_dist: 2 });\n",
        "2:1",
        "shape: jitter_dist: expected a distribution name (uniform, normal, pareto, paretonormal)",
    ),
    (
        "let n = alloc_ip(1);\nshape(n, #{ jitter_correlation: 1.0 });\n",
        "2:1",
        "shape: jitter_correlation: 1 is out of range (expected a correlation in [0, 1)",
    ),
    (
        "let n = alloc_ip(1);\nshape(n, #{ jitter_correlation: \"25\" });\n",
        "2:1",
        "shape: jitter_correlation: expected a correlation in [0, 1) such as 0.25 or \"25%\"",
    ),
    (
        "alloc_ip(1, #{ group: \"a\" });\nlink_groups(\"a\", \"a\", #{ jitter_correlation: \"-5%\" });\n",
        "2:1",
        "link_groups: jitter_correlation: -0.05 is out of range",
    ),
    (
        "let n = alloc_ip(1);\nshape(n, #{ loss: #{ p: 0.1, q: 0.2 } });\n",
        "2:1",
        "shape: loss: unknown key \"q\" of a burst model (expected one of: p, r, loss_bad, \
         loss_good)",
    ),
    (
        "let n = alloc_ip(1);\nshape(n, #{ loss: #{ r: 0.2 } });\n",
        "2:1",
        "shape: loss: a burst model needs p",
    ),
    (
        "alloc_ip(1, #{ group: \"a\" });\nlink_groups(\"a\", \"a\", #{ loss: #{ p: 0.1, loss_bad: 2 } });\n",
        "2:1",
        "link_groups: loss.loss_bad: a loss rate must be between 0.0 and 1.0",
    ),
    (
        "let n = alloc_ip(1);\nshape(n, #{ loss: \"1%\" });\n",
        "2:1",
        "shape: loss: expected a number between 0.0 and 1.0, or a burst model such as \
         #{ p: 0.01, r: 0.3 }",
    ),
    (
        "let n = alloc_ip(1);\nshape(n, #{ cpu: -0.5 });\n",
        "2:1",
        "cpu: expected a share of one core greater than 0 (0.25, 2.0), at most 1024, got a float -0.5",
    ),
    (
        "let n = alloc_ip(1);\nshape(n, #{ cpu_weight: 0 });\n",
        "2:1",
        "cpu_weight: expected a whole number from 1 to 10000 (100 is the default), got an integer 0",
    ),
    (
        "let n = alloc_ip(1);\nshape(n, #{ memory: \"1mb\" });\n",
        "2:1",
        "memory: expected at least 4mb, got 1048576 bytes",
    ),
    (
        "let n = alloc_ip(1);\nshape(42, #{ up: \"1mbit\" });\n",
        "2:1",
        "expected a Node, an array of Nodes or a group name, got an integer 42",
    ),
    (
        "let n = alloc_ip(1);\nsleep(\"soon\");\n",
        "2:1",
        "\"soon\" is not a duration",
    ),
    (
        "alloc_ip(1);\nwait_until(|| true, \"soon\");\n",
        "2:1",
        "wait_until: timeout: \"soon\" is not a duration",
    ),
    ("print(y);\n", "1:7", "unknown variable y"),
    (
        "sleep(10);\nshape(\"nobody\", #{ up: \"1mbit\" });\n",
        "2:1",
        "unknown group",
    ),
];

#[test]
fn each_error_names_its_place_and_what_was_expected() {
    for (script, at, words) in CASES {
        let s = Scenario::new(script);
        let err = s.run_err();
        let want = format!("main.rhai:{at}: ");
        assert!(
            err.contains(&want),
            "{script:?}: expected {want:?} in {err:?}"
        );
        assert!(
            err.contains(words),
            "{script:?}: expected {words:?} in {err:?}"
        );
    }
}

/// The first line of a script's error after `main.rhai:`, `line:col: message`.
fn message(script: &str) -> String {
    let err = Scenario::new(script).run_err();
    let first = err.lines().next().unwrap_or_default();
    let at = first
        .find("main.rhai:")
        .unwrap_or_else(|| panic!("{script:?}: no position in {err:?}"));
    first[at + "main.rhai:".len()..].to_string()
}

/// Checks each (script, exact `line:col: message`) and that no Rust or Rhai type name shows.
fn assert_messages(cases: &[(&str, &str)]) {
    const TYPE_NAMES: &[&str] = &[
        "i64",
        "f64",
        "ImmutableString",
        "&str",
        "p2plab::",
        "rhai::",
        "alloc::",
        "Dynamic",
        "getter",
    ];
    let mut wrong = Vec::new();
    for (script, want) in cases {
        let got = message(script);
        if got != *want {
            wrong.push(format!("{script:?}\n  got:  {got}\n  want: {want}"));
        }
        for name in TYPE_NAMES {
            assert!(!got.contains(name), "{script:?}: {name} in {got:?}");
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn wrong_argument_kinds_are_said_in_plain_words() {
    assert_messages(&[
        (
            "let n = alloc_ip(1);\nshape(42, \"x\");\n",
            "2:1: shape: expected a target (a Node, an array of Nodes or a group name) and a \
             map of options, got an integer and a string",
        ),
        (
            "alloc_ip(2.0);\n",
            "1:1: alloc_ip: expected a number of nodes (an integer) and optionally a map of \
             options #{ group, worker }, got a float",
        ),
        (
            "let n = alloc_ip(1)[0];\nspawn(n, 5);\n",
            "2:1: spawn: expected a target (a Node, an array of Nodes or a group name), a \
             command (a string) and optionally a map of options #{ env, shell, user, stdout }, got \
             a Node and an integer",
        ),
        (
            "let n = alloc_ip(1)[0];\nn.wait();\n",
            "2:3: wait: expected a Proc, as in p.wait(), got a Node",
        ),
        (
            "sleep(());\n",
            "1:1: sleep: expected a duration (\"30ms\", \"2s\" or seconds), got nothing (())",
        ),
        (
            "link_groups(\"a\", \"b\");\n",
            "1:1: link_groups: expected two group names and a map of options, got a string \
             and a string",
        ),
        (
            "let n = alloc_ip(1);\nshape(n, #{ up: n[0] });\n",
            "2:1: shape: up: expected a rate (\"2mbit\", \"128kbit\"), got a Node",
        ),
        (
            "let n = alloc_ip(1);\nshape([n[0], [1, 2]], #{ up: \"1mbit\" });\n",
            "2:1: shape: element 1 of the array is an array of 2 elements, expected a Node",
        ),
        (
            "let n = alloc_ip(1)[0];\nlet x = 1 + n;\n",
            "2:11: the operator + does not apply to an integer and a Node",
        ),
        (
            "let x = \"a\" - 1;\n",
            "1:13: the operator - does not apply to a string and an integer",
        ),
        (
            "let n = alloc_ip(1)[0];\nlog(n.fialed);\n",
            "2:7: a Node has no property fialed (did you mean failed?)",
        ),
        (
            "let n = 5;\nlog(n.ip);\n",
            "2:7: an integer has no property ip",
        ),
        (
            "let n = alloc_ip(1)[0];\nn.ip = \"10.0.0.9\";\n",
            "2:3: cannot set ip of a Node (to a string): it has no such property, or it is \
             read-only",
        ),
        (
            "let n = alloc_ip(1)[0];\nlog(n[0]);\n",
            "2:6: a Node cannot be indexed with an integer (only arrays, maps and strings can)",
        ),
        (
            "let n = alloc_ip(1)[0];\nif n { log(1); }\n",
            "2:4: expected a bool (true or false), got a Node",
        ),
        (
            "let t = at(5, || log(1));\nt.cancel(1);\n",
            "2:3: cancel: expected a Timer, as in t.cancel(), got a Timer and an integer",
        ),
        (
            "let s = \"ab\";\ns.sub_string(\"x\");\n",
            "2:3: sub_string exists, but not for a string and a string (see the reference)",
        ),
        ("let n = alloc_ip(1)[0];\nthrow n;\n", "2:1: thrown: a Node"),
    ]);
}

#[test]
fn typos_are_still_unknown_functions_with_suggestions() {
    assert_messages(&[
        (
            "let n = alloc_ip(1);\nteleport(n);\n",
            "2:1: unknown function teleport()",
        ),
        (
            "let n = alloc_ip(1);\nif false { shap(n, #{}); }\n",
            "2:12: unknown function shap() (did you mean shape?)",
        ),
        (
            "let a = [1, 2];\nlet b = a.shufle();\n",
            "2:11: unknown function shufle, called with an array (did you mean shuffle?)",
        ),
        // One letter is a step from too many names to guess one.
        ("let f = 5;\nf();\n", "2:1: unknown function f()"),
    ]);
}

/// `fail_node`, `revive` and `leave`: what is an error, and what is deliberately nothing.
#[test]
fn node_life_cycle_errors() {
    assert_messages(&[
        (
            "fail_node(5);\n",
            "1:1: fail_node: expected a Node, an array of Nodes or a group name, got an \
             integer 5",
        ),
        (
            "let n = alloc_ip(2);\nrevive([n[0], \"n1\"]);\n",
            "2:1: revive: element 1 of the array is a string \"n1\", expected a Node",
        ),
        (
            "alloc_ip(1, #{ group: \"dsl\" });\nleave(\"cable\");\n",
            "2:1: leave: unknown group \"cable\" (known groups: \"dsl\")",
        ),
        (
            "revive();\n",
            "1:1: revive: expected a target (a Node, an array of Nodes or a group name), got \
             no argument",
        ),
        (
            "let n = alloc_ip(1);\nleave(n, \"5s\");\n",
            "2:1: leave: expected a target (a Node, an array of Nodes or a group name) and \
             optionally a map of options #{ grace }, got an array and a string",
        ),
        (
            "let n = alloc_ip(1);\nleave(n, #{ grce: 1 });\n",
            "2:1: leave: unknown option \"grce\" (expected one of: grace)",
        ),
        (
            "let n = alloc_ip(1);\nleave(n, #{ grace: \"soon\" });\n",
            "2:1: leave: grace: \"soon\" is not a duration (try \"30ms\", \"2s\" or a number of \
             seconds)",
        ),
        (
            "let n = alloc_ip(1);\nleave(n, #{ grace: -1 });\n",
            "2:1: leave: grace: a duration must be between 0 and 100 days, got -1 s",
        ),
    ]);
    // Not errors: an empty target, a node already in the state asked for. Only `leave` of a
    // failed node is recorded (the node stays failed).
    let events = Scenario::new(
        "let n = alloc_ip(2);\nfail_node([]);\nrevive([]);\nleave([]);\nrevive(n[0]);\n\
         fail_node(n[1]);\nfail_node(n[1]);\nleave(n[1]);\n\
         if !n[1].failed || n[0].failed { throw \"states\"; }\n",
    )
    .run_ok();
    let actions: Vec<&str> = events
        .iter()
        .filter_map(|e| e["event"].as_str())
        .filter(|e| ["fail_node", "revive", "leave"].contains(e))
        .collect();
    assert_eq!(actions, ["fail_node", "leave"]);
}

#[test]
fn at_and_every_errors() {
    assert_messages(&[
        (
            "sleep(10);\nat(3, || log(1));\n",
            "2:1: at: time 3s is in the past (now is 10s); at() takes an experiment time, use \
             at(now() + delay, ...) for a delay",
        ),
        (
            "at(\"soon\", || log(1));\n",
            "1:1: at: \"soon\" is not a duration (try \"30ms\", \"2s\" or a number of seconds)",
        ),
        (
            "at(5, 6);\n",
            "1:1: at: expected a time (a duration since the start) and a function (a closure \
             such as || fail_node(p), or a function's name), got an integer and an integer",
        ),
        (
            "every(0, || log(1));\n",
            "1:1: every: expected a period greater than zero",
        ),
        (
            "every(\"-1s\", || log(1));\n",
            "1:1: every: a duration must be zero or more, got -1s",
        ),
        (
            "every(\"1s\");\n",
            "1:1: every: expected a period (a duration) and a function (a closure such as || \
             fail_node(p), or a function's name), got a string",
        ),
        (
            "at(1, |p| log(p));\nsleep(2);\n",
            "2:1: a closure was called with no argument, which does not match its parameters \
             (at() and every() call theirs with no argument: write || ..., and capture values)",
        ),
    ]);
}

/// The limits of the random draws: each a script error naming what was wrong.
#[test]
fn randomness_limits_are_errors() {
    assert_messages(&[
        (
            "rand_int(5, 1);\n",
            "1:1: rand_int: expected lo <= hi, got 5 > 1",
        ),
        (
            "rand_int(1, 2.5);\n",
            "1:1: rand_int: expected two integers, lo and hi, got an integer and a float",
        ),
        (
            "rand_exp(0);\n",
            "1:1: rand_exp: mean: expected a number greater than 0, got an integer 0",
        ),
        (
            "rand_exp(\"10s\");\n",
            "1:1: rand_exp: mean: expected a number greater than 0, got a string \"10s\"",
        ),
        (
            "rand_pareto(1, 0);\n",
            "1:1: rand_pareto: shape: expected a number greater than 0, got an integer 0",
        ),
        (
            "rand_pareto(-1.5, 2);\n",
            "1:1: rand_pareto: scale: expected a number greater than 0, got a float -1.5",
        ),
        (
            "rand_weibull(0.0, 1);\n",
            "1:1: rand_weibull: scale: expected a number greater than 0, got a float 0.0",
        ),
        (
            "rand_weibull(1);\n",
            "1:1: rand_weibull: expected a scale and a shape (two numbers greater than 0), got \
             an integer",
        ),
        ("pick([]);\n", "1:1: pick: cannot pick from an empty array"),
        ("pick(5);\n", "1:1: pick: expected an array, got an integer"),
        (
            "shuffle(\"abc\");\n",
            "1:1: shuffle: expected an array, got a string",
        ),
        (
            "rand(1);\n",
            "1:1: rand: expected no argument, got an integer",
        ),
    ]);
    // The edges that are allowed: lo == hi, an empty shuffle.
    Scenario::new("if rand_int(3, 3) != 3 || shuffle([]).len() != 0 { throw \"edges\"; }\n")
        .run_ok();
}

#[test]
fn errors_inside_modules_point_into_the_module() {
    let s = Scenario::new("import \"helpers\" as h;\nlet n = alloc_ip(1);\nh::setup(n);\n")
        .with_module(
            "helpers",
            "fn setup(n) {\n    shape(n, #{ down: \"10 potatoes\" });\n}\n",
        );
    let err = s.run_err();
    assert!(
        err.contains("helpers.rhai:2:5: shape: down: \"10 potatoes\" is not a rate"),
        "{err}"
    );
    assert!(err.contains("main.rhai:3:4 (in setup())"), "{err}");

    let s = Scenario::new("import \"broken\" as b;\n").with_module("broken", "fn f( {\n");
    let err = s.run_err();
    assert!(err.contains("broken.rhai:1:"), "{err}");
    assert!(err.contains("syntax error"), "{err}");
    assert!(err.contains("main.rhai:1:8 (import)"), "{err}");

    let err = Scenario::new("import \"nowhere\" as n;\n").run_err();
    assert!(
        err.contains("main.rhai:1:8: no module \"nowhere\""),
        "{err}"
    );

    let s = Scenario::new("import \"a\" as a;\n")
        .with_module("a", "import \"b\" as b;\n")
        .with_module("b", "import \"a\" as a;\n");
    let err = s.run_err();
    assert!(err.contains("import cycle: a -> b -> a"), "{err}");
}

#[test]
fn a_runaway_loop_stops_with_a_clear_error() {
    let s = Scenario::new("let n = alloc_ip(1);\nloop {\n    let x = 1;\n}\n");
    let mut cfg = s.config();
    cfg.max_operations = 200_000;
    let err = p2plab::run::dry_run(cfg).unwrap_err().to_string();
    assert!(err.contains("main.rhai:"), "{err}");
    assert!(
        err.contains("ran 200000 operations without sleeping: an endless loop?"),
        "{err}"
    );
    // A loop that sleeps is no runaway: it runs into the dry-run horizon instead.
    let s = Scenario::new("loop { sleep(\"1h\"); }\n");
    let err = s.run_err();
    assert!(
        err.contains("main.rhai:1:8: sleep: the dry-run reached its horizon of 864000s"),
        "{err}"
    );
}

fn p2plab(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_p2plab"))
        .args(args)
        .output()
        .expect("run p2plab")
}

#[test]
fn cli_exits_1_on_script_errors_and_executes_nothing() {
    let s = Scenario::new(
        "let n = alloc_ip(2);\nspawn(n[0], \"touch started\");\nsleep(60);\nshape(n, #{ loss: 2 });\n",
    );
    let path = s.path.to_str().unwrap();
    let out_dir = s.out();
    let out = out_dir.to_str().unwrap();
    for args in [
        vec!["check", path],
        vec!["script", path, "--out", out],
        vec!["script", path, "--dry-run", "--out", out, "-q"],
    ] {
        let o = p2plab(&args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("main.rhai:4:1: shape: loss"), "{stderr}");
        if args[0] != "script" || !args.contains(&"--dry-run") {
            assert!(!out_dir.exists(), "{args:?} created a results folder");
        }
    }
    assert!(!s.dir.path().join("started").exists());
    assert!(!std::path::Path::new("started").exists());
}

#[test]
fn cli_usage_errors_and_real_mode_exit_2() {
    let o = p2plab(&["script"]);
    assert_eq!(o.status.code(), Some(2));
    let o = p2plab(&["script", "/nonexistent/x.rhai", "--dry-run"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read /nonexistent/x.rhai"));
    let o = p2plab(&["script", "x.rhai", "--set", "novalue"]);
    assert_eq!(o.status.code(), Some(2));
    let o = p2plab(&["script", "x.rhai", "--binding", "ebpf"]);
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        ["auto", "bpf", "preload"]
            .iter()
            .all(|c| stderr.contains(c)),
        "{stderr}"
    );
}

/// User and group `nobody`, whom root tests run unprivileged programs as.
const NOBODY: u32 = 65534;

/// Who runs an unprivileged `p2plab`.
#[derive(Clone, Copy, Debug)]
enum Unprivileged {
    /// This test, already an ordinary user.
    Myself,
    /// `nobody`, started by this test as root.
    Nobody,
    /// `nobody` in a user namespace of its own where the kernel refuses further user
    /// namespaces (see `p2plab_without_user_namespaces`), started by this test as root.
    NobodyWithoutUserNamespaces,
}

/// Runs `p2plab script SCRIPT --out OUT -q` as `who`.
fn p2plab_as(who: Unprivileged, s: &Scenario) -> std::process::Output {
    p2plab_as_with(who, s, &[])
}

/// Runs `p2plab script SCRIPT --out OUT -q EXTRA...` as `who`.
fn p2plab_as_with(who: Unprivileged, s: &Scenario, extra: &[&str]) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    let out = s.out();
    let mut args = vec![
        "script",
        s.path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
    ];
    args.extend_from_slice(extra);
    match who {
        Unprivileged::Myself => p2plab(&args),
        Unprivileged::Nobody => Command::new(env!("CARGO_BIN_EXE_p2plab"))
            .args(&args)
            .uid(NOBODY)
            .gid(NOBODY)
            .output()
            .expect("run p2plab as nobody"),
        Unprivileged::NobodyWithoutUserNamespaces => p2plab_without_user_namespaces(&args),
    }
}

/// `p2plab ARGS` as `nobody` in a user namespace of its own (root and nobody mapped to
/// themselves) whose limit of nested user namespaces is 0: for this one process the kernel
/// refuses user namespaces (`ENOSPC`), as on a machine where they are disabled, while the
/// host's setting stays as it is. Needs root, `unshare` and `setpriv`.
fn p2plab_without_user_namespaces(args: &[&str]) -> std::process::Output {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::process::Stdio;
    // `unshare --user` leaves the shell unmapped and without capabilities; once this test has
    // written the maps, the shell execs itself again to gain them, sets the limit and becomes
    // nobody.
    let inner = format!(
        "echo 0 > /proc/sys/user/max_user_namespaces \
         && exec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups -- \"$@\""
    );
    let outer = format!("echo ready; read _; exec sh -c '{inner}' sh \"$@\"");
    let mut child = Command::new("unshare")
        .args(["--user", "--", "sh", "-c", &outer, "sh"])
        .arg(env!("CARGO_BIN_EXE_p2plab"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run unshare");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).expect("read unshare's output");
    if line != "ready\n" {
        let mut stderr = String::new();
        let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
        let _ = child.wait();
        panic!("unshare --user failed for root: {stderr}");
    }
    // The namespace's owner (this test, root outside) may map several ids at once.
    let pid = child.id();
    for map in ["uid_map", "gid_map"] {
        let path = format!("/proc/{pid}/{map}");
        std::fs::write(&path, format!("0 0 1\n{NOBODY} {NOBODY} 1\n"))
            .unwrap_or_else(|e| panic!("write {path}: {e}"));
    }
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"go\n").expect("wake the shell up");
    drop(stdin);
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).expect("read p2plab's output");
    let mut out = child.wait_with_output().expect("wait for p2plab");
    out.stdout = rest;
    out
}

/// Why `who` cannot make a rootless lab here, or `None` if the kernel lets it: the steps of
/// `p2plab`'s own (a user and a network namespace, mapped to root inside, loopback up),
/// done by `unshare` and `ip`. The TUN device is not part of it.
fn user_namespaces_refused(who: Unprivileged) -> Option<String> {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--user",
        "--map-root-user",
        "--net",
        "ip",
        "link",
        "set",
        "lo",
        "up",
    ]);
    match who {
        Unprivileged::Myself => {}
        Unprivileged::Nobody => {
            cmd.uid(NOBODY).gid(NOBODY);
        }
        Unprivileged::NobodyWithoutUserNamespaces => unreachable!("made, not probed"),
    }
    let o = cmd.output().expect("run unshare");
    (!o.status.success()).then(|| String::from_utf8_lossy(&o.stderr).trim().to_string())
}

/// Whether this process may open the TUN device for reading and writing.
fn tun_opens() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(common::TUN)
        .is_ok()
}

/// What an unprivileged real run says when the kernel refuses it a user namespace: no lab
/// possible, use sudo. Exit 2, and no results folder.
fn assert_needs_root(who: Unprivileged, o: &std::process::Output, s: &Scenario) {
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{who:?}: {stderr}");
    assert!(
        stderr.contains("no rootless lab possible here") && stderr.contains("needs root"),
        "{who:?}: {stderr}"
    );
    assert!(stderr.contains("run it with sudo"), "{who:?}: {stderr}");
    assert!(
        !s.out().exists(),
        "{who:?}: an unprivileged run left a results folder"
    );
}

/// What an unprivileged real run says when a user namespace works but `/dev/net/tun` is
/// root's alone: open the device to users, or use sudo. Exit 2, and no results folder.
fn assert_tun_closed(who: Unprivileged, o: &std::process::Output, s: &Scenario) {
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{who:?}: {stderr}");
    assert!(
        stderr.contains("/dev/net/tun") && stderr.contains("sudo"),
        "{who:?}: {stderr}"
    );
    assert!(
        stderr.contains("rootless real mode cannot open the TUN device")
            && stderr.contains("sudo chmod 0666 /dev/net/tun"),
        "{who:?}: {stderr}"
    );
    assert!(
        !s.out().exists(),
        "{who:?}: an unprivileged run left a results folder"
    );
}

/// A scenario folder that user nobody may write into.
fn scenario_for_anyone(text: &str) -> Scenario {
    use std::os::unix::fs::PermissionsExt;
    let s = Scenario::new(text);
    std::fs::set_permissions(s.dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    s
}

/// An unprivileged real run that cannot have a lab exits 2 and says what to do, for each
/// reason: the kernel refuses it a user namespace, or `/dev/net/tun` is root's alone. As root
/// the test makes both conditions (a user namespace whose limit of nested ones is 0; the
/// device at mode 0600); as an ordinary user it expects what the machine allows.
#[test]
fn real_mode_without_privileges_exits_2_and_says_what_to_do() {
    const TEST: &str = "real_mode_without_privileges_exits_2_and_says_what_to_do";
    let mut tun = common::TunModeLock::take();
    if !std::path::Path::new(common::TUN).exists() {
        common::skip(TEST, "needs /dev/net/tun (`modprobe tun`)");
        return;
    }
    if !has_program(TEST, "unshare") || !has_program(TEST, "ip") {
        return;
    }
    let script = "let n = alloc_ip(1);\nsleep(1);\n";
    if !common::is_root() {
        // Already unprivileged: nothing can be changed, so the machine decides the case.
        let who = Unprivileged::Myself;
        let s = Scenario::new(script);
        let o = p2plab_as(who, &s);
        match user_namespaces_refused(who) {
            Some(why) => {
                eprintln!("{TEST}: the kernel refuses user namespaces here ({why})");
                assert_needs_root(who, &o, &s);
            }
            None if !tun_opens() => assert_tun_closed(who, &o, &s),
            None => {
                common::skip(
                    TEST,
                    "rootless real mode works for this user here (user namespaces allowed, \
                     /dev/net/tun open to it): only root can make it fail",
                );
            }
        }
        return;
    }
    if !has_program(TEST, "setpriv") {
        return;
    }
    // The kernel refuses user namespaces: made for the one process.
    let s = scenario_for_anyone(script);
    let who = Unprivileged::NobodyWithoutUserNamespaces;
    assert_needs_root(who, &p2plab_as(who, &s), &s);

    // User namespaces as the machine allows them, and /dev/net/tun root's alone.
    tun.set(0o600);
    let s = scenario_for_anyone(script);
    let who = Unprivileged::Nobody;
    let o = p2plab_as(who, &s);
    match user_namespaces_refused(who) {
        Some(why) => {
            eprintln!("{TEST}: the kernel refuses user namespaces to nobody here ({why})");
            assert_needs_root(who, &o, &s);
        }
        None => assert_tun_closed(who, &o, &s),
    }
}

/// With /dev/net/tun open to users (as most distributions ship it), an unprivileged user runs
/// a real lab in a user namespace of its own. As root the test opens the device (and restores
/// its mode afterwards) and runs as nobody; as an ordinary user it runs where the machine
/// allows it.
#[test]
fn rootless_real_mode_works_where_the_kernel_allows_it() {
    const TEST: &str = "rootless_real_mode_works_where_the_kernel_allows_it";
    let mut tun = common::TunModeLock::take();
    if !std::path::Path::new(common::TUN).exists() {
        common::skip(TEST, "needs /dev/net/tun (`modprobe tun`)");
        return;
    }
    if !["unshare", "ip", "ping"]
        .iter()
        .all(|p| has_program(TEST, p))
    {
        return;
    }
    let who = if common::is_root() {
        tun.set(0o666);
        Unprivileged::Nobody
    } else if !tun_opens() {
        common::skip(
            TEST,
            "/dev/net/tun is not open to this user, and only root can change that",
        );
        return;
    } else {
        Unprivileged::Myself
    };
    if let Some(why) = user_namespaces_refused(who) {
        common::skip(
            TEST,
            &format!("the kernel refuses user namespaces to {who:?} here ({why})"),
        );
        return;
    }
    let s = scenario_for_anyone(
        "let n = alloc_ip(2);\nshape(n, #{ latency: \"10ms\" });\nspawn(n[0], `ping -c 3 -i 0.2 -I {ip} ${n[1].ip}`).wait();\n",
    );
    let o = p2plab_as(who, &s);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{who:?}: {stderr}");
    let log = std::fs::read_to_string(s.out().join("nodes/10.0.0.1/stdout.log")).unwrap();
    let rtts = common::ping_rtts(&log);
    assert_eq!(rtts.len(), 3, "{log}");
    // The median: a rootless data plane may not raise its priority, so on a busy machine one
    // ping of three can be a few ms late (the run's fidelity verdict reports that).
    let median = common::median(rtts.clone());
    assert!(
        (40.0..42.0).contains(&median) && rtts.iter().all(|&r| r >= 40.0),
        "RTT of 2 x 10 ms nodes: {rtts:?}"
    );
    // No cgroup-BPF without root: the shim binds programs.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.out().join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["binding"], "preload", "{summary}");
    // Asked for cgroup-BPF, which rootless mode cannot have: a setup error that says why.
    let o = p2plab_as_with(who, &s, &["--binding", "bpf"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{who:?}: {stderr}");
    assert!(
        stderr.contains("--binding bpf") && stderr.contains("rootless"),
        "{stderr}"
    );
}

#[test]
fn cli_help_and_check_succeed() {
    let o = p2plab(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    let help = String::from_utf8_lossy(&o.stdout);
    for word in ["script", "check", "Exit codes", "--dry-run"] {
        assert!(help.contains(word), "--help lacks {word}: {help}");
    }
    let s = Scenario::new("let n = alloc_ip(3);\nsleep(\"2m\");\n");
    let o = p2plab(&["check", s.path.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("ok (5 events over 120.000 s"));
}
