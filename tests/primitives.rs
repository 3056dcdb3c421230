//! Every primitive of the script API in dry-run: what it records in `events.jsonl`.

mod common;

use common::{Scenario, of, timeline};
use serde_json::json;

#[test]
fn alloc_ip_gives_addresses_groups_and_properties() {
    let events = Scenario::new(
        r#"
        let a = alloc_ip(2);
        let b = alloc_ip(3, #{ group: "dsl", worker: 0 });
        if a[1].ip != "10.0.0.2" || b[0].id != 2 || b[2].group != "dsl" || b[0].worker != 0 {
            throw `unexpected nodes ${a} ${b}`;
        }
        if a[0].group != "default" || a[0].failed { throw "defaults"; }
        if nodes().len() != 5 || nodes("dsl").len() != 3 { throw "nodes()"; }
        if a[0] == a[1] || a[0] != a[0] { throw "equality"; }
        log(`${b[0]}`);
        "#,
    )
    .run_ok();
    let allocs = of(&events, "alloc_ip");
    assert_eq!(allocs.len(), 5);
    assert_eq!(
        *allocs[4],
        json!({"t": 0.0, "event": "alloc_ip", "node": 4, "ip": "10.0.0.5", "group": "dsl", "worker": 0})
    );
    assert_eq!(of(&events, "log")[0]["msg"], "node 2 (10.0.0.3)");
}

#[test]
fn alloc_ip_rejects_bad_counts_and_workers() {
    let err = Scenario::new("alloc_ip(0);").run_err();
    assert!(
        err.contains("main.rhai:1:1: alloc_ip: expected a number of nodes"),
        "{err}"
    );
    let err = Scenario::new("alloc_ip(2, #{ worker: 3 });").run_err();
    assert!(err.contains("worker 3 does not exist"), "{err}");
    let err = Scenario::new("alloc_ip(2, #{ grup: \"x\" });").run_err();
    assert!(
        err.contains("unknown option \"grup\" (expected one of: group, worker)"),
        "{err}"
    );
}

#[test]
fn shape_resolves_units_and_targets() {
    let events = Scenario::new(
        r#"
        let peers = alloc_ip(2, #{ group: "dsl" });
        let seed = alloc_ip(1, #{ group: "fiber" });
        shape(peers, #{ up: "128kbit", down: "2mbit", latency: "30ms", jitter: "1ms", loss: 0.01 });
        shape("fiber", #{ up: "100mbit", queue: "64kb" });
        shape(seed[0], #{ latency: 0.005 });
        "#,
    )
    .run_ok();
    let shapes = of(&events, "shape");
    assert_eq!(shapes.len(), 4);
    assert_eq!(
        *shapes[0],
        json!({"t": 0.0, "event": "shape", "node": 0, "ip": "10.0.0.1",
               "up": 128000, "down": 2000000, "latency": 0.03, "jitter": 0.001, "loss": 0.01})
    );
    assert_eq!(shapes[2]["up"], 100_000_000);
    assert_eq!(shapes[2]["queue"], 65536);
    assert_eq!(shapes[3]["latency"], 0.005);
    assert!(
        shapes[3].get("up").is_none(),
        "only given keys are recorded"
    );
}

#[test]
fn link_groups_records_the_pair() {
    let events = Scenario::new(
        r#"
        alloc_ip(1, #{ group: "dsl" });
        alloc_ip(1, #{ group: "fiber" });
        link_groups("dsl", "fiber", #{ latency: "40ms", loss: 0.001 });
        link_groups("dsl", "dsl", #{ jitter: "2ms" });
        "#,
    )
    .run_ok();
    let links = of(&events, "link_groups");
    assert_eq!(
        *links[0],
        json!({"t": 0.0, "event": "link_groups", "a": "dsl", "b": "fiber", "latency": 0.04, "jitter": 0.0, "loss": 0.001})
    );
    assert_eq!(links[1]["b"], "dsl");
}

#[test]
fn jitter_models_and_burst_loss_are_recorded_only_when_given() {
    let events = Scenario::new(
        r#"
        let n = alloc_ip(1, #{ group: "dsl" });
        alloc_ip(1, #{ group: "fiber" });
        shape(n, #{ jitter: "5ms", jitter_dist: "normal", jitter_correlation: "25%" });
        shape(n, #{ jitter_correlation: 0.5 });
        shape(n, #{ loss: #{ p: 0.01, r: 0.3, loss_bad: 0.9 } });
        shape(n, #{ loss: #{ p: 0.25 } });
        shape(n, #{ loss: 0.02 });
        link_groups("dsl", "fiber", #{ jitter: "2ms", jitter_dist: "paretonormal", loss: #{ p: 0.5 } });
        link_groups("dsl", "dsl", #{ jitter: "2ms", loss: 0.1 });
        "#,
    )
    .run_ok();
    let shapes = of(&events, "shape");
    assert_eq!(
        *shapes[0],
        json!({"t": 0.0, "event": "shape", "node": 0, "ip": "10.0.0.1", "jitter": 0.005,
               "jitter_dist": "normal", "jitter_correlation": 0.25})
    );
    // The two keys go together, as in netem: the one left out takes its default.
    assert_eq!(shapes[1]["jitter_dist"], "uniform");
    assert_eq!(shapes[1]["jitter_correlation"], 0.5);
    assert_eq!(
        shapes[2]["loss"],
        json!({"p": 0.01, "r": 0.3, "loss_bad": 0.9, "loss_good": 0.0})
    );
    // netem's defaults: r = 1 - p, loss_bad = 1, loss_good = 0.
    assert_eq!(
        shapes[3]["loss"],
        json!({"p": 0.25, "r": 0.75, "loss_bad": 1.0, "loss_good": 0.0})
    );
    assert_eq!(shapes[4]["loss"], 0.02);
    assert!(shapes[4].get("jitter_dist").is_none());
    let links = of(&events, "link_groups");
    assert_eq!(
        *links[0],
        json!({"t": 0.0, "event": "link_groups", "a": "dsl", "b": "fiber", "latency": 0.0,
               "jitter": 0.002, "jitter_dist": "paretonormal", "jitter_correlation": 0.0,
               "loss": {"p": 0.5, "r": 0.5, "loss_bad": 1.0, "loss_good": 0.0}})
    );
    assert_eq!(
        *links[1],
        json!({"t": 0.0, "event": "link_groups", "a": "dsl", "b": "dsl", "latency": 0.0,
               "jitter": 0.002, "loss": 0.1})
    );
}

#[test]
fn spawn_fills_placeholders_and_procs_behave() {
    let events = Scenario::new(
        r#"
        let n = alloc_ip(2);
        let p = spawn(n[1], "iperf3 -s -B {ip} --id {id}");
        let q = spawn(n[0], "echo hi > out.txt", #{ shell: true, env: #{ PEER: "{ip}" } });
        if !p.running || p.node != n[1] || p.pid <= 0 { throw "proc"; }
        p.kill();
        p.kill();
        if p.running { throw "still running"; }
        let code = q.wait();
        if code != 0 || q.exit_code != 0 { throw `code ${code}`; }
        "#,
    )
    .run_ok();
    let spawns = of(&events, "spawn");
    assert_eq!(spawns[0]["cmd"], "iperf3 -s -B 10.0.0.2 --id 1");
    assert_eq!(of(&events, "kill").len(), 1, "kill is idempotent");
    let exits = of(&events, "exit");
    assert_eq!(exits[0]["signal"], "SIGKILL");
    assert_eq!(exits[1]["code"], 0);
}

#[test]
fn spawn_errors() {
    let err = Scenario::new("let n = alloc_ip(1); spawn(n[0], \"echo 'unbalanced\");").run_err();
    assert!(err.contains("cannot split"), "{err}");
    let err = Scenario::new("let n = alloc_ip(1); spawn(n[0], \"  \");").run_err();
    assert!(err.contains("expected a command"), "{err}");
    let err =
        Scenario::new("let n = alloc_ip(1); fail_node(n[0]); spawn(n[0], \"true\");").run_err();
    assert!(
        err.contains("main.rhai:1:39: spawn: node 0 (10.0.0.1) is failed"),
        "{err}"
    );
}

#[test]
fn spawn_on_an_array_or_a_group_is_one_spawn_per_node() {
    let events = Scenario::new(
        r#"
        let a = alloc_ip(2, #{ group: "a" });
        let b = alloc_ip(2, #{ group: "b" });
        let on_a = spawn(a, "sleep {id}");
        let on_b = spawn("b", "echo {ip}", #{ shell: true, env: #{ ME: "{id}" } });
        let none = spawn([], "true");
        if type_of(spawn(a[0], "true")) != "Proc" { throw "a single Node gives one Proc"; }
        if on_a.len() != 2 || on_b.len() != 2 || none.len() != 0 { throw "lengths"; }
        if on_a[1].node != a[1] || on_b[0].node != b[0] || on_b[1].cmd != "echo 10.0.0.4" {
            throw `order ${on_a} ${on_b}`;
        }
        "#,
    )
    .run_ok();
    let spawns = of(&events, "spawn");
    let cmds: Vec<_> = spawns.iter().map(|e| e["cmd"].as_str().unwrap()).collect();
    assert_eq!(
        cmds,
        [
            "sleep 0",
            "sleep 1",
            "echo 10.0.0.3",
            "echo 10.0.0.4",
            "true"
        ]
    );
    assert_eq!(
        *spawns[3],
        json!({"t": 0.0, "event": "spawn", "node": 3, "ip": "10.0.0.4", "pid": 100003,
               "cmd": "echo 10.0.0.4", "shell": true, "env": {"ME": "3"}})
    );
}

#[test]
fn spawn_on_a_target_stops_at_the_first_error_like_single_spawns() {
    let s = Scenario::new(r#"let n = alloc_ip(3); fail_node(n[1]); spawn(n, "sleep 9");"#);
    let err = s.run_err();
    assert!(
        err.contains("main.rhai:1:39: spawn: node 1 (10.0.0.2) is failed"),
        "{err}"
    );
    assert_eq!(
        of(&s.events(), "spawn").len(),
        1,
        "node 0 started, node 2 not"
    );
    let err = Scenario::new(r#"alloc_ip(2); spawn([nodes()[0], 5], "true");"#).run_err();
    assert!(
        err.contains("element 1 of the array is an integer 5, expected a Node"),
        "{err}"
    );
    let err = Scenario::new(r#"alloc_ip(2); spawn("nobody", "true");"#).run_err();
    assert!(err.contains("unknown group \"nobody\""), "{err}");
    let err = Scenario::new(r#"alloc_ip(2); spawn(nodes(), "true", #{ shel: true });"#).run_err();
    assert!(err.contains("unknown option \"shel\""), "{err}");
    let err = Scenario::new(r#"spawn(7, "true");"#).run_err();
    assert!(
        err.contains("spawn: expected a Node, an array of Nodes or a group name, got an integer 7"),
        "{err}"
    );
}

#[test]
fn procs_lists_running_processes_and_how_they_ended() {
    let events = Scenario::new(
        r#"
        let n = alloc_ip(2, #{ group: "g" });
        let p = spawn(n[0], "sleep 100");
        let q = spawn(n[0], "sleep 200");
        spawn(n[1], "sleep 300");
        let mine = procs(n[0]);
        if mine.len() != 2 || mine[0].pid != p.pid || mine[1].cmd != "sleep 200" { throw `${mine}`; }
        if procs("g").len() != 3 || procs([n[1]])[0].node != n[1] { throw "targets"; }
        if p.signal != () || p.exit_code != () || !p.running { throw "running"; }
        p.kill();
        if p.signal != "SIGKILL" || p.exit_code != () || p.running { throw "killed"; }
        if q.wait() != 0 || q.exit_code != 0 || q.signal != () { throw "waited"; }
        if procs(n[0]).len() != 0 { throw `left ${procs(n[0])}`; }
        leave(n[1]);
        if procs("g").len() != 0 { throw "leave"; }
        "#,
    )
    .run_ok();
    assert!(of(&events, "procs").is_empty(), "reading records nothing");
}

#[test]
fn node_counters_are_zero_in_a_dry_run() {
    Scenario::new(
        r#"
        let n = alloc_ip(2);
        spawn(n[0], `ping -c 3 ${n[1].ip}`);
        sleep(5);
        for x in n {
            let all = [x.rx_bytes, x.tx_bytes, x.rx_packets, x.tx_packets, x.dropped];
            if all != [0, 0, 0, 0, 0] { throw `${x}: ${all}`; }
        }
        "#,
    )
    .run_ok();
}

#[test]
fn wait_until_polls_while_callbacks_run_and_times_out() {
    let events = Scenario::new(
        r#"
        let done = false;
        at(2.25, || { done = true; log("done"); });
        let ticks = 0;
        every("1s", || ticks += 1);
        let calls = 0;
        let met = wait_until(|| { calls += 1; done }, "10s");
        log(`${met} ${now()} ${ticks} ${calls}`);
        let never = wait_until(|| false, 3);
        log(`${never} ${now()}`);
        if wait_until(|| true, "0s") != true { throw "already true"; }
        if wait_until(|| false, "0s") != false || now() != 5.3 { throw "zero timeout"; }
        "#,
    )
    .run_ok();
    let logs: Vec<String> = of(&events, "log")
        .iter()
        .map(|e| format!("{} {}", e["t"], e["msg"].as_str().unwrap()))
        .collect();
    // Evaluated at 0, 0.1, ... 2.3: the callback at 2.25 runs in the step to 2.3.
    assert_eq!(logs, ["2.25 done", "2.3 true 2.3 2 24", "5.3 false 5.3"]);
}

#[test]
fn wait_until_errors() {
    let err = Scenario::new("wait_until(|| false, \"10 parsecs\");").run_err();
    assert!(
        err.contains("main.rhai:1:1: wait_until: timeout: \"10 parsecs\" is not a duration"),
        "{err}"
    );
    let err = Scenario::new("let x = 1;\nwait_until(|| x, \"1s\");").run_err();
    assert!(
        err.contains(
            "main.rhai:2:1: wait_until: the condition returned an integer 1, expected true or false"
        ),
        "{err}"
    );
    let err = Scenario::new("wait_until(true, \"1s\");").run_err();
    assert!(
        err.contains("wait_until: expected a condition as a closure"),
        "{err}"
    );
    let err = Scenario::new("at(1, || wait_until(|| true, 1)); sleep(2);").run_err();
    assert!(
        err.contains("main.rhai:1:10: wait_until: cannot wait inside an at()/every() callback"),
        "{err}"
    );
    let err = Scenario::new("wait_until(|| false, 11 * 86400);").run_err();
    assert!(err.contains("reached its horizon"), "{err}");
}

#[test]
fn fail_revive_leave_are_idempotent_and_kill_processes() {
    let events = Scenario::new(
        r#"
        let n = alloc_ip(3, #{ group: "g" });
        let p = spawn(n[0], "sleep 100");
        spawn(n[1], "sleep 100");
        fail_node(n[0]);
        fail_node(n[0]);
        if !n[0].failed || p.running { throw "failed"; }
        revive(n[0]);
        revive(n[0]);
        leave("g", #{ grace: "2s" });
        leave(n[1]);
        "#,
    )
    .run_ok();
    assert_eq!(
        timeline(&events)[3..],
        [
            "0.0 spawn",
            "0.0 spawn",
            "0.0 fail_node",
            "0.0 exit",
            "0.0 revive",
            "0.0 leave",
            "0.0 leave",
            "0.0 exit",
            "0.0 leave",
            "0.0 leave"
        ]
    );
    assert_eq!(of(&events, "leave")[0]["grace"], 2.0);
    assert_eq!(of(&events, "exit")[1]["signal"], "SIGTERM");
}

#[test]
fn sleep_now_and_callbacks_run_in_time_order() {
    let events = Scenario::new(
        r#"
        let order = [];
        at(2, || log("at 2"));
        at("1s", || log("at 1"));
        let t = every("750ms", || log(`every ${now()}`));
        at(2, || log("at 2 again"));
        let dropped = at(1.8, || log("never"));
        dropped.cancel();
        sleep(2);
        t.cancel();
        if t.pending { throw "cancelled timer still pending"; }
        sleep("1m");
        log(`now ${now()}`);
        "#,
    )
    .run_ok();
    let logs: Vec<String> = of(&events, "log")
        .iter()
        .map(|e| format!("{} {}", e["t"], e["msg"].as_str().unwrap()))
        .collect();
    assert_eq!(
        logs,
        [
            "0.75 every 0.75",
            "1.0 at 1",
            "1.5 every 1.5",
            "2.0 at 2",
            "2.0 at 2 again",
            "62.0 now 62.0"
        ]
    );
}

#[test]
fn callbacks_cannot_sleep_or_go_back_in_time() {
    let err = Scenario::new("at(1, || sleep(1)); sleep(2);").run_err();
    assert!(
        err.contains("main.rhai:1:10: sleep: cannot sleep inside an at()/every() callback"),
        "{err}"
    );
    assert!(err.contains("main.rhai:1:21 (callback)"), "{err}");
    let err = Scenario::new("sleep(5); at(1, || log(\"x\"));").run_err();
    assert!(
        err.contains("at: time 1s is in the past (now is 5s)"),
        "{err}"
    );
    let err = Scenario::new("every(0, || log(\"x\"));").run_err();
    assert!(err.contains("period greater than zero"), "{err}");
}

#[test]
fn param_reads_set_values_with_the_default_type() {
    let s = Scenario::new(
        r#"
        let n = param("peers", 3);
        let rate = param("rate", "1mbit");
        let p = param("p", 0.5);
        let name = param("name");
        log(`${n + 1} ${rate} ${p * 2.0} ${name}`);
        "#,
    );
    let mut cfg = s.config();
    cfg.params.insert("peers".into(), "9".into());
    cfg.params.insert("p".into(), "0.25".into());
    cfg.params.insert("name".into(), "x y".into());
    cfg.params.insert("unused".into(), "1".into());
    let out = p2plab::run::dry_run(cfg).unwrap();
    assert_eq!(out.report.unread_params, ["unused"]);
    let events = s.events();
    assert_eq!(of(&events, "log")[0]["msg"], "10 1mbit 0.5 x y");
    assert_eq!(events[0]["params"]["peers"], "9");

    let mut cfg = s.config();
    cfg.params.insert("peers".into(), "many".into());
    let err = p2plab::run::dry_run(cfg).unwrap_err().to_string();
    assert!(
        err.contains("--set peers=many: expected an integer like the default 3"),
        "{err}"
    );
    let err = Scenario::new("param(\"missing\");").run_err();
    assert!(err.contains("pass --set missing=VALUE"), "{err}");
}

#[test]
fn randomness_primitives() {
    let events = Scenario::new(
        r#"
        let xs = [1, 2, 3, 4, 5, 6, 7, 8];
        for i in 0..200 {
            let r = rand();
            if r < 0.0 || r >= 1.0 { throw "rand"; }
            let k = rand_int(3, 5);
            if k < 3 || k > 5 { throw "rand_int"; }
            if rand_exp(10) < 0.0 { throw "exp"; }
            if rand_pareto(2.0, 1.5) < 2.0 { throw "pareto"; }
            if rand_weibull(1, 0.5) < 0.0 { throw "weibull"; }
            if !xs.contains(pick(xs)) { throw "pick"; }
        }
        let s = shuffle(xs);
        s.sort();
        if s != xs { throw "shuffle lost elements"; }
        log(`${shuffle(xs)}`);
        "#,
    )
    .run_ok();
    assert_ne!(of(&events, "log")[0]["msg"], "[1, 2, 3, 4, 5, 6, 7, 8]");
    let err = Scenario::new("rand_int(5, 3);").run_err();
    assert!(err.contains("expected lo <= hi"), "{err}");
    let err = Scenario::new("rand_exp(-1);").run_err();
    assert!(
        err.contains("mean: expected a number greater than 0"),
        "{err}"
    );
    let err = Scenario::new("pick([]);").run_err();
    assert!(err.contains("empty array"), "{err}");
}

#[test]
fn log_and_metric() {
    let events =
        Scenario::new("sleep(1); log(\"hello\"); metric(\"peers\", 12); metric(\"ratio\", 0.5);")
            .run_ok();
    assert_eq!(
        *of(&events, "log")[0],
        json!({"t": 1.0, "event": "log", "msg": "hello"})
    );
    assert_eq!(of(&events, "metric")[0]["value"], 12.0);
    let err = Scenario::new("metric(\"x\", \"lots\");").run_err();
    assert!(
        err.contains("metric: expected a finite number as value, got a string \"lots\""),
        "{err}"
    );
}

#[test]
fn start_and_end_events_frame_the_run() {
    let events = Scenario::new("every(1, || log(\"x\")); sleep(2.5);").run_ok();
    assert_eq!(events[0]["event"], "start");
    assert_eq!(events[0]["seed"], 1);
    assert_eq!(events[0]["script"], "main");
    let end = events.last().unwrap();
    assert_eq!(
        *end,
        json!({"t": 2.5, "event": "end", "outcome": "ok", "pending_callbacks": 1})
    );
}

#[test]
fn the_group_limit_of_the_data_plane_is_a_script_error() {
    let err =
        Scenario::new("for i in 0..4097 {\n    alloc_ip(1, #{ group: `g${i}` });\n}\n").run_err();
    assert!(
        err.contains("main.rhai:2:5: alloc_ip: too many groups"),
        "{err}"
    );
    assert!(err.contains("\"g4096\""), "{err}");
}

#[test]
fn script_dir_is_the_scripts_folder_as_an_absolute_path() {
    let s = Scenario::new("log(script_dir());\n");
    let events = s.run_ok();
    let logged = of(&events, "log")[0]["msg"].as_str().unwrap().to_string();
    assert_eq!(
        std::path::PathBuf::from(logged),
        std::fs::canonicalize(s.dir.path()).unwrap()
    );
}
