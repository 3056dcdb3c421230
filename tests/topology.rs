//! Topologies from graph files: a Shadow GML graph loads into groups, bandwidths and pair
//! links (dry-run events and `t.path`), a latency matrix too; placement by name, weight and
//! at random; errors with their file:line:col; and in real mode, ping RTTs between nodes on
//! different vertices follow the graph's shortest paths.

mod common;

use common::{
    Scenario, can_run_real_mode_with, median, metric, node_file, of, ping_rtts, real_run,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Four cities, not complete: paris - tokyo is shorter through berlin (110 ms) than direct
/// (130 ms), and sydney hangs off tokyo.
const WORLD: &str = r#"# a small world (made for this test)
graph [
  directed 0
  node [ id 0 label "paris" host_bandwidth_up "10 Mbit" host_bandwidth_down "20 Mbit" weight 2 ]
  node [ id 1 label "berlin" host_bandwidth_up "5 Mbit" host_bandwidth_down "5 Mbit" weight 1 ]
  node [ id 2 label "tokyo" ]
  node [ id 3 label "sydney" ]
  edge [ source 0 target 1 latency "10 ms" packet_loss 0.01 ]
  edge [ source 1 target 2 latency "100 ms" ]
  edge [ source 0 target 2 latency "130 ms" ]
  edge [ source 2 target 3 latency "50 ms" jitter "2 ms" packet_loss 0.02 ]
  edge [ source 0 target 0 latency "1 ms" ]
]
"#;

fn scenario(script: &str) -> Scenario {
    let s = Scenario::new(script);
    std::fs::write(s.dir.path().join("world.gml"), WORLD).expect("write graph");
    s
}

fn groups_of(events: &[Value]) -> Vec<(String, String)> {
    of(events, "alloc_ip")
        .iter()
        .map(|e| {
            (
                e["ip"].as_str().unwrap_or_default().to_string(),
                e["group"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_gml_graph_loads_into_groups_bandwidths_and_pair_links() {
    let s = scenario(
        r#"
        let t = load_gml("world.gml");
        for pair in [["paris", "tokyo"], ["paris", "sydney"], ["berlin", "sydney"], ["paris", "paris"], ["berlin", "berlin"]] {
            let p = t.path(pair[0], pair[1]);
            metric(`${pair[0]}-${pair[1]}.latency`, p.latency);
            metric(`${pair[0]}-${pair[1]}.jitter`, p.jitter);
            metric(`${pair[0]}-${pair[1]}.loss`, p.loss);
        }
        metric("complete", if t.complete { 1 } else { 0 });
        metric("vertices", t.vertices().len());
        t.place(2, #{ vertex: "paris" });
        t.place(1, #{ vertex: "berlin" });
        t.place(1, #{ vertex: "tokyo" });
        t.place(1, #{ vertex: "sydney" });
        t.place(1, #{ vertex: "paris" });
        for pair in [["paris", "tokyo"], ["sydney", "paris"], ["berlin", "sydney"], ["paris", "paris"], ["tokyo", "tokyo"]] {
            let l = group_link(pair[0], pair[1]);
            metric(`lab ${pair[0]}-${pair[1]}.latency`, l.latency);
            metric(`lab ${pair[0]}-${pair[1]}.jitter`, l.jitter);
            metric(`lab ${pair[0]}-${pair[1]}.loss`, l.loss);
        }
        "#,
    );
    let ev = s.run_ok();
    let load = of(&ev, "topology");
    assert_eq!(load.len(), 1);
    assert_eq!(load[0]["file"], "world.gml");
    assert_eq!(
        load[0]["sha256"],
        hex::encode(Sha256::digest(WORLD.as_bytes()))
    );
    assert_eq!(load[0]["vertices"], 4);
    assert_eq!(load[0]["edges"], 5);
    assert_eq!(load[0]["complete"], false);
    assert_eq!(metric(&ev, "complete"), 0.0);
    assert_eq!(metric(&ev, "vertices"), 4.0);

    let close = |name: &str, want: f64| {
        let got = metric(&ev, name);
        assert!((got - want).abs() < 1e-12, "{name}: {got}, want {want}");
    };
    close("paris-tokyo.latency", 0.110);
    close("paris-tokyo.loss", 0.01);
    close("paris-tokyo.jitter", 0.0);
    close("paris-sydney.latency", 0.160);
    close("paris-sydney.loss", 1.0 - 0.99 * 0.98);
    close("paris-sydney.jitter", 0.002);
    close("berlin-sydney.latency", 0.150);
    close("paris-paris.latency", 0.001);
    close("berlin-berlin.latency", 0.0);
    // The lab's matrix between the groups holds the same shortest paths, either way round.
    close("lab paris-tokyo.latency", 0.110);
    close("lab paris-tokyo.loss", 0.01);
    close("lab sydney-paris.latency", 0.160);
    close("lab sydney-paris.jitter", 0.002);
    close("lab sydney-paris.loss", 1.0 - 0.99 * 0.98);
    close("lab berlin-sydney.latency", 0.150);
    close("lab paris-paris.latency", 0.001);
    close("lab tokyo-tokyo.latency", 0.0);
    close("lab tokyo-tokyo.loss", 0.0);

    let groups: Vec<String> = groups_of(&ev).into_iter().map(|(_, g)| g).collect();
    assert_eq!(
        groups,
        ["paris", "paris", "berlin", "tokyo", "sydney", "paris"]
    );
    // Host bandwidths of paris and berlin on their nodes; tokyo and sydney stay unshaped.
    let shapes = of(&ev, "shape");
    let rates: Vec<(u64, u64)> = shapes
        .iter()
        .map(|e| (e["up"].as_u64().unwrap(), e["down"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        rates,
        [
            (10_000_000, 20_000_000),
            (10_000_000, 20_000_000),
            (5_000_000, 5_000_000),
            (10_000_000, 20_000_000)
        ]
    );
    // One row per vertex, the first time it gets nodes: with the vertices before it and itself.
    let rows: Vec<(String, u64)> = of(&ev, "link_group_row")
        .iter()
        .map(|e| {
            (
                e["a"].as_str().unwrap().to_string(),
                e["links"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("paris".to_string(), 1),
            ("berlin".to_string(), 2),
            ("tokyo".to_string(), 3),
            ("sydney".to_string(), 4)
        ]
    );
}

#[test]
fn placement_by_weight_and_at_random() {
    let script = r#"
        let t = load_gml("world.gml");
        let w = t.place(6, #{ by: "weight" });
        let r = t.place(40, #{ by: "random" });
        metric("weighted", w.len());
        metric("random", r.len());
    "#;
    let s = scenario(script);
    let ev = s.run_ok();
    let groups = groups_of(&ev);
    let weighted: Vec<&str> = groups[..6].iter().map(|(_, g)| g.as_str()).collect();
    assert_eq!(
        weighted,
        ["paris", "paris", "paris", "paris", "berlin", "berlin"]
    );
    let random = &groups[6..];
    assert_eq!(random.len(), 40);
    for city in ["paris", "berlin", "tokyo", "sydney"] {
        let n = random.iter().filter(|(_, g)| g == city).count();
        // 40 draws over 4 vertices: 10 each, give or take a few.
        assert!((2..=20).contains(&n), "{city}: {n} of 40");
    }
    // The rows of tokyo and sydney come with the random placement, newest first.
    let rows: Vec<&str> = of(&ev, "link_group_row")
        .iter()
        .map(|e| e["a"].as_str().unwrap())
        .collect();
    assert_eq!(rows.len(), 4);
    assert_eq!(&rows[..2], ["berlin", "paris"]);
    // Same seed, same placement.
    assert_eq!(groups_of(&scenario(script).run_ok()), groups);
}

#[test]
fn a_latency_matrix_loads_as_a_graph() {
    let s = Scenario::new(
        r#"
        let t = load_latency_csv("rtt.csv");
        metric("ab", t.path("a", "b").latency);
        metric("ac", t.path("a", "c").latency);
        metric("aa", t.path("a", "a").latency);
        t.place(3, #{ by: "random" });
        "#,
    );
    std::fs::write(
        s.dir.path().join("rtt.csv"),
        "from,a,b,c\na,2,10,\nb,12,0,5ms\nc,,5,0\n",
    )
    .unwrap();
    let ev = s.run_ok();
    assert!(
        (metric(&ev, "ab") - 0.012).abs() < 1e-12,
        "the larger of 10 and 12"
    );
    assert!((metric(&ev, "ac") - 0.017).abs() < 1e-12, "through b");
    assert!((metric(&ev, "aa") - 0.002).abs() < 1e-12);
    assert_eq!(of(&ev, "topology")[0]["complete"], false);
}

#[test]
fn a_graph_built_by_hand() {
    let s = Scenario::new(
        r#"
        let g = graph();
        g.add_vertex("x", #{ up: "1mbit", down: "2mbit" });
        g.add_vertex("y");
        g.add_edge("x", "y", #{ latency: "30ms", jitter: "3ms", loss: 0.5 });
        metric("xy", g.path("x", "y").latency);
        metric("loss", g.path("y", "x").loss);
        g.place(1, #{ vertex: "x" });
        g.place(1, #{ vertex: "y" });
        g.add_edge("x", "y");
        "#,
    );
    let err = s.run_err();
    assert!(err.contains("main.rhai:10:11"), "{err}");
    assert!(err.contains("add edges before place()"), "{err}");
    let ev = s.events();
    assert!((metric(&ev, "xy") - 0.03).abs() < 1e-12);
    assert!((metric(&ev, "loss") - 0.5).abs() < 1e-12);
    assert_eq!(of(&ev, "shape")[0]["up"], 1_000_000);
}

#[test]
fn a_bad_graph_file_says_where() {
    let s = Scenario::new("let t = load_gml(\"bad.gml\");\n");
    std::fs::write(
        s.dir.path().join("bad.gml"),
        "graph [\n  node [ id 0 ]\n  edge [ source 0 target 0 latency ]\n]\n",
    )
    .unwrap();
    let err = s.run_err();
    assert!(err.contains("main.rhai:1:9"), "{err}");
    assert!(
        err.contains(
            "bad.gml:3:36: expected a value for latency (a number, a \"string\" or a [ list ]), found ']'"
        ),
        "{err}"
    );
    let missing = Scenario::new("load_gml(\"none.gml\");").run_err();
    assert!(missing.contains("cannot read"), "{missing}");
}

#[test]
fn unknown_vertices_and_unreachable_pairs_are_errors() {
    let s = scenario("let t = load_gml(\"world.gml\");\nt.place(1, #{ vertex: \"lyon\" });\n");
    let err = s.run_err();
    assert!(err.contains("main.rhai:2:3"), "{err}");
    assert!(
        err.contains("no vertex named \"lyon\" (the graph has 4 vertices"),
        "{err}"
    );

    let s = Scenario::new(
        "let t = load_gml(\"split.gml\");\nt.place(1, #{ vertex: \"a\" });\nt.place(1, #{ vertex: \"z\" });\n",
    );
    std::fs::write(
        s.dir.path().join("split.gml"),
        "graph [ node [ id 0 label \"a\" ] node [ id 1 label \"z\" ] node [ id 2 label \"b\" ]\n\
         edge [ source 0 target 2 latency \"1 ms\" ] ]",
    )
    .unwrap();
    let err = s.run_err();
    assert!(err.contains("main.rhai:3:3"), "{err}");
    assert!(
        err.contains("no path from vertex \"z\" to vertex \"a\": the graph is not connected"),
        "{err}"
    );
    // Checked before any node of that call is made.
    assert_eq!(of(&s.events(), "alloc_ip").len(), 1);

    let s = scenario("let t = load_gml(\"world.gml\");\nt.place(2, #{ by: \"size\" });\n");
    assert!(
        s.run_err()
            .contains("by: expected \"weight\" or \"random\"")
    );
}

/// Real mode: RTT = 2 × (graph path + both nodes' access latency), within 1 ms.
#[test]
fn ping_rtts_follow_the_graphs_shortest_paths() {
    if !can_run_real_mode_with("ping_rtts_follow_the_graphs_shortest_paths", &["ping"]) {
        return;
    }
    let s = scenario(
        r#"
        let t = load_gml("world.gml");
        let paris = t.place(3, #{ vertex: "paris" });
        let berlin = t.place(1, #{ vertex: "berlin" });
        let tokyo = t.place(2, #{ vertex: "tokyo" });
        shape(nodes(), #{ latency: "2ms" });
        let procs = [
            spawn(paris[0], `ping -c 20 -i 0.2 -I {ip} ${tokyo[0].ip}`),
            spawn(paris[1], `ping -c 20 -i 0.2 -I {ip} ${paris[2].ip}`),
            spawn(berlin[0], `ping -c 20 -i 0.2 -I {ip} ${tokyo[1].ip}`),
            spawn(paris[2], `ping -c 20 -i 0.2 -I {ip} ${berlin[0].ip}`),
        ];
        for p in procs { p.wait(); }
        "#,
    );
    real_run(&s);
    // paris: 10.0.0.1-3, berlin .4, tokyo .5-6. One-way paths: paris-tokyo 110 ms through
    // berlin (not the direct 130 ms), paris-paris its 1 ms self-loop, berlin-tokyo 100 ms,
    // paris-berlin 10 ms; each node adds 2 ms.
    for (ip, path_ms) in [
        ("10.0.0.1", 110.0),
        ("10.0.0.2", 1.0),
        ("10.0.0.4", 100.0),
        ("10.0.0.3", 10.0),
    ] {
        let rtts = ping_rtts(&node_file(&s, ip, "stdout.log"));
        assert!(rtts.len() >= 10, "{ip}: {} replies of 20", rtts.len());
        let rtt = median(rtts);
        let want = 2.0 * (path_ms + 4.0);
        eprintln!("{ip}: median RTT {rtt} ms, graph path {want} ms");
        // ping prints whole milliseconds from 100 ms on: 208.5 shows as 209.
        assert!(
            (rtt - want).abs() <= 1.0,
            "{ip}: median RTT {rtt} ms, want {want} ms"
        );
    }
}

/// The example scenario on its made-up world graph, in a dry-run.
#[test]
fn the_world_scenario_places_peers_by_users() {
    let out = tempfile::tempdir().unwrap();
    let mut cfg = p2plab::run::RunConfig::new(std::path::Path::new("scripts/world.rhai"));
    cfg.seed = Some(3);
    cfg.out = Some(out.path().to_path_buf());
    p2plab::run::dry_run(cfg).expect("dry-run of scripts/world.rhai");
    let ev = common::read_events(&out.path().join("events.jsonl"));
    assert_eq!(of(&ev, "topology")[0]["file"], "data/world.gml");
    assert_eq!(of(&ev, "topology")[0]["vertices"], 8);
    // Sydney reaches Frankfurt through Singapore (45 + 80 ms), São Paulo through London
    // (95 + 8 ms, not 60 + 45 through New York).
    assert!((metric(&ev, "latency_to_frankfurt.sydney") - 0.125).abs() < 1e-12);
    assert!((metric(&ev, "latency_to_frankfurt.sao_paulo") - 0.103).abs() < 1e-12);
    assert!((metric(&ev, "latency_to_frankfurt.frankfurt") - 0.002).abs() < 1e-12);
    // 1 server + 16 peers by users (3, 3, 4, 2, 1, 2, 3, 1 of 19).
    let groups = groups_of(&ev);
    assert_eq!(groups.len(), 17);
    let in_city = |c: &str| groups[1..].iter().filter(|(_, g)| g == c).count();
    assert_eq!(in_city("new_york"), 3);
    assert_eq!(in_city("sydney"), 1);
    assert_eq!(of(&ev, "spawn").len(), 17);
}

#[test]
fn a_graph_grown_after_a_path_was_asked() {
    let s = Scenario::new(
        r#"
        let g = graph();
        g.add_vertex("x");
        g.add_vertex("y");
        g.add_edge("x", "y", #{ latency: "3ms" });
        metric("xy", g.path("x", "y").latency);
        g.add_vertex("z");
        g.add_edge("y", "z", #{ latency: 0.004 });
        metric("xz", g.path("x", "z").latency);
        g.place(0);
        "#,
    );
    let err = s.run_err();
    assert!(
        err.contains("expected a number of nodes between 1 and"),
        "{err}"
    );
    assert!((metric(&s.events(), "xz") - 0.007).abs() < 1e-12);
}

/// A directed graph: each way has its own path, and a pair must be reachable both ways.
#[test]
fn directed_graphs_go_one_way_per_edge() {
    let s = Scenario::new(
        r#"
        let t = load_gml("one_way.gml");
        metric("ab", t.path("a", "b").latency);
        metric("ba", t.path("b", "a").latency);
        t.place(1, #{ vertex: "a" });
        t.place(1, #{ vertex: "b" });
        t.place(1, #{ vertex: "c" });
        "#,
    );
    std::fs::write(
        s.dir.path().join("one_way.gml"),
        "graph [ directed 1\n node [ id 1 label \"a\" ] node [ id 2 label \"b\" ] node [ id 3 label \"c\" ]\n\
         edge [ source 1 target 2 latency \"10 ms\" ]\n edge [ source 2 target 1 latency \"30 ms\" ]\n\
         edge [ source 2 target 3 latency \"5 ms\" ] ]",
    )
    .unwrap();
    let err = s.run_err();
    assert!(err.contains("main.rhai:7:11"), "{err}");
    assert!(
        err.contains("no path from vertex \"c\" to vertex \"a\""),
        "{err}"
    );
    let ev = s.events();
    assert!((metric(&ev, "ab") - 0.01).abs() < 1e-12);
    assert!((metric(&ev, "ba") - 0.03).abs() < 1e-12);
    assert_eq!(of(&ev, "topology")[0]["directed"], true);
    assert_eq!(of(&ev, "link_group_row").len(), 2);
}

#[test]
fn the_stdlib_topologies() {
    let s = Scenario::new(
        r#"
        import "topology" as topology;
        let star = topology::star(#{ leaves: 5, latency: "7ms", up: "2mbit" });
        metric("star", star.path("leaf1", "leaf5").latency);
        metric("star_nodes_on_leaves", star.place(10, #{ by: "weight" }).filter(|n| n.group == "hub").len());
        let d = topology::dumbbell(#{ latency: "30ms", side_latency: "2ms" });
        metric("dumbbell", d.path("left", "right").latency);
        metric("side", d.path("left", "left").latency);
        let isp = topology::two_tier(#{ regions: 2, access: 2, core_latency: "20ms", access_latency: "5ms" });
        metric("across", isp.path("region1.access1", "region2.access2").latency);
        metric("within", isp.path("region1.access1", "region1.access2").latency);
        let w = topology::continents();
        metric("continents", w.vertices().len());
        metric("complete", if w.complete { 1 } else { 0 });
        metric("eu_na", w.path("europe", "north_america").latency);
        metric("na_eu", w.path("north_america", "europe").latency);
        topology::star(#{ leafs: 3 });
        "#,
    );
    let err = s.run_err();
    assert!(
        err.contains("topology::star: unknown option leafs"),
        "{err}"
    );
    let ev = s.events();
    for (name, want) in [
        ("star", 0.014),
        ("star_nodes_on_leaves", 0.0),
        ("dumbbell", 0.03),
        ("side", 0.002),
        ("across", 0.05),
        ("within", 0.01),
        ("continents", 6.0),
        ("complete", 1.0),
        ("eu_na", 0.045),
        ("na_eu", 0.045),
    ] {
        let got = metric(&ev, name);
        assert!((got - want).abs() < 1e-12, "{name}: {got}, want {want}");
    }
    assert_eq!(of(&ev, "shape")[0]["up"], 2_000_000);
}
