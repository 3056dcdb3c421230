//! Binding by cgroup-BPF (needs root): the verifier accepts the five node-binding programs and
//! refuses the mistakes they avoid; a statically linked C program and a Go program built
//! without cgo, which the shim cannot reach, use their node's address for everything they
//! send and listen on, while loopback and an explicit bind are left alone; and a run leaves
//! no cgroup behind, and no BPF program or map open. Asked for the shim (`--binding preload`),
//! a dynamically linked program is bound by it instead.

mod common;

use std::ffi::CStr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;

use p2plab::bpf::insn::{Asm, Insn, R0, R1, R2, R3, R8, R10, Size};
use p2plab::bpf::programs::{Hook, NodeMap, attach, ctx, helper};
use p2plab::bpf::sys::{self, LogLevel, SysError};
use p2plab::proto::BindingChoice;
use p2plab::worker::shim::is_static_elf;

use common::{Scenario, can_run_real_mode_with, cgroups_of, is_root, node_file, real_run, skip};

/// True when BPF programs can be loaded here (root); otherwise [`skip`].
fn can_load_bpf(test: &str) -> bool {
    is_root() || skip(test, "loading BPF programs needs root (CAP_BPF)")
}

/// Taken by every test here: the run's test counts this process's BPF descriptors, which the
/// verifier tests must not hold open meanwhile.
static BPF_FDS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// This process's open BPF programs and maps (`anon_inode:bpf-prog`, `anon_inode:bpf-map`).
fn bpf_fds() -> Vec<String> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|target| target.display().to_string())
        .filter(|t| t.starts_with("anon_inode:bpf-"))
        .collect()
}

fn node_map() -> OwnedFd {
    sys::map_create_hash("p2p_test", 8, 4, 16).unwrap()
}

fn load(attach_type: u32, insns: &[Insn], license: &CStr) -> Result<sys::Loaded, SysError> {
    sys::prog_load(
        "p2p_test",
        sys::PROG_TYPE_CGROUP_SOCK_ADDR,
        attach_type,
        insns,
        license,
        LogLevel::Brief,
    )
}

#[test]
fn verifier_accepts_every_program() {
    if !can_load_bpf("verifier_accepts_every_program") {
        return;
    }
    let _fds = BPF_FDS.lock().unwrap_or_else(|p| p.into_inner());
    let map = node_map();
    for hook in Hook::ALL {
        let insns = hook
            .program(NodeMap {
                fd: map.as_raw_fd(),
                level: 2,
            })
            .unwrap();
        let loaded = load(hook.attach_type(), &insns, c"GPL").unwrap_or_else(|e| panic!("{e}"));
        assert!(loaded.log.contains("processed"), "{hook:?}: {}", loaded.log);
    }
}

#[test]
fn verifier_refusals_carry_the_log() {
    if !can_load_bpf("verifier_refusals_carry_the_log") {
        return;
    }
    let _fds = BPF_FDS.lock().unwrap_or_else(|p| p.into_inner());
    let map = node_map();
    let mut bind_in_bind4 = Asm::new();
    bind_in_bind4
        .mov64_imm(R2, 0)
        .mov64_imm(R3, 0)
        .call(helper::BIND)
        .mov64_imm(R0, 1)
        .exit();
    let mut sk_as_u32 = Asm::new();
    sk_as_u32
        .ldx(Size::W, R2, R1, ctx::SK)
        .mov64_imm(R0, 1)
        .exit();
    let mut msg_src_in_connect = Asm::new();
    msg_src_in_connect
        .stx(Size::W, R1, ctx::MSG_SRC_IP4, R1)
        .mov64_imm(R0, 1)
        .exit();
    let mut returns_2 = Asm::new();
    returns_2.mov64_imm(R0, 2).exit();
    let mut no_null_check = Asm::new();
    no_null_check
        .call(helper::GET_CURRENT_CGROUP_ID)
        .stx(Size::Dw, R10, -8, R0)
        .ld_map_fd(R1, map.as_raw_fd())
        .mov64_reg(R2, R10)
        .add64_imm(R2, -8)
        .call(helper::MAP_LOOKUP_ELEM)
        .ldx(Size::W, R8, R0, 0)
        .mov64_imm(R0, 1)
        .exit();
    let cases = [
        (
            attach::INET4_BIND,
            bind_in_bind4,
            "program of this type cannot use helper bpf_bind#64",
        ),
        (
            attach::INET4_CONNECT,
            sk_as_u32,
            "invalid bpf_context access off=64 size=4",
        ),
        (
            attach::INET4_CONNECT,
            msg_src_in_connect,
            "invalid bpf_context access off=40 size=4",
        ),
        (
            attach::INET4_CONNECT,
            returns_2,
            "should have been in [0, 1]",
        ),
        (
            attach::INET4_CONNECT,
            no_null_check,
            "invalid mem access 'map_value_or_null'",
        ),
    ];
    for (attach_type, asm, expected) in cases {
        match load(attach_type, &asm.finish().unwrap(), c"GPL") {
            Ok(_) => panic!("accepted; expected {expected:?}"),
            Err(SysError::Refused { log, .. }) => {
                assert!(log.contains(expected), "expected {expected:?} in\n{log}")
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// The sources of the node programs and the sink, next to this file.
fn source(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/binding")
        .join(name)
}

/// Runs a build command; panics with its output if it fails.
fn build(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `tests/binding/peer.c` as a static binary and `peer.go` without cgo, in `dir`.
fn build_peers(dir: &Path) -> (PathBuf, PathBuf) {
    let c = dir.join("cpeer");
    build(
        Command::new("gcc")
            .arg("-static")
            .arg("-O1")
            .arg("-o")
            .arg(&c)
            .arg(source("peer.c")),
    );
    let go = dir.join("gopeer");
    // Go's build cache outlives the test, in the target folder, so later runs build in
    // a second; HOME may be unset under CI.
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-cache");
    build(
        Command::new("go")
            .args(["build", "-o"])
            .arg(&go)
            .arg(source("peer.go"))
            .env("CGO_ENABLED", "0")
            .env("GOCACHE", &cache)
            .env("GOPATH", cache.join("path"))
            .env("HOME", dir),
    );
    (c, go)
}

#[test]
fn static_and_go_programs_use_their_node_address() {
    let test = "static_and_go_programs_use_their_node_address";
    if !can_run_real_mode_with(test, &["gcc", "go", "python3"]) {
        return;
    }
    let _fds = BPF_FDS.lock().unwrap_or_else(|p| p.into_inner());
    let before = bpf_fds();
    let bins = tempfile::tempdir().unwrap();
    let (c, go) = build_peers(bins.path());
    // Both out of the shim's reach: it could not bind them.
    for bin in [&c, &go] {
        assert!(
            is_static_elf(bin.to_str().unwrap()),
            "{} is dynamic",
            bin.display()
        );
    }
    // n[0] runs the programs, n[1] the sink that reports what it sees, n[2] is the address
    // the programs bind explicitly. Each program: 1 TCP connection and 3 datagrams.
    let script = format!(
        r#"
let n = alloc_ip(3);
let sink = spawn(n[1], `python3 -u {sink} 7000 7001 8`);
let c = spawn(n[0], `{c} ${{n[1].ip}} 7000 7001 ${{n[2].ip}} c 7100`);
if c.wait() != 0 {{ throw "the C program failed"; }}
let g = spawn(n[0], `{go} ${{n[1].ip}} 7000 7001 ${{n[2].ip}} go 7200`);
if g.wait() != 0 {{ throw "the Go program failed"; }}
if sink.wait() != 0 {{ throw "the sink failed"; }}
"#,
        sink = source("sink.py").display(),
        c = c.display(),
        go = go.display(),
    );
    let s = Scenario::new(&script);
    real_run(&s);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.out().join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["binding"], "bpf", "{summary}");
    let events = s.events();
    assert!(
        common::of(&events, "warning").is_empty(),
        "no static-binary warning where BPF binds: {events:?}"
    );

    let seen = node_file(&s, "10.0.0.2", "stdout.log");
    let mine = node_file(&s, "10.0.0.1", "stdout.log");
    for tag in ["c", "go"] {
        for line in [
            "tcp 10.0.0.1".to_string(),
            format!("udp {tag}-unconnected 10.0.0.1"),
            format!("udp {tag}-connected 10.0.0.1"),
            // An explicit bind is kept.
            format!("udp {tag}-explicit 10.0.0.3"),
        ] {
            assert!(seen.lines().any(|l| l == line), "{line:?} not in\n{seen}");
        }
    }
    assert_eq!(
        seen.lines().filter(|l| *l == "tcp 10.0.0.1").count(),
        2,
        "{seen}"
    );
    // The wildcard listeners were narrowed to the node, and loopback stayed loopback.
    for port in [7100, 7200] {
        assert!(
            mine.lines().any(|l| l == format!("listen 10.0.0.1:{port}")),
            "{mine}"
        );
    }
    let own: Vec<&str> = mine.lines().filter(|l| !l.starts_with("listen")).collect();
    assert_eq!(own.len(), 6, "{mine}");
    for line in own {
        let addr = line.split_whitespace().nth(1).unwrap_or("");
        let expected = if line.starts_with("loopback") {
            "127.0.0.1:"
        } else {
            "10.0.0.1:"
        };
        assert!(addr.starts_with(expected), "{line}");
    }
    // The embedded worker closed its programs and map: the kernel frees them (detached).
    assert_eq!(bpf_fds(), before, "the run left BPF programs or maps open");
    assert!(
        cgroups_of(std::process::id()).is_empty(),
        "the run left its cgroup: {:?}",
        cgroups_of(std::process::id())
    );
}

/// Asked for the shim (`--binding preload`) where cgroup-BPF would work, the run makes no
/// cgroup, and a dynamically linked program still uses its node's address for TCP and for
/// connected and unconnected UDP.
#[test]
fn preload_binding_when_asked_binds_a_dynamic_program() {
    let test = "preload_binding_when_asked_binds_a_dynamic_program";
    if !can_run_real_mode_with(test, &["python3"]) {
        return;
    }
    let _fds = BPF_FDS.lock().unwrap_or_else(|p| p.into_inner());
    let before = bpf_fds();
    let script = format!(
        r#"
let n = alloc_ip(2);
let sink = spawn(n[1], `python3 -u {sink} 7000 7001 3`);
let c = spawn(n[0], `python3 {client} ${{n[1].ip}} 7000 7001 py`);
if c.wait() != 0 {{ throw "the client failed"; }}
if sink.wait() != 0 {{ throw "the sink failed"; }}
"#,
        sink = source("sink.py").display(),
        client = source("client.py").display(),
    );
    let s = Scenario::new(&script);
    let mut cfg = s.config();
    cfg.binding = BindingChoice::Preload;
    if let Err(e) = p2plab::run::real(cfg) {
        panic!("real run failed: {e}");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.out().join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["binding"], "preload", "{summary}");
    assert_eq!(summary["binding_requested"], "preload", "{summary}");
    let seen = node_file(&s, "10.0.0.2", "stdout.log");
    for line in [
        "tcp 10.0.0.1",
        "udp py-unconnected 10.0.0.1",
        "udp py-connected 10.0.0.1",
    ] {
        assert!(seen.lines().any(|l| l == line), "{line:?} not in\n{seen}");
    }
    assert_eq!(
        bpf_fds(),
        before,
        "a preload run opened BPF programs or maps"
    );
}

/// A daemon: forks, `setsid`s out of its process group, forks again, ignores SIGTERM, writes
/// its pid to `daemon.pid` and sleeps. The program the script spawned exits at once.
const DAEMON: &str = r#"python3 -c '
import os, signal, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        open("daemon.pid.tmp", "w").write(str(os.getpid()))
        os.rename("daemon.pid.tmp", "daemon.pid")
        time.sleep(1000)
'"#;

#[test]
fn fail_node_and_leave_reach_a_daemon_that_left_its_process_group() {
    let test = "fail_node_and_leave_reach_a_daemon_that_left_its_process_group";
    if !can_run_real_mode_with(test, &["python3"]) {
        return;
    }
    let _fds = BPF_FDS.lock().unwrap_or_else(|p| p.into_inner());
    // Node 0's daemon is crashed with its node, node 1's is still there when a SIGTERM it
    // ignores arrives and gone once the grace is over; node 2 looks each time (a zombie that
    // its new parent has not reaped yet is gone too).
    let s = Scenario::new(&format!(
        r#"
let n = alloc_ip(3);
spawn(n[0], `{DAEMON}`).wait();
spawn(n[1], `{DAEMON}`).wait();
sleep("1s");
fail_node(n[0]);
leave(n[1], #{{ grace: "1s" }});
sleep("0.3s");
let look = "for n in 10.0.0.1 10.0.0.2; do s=$(awk '/^State/ {{ print $2 }}' /proc/$(cat ../$n/daemon.pid)/status 2>/dev/null); [ -n \"$s\" ] && [ $s != Z ] && echo $n alive || echo $n gone; done";
spawn(n[2], look + " > early.txt", #{{ shell: true }}).wait();
sleep("1.5s");
spawn(n[2], look + " > late.txt", #{{ shell: true }}).wait();
"#
    ));
    real_run(&s);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.out().join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["binding"], "bpf", "{summary}");
    assert_eq!(
        node_file(&s, "10.0.0.3", "early.txt"),
        "10.0.0.1 gone\n10.0.0.2 alive\n",
        "fail_node kills the daemon at once; leave's SIGTERM is ignored"
    );
    assert_eq!(
        node_file(&s, "10.0.0.3", "late.txt"),
        "10.0.0.1 gone\n10.0.0.2 gone\n",
        "leave kills what is left once its grace is over"
    );
}
