//! What programs wrote, read back by the script: `read_file`, `read_json`, `proc.output()`
//! with `#{ stdout: "name" }`, `parse_json`. Real mode needs root; the dry-run and error cases
//! run anywhere.

mod common;

use common::{Scenario, can_run_real_mode_with, metric, node_file, of, real_run};

#[test]
fn a_script_records_what_its_programs_wrote() {
    if !can_run_real_mode_with("a_script_records_what_its_programs_wrote", &["python3"]) {
        return;
    }
    // Two programs on one node at once: the one with its own stdout file is read alone, the
    // other still writes to the node's shared stdout.log.
    let s = Scenario::new(
        r#"
        let n = alloc_ip(2);
        let chatty = spawn(n[0], "sh -c 'for i in 1 2 3 4 5; do echo noise; sleep 0.05; done'");
        let p = spawn(n[0], `python3 -c 'import json, os; print(json.dumps({"ip": os.environ["P2PLAB_IP"], "rate": 2.5e6, "n": [1, 2]}))'`,
                      #{ stdout: "result-{id}.json" });
        p.wait();
        chatty.wait();
        // () in the dry-run that checks the script first: nothing ran there.
        let r = parse_json(p.output());
        if r != () {
            metric("rate", r.rate);
            log(r.ip);
            let again = read_json(n[0], "result-0.json");
            metric("second", again.n[1]);
        }
        spawn(n[1], "sh -c 'mkdir -p out && echo hello > out/greeting.txt'").wait();
        let greeting = read_file(n[1], "out/greeting.txt");
        if greeting != () {
            greeting.trim();
            log(greeting);
        }
        "#,
    );
    real_run(&s);
    let events = s.events();
    assert_eq!(metric(&events, "rate"), 2.5e6);
    assert_eq!(metric(&events, "second"), 2.0);
    let logs: Vec<_> = of(&events, "log")
        .iter()
        .map(|e| e["msg"].clone())
        .collect();
    assert_eq!(logs, ["10.0.0.1", "hello"]);
    // The file stays in the node's folder, and its spawn event names it.
    assert!(node_file(&s, "10.0.0.1", "result-0.json").contains("\"rate\": 2500000.0"));
    assert_eq!(
        node_file(&s, "10.0.0.1", "stdout.log")
            .matches("noise")
            .count(),
        5
    );
    let spawns = of(&events, "spawn");
    assert_eq!(spawns[1]["stdout"], "result-0.json");
    assert!(spawns[0].get("stdout").is_none(), "{:?}", spawns[0]);
}

#[test]
fn what_was_not_written_is_a_script_error_in_real_mode() {
    if !can_run_real_mode_with("what_was_not_written_is_a_script_error_in_real_mode", &[]) {
        return;
    }
    let cases = [
        (
            "let n = alloc_ip(1);\nread_json(n[0], \"iperf.json\");\n",
            "main.rhai:2:1: read_json: node 10.0.0.1 has no file \"iperf.json\" (yet): did its \
             program write it there, in its folder nodes/10.0.0.1/?",
        ),
        (
            "let n = alloc_ip(1);\nspawn(n[0], \"echo not json\", #{ stdout: \"o.txt\" }).wait();\nread_json(n[0], \"o.txt\");\n",
            "main.rhai:3:1: read_json: nodes/10.0.0.1/o.txt is not JSON (expected ident at line 1 column 2)",
        ),
        (
            "let n = alloc_ip(1);\nspawn(n[0], \"true\", #{ stdout: \"o.json\" }).wait();\nread_json(n[0], \"o.json\");\n",
            "main.rhai:3:1: read_json: nodes/10.0.0.1/o.json is not JSON (EOF while parsing a value \
             at line 1 column 0): it is empty (did the program finish writing it?)",
        ),
    ];
    for (text, message) in cases {
        let s = Scenario::new(text);
        match p2plab::run::real(s.config()) {
            Ok(_) => panic!("{text}: should have failed"),
            Err(e) => assert!(e.to_string().ends_with(&format!("/{message}")), "{e}"),
        }
    }
}

#[test]
fn a_dry_run_reads_nothing() {
    let s = Scenario::new(
        r#"
        let n = alloc_ip(1)[0];
        let p = spawn(n, "iperf3 -c 10.0.0.9 -J", #{ stdout: "iperf.json" });
        p.wait();
        let r = read_json(n, "iperf.json");
        if r == () { log("nothing ran"); }
        if p.output() == () && read_file(n, "iperf.json") == () { log("no output"); }
        "#,
    );
    let events = s.run_ok();
    let logs: Vec<_> = of(&events, "log")
        .iter()
        .map(|e| e["msg"].clone())
        .collect();
    assert_eq!(logs, ["nothing ran", "no output"]);
    assert_eq!(of(&events, "spawn")[0]["stdout"], "iperf.json");
}

#[test]
fn bad_names_and_a_proc_without_its_own_output_say_what_to_do() {
    let cases = [
        (
            "let n = alloc_ip(1)[0];\nread_file(n, \"../../etc/passwd\");\n",
            "main.rhai:2:1: read_file: \"../../etc/passwd\" leaves the node's folder (..); name a \
             file inside it",
        ),
        (
            "let n = alloc_ip(1)[0];\nread_json(n, \"/tmp/x.json\");\n",
            "main.rhai:2:1: read_json: \"/tmp/x.json\" is an absolute path; name a file in the \
             node's folder, like \"result.json\"",
        ),
        (
            "let n = alloc_ip(1)[0];\nspawn(n, \"true\", #{ stdout: \"\" });\n",
            "main.rhai:2:1: spawn: stdout: expected a file name in the node's folder, got an \
             empty string",
        ),
        (
            "let n = alloc_ip(1)[0];\nlet p = spawn(n, \"iperf3 -s\");\np.output();\n",
            "main.rhai:3:3: output: the output of \"iperf3 -s\" went to its node's stdout.log, \
             which all its programs share; spawn it with #{ stdout: \"out.txt\" } to read its own",
        ),
        (
            "parse_json(\"{ nope\");\n",
            "main.rhai:1:1: parse_json: text is not JSON (key must be a string at line 1 column 3)",
        ),
    ];
    for (text, message) in cases {
        let e = Scenario::new(text).run_err();
        assert!(e.ends_with(&format!("/{message}")), "{text}: {e}");
    }
}
