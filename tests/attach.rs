//! `p2plab exec` and `p2plab shell` against a running lab (root), and `p2plab doctor`: a
//! command run as a node has its namespace, cgroup, address and link; a wrong node or lab is
//! a clear error; the lab's end stops what was attached.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{Scenario, alive, can_run_real_mode_with, namespaces_of, poll};

fn p2plab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_p2plab"))
}

fn exec(lab: &str, node: &str, cmd: &[&str]) -> Output {
    p2plab()
        .args(["exec", node, "--lab", lab, "--"])
        .args(cmd)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Stops a real run with Ctrl-C's signal and waits for it, also when the test fails.
struct RealRun(std::process::Child);

impl Drop for RealRun {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the pid of our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGINT) };
        let _ = self.0.wait();
    }
}

#[test]
fn exec_runs_a_command_as_a_node_of_the_running_lab() {
    let test = "exec_runs_a_command_as_a_node_of_the_running_lab";
    if !can_run_real_mode_with(test, &["python3", "curl"]) {
        return;
    }
    let s = Scenario::new(
        "let n = alloc_ip(2);\n\
         shape(n, #{ latency: \"20ms\" });\n\
         spawn(n[1], \"python3 -u -m http.server 8000 --bind 10.0.0.2\");\n\
         spawn(n[0], \"sleep 300\");\n\
         sleep(120);\n",
    );
    let out = s.out();
    let run = RealRun(
        p2plab()
            .args([
                "script",
                s.path.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "-q",
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let owner = run.0.id();
    assert!(
        poll(Duration::from_secs(30), || {
            std::fs::read_to_string(out.join("events.jsonl"))
                .is_ok_and(|t| t.matches("\"event\":\"spawn\"").count() == 2)
        }),
        "the run never spawned its two programs"
    );
    let lab = namespaces_of(owner).pop().expect("the run's lab");

    // Its namespace, its node's cgroup, its address in the environment.
    let seen = exec(
        &lab,
        "10.0.0.1",
        &[
            "sh",
            "-c",
            "echo $P2PLAB_IP $BINDIP $P2PLAB_NODE $P2PLAB_LAB; cat /proc/self/cgroup; stat -L -c %i /proc/self/ns/net",
        ],
    );
    assert!(seen.status.success(), "{}", text(&seen.stderr));
    let stdout = text(&seen.stdout);
    assert!(
        stdout.starts_with(&format!("10.0.0.1 10.0.0.1 0 {lab}\n")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("0::") && l.ends_with(&format!("/{lab}/n10.0.0.1"))),
        "not in the node's v2 cgroup: {stdout}"
    );
    let lab_inode = std::fs::metadata(format!("/run/netns/{lab}")).unwrap();
    let lab_inode = std::os::unix::fs::MetadataExt::ino(&lab_inode).to_string();
    assert_eq!(stdout.lines().last(), Some(lab_inode.as_str()), "{stdout}");

    // Its traffic leaves from the node's address over the emulated link (40 ms each way).
    let mut fetched = None;
    assert!(
        poll(Duration::from_secs(20), || {
            let got = exec(
                &lab,
                "10.0.0.1",
                &[
                    "curl",
                    "-sf",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{time_connect}",
                    "http://10.0.0.2:8000/",
                ],
            );
            let ok = got.status.success();
            fetched = Some(got);
            ok
        }),
        "curl as 10.0.0.1 never reached the server: {:?}",
        fetched.map(|o| text(&o.stderr))
    );
    let connect: f64 = text(&fetched.unwrap().stdout).parse().unwrap();
    assert!(
        connect >= 0.075,
        "the connection took {connect} s: it did not cross the 80 ms round trip of the links"
    );
    let server_log = std::fs::read_to_string(out.join("nodes/10.0.0.2/stderr.log")).unwrap();
    assert!(
        server_log.contains("10.0.0.1 - - ["),
        "the server did not see the node's address: {server_log}"
    );

    // The command's own exit code; a wrong node or lab is an error saying what there is.
    assert_eq!(
        exec(&lab, "10.0.0.1", &["sh", "-c", "exit 7"])
            .status
            .code(),
        Some(7)
    );
    let wrong = exec(&lab, "10.0.0.9", &["true"]);
    assert_eq!(wrong.status.code(), Some(2));
    assert_eq!(
        text(&wrong.stderr),
        format!(
            "error: 10.0.0.9 is not a node of lab {lab} that has started a program \
             (nodes with programs: 10.0.0.1, 10.0.0.2)\n"
        )
    );
    let no_lab = exec("p2plab-1-nosuchlab", "10.0.0.1", &["true"]);
    assert_eq!(no_lab.status.code(), Some(2));
    assert!(
        text(&no_lab.stderr)
            .starts_with("error: no running lab is called \"p2plab-1-nosuchlab\" (running: "),
        "{}",
        text(&no_lab.stderr)
    );

    // A shell reads its commands from stdin as that node.
    let mut shell = p2plab()
        .args(["shell", "10.0.0.2", "--lab", &lab])
        .env("SHELL", "/bin/sh")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    shell
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo as $P2PLAB_IP\nexit 3\n")
        .unwrap();
    let shell = shell.wait_with_output().unwrap();
    assert_eq!(shell.status.code(), Some(3));
    assert_eq!(text(&shell.stdout), "as 10.0.0.2\n");
    assert!(text(&shell.stderr).contains(&format!("a shell as node 10.0.0.2 of lab {lab}")));

    // What is attached ends with the lab.
    let attached = p2plab()
        .args(["exec", "10.0.0.1", "--lab", &lab, "--", "sleep", "300"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let attached_pid = attached.id();
    let joined = || {
        let children =
            std::fs::read_to_string(format!("/proc/{attached_pid}/task/{attached_pid}/children"))
                .unwrap_or_default();
        children.split_whitespace().any(|child| {
            std::fs::read_to_string(format!("/proc/{child}/cgroup"))
                .is_ok_and(|c| c.contains(&format!("/{lab}/n10.0.0.1\n")))
        })
    };
    assert!(
        poll(Duration::from_secs(10), joined),
        "the attached command never joined the node's cgroup"
    );
    drop(run);
    assert!(
        poll(Duration::from_secs(10), || !alive(attached_pid)),
        "the attached command outlived the lab"
    );
    let status = { attached }.wait().unwrap();
    // The lab's end signals every process of a node's cgroup, the attached one too: SIGTERM,
    // or SIGKILL where the end gives no grace.
    assert!(
        [128 + libc::SIGTERM, 128 + libc::SIGKILL].contains(&status.code().unwrap_or(0)),
        "{status:?}"
    );
    assert!(namespaces_of(owner).is_empty(), "the lab was not removed");
}

#[test]
fn doctor_checks_the_machine_and_a_scripts_programs() {
    let s = Scenario::new(
        "let n = alloc_ip(2);\n\
         spawn(n[0], \"python3 -c 'print(1)'\");\n\
         spawn(n[1], \"set -e\\nno-such-program-p2plab --x | cut -c1\", #{ shell: true });\n",
    );
    let got = p2plab()
        .args(["doctor", s.path.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = text(&got.stdout);
    assert_eq!(got.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("ok       program        python3: /"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ok       program        cut: /"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "PROBLEM  program        no-such-program-p2plab: not found on PATH\n\
             \x20                       fix: install no-such-program-p2plab, or give its full path in the script\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("problem(s): real mode cannot run as it is\n"),
        "{stdout}"
    );

    let broken = Scenario::new("let n = alloc_ip(2);\nshape(n, #{ latency: \"-5ms\" });\n");
    let got = p2plab()
        .args(["doctor", broken.path.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = text(&got.stdout);
    assert_eq!(got.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "PROBLEM  script         {}:2:",
            broken.path.display()
        )),
        "{stdout}"
    );

    // As root on a machine that runs the real-mode tests, nothing stands in real mode's way.
    if can_run_real_mode_with("doctor_checks_the_machine_and_a_scripts_programs", &[]) {
        let got = p2plab().arg("doctor").output().unwrap();
        let stdout = text(&got.stdout);
        assert_eq!(got.status.code(), Some(0), "{stdout}");
        for topic in ["privileges", "TUN device", "bind shim"] {
            assert!(
                stdout
                    .lines()
                    .any(|l| l.starts_with("ok ") && l.contains(topic)),
                "{topic}: {stdout}"
            );
        }
        assert!(stdout.ends_with("real mode can run here\n"), "{stdout}");
    }
}
