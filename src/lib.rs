//! # p2plab: lightweight emulation of peer-to-peer and distributed systems
//!
//! Real, unmodified programs run side by side, each on a virtual node with its own IPv4
//! address behind an emulated access link, while a Rhai script drives the experiment: nodes
//! arrive, leave and crash, network conditions change. A tour of the parts, in the order a
//! primitive travels through them:
//!
//! ## Layers
//! Each module uses only the layers below it (`tests/layers.rs` keeps this true):
//!
//! ```text
//!  attach doctor graph   a command run as a node of a running lab (`exec`, `shell`);
//!                        what real mode needs on this machine and a script's programs;
//!                        a picture of a script's topology from its dry-run
//!  run report            one run as the command line asks for it (wires the embedded
//!                        worker); plots and a page from a results folder
//!  script                Rhai: the primitives, units in scripts, at/every timers, errors
//!  controller            Lab (state + executor + event log), the Workers executor, RealClock
//!  worker                a machine's lab (LocalWorker), sessions, the worker daemon
//!  dataplane netns proto results
//!                        link model and forwarder; lab namespaces and cgroups; the wire;
//!                        results folder
//!  topology              graph files (Shadow's GML, latency matrices), paths, placement
//!  experiment            state, Action, the Executor and Clock interfaces, DryRun
//!  clock interrupt       the monotonic experiment clock; the Ctrl-C flag
//!  units bpf             Nanos, rates, sizes, durations; the node-binding eBPF programs
//! ```
//!
//! ## Scripts (`script`)
//! `script::run` compiles a scenario, checks that every function it calls exists, and runs it
//! with the primitives of `script::api` (`alloc_ip`, `shape`, `link_groups`, `spawn`, `sleep`,
//! `at`, `every`, `fail_node`, ...). Units (`"2mbit"`, `"30ms"`, `"64kb"`) are parsed by
//! `units`; errors carry `file:line:col` (`script::error`). `at`/`every` callbacks wait in
//! `script::timers` and run, in time order, while the script sleeps. `import "churn"` finds a
//! module next to the script or in the stdlib built into the binary (`script::modules`).
//!
//! ## Controller (`controller`)
//! `Lab` applies each primitive to the experiment state (`experiment`) through an `Executor`
//! and records it in `events.jsonl` (`results`). Dry-run and real mode share all of it; only
//! the executor and the clock differ. In real mode the executor is `controller::Workers`: it
//! sends each action to the worker hosting its node (and what every data plane must know to
//! all of them), pipelines actions that return nothing, and notices a lost worker (the run
//! then ends with exit code 3). It reaches a worker over any byte stream: TCP for a
//! `p2plab worker`, an in-memory stream for the embedded worker, which `run` serves.
//! Once per second of experiment time, one reading of every data plane
//! (`controller::readings`) becomes a line per node in `traffic.csv`, a line per worker in
//! `dataplane.csv` (how late packets left, CPU, overruns), an interval of the fidelity verdict
//! (`results::conformance`, judged at the end into `summary.json`, with each node's wait for a
//! CPU from its cgroup) and a `Pulse` for the status bar.
//!
//! ## Protocol (`proto`)
//! Controller and workers open a Noise session keyed by the shared token (`NNpsk0`, the `snow`
//! crate) after a versioned hello; from then on every frame is a sealed, numbered record
//! (`proto::record`), so an altered, replayed, dropped or injected one ends the session. The
//! messages inside are JSON. A worker lets only so many connections shake hands at once
//! (`worker::admission`). Requests carry ids; process exits and collected node files come as events; both sides send
//! heartbeats. The wire has its own types (`proto::wire`: actions, outcomes, typed
//! failures), converted at the edge.
//!
//! ## Experiment state (`experiment`)
//! Nodes, groups, link shapes (`LinkShape`, `GroupLink`: one type each, read by the link model
//! too), processes, failed nodes, where nodes live (`Placement`: worker `k` owns
//! `10.k.0.0/16`), the actions that change them and the `Executor`/`Clock` interfaces.
//!
//! ## Topologies (`topology`)
//! Graph files researchers bring, free of I/O: Shadow's network graphs in GML (`topology::gml`
//! reads events, `topology::shadow` the attributes), latency matrices (`topology::csv`), the
//! paths between vertices as Shadow finds them (`topology::graph`: direct edges of a complete
//! graph, or Dijkstra by latency) and which vertex each node goes to (`topology::place`).
//! `script::api::topology` makes each used vertex a group, linked by one row per vertex.
//!
//! ## Worker (`worker`, `netns`)
//! `p2plab worker` (`worker::server`) accepts one authenticated controller at a time; each
//! session (`worker::session`, generic over what builds its lab) runs the requests on a thread
//! of its own and drops its lab when the controller stops it, disconnects or falls silent.
//! `LocalWorker` is a machine's lab: a network namespace (`netns`: named like `ip netns add`
//! makes them, or rootless in a user namespace of the process's own), where the worker's node
//! block `10.k.0.0/16` is local as a whole (one AnyIP route) and node-to-node traffic is
//! steered into a TUN device by policy routing. Programs are spawned from a thread inside the
//! lab (`worker::launch`: a vfork-style clone that shares p2plab's memory until the exec),
//! in their node's cgroup (binding "bpf", which also enforces the node's CPU and memory
//! limits: `netns::limits`, on cgroup v2 or v1) or with the bind shim preloaded (binding
//! "preload"); a ledger in `/run/p2plab` lets `p2plab cleanup` remove
//! the labs of crashed runs.
//!
//! ## Data plane (`dataplane`)
//! The link model of every node, free of I/O: uplink FIFO, propagation delay with group
//! latency, jitter (netem's distributions, correlated or not) and loss (Bernoulli or
//! Gilbert–Elliott), downlink FIFO (`dataplane::model`). Each direction of a link is served at
//! a constant rate (`LinkFifo`) or at a rate trace's delivery opportunities with Mahimahi's
//! semantics (`TraceFifo`), and a delay trace may replace a node's latency; traces are
//! parsed once per run (`experiment::trace`) and sent to every data plane. Group links are
//! kept 4 bytes a pair (`experiment::GroupTable`), so graphs of thousands of groups fit. It is
//! run on real packets by a
//! forwarding thread between the TUN device and the kernel (`dataplane::forwarder`), on a
//! timerfd precise to tens of microseconds, with TCP segmentation offload while no node is
//! captured and no other worker exists: on a rate-limited or lossy route a super-packet
//! enters the model as its segments (`dataplane::segments`) and leaves in runs of segments
//! due together. Captured nodes'
//! packets go to pcap files as their links carry them (`dataplane::capture`). A packet for
//! a node of another worker leaves after the sending half of the model, in a UDP datagram
//! that carries the delay it still has (`dataplane::encap`); that worker's data plane runs
//! the receiving half.
//!
//! ## Binding by cgroup-BPF (`bpf`, `netns::cgroup`)
//! Where cgroup v2 and BPF are at hand (root), each node is a cgroup below the lab's cgroup
//! and five `sock_addr` programs attached to the lab's cgroup give every socket of a node's
//! programs the node's address, static and Go binaries included. `bpf` assembles them in Rust
//! (`bpf::insn`, `bpf::programs`) and loads them with raw `bpf(2)` calls (`bpf::sys`): no BPF
//! toolchain at build or run time. `netns::cgroup` owns the lab and node cgroups; programs
//! enter their node's cgroup before they exec. Elsewhere (rootless) the shim below binds.
//!
//! ## Shim (`shim/`, its own crate)
//! `libp2plab_shim.so`, preloaded into every spawned program where binding is "preload":
//! wildcard and implicit binds of IPv4 sockets go to the node's address (`$BINDIP`), so
//! unmodified programs need no option.
//! Its environment contract (`shim/src/env.rs`) is included by the worker's spawner.
//!
//! ## Logs
//! `tracing`, with spans per worker, session and node; `-v`/`RUST_LOG` choose what is shown
//! (on stderr; the timeline of a run is on stdout, under a status bar on a terminal, then
//! an end summary: `run::progress`, `run::recap`).
//!
//! ## Attach and doctor (`attach`, `doctor`)
//! `p2plab exec NODE -- CMD` and `p2plab shell NODE` find a running lab by its ledger and
//! start a command in its namespace and the node's cgroups, as the node's own programs are
//! (`attach`). `p2plab doctor [FILE]` gathers what the machine offers (root, user namespaces,
//! TUN, cgroups, BPF, the shim, limits) and the programs a script's dry-run spawns, and judges
//! them, free of I/O, into findings with a fix each (`doctor`).
//!
//! ## Graph (`graph`)
//! `p2plab graph FILE.rhai` dry-runs a script as `check` does (`run::check_state` hands over
//! the experiment state it left) and draws its topology as SVG: one box per group with its
//! nodes' shapes (a range or "mixed" where they differ) and the group's link with itself,
//! a line per pair of linked groups, labelled when few, coloured by latency with a legend
//! when a topology has many. Everything but the dry-run and the written file is pure: the
//! same script and seed give the same bytes.
//!
//! ## Report
//! `report` reads a finished or killed run's folder back (`events.jsonl`, `traffic.csv`,
//! `dataplane.csv`, `summary.json`) into SVG and PNG plots and an `index.html` that opens
//! with the run's fidelity verdict: `p2plab report DIR`.
//!
//! ## Example
//! ```
//! use p2plab::run::{self, RunConfig};
//! let dir = tempfile::tempdir().unwrap();
//! let script = dir.path().join("hello.rhai");
//! std::fs::write(&script, r#"
//!     let peers = alloc_ip(3, #{ group: "dsl" });
//!     shape(peers, #{ up: "128kbit", latency: "30ms" });
//!     sleep("10s");
//!     fail_node(peers[0]);
//! "#).unwrap();
//! let out = run::check(&RunConfig::new(&script)).unwrap();
//! assert_eq!(out.report.end_time, 10_000_000_000);
//! ```

pub mod attach;
pub mod bpf;
pub mod clock;
pub mod controller;
pub mod dataplane;
pub mod doctor;
pub mod experiment;
pub mod graph;
pub mod interrupt;
pub mod netns;
pub mod proto;
pub mod report;
pub mod results;
pub mod run;
pub mod script;
pub mod topology;
pub mod units;
pub mod worker;
