//! A script cannot exhaust the machine: a string, array or map that doubles, a fork loop, a
//! recursion without end and callbacks scheduled without end each stop with a script error
//! that names the limit and the place (exit code 1), never with an abort, in a dry-run (under
//! a memory cap) and in a real run, which then leaves no lab and no process behind (needs
//! root). `--help` and the book list the same limits.

mod common;

use std::os::unix::process::CommandExt;
use std::process::{Command, Output};

use common::{Scenario, alive, can_run_real_mode, namespaces_of, read_events};
use p2plab::script::limits;

/// A script that runs into a limit: functions it defines (one line), the statements that hit
/// the limit, where (line:col inside `body`) and what the error must say.
struct Case {
    functions: &'static str,
    body: &'static str,
    at: (usize, usize),
    says: &'static [&'static str],
    /// Options for `p2plab script` (a small process limit keeps the fork loop fast).
    args: &'static [&'static str],
}

const STRING: Case = Case {
    functions: "",
    body: "let s = \"x\";\nloop { s += s; }\n",
    at: (2, 10),
    says: &["a string grew past the limit of 16 MiB (max_string_size"],
    args: &[],
};

const ARRAY: Case = Case {
    functions: "",
    body: "let a = [1];\nloop { a += a; }\n",
    at: (2, 10),
    says: &["an array or blob grew past the limit of 1000000 elements (max_array_size"],
    args: &[],
};

const MAP: Case = Case {
    functions: "",
    body: "let m = #{ a: 1 };\nloop { m = #{ x: m, y: m }; }\n",
    at: (2, 24),
    says: &["a map grew past the limit of 1000000 entries (max_map_size"],
    args: &[],
};

const FORK_LOOP: Case = Case {
    functions: "",
    body: "loop { spawn(n[0], \"sleep 100\"); }\n",
    at: (1, 8),
    says: &[
        "spawn: 5 processes already run on worker 0, its limit (max_procs)",
        "raise the limit with --max-procs N",
    ],
    args: &["--max-procs", "5"],
};

const RECURSION: Case = Case {
    functions: "fn f(x) { f(x + 1) }",
    body: "f(0);\n",
    at: (1, 1),
    says: &["functions called each other more than 64 deep (max_call_levels)"],
    args: &[],
};

const CALLBACKS: Case = Case {
    functions: "",
    body: "loop { at(1000, || 1); }\n",
    at: (1, 8),
    says: &["at: 1000000 callbacks are already pending, the limit (max_callbacks)"],
    args: &[],
};

/// Lines before the body in the dry-run script.
const DRY_PRELUDE: usize = 2;

/// The case as a dry-run meets it: the limit is reached at once.
fn dry_script(case: &Case) -> String {
    format!("{}\nlet n = alloc_ip(2);\n{}", case.functions, case.body)
}

/// Lines before the body in the real script.
const REAL_PRELUDE: usize = 8;

/// The case as only the real run meets it: a dry-run never sees a program end, so the check
/// that real mode runs first passes, and the limit is reached with the lab built and a
/// program running in it.
fn real_script(case: &Case) -> String {
    format!(
        "{}\nlet n = alloc_ip(2);\nlet keep = spawn(n[1], \"sleep 300\");\n\
         let probe = spawn(n[0], \"true\");\nlet waited = 0;\n\
         while probe.running && waited < 200 {{ sleep(0.05); waited += 1; }}\n\
         // Only the real run gets past this: a dry-run never sees a program end.\n\
         if !probe.running {{\n{}}}\n",
        case.functions, case.body
    )
}

/// Address space a dry-run may take: a script without limits passes it within a second (and
/// aborts), one that errors cleanly stays well below.
const MEMORY_CAP: u64 = 3 << 30;

/// `p2plab` with `args`, its address space capped at `MEMORY_CAP` if `capped`.
fn p2plab(args: &[&str], capped: bool) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_p2plab"));
    cmd.args(args);
    if capped {
        // SAFETY: between fork and exec the child only calls setrlimit(2), which is
        // async-signal-safe, and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                let cap = libc::rlimit {
                    rlim_cur: MEMORY_CAP,
                    rlim_max: MEMORY_CAP,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &cap) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }
    cmd.output().expect("run p2plab")
}

/// Checks that `out` is the script error `case` expects at body line + `prelude`.
fn assert_stopped(case: &Case, prelude: usize, out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "not a script error: {stderr}");
    let (line, col) = case.at;
    let place = format!("/main.rhai:{}:{col}: ", line + prelude);
    let first = stderr.lines().find(|l| l.starts_with("error: "));
    assert!(
        first.is_some_and(|l| l.contains(&place)),
        "expected error: …{place}…, got: {stderr}"
    );
    for words in case.says {
        assert!(stderr.contains(words), "expected {words:?}, got: {stderr}");
    }
}

fn dry_run(case: &Case) {
    let s = Scenario::new(&dry_script(case));
    let out_dir = s.out();
    let mut args = vec![s.path.to_str().unwrap(), "--dry-run", "-q", "--out"];
    args.push(out_dir.to_str().unwrap());
    args.extend(case.args);
    let out = p2plab(&[&["script"], args.as_slice()].concat(), true);
    assert_stopped(case, DRY_PRELUDE, &out);
}

/// The real run stops at the limit, exits 1 and leaves neither its lab nor a process.
fn real_run(test: &str, case: &Case) {
    if !can_run_real_mode(test) {
        return;
    }
    let s = Scenario::new(&real_script(case));
    let out_dir = s.out();
    let mut args = vec!["script", s.path.to_str().unwrap(), "-q", "--out"];
    args.push(out_dir.to_str().unwrap());
    args.extend(case.args);
    let child = Command::new(env!("CARGO_BIN_EXE_p2plab"))
        .args(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run p2plab");
    let owner = child.id();
    let out = child.wait_with_output().expect("wait for p2plab");
    assert_stopped(case, REAL_PRELUDE, &out);
    assert!(namespaces_of(owner).is_empty(), "the run left its lab");
    let events = read_events(&out_dir.join("events.jsonl"));
    let pids: Vec<u32> = events
        .iter()
        .filter(|e| e["event"] == "spawn")
        .map(|e| e["pid"].as_u64().unwrap() as u32)
        .collect();
    assert!(pids.len() >= 2, "the lab ran no program: {events:?}");
    for pid in pids {
        assert!(!alive(pid), "the run left process {pid}");
    }
    let end = events.last().unwrap();
    assert_eq!(end["event"], "end");
    assert_eq!(end["outcome"], "error");
}

#[test]
fn a_doubling_string_stops_at_max_string_size() {
    dry_run(&STRING);
    real_run("a_doubling_string_stops_at_max_string_size", &STRING);
}

#[test]
fn a_doubling_array_stops_at_max_array_size() {
    dry_run(&ARRAY);
    real_run("a_doubling_array_stops_at_max_array_size", &ARRAY);
}

#[test]
fn a_doubling_map_stops_at_max_map_size() {
    dry_run(&MAP);
    real_run("a_doubling_map_stops_at_max_map_size", &MAP);
}

#[test]
fn a_fork_loop_stops_at_max_procs() {
    dry_run(&FORK_LOOP);
    real_run("a_fork_loop_stops_at_max_procs", &FORK_LOOP);
}

#[test]
fn a_recursion_without_end_stops_at_max_call_levels() {
    dry_run(&RECURSION);
    real_run(
        "a_recursion_without_end_stops_at_max_call_levels",
        &RECURSION,
    );
}

#[test]
fn callbacks_scheduled_without_end_stop_at_max_callbacks() {
    dry_run(&CALLBACKS);
}

/// Other ways to grow a string, array or blob in one call or a loop meet the same limits.
#[test]
fn every_way_of_growing_meets_a_limit() {
    let cases = [
        (
            "let s = \"x\";\ns.pad(100000000000, \"y\");\n",
            "max_string_size",
        ),
        (
            "let s = \"x\";\nloop { s.replace(\"x\", \"xx\"); }\n",
            "max_string_size",
        ),
        (
            "let s = \"x\";\nloop { s = `${s}${s}`; }\n",
            "max_string_size",
        ),
        ("let a = [];\na.pad(100000000000, 0);\n", "max_array_size"),
        ("let a = [1];\nloop { a.append(a); }\n", "max_array_size"),
        ("let a = [1];\nloop { a = [a, a]; }\n", "max_array_size"),
        (
            "let s = \"ab\";\nloop { s += s; let c = s.to_chars(); }\n",
            "max_array_size",
        ),
        // Growth one element at a time (measured at each new power of two of the length).
        ("let a = [];\nloop { a.push(1); }\n", "max_array_size"),
        (
            "let a = [0.5];\nloop { a.insert(-1, 0.5); }\n",
            "max_array_size",
        ),
        // With data in the argument, measured after every call.
        (
            "let a = [];\nlet b = [];\nb.pad(1000, 0);\nloop { a.push(b); }\n",
            "max_array_size",
        ),
        (
            "let a = [];\nlet s = \"x\";\ns.pad(16384, \"y\");\nloop { a.push(s); }\n",
            "max_string_size",
        ),
        ("let b = blob(100000000000, 0);\n", "max_array_size"),
        ("let b = blob(1, 0);\nloop { b += b; }\n", "max_array_size"),
    ];
    for (script, limit) in cases {
        let err = Scenario::new(script).run_err();
        assert!(err.contains(limit), "{script}: {err}");
        assert!(err.contains("main.rhai:"), "{script}: {err}");
    }
}

/// Each call level may nest expressions as deep as the parser allows: 64 of them need more
/// stack than a test thread (2 MiB) or the main thread (8 MiB) has. The script's own thread
/// has enough, so this is an error, not an abort of the test binary.
#[test]
fn deep_expressions_in_every_call_level_do_not_overflow_the_stack() {
    let mut call = "f(x + 1)".to_string();
    for _ in 0..12 {
        call = format!("id({call})");
    }
    let script = format!("fn id(v) {{ v }}\nfn f(x) {{ {call} }}\nf(0);\n");
    let err = Scenario::new(&script).run_err();
    assert!(
        err.contains("main.rhai:3:1: functions called each other"),
        "{err}"
    );
    // Dozens of frames, cut in the middle.
    assert!(err.lines().count() < 20, "{err}");
}

/// A dry-run cannot see programs end: programs started one after another over time, or
/// waited for, do not add up to the process limit.
#[test]
fn a_dry_run_counts_only_programs_started_at_one_instant() {
    let s = Scenario::new(
        "let n = alloc_ip(1);\nfor i in 0..20 { spawn(n[0], \"true\"); sleep(1); }\n\
         for i in 0..20 { spawn(n[0], \"true\").wait(); }\n",
    );
    let mut cfg = s.config();
    cfg.max_procs = 5;
    if let Err(e) = p2plab::run::dry_run(cfg) {
        panic!("{e}");
    }
    assert_eq!(common::of(&s.events(), "spawn").len(), 40);
}

/// 1000000 as "1,000,000".
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `p2plab script --help` and the book's limits section list every limit with its default.
#[test]
fn help_and_book_list_the_same_limits() {
    let help = String::from_utf8_lossy(&p2plab(&["script", "--help"], false).stdout).into_owned();
    let book = std::fs::read_to_string("book/src/cli.md").expect("book/src/cli.md");
    let limits = [
        (
            "max_operations",
            thousands(p2plab::script::DEFAULT_MAX_OPERATIONS as usize),
        ),
        (
            "max_procs",
            thousands(p2plab::controller::DEFAULT_MAX_PROCS),
        ),
        (
            "max_string_size",
            format!("{} MiB", limits::MAX_STRING_SIZE >> 20),
        ),
        ("max_array_size", thousands(limits::MAX_ARRAY_SIZE)),
        ("max_map_size", thousands(limits::MAX_MAP_SIZE)),
        ("max_callbacks", thousands(limits::MAX_CALLBACKS)),
        ("max_call_levels", limits::MAX_CALL_LEVELS.to_string()),
    ];
    for (name, default) in limits {
        for (what, text) in [("--help", &help), ("book/src/cli.md", &book)] {
            let line = text.lines().find(|l| l.contains(name));
            assert!(
                line.is_some_and(|l| l.contains(&default)),
                "{what} should list {name} with its default {default}: {line:?}"
            );
        }
    }
}
