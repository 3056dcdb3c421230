//! The `p2plab` command line: parses arguments, runs the chosen mode, maps errors to exit codes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use p2plab::proto::BindingChoice;
use p2plab::run::progress::Progress;
use p2plab::run::recap::RunMode;
use p2plab::run::{self, RunConfig, RunError, RunOutcome, SetupError};

const AFTER_HELP: &str = "\
Examples:
  p2plab script scripts/churn.rhai --dry-run        print the timeline, touch nothing
  p2plab script scripts/churn.rhai --seed 7 --set peers=50
  p2plab script scripts/churn.lua --dry-run         the same scenario in Lua (by extension)
  p2plab check my-experiment.rhai                   find mistakes before running
  p2plab graph scripts/churn.rhai                   draw its topology into churn.svg
  p2plab report results/churn-20261125-203337       plots and index.html of a run

Many machines: `p2plab token lab.token` once, copy the file to every machine, start
`sudo p2plab worker --listen 0.0.0.0:7000 --token-file lab.token` on each, list them in a
workers file (`host:port [weight=N]` per line), then
  sudo p2plab script scripts/churn.rhai --workers workers.txt --token-file lab.token
Each worker emulates the links of its own nodes; node folders are collected at the end.

Real mode (without --dry-run) builds a lab network namespace with a TUN data plane, runs
the programs there, each bound to its node's address: as root by cgroup-BPF (every program,
static and Go binaries too; summary.json says \"binding\": \"bpf\"), elsewhere by the
preloaded shim (\"preload\"; --binding bpf or preload insists on one), and removes everything at the end or on Ctrl-C. It needs root,
or runs rootless in a user namespace of its own where the kernel allows it and /dev/net/tun
is open to users. `p2plab cleanup` (root) removes what a killed run left behind.

Exit codes: 0 success, 1 the script failed (the error names file:line:col),
2 usage or environment (missing privilege, missing worker), 3 a worker was lost mid-run,
130 interrupted by Ctrl-C or SIGTERM.
The script book (book/) documents every primitive with examples.";

/// The limits that keep a script from exhausting the machine, on `p2plab script --help`.
const SCRIPT_HELP: &str = "\
Results (--out DIR): events.jsonl, traffic.csv (per node and second), dataplane.csv (per
worker and second: packet lateness, CPU, overruns), nodes/<ip>/ (the programs' folders, and
capture.pcap for nodes given to capture()) and summary.json with the fidelity verdict, also printed at the end: clean, or flagged when
packets left over 1 ms late (p99), the data plane used 90 % of a core, the kernel dropped
packets it did not read, a node received faster than its downlink, or a node's programs
waited for a CPU over 10 % of the time they were ready to run (beyond their own cpu quota).

Limits: a script that runs into one stops with an error naming it (max_...), at its
file:line:col, exit code 1; a real run still removes its lab.
  max_operations   50,000,000 operations without sleep()   --max-operations N
  max_procs        10,000 processes at once on a worker    --max-procs N
  max_string_size  16 MiB in one string                    fixed
  max_array_size   1,000,000 elements in an array, blob    fixed
  max_map_size     1,000,000 entries in one map            fixed
  max_callbacks    1,000,000 at()/every() pending          fixed
  max_call_levels  64 nested function calls                fixed";

/// What `p2plab report --help` adds: the plots and their inputs.
const REPORT_HELP: &str = "\
Plots, each as SVG and PNG, from the folder's events.jsonl, traffic.csv and dataplane.csv:
  received     bytes received so far per node (at most 12 nodes, evenly spaced)  traffic.csv
  throughput   all nodes' received bytes per second, in Mbit/s                   traffic.csv
  lateness     data-plane lateness per second and worker (p99, max; log ms)      dataplane.csv
  cpu          data-plane thread CPU per second and worker (% of a core; log)    dataplane.csv
  alive        nodes alive over time (churn)                                     events.jsonl
  completion   CDF of the time from spawn to exit of each process                events.jsonl
  metric-...   one per metric() name: its values over time                       events.jsonl
index.html opens with the run's fidelity verdict (summary.json conformance: clean, flagged
or not measured, its problems, workers and nodes), then shows summary.json and the plots,
and says which plots were skipped and why (a dry-run has no traffic and no data plane).
Exit code 2 if a file is missing or malformed (file:line).";

/// What `p2plab graph --help` adds: what the picture shows.
const GRAPH_HELP: &str = "\
The script runs on a virtual clock, as `p2plab check` runs it (nothing starts, no root
needed); the picture shows what it left at its end: one box per group with its nodes' count
and access links (up, down, latency ± jitter, loss, queue; a range or \"mixed\" where the
nodes differ), the group's link with itself (\"inside\"), and a line per pair of linked groups
(latency ± jitter, loss; dashed where lossy). Up to 8 group links are labelled; more (a GML
topology's) are coloured by latency with a legend, their values in each line's tooltip.
The same script, seed and --set values give the same bytes.
  p2plab graph scripts/churn.rhai                      writes churn.svg here
  p2plab graph scripts/world.rhai --set peers=40 -o /tmp/world.svg
Exit codes: 1 the script failed (file:line:col), 2 it cannot be read or OUT not written.";

/// What `p2plab exec --help` and `shell --help` add.
const EXEC_HELP: &str = "\
The command joins the lab's network namespace and the node's cgroups, as the node's own
programs do: its sockets get the node's address (cgroup-BPF), the node's link shapes its
traffic, its CPU and memory limits hold, and the lab's end stops it. It gets P2PLAB_IP,
BINDIP, P2PLAB_LAB and (when one of the node's programs still runs) P2PLAB_NODE. A lab bound
by the shim (--binding preload) gets it preloaded instead. Only nodes that have started a
program have a cgroup. The exit code is the command's (128 + N if signal N ended it), 2 when
p2plab could not start it. `ping` is the one program that needs its address given (-I): its
ICMP sockets are not bound by cgroup-BPF.
  sudo p2plab exec 10.0.0.1 -- curl -s http://10.0.0.2:8000/
  sudo p2plab exec 10.0.0.1 -- ping -c 3 -I 10.0.0.1 10.0.0.2
  sudo p2plab shell 10.0.0.1";

/// p2plab: run real programs on emulated peer-to-peer networks, driven by a Rhai or Lua script.
#[derive(Parser)]
#[command(version, about, after_help = AFTER_HELP)]
struct Cli {
    /// More log lines on stderr: -v what each worker and session does, -vv every request and
    /// process, -vvv everything. RUST_LOG (e.g. RUST_LOG=p2plab::worker=debug) overrides it.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario script (real mode, or a virtual clock with --dry-run).
    #[command(after_help = SCRIPT_HELP)]
    Script {
        /// The scenario, e.g. scripts/churn.rhai; a `.lua` file is a Lua scenario.
        file: PathBuf,
        /// Run on a virtual clock: print every action with its experiment time, start nothing.
        #[arg(long)]
        dry_run: bool,
        /// Seed of the run's random numbers (rand, churn...); recorded in events.jsonl.
        #[arg(long)]
        seed: Option<u64>,
        /// A value for param("name", default) in the script; repeatable.
        #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_param)]
        params: Vec<(String, String)>,
        /// Results folder (default: results/<script>-<UTC time>/).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Do not print the timeline, nor a real run's status bar (or, when stdout is not a
        /// terminal, its status line every 10 s). The end summary still comes.
        #[arg(long, short)]
        quiet: bool,
        /// Operations a script may run without sleeping before it is stopped as a runaway.
        #[arg(long, value_name = "N", default_value_t = p2plab::script::DEFAULT_MAX_OPERATIONS)]
        max_operations: u64,
        /// Processes one worker (machine) may run at once; one more spawn() is a script error.
        /// A dry-run counts those started at one instant (it cannot see programs end).
        #[arg(long, value_name = "N", default_value_t = p2plab::controller::DEFAULT_MAX_PROCS as u32,
              value_parser = clap::value_parser!(u32).range(1..))]
        max_procs: u32,
        /// Run on these `p2plab worker`s: one `host:port [weight=N]` per line, `#` comments.
        /// Without it, one embedded worker runs in this process.
        #[arg(long, value_name = "FILE")]
        workers: Option<PathBuf>,
        /// The token shared with the workers (default: the P2PLAB_TOKEN variable). A file
        /// that its group or others may read gets a warning.
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// How programs' sockets get their node's address: auto (cgroup-BPF where root,
        /// cgroup v2 and BPF allow it, else the preloaded shim), bpf (cgroup-BPF or an error
        /// saying why not), preload (the LD_PRELOAD shim: dynamically linked programs only).
        /// Remote workers are told too; summary.json records the requested and actual one.
        #[arg(long, value_name = "HOW", default_value = "auto",
              value_parser = clap::builder::PossibleValuesParser::new(["auto", "bpf", "preload"]))]
        binding: String,
    },
    /// Run the worker of this machine: it builds the lab of its nodes for a controller.
    /// Uses TCP on the port for commands and UDP on the same port for the data plane.
    Worker {
        /// Address to listen on, e.g. 0.0.0.0:7000.
        #[arg(long, value_name = "HOST:PORT")]
        listen: std::net::SocketAddr,
        /// The token shared with the controller (`p2plab token FILE` makes one). A file that
        /// its group or others may read gets a warning: the token is root on this machine.
        #[arg(long, value_name = "FILE")]
        token_file: PathBuf,
        /// Scratch folder for the nodes' folders until they are collected (default: in the
        /// system's temporary folder).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Write a new random token to FILE (mode 0600) for a controller and its workers.
    Token { file: PathBuf },
    /// Remove what a crashed or killed run left behind (lab namespaces and cgroups, their
    /// processes).
    Cleanup,
    /// Plot a results folder: SVG and PNG plots and an index.html, written into DIR/report/.
    #[command(after_help = REPORT_HELP)]
    Report {
        /// The results folder of a run (dry-run or real), e.g. results/churn-20261125-203337.
        dir: PathBuf,
    },
    /// What real mode needs on this machine, and with FILE the programs the script spawns:
    /// each problem with what to do about it. Exit code 1 if real mode (or FILE) cannot run.
    Doctor {
        /// A scenario whose spawned programs are looked for on PATH (found by a dry-run).
        file: Option<PathBuf>,
        /// A value for param("name", default) in FILE; repeatable.
        #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_param)]
        params: Vec<(String, String)>,
    },
    /// Run a command as a node of a running lab: in its namespace, bound to its address, in
    /// its cgroups (root). E.g. `sudo p2plab exec 10.0.0.1 -- curl -s http://10.0.0.2:8000/`.
    #[command(after_help = EXEC_HELP)]
    Exec {
        /// The node's address (as in the timeline and nodes/<ip>/).
        node: String,
        /// The lab, when several run (`ip netns list` shows them as p2plab-<pid>-...).
        #[arg(long, value_name = "NAME")]
        lab: Option<String>,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<std::ffi::OsString>,
    },
    /// An interactive shell ($SHELL, else /bin/sh) as a node of a running lab, as `exec`.
    #[command(after_help = EXEC_HELP)]
    Shell {
        /// The node's address (as in the timeline and nodes/<ip>/).
        node: String,
        /// The lab, when several run.
        #[arg(long, value_name = "NAME")]
        lab: Option<String>,
    },
    /// Draw a script's topology as SVG (groups, their shapes, group links), from a dry-run.
    #[command(after_help = GRAPH_HELP)]
    Graph {
        /// The scenario, e.g. scripts/churn.rhai.
        file: PathBuf,
        /// Seed of the dry-run's random numbers (default 0), for scripts whose topology
        /// depends on chance.
        #[arg(long)]
        seed: Option<u64>,
        /// A value for param("name", default) in the script; repeatable.
        #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_param)]
        params: Vec<(String, String)>,
        /// The SVG file to write (default: <script name>.svg in the current folder).
        #[arg(short, long, value_name = "OUT.svg")]
        out: Option<PathBuf>,
    },
    /// Compile and check a script, then run it on a virtual clock without keeping anything.
    Check {
        /// The scenario: `.rhai`, or `.lua` for Lua.
        file: PathBuf,
        /// A value for param("name", default); repeatable.
        #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_param)]
        params: Vec<(String, String)>,
    },
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected NAME=VALUE, got {s:?}")),
    }
}

fn params(list: Vec<(String, String)>) -> BTreeMap<String, String> {
    list.into_iter().collect()
}

/// Log lines go to stderr in tracing's standard format (time, level, spans, target, message);
/// the timeline of a run stays on stdout. A worker daemon logs its sessions by default, other
/// commands only warnings; `-v`/`RUST_LOG` ask for more.
fn init_logging(verbose: u8, daemon: bool) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let level = match (verbose, daemon) {
        (0, false) => "warn",
        (0, true) | (1, _) => "info",
        (2, _) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("p2plab={level}")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Through the status bar of a real run, which shares the terminal.
        .with_writer(|| p2plab::run::progress::LogLines)
        .with_ansi(std::io::stderr().is_terminal())
        // A closed stderr (`2>&1 | head`) must not make logging itself print, and so panic,
        // in whatever thread logs next: a lab thread must always get to remove its lab.
        .log_internal_errors(false)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, matches!(cli.command, Command::Worker { .. }));
    let result = match cli.command {
        Command::Script {
            file,
            dry_run,
            seed,
            params: list,
            out,
            quiet,
            max_operations,
            max_procs,
            workers,
            token_file,
            binding,
        } => {
            let mut cfg = RunConfig::new(file);
            // Clap allowed only the names `from_name` knows.
            cfg.binding = BindingChoice::from_name(&binding).unwrap_or_default();
            cfg.args = std::env::args().collect();
            cfg.seed = seed;
            cfg.params = params(list);
            cfg.out = out;
            cfg.max_operations = max_operations;
            cfg.max_procs = max_procs as usize;
            if let Some(path) = workers {
                match workers_config(&path, token_file.as_deref(), dry_run) {
                    Ok((specs, token)) => {
                        cfg.workers = specs;
                        cfg.token = token;
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(2);
                    }
                }
            }
            if dry_run {
                if !quiet {
                    cfg.timeline = Some(Box::new(std::io::stdout()));
                }
                run::dry_run(cfg).map(|o| report(RunMode::DryRun, &o))
            } else {
                // Unprivileged: try a user namespace of our own, while no thread exists yet.
                // Not with remote workers: the controller needs the machine's own network.
                if cfg.workers.is_empty()
                    && let Err(e) = p2plab::netns::rootless::enter()
                {
                    eprintln!("note: no rootless lab possible here ({e}); real mode needs root");
                }
                // The bar's spinner is a thread: only now.
                let progress = (!quiet).then(Progress::on_stdout);
                if let Some(p) = &progress {
                    cfg.timeline = Some(p.timeline());
                    cfg.watch = Some(p.watch());
                }
                let result = run::real(cfg);
                if let Some(p) = &progress {
                    p.finish();
                }
                result.map(|o| report(RunMode::Real, &o))
            }
        }
        Command::Cleanup => cleanup(),
        Command::Report { dir } => return write_report(&dir),
        Command::Worker {
            listen,
            token_file,
            dir,
        } => worker(listen, &token_file, dir),
        Command::Token { file } => p2plab::proto::Token::write_new(&file)
            .map(|()| eprintln!("wrote a new token to {}", file.display()))
            .map_err(|e| RunError::Setup(e.into())),
        Command::Doctor { file, params: list } => return doctor(file.as_deref(), list),
        Command::Exec { node, lab, command } => {
            return attach(&node, lab.as_deref(), command, false);
        }
        Command::Shell { node, lab } => {
            let shell = std::env::var_os("SHELL").unwrap_or_else(|| "/bin/sh".into());
            return attach(&node, lab.as_deref(), vec![shell], true);
        }
        Command::Graph {
            file,
            seed,
            params: list,
            out,
        } => return graph(file, seed, list, out),
        Command::Check { file, params: list } => {
            let mut cfg = RunConfig::new(&file);
            cfg.params = params(list);
            run::check(&cfg).map(|o| {
                eprintln!(
                    "{}: ok ({} events over {:.3} s of experiment time)",
                    file.display(),
                    o.report.events,
                    p2plab::units::secs(o.report.end_time)
                );
                warn_unread(&o);
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            if p2plab::interrupt::requested() {
                eprintln!("the lab was removed");
                return ExitCode::from(130);
            }
            ExitCode::from(err.exit_code() as u8)
        }
    }
}

/// `p2plab report DIR`: says where the page is, or why there is none (exit code 2).
fn write_report(dir: &std::path::Path) -> ExitCode {
    match p2plab::report::write(dir) {
        Ok(report) => {
            eprintln!(
                "{} plots in {}; open {}",
                report.shown.len(),
                report.dir.display(),
                report.dir.join("index.html").display()
            );
            for s in &report.skipped {
                eprintln!("skipped {}: {}", s.title, s.why);
            }
            eprintln!("fidelity: {}", report.verdict.word());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(2)
        }
    }
}

/// `p2plab graph FILE`: says where the picture went, or why there is none.
fn graph(
    file: PathBuf,
    seed: Option<u64>,
    params: Vec<(String, String)>,
    out: Option<PathBuf>,
) -> ExitCode {
    let out = out.unwrap_or_else(|| p2plab::graph::default_output(&file));
    let mut cfg = RunConfig::new(file);
    cfg.seed = seed;
    cfg.params = params.into_iter().collect();
    match p2plab::graph::write(&cfg, &out) {
        Ok(outcome) => {
            eprintln!("wrote {}", out.display());
            warn_unread(&outcome);
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(err.exit_code() as u8)
        }
    }
}

/// `p2plab doctor [FILE]`: one line per finding, the fix under it; exit code 1 on a problem.
fn doctor(file: Option<&std::path::Path>, params: Vec<(String, String)>) -> ExitCode {
    use p2plab::doctor::{Facts, Level, judge};
    let findings = judge(&Facts::gather(file.map(|f| (f, params))));
    for f in &findings {
        println!("{:<8} {:<14} {}", f.level.word(), f.topic, f.text);
        if let Some(fix) = &f.fix
            && f.level != Level::Ok
        {
            println!("{:<23} fix: {fix}", "");
        }
    }
    let problems = findings
        .iter()
        .filter(|f| f.level == Level::Problem)
        .count();
    if problems == 0 {
        println!("real mode can run here");
        ExitCode::SUCCESS
    } else {
        println!("{problems} problem(s): real mode cannot run as it is");
        ExitCode::from(1)
    }
}

/// `p2plab exec` and `p2plab shell`: the command's own exit code, or 2 if it did not start.
fn attach(
    node: &str,
    lab: Option<&str>,
    command: Vec<std::ffi::OsString>,
    interactive: bool,
) -> ExitCode {
    use p2plab::attach;
    let planned = attach::plan_for(node, lab);
    let result = planned.and_then(|a| {
        if interactive {
            eprintln!(
                "p2plab: a shell as node {} of lab {}; `exit` leaves it",
                a.ip, a.lab
            );
        }
        attach::run(&a, &command)
    });
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// The workers file and the token of a multi-machine run (a dry-run needs no token).
fn workers_config(
    path: &std::path::Path,
    token_file: Option<&std::path::Path>,
    dry_run: bool,
) -> anyhow::Result<(
    Vec<p2plab::controller::WorkerSpec>,
    Option<p2plab::proto::Token>,
)> {
    use anyhow::Context;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the workers file {}", path.display()))?;
    let specs = p2plab::controller::workers::parse_workers_file(&text, &path.display().to_string())
        .map_err(anyhow::Error::msg)?;
    let token = match (token_file, std::env::var("P2PLAB_TOKEN")) {
        (Some(file), _) => Some(p2plab::proto::Token::from_file(file)?),
        (None, Ok(text)) => Some(p2plab::proto::Token::parse(&text, "P2PLAB_TOKEN")?),
        (None, Err(_)) if dry_run => None,
        (None, Err(_)) => anyhow::bail!(
            "--workers needs the workers' token: --token-file FILE or P2PLAB_TOKEN (make one with `p2plab token FILE`)"
        ),
    };
    Ok((specs, token))
}

fn worker(
    listen: std::net::SocketAddr,
    token_file: &std::path::Path,
    dir: Option<PathBuf>,
) -> Result<(), RunError> {
    use p2plab::worker::server::{Server, ServerOptions};
    let setup = |e: SetupError| RunError::Setup(e);
    let token = p2plab::proto::Token::from_file(token_file).map_err(|e| setup(e.into()))?;
    p2plab::netns::require_privileges().map_err(|e| setup(e.into()))?;
    let shim = p2plab::worker::shim::locate().map_err(|e| setup(e.into()))?;
    // A folder of its own inside the one given: removing it at the end removes nothing else.
    let dir = dir
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("p2plab-worker-{}", std::process::id()));
    p2plab::interrupt::install();
    let server = Server::bind(ServerOptions {
        listen,
        token,
        dir: dir.clone(),
        shim,
    })
    .map_err(|e| setup(e.into()))?;
    let addr = server.local_addr().map_err(|e| setup(e.into()))?;
    tracing::info!("listening on {addr} (TCP: controller, UDP: data plane)");
    let result = server.run().map_err(|e| setup(e.into()));
    let _ = std::fs::remove_dir_all(&dir);
    tracing::info!("stopped");
    // Ctrl-C is how a worker ends: not an error.
    result
}

fn cleanup() -> Result<(), RunError> {
    p2plab::netns::require_privileges().map_err(|e| RunError::Setup(e.into()))?;
    let removed = p2plab::netns::cleanup_leftovers().map_err(|e| RunError::Setup(e.into()))?;
    if removed.is_empty() {
        eprintln!("nothing to clean up");
    }
    for item in removed {
        eprintln!("removed {item}");
    }
    Ok(())
}

/// The end summary on stdout (with `-q` too), notes and warnings on stderr.
fn report(mode: RunMode, o: &RunOutcome) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for line in p2plab::run::recap::end_summary(mode, o) {
        // A closed stdout (`| head`) loses the summary, not the exit code.
        let _ = writeln!(out, "{line}");
    }
    drop(out);
    if o.report.pending_callbacks > 0 {
        eprintln!(
            "note: {} at()/every() callback(s) were still pending when the script ended",
            o.report.pending_callbacks
        );
    }
    warn_unread(o);
}

fn warn_unread(o: &RunOutcome) {
    for name in &o.report.unread_params {
        eprintln!("warning: --set {name}=... was never read by param({name:?}, ...)");
    }
}
