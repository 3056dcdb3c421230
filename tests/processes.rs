//! Real programs on virtual nodes (needs root): the bind shim gives every program its node's
//! address without options, processes live and die with their nodes.

mod common;

use common::{
    Scenario, can_run_real_mode, can_run_real_mode_with, metric, node_file, of, real_run,
};

#[test]
fn programs_use_their_node_address_without_options() {
    if !can_run_real_mode_with(
        "programs_use_their_node_address_without_options",
        &["python3", "curl", "iperf3"],
    ) {
        return;
    }
    let s = Scenario::new(
        r#"
        let n = alloc_ip(3);
        let web = spawn(n[0], "python3 -m http.server 8000");
        spawn(n[2], "iperf3 -s -1");
        sleep(1);
        spawn(n[1], `curl -s -o page.html http://${n[0].ip}:8000/`).wait();
        // A child forked by a shell connects from its node's address too.
        spawn(n[2], `sh -c 'sleep 0.1; curl -s -o /dev/null http://${n[0].ip}:8000/forked'`).wait();
        spawn(n[1], `iperf3 -c ${n[2].ip} -t 1`).wait();
        sleep(0.5);
        web.kill();
        "#,
    );
    let out = real_run(&s);
    let server_log = node_file(&s, "10.0.0.1", "stderr.log");
    assert!(
        server_log.contains("10.0.0.2 - - ") && server_log.contains("\"GET / HTTP/1.1\" 200"),
        "{server_log}"
    );
    assert!(
        server_log.contains("10.0.0.3 - - ") && server_log.contains("GET /forked"),
        "{server_log}"
    );
    assert!(node_file(&s, "10.0.0.2", "page.html").contains("Directory listing"));
    let iperf_server = node_file(&s, "10.0.0.3", "stdout.log");
    assert!(
        iperf_server.contains("Accepted connection from 10.0.0.2"),
        "{iperf_server}"
    );
    let iperf_client = node_file(&s, "10.0.0.2", "stdout.log");
    assert!(
        iperf_client.contains("local 10.0.0.2") && iperf_client.contains("connected to 10.0.0.3"),
        "{iperf_client}"
    );
    let events = s.events();
    let exits = of(&events, "exit");
    assert!(
        exits.iter().any(|e| e["signal"] == "SIGKILL"),
        "the web server was killed: {exits:?}"
    );
    let _ = out;
}

#[test]
fn a_failed_node_times_out_its_peers_and_comes_back() {
    if !can_run_real_mode_with(
        "a_failed_node_times_out_its_peers_and_comes_back",
        &["python3", "curl"],
    ) {
        return;
    }
    // The client on n[0] downloads slowly from n[1]; n[1] crashes mid-transfer. curl must see
    // a timeout (exit 28), not a reset (exit 56). After revive and a new spawn it completes.
    let s = Scenario::new(
        r#"
        let n = alloc_ip(2);
        shape(n[1], #{ up: "1mbit" });
        let payload = "head -c 2000000 /dev/zero > blob";
        spawn(n[1], payload, #{ shell: true }).wait();
        spawn(n[1], "python3 -m http.server 8000");
        sleep(1);
        let c = spawn(n[0], `curl -s -o blob --max-time 6 http://${n[1].ip}:8000/blob`);
        sleep(2);
        fail_node(n[1]);
        let code = c.wait();
        metric("curl_exit_during_failure", code);
        revive(n[1]);
        spawn(n[1], "python3 -m http.server 8000");
        sleep(1);
        metric("curl_exit_after_revive", spawn(n[0], `curl -s -o blob --max-time 30 http://${n[1].ip}:8000/blob`).wait());
        "#,
    );
    real_run(&s);
    let events = s.events();
    let metric = |name: &str| common::metric(&events, name);
    assert_eq!(
        metric("curl_exit_during_failure"),
        28.0,
        "curl should time out (28), not be reset (56)"
    );
    assert_eq!(metric("curl_exit_after_revive"), 0.0);
    let blob = std::fs::metadata(s.out().join("nodes/10.0.0.1/blob")).unwrap();
    assert_eq!(blob.len(), 2_000_000);
}

#[test]
fn a_command_that_cannot_start_is_an_event_not_a_crash() {
    if !can_run_real_mode("a_command_that_cannot_start_is_an_event_not_a_crash") {
        return;
    }
    let s = Scenario::new(
        r#"
        let n = alloc_ip(1);
        let p = spawn(n[0], "no-such-program --flag");
        metric("code", p.wait());
        let q = spawn(n[0], "sh -c 'exit 3'");
        metric("failing", q.wait());
        "#,
    );
    real_run(&s);
    let events = s.events();
    let spawns = of(&events, "spawn");
    assert!(
        spawns[0]["error"]
            .as_str()
            .unwrap()
            .contains("no-such-program"),
        "{spawns:?}"
    );
    let codes: Vec<f64> = of(&events, "metric")
        .iter()
        .map(|e| e["value"].as_f64().unwrap())
        .collect();
    assert_eq!(codes, [127.0, 3.0]);
    assert!(
        node_file(&s, "10.0.0.1", "stderr.log")
            .contains("p2plab: cannot start \"no-such-program\"")
    );
}

#[test]
fn a_program_starts_in_its_node_folder_group_and_cgroup_with_default_signals() {
    if !can_run_real_mode(
        "a_program_starts_in_its_node_folder_group_and_cgroup_with_default_signals",
    ) {
        return;
    }
    // Everything the spawner sets up between clone and exec, as the program sees it.
    let s = Scenario::new(
        r#"
        let n = alloc_ip(2);
        let p = spawn(n[1], "sh -c 'pwd; echo $P2PLAB_IP $BINDIP $P2PLAB_NODE $GREETING; \
            grep -E \"^(SigBlk|SigIgn):\" /proc/self/status; \
            echo pgid $(cut -d\" \" -f5 /proc/self/stat) pid $$; cat /proc/self/cgroup; \
            yes | head -n 1; echo stdin $(cat)'", #{ env: #{ GREETING: "hello" } });
        metric("code", p.wait());
        "#,
    );
    real_run(&s);
    assert_eq!(metric(&s.events(), "code"), 0.0);
    let out = node_file(&s, "10.0.0.2", "stdout.log");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].ends_with("nodes/10.0.0.2"),
        "the node's folder: {out}"
    );
    assert_eq!(lines[1], "10.0.0.2 10.0.0.2 1 hello", "{out}");
    assert_eq!(
        lines[2], "SigBlk:\t0000000000000000",
        "no signal blocked: {out}"
    );
    // Ignored as by p2plab's own parent (inherited, as through any exec), except SIGPIPE,
    // which Rust ignores for itself.
    let ignored = |status: &str| {
        let hex = status
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:"))
            .unwrap();
        u64::from_str_radix(hex.trim(), 16).unwrap()
    };
    let sigpipe = 1 << (libc::SIGPIPE - 1);
    let ours = ignored(&std::fs::read_to_string("/proc/self/status").unwrap());
    assert_eq!(ignored(lines[3]), ours & !sigpipe, "{out}");
    let ids: Vec<&str> = lines[4].split_whitespace().collect();
    assert_eq!(
        ids[1], ids[3],
        "the shell leads its own process group: {out}"
    );
    // Bound by cgroup-BPF (the machine's default when root) or by the shim.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.out().join("summary.json")).unwrap())
            .unwrap();
    if summary["binding"] == "bpf" {
        assert!(out.contains("/n10.0.0.2\n"), "in its node's cgroup: {out}");
    }
    assert!(out.contains("\ny\n"), "{out}");
    assert!(out.ends_with("\nstdin\n"), "stdin is empty: {out}");
    let err = node_file(&s, "10.0.0.2", "stderr.log");
    assert!(
        !err.contains("Broken pipe"),
        "SIGPIPE ends `yes` quietly: {err}"
    );
}

#[test]
fn a_script_without_an_interpreter_line_runs_with_sh() {
    if !can_run_real_mode("a_script_without_an_interpreter_line_runs_with_sh") {
        return;
    }
    // The kernel refuses such a file (ENOEXEC); execvp, and so p2plab, give it to /bin/sh.
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job");
    std::fs::write(&job, "echo ran by sh with $1\n").unwrap();
    std::fs::set_permissions(&job, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let s = Scenario::new(&format!(
        r#"
        let n = alloc_ip(1);
        metric("code", spawn(n[0], "{} one").wait());
        "#,
        job.display()
    ));
    real_run(&s);
    assert_eq!(metric(&s.events(), "code"), 0.0);
    assert_eq!(
        node_file(&s, "10.0.0.1", "stdout.log"),
        "ran by sh with one\n"
    );
}

#[test]
fn user_option_drops_root_inside_the_lab() {
    if !can_run_real_mode("user_option_drops_root_inside_the_lab") {
        return;
    }
    let s = Scenario::new(
        r#"
        let n = alloc_ip(1);
        metric("code", spawn(n[0], "sh -c 'id -u; cat /proc/self/net/dev | grep -c p2p0'", #{ user: "nobody" }).wait());
        "#,
    );
    real_run(&s);
    let out = node_file(&s, "10.0.0.1", "stdout.log");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        ["65534", "1"],
        "runs as nobody, inside the lab (sees p2p0): {out}"
    );
}

#[test]
fn crashing_a_node_reaches_programs_that_outlived_their_shell() {
    if !can_run_real_mode("crashing_a_node_reaches_programs_that_outlived_their_shell") {
        return;
    }
    // The shell starts a background job and exits; the job keeps the shell's process group.
    // A third node checks, during the run, whether each job is still alive.
    let s = Scenario::new(
        r#"
        let n = alloc_ip(3);
        spawn(n[0], "sleep 300 & echo $! > job.pid", #{ shell: true }).wait();
        spawn(n[1], "sleep 300 & echo $! > job.pid", #{ shell: true }).wait();
        // Alive: the process exists and is not a zombie waiting for init to reap it.
        let alive = |ip| spawn(n[2], `p=$(cat ../${ip}/job.pid); test -d /proc/$p && ! grep -q '^State:.Z' /proc/$p/status`, #{ shell: true }).wait() == 0;
        metric("jobs_alive_before", if alive.call(n[0].ip) && alive.call(n[1].ip) { 1 } else { 0 });
        fail_node(n[0]);
        leave(n[1], #{ grace: "1s" });
        sleep(0.2);
        metric("crashed_job_alive", if alive.call(n[0].ip) { 1 } else { 0 });
        sleep(1.5);
        metric("departed_job_alive", if alive.call(n[1].ip) { 1 } else { 0 });
        "#,
    );
    real_run(&s);
    let events = s.events();
    assert_eq!(common::metric(&events, "jobs_alive_before"), 1.0);
    assert_eq!(
        common::metric(&events, "crashed_job_alive"),
        0.0,
        "fail_node missed the job"
    );
    assert_eq!(
        common::metric(&events, "departed_job_alive"),
        0.0,
        "leave missed the job"
    );
}
