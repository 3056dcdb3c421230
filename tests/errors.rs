//! Bad scripts: each error names file:line:col and what was expected, `check` and `script`
//! exit 1, and nothing was executed (no results folder, no action).

mod common;

use std::process::Command;

use common::Scenario;

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
        "unknown option \"upload\" (expected one of: up, down, latency, jitter, loss, queue)",
    ),
    (
        "let n = alloc_ip(1);\nshape(42, #{ up: \"1mbit\" });\n",
        "2:1",
        "expected a Node, an array of Nodes or a group name, got i64 42",
    ),
    (
        "let n = alloc_ip(1);\nsleep(\"soon\");\n",
        "2:1",
        "\"soon\" is not a duration",
    ),
    ("print(y);\n", "1:7", "Undefined variable: y"),
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
}

#[test]
fn real_mode_without_privileges_exits_2_and_says_what_to_do() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let _serial = TUN_MODE.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        // Already unprivileged: run as we are.
        let s = Scenario::new("let n = alloc_ip(1);\nsleep(1);\n");
        let o = p2plab(&[
            "script",
            s.path.to_str().unwrap(),
            "--out",
            s.out().to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&o.stderr).contains("needs root"));
        return;
    }
    let s = Scenario::new("let n = alloc_ip(1);\nsleep(1);\n");
    std::fs::set_permissions(s.dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_p2plab"))
        .args([
            "script",
            s.path.to_str().unwrap(),
            "--out",
            s.out().to_str().unwrap(),
        ])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    // Rootless: a user namespace works here, but /dev/net/tun may be root's alone.
    let tun_private =
        std::fs::metadata("/dev/net/tun").is_ok_and(|m| m.permissions().mode() & 0o006 == 0);
    if tun_private {
        assert!(
            stderr.contains("/dev/net/tun") && stderr.contains("sudo"),
            "{stderr}"
        );
    } else {
        assert!(stderr.contains("needs root"), "{stderr}");
    }
    assert!(
        !s.out().exists(),
        "an unprivileged run left a results folder"
    );
}

/// With /dev/net/tun open to users (as most distributions ship it), an unprivileged user runs
/// a real lab in a user namespace of its own. The device's mode is restored afterwards.
#[test]
fn rootless_real_mode_works_where_the_kernel_allows_it() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "skipping rootless_real_mode_works_where_the_kernel_allows_it: only root can open /dev/net/tun to users for the test"
        );
        return;
    }
    let _serial = TUN_MODE.lock().unwrap_or_else(|e| e.into_inner());
    struct Restore(u32);
    impl Drop for Restore {
        fn drop(&mut self) {
            let mode = std::fs::Permissions::from_mode(self.0);
            let _ = std::fs::set_permissions("/dev/net/tun", mode);
        }
    }
    let mode = std::fs::metadata("/dev/net/tun")
        .unwrap()
        .permissions()
        .mode()
        & 0o7777;
    let _restore = Restore(mode);
    std::fs::set_permissions("/dev/net/tun", std::fs::Permissions::from_mode(0o666)).unwrap();
    let s = Scenario::new(
        "let n = alloc_ip(2);\nshape(n, #{ latency: \"10ms\" });\nspawn(n[0], `ping -c 3 -i 0.2 -I {ip} ${n[1].ip}`).wait();\n",
    );
    std::fs::set_permissions(s.dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let (script, out) = (s.path.to_str().unwrap(), s.out());
    let o = Command::new(env!("CARGO_BIN_EXE_p2plab"))
        .args(["script", script, "--out", out.to_str().unwrap(), "-q"])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    let log = std::fs::read_to_string(out.join("nodes/10.0.0.1/stdout.log")).unwrap();
    let rtts = common::ping_rtts(&log);
    assert_eq!(rtts.len(), 3, "{log}");
    assert!(
        rtts.iter().all(|&r| (40.0..42.0).contains(&r)),
        "RTT of 2 x 10 ms nodes: {rtts:?}"
    );
}

/// The tests that change or depend on /dev/net/tun's mode run one at a time.
static TUN_MODE: std::sync::Mutex<()> = std::sync::Mutex::new(());

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
