//! The `p2plab` command line: parses arguments, runs the chosen mode, maps errors to exit codes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use p2plab::run::{self, RunConfig, RunError, RunOutcome};

const AFTER_HELP: &str = "\
Examples:
  p2plab script scripts/churn.rhai --dry-run        print the timeline, touch nothing
  p2plab script scripts/churn.rhai --seed 7 --set peers=50
  p2plab check my-experiment.rhai                   find mistakes before running

Real mode (without --dry-run) builds a lab network namespace with a TUN data plane, runs
the programs there (each bound to its node's address by the preloaded shim), and removes
everything at the end or on Ctrl-C. It needs root, or runs rootless in a user namespace of
its own where the kernel allows it and /dev/net/tun is open to users. `p2plab cleanup` (root)
removes what a killed run left behind.

Exit codes: 0 success, 1 the script failed (the error names file:line:col),
2 usage or environment (missing privilege, missing worker), 3 a worker was lost mid-run,
130 interrupted by Ctrl-C or SIGTERM.
The script book (book/) documents every primitive with examples.";

/// p2plab: run real programs on emulated peer-to-peer networks, driven by a Rhai script.
#[derive(Parser)]
#[command(version, about, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario script (real mode, or a virtual clock with --dry-run).
    Script {
        /// The scenario, e.g. scripts/churn.rhai.
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
        /// Do not print the timeline (events.jsonl is still written).
        #[arg(long, short)]
        quiet: bool,
        /// Operations a script may run without sleeping before it is stopped as a runaway.
        #[arg(long, value_name = "N", default_value_t = p2plab::script::DEFAULT_MAX_OPERATIONS)]
        max_operations: u64,
    },
    /// Remove what a crashed or killed run left behind (lab namespaces, their processes).
    Cleanup,
    /// Compile and check a script, then run it on a virtual clock without keeping anything.
    Check {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Script {
            file,
            dry_run,
            seed,
            params: list,
            out,
            quiet,
            max_operations,
        } => {
            let mut cfg = RunConfig::new(file);
            cfg.seed = seed;
            cfg.params = params(list);
            cfg.out = out;
            cfg.max_operations = max_operations;
            if !quiet {
                cfg.timeline = Some(Box::new(std::io::stdout()));
            }
            if dry_run {
                run::dry_run(cfg).map(|o| report("dry-run", &o))
            } else {
                // Unprivileged: try a user namespace of our own, while no thread exists yet.
                if let Err(e) = p2plab::netns::rootless::enter() {
                    eprintln!("note: no rootless lab possible here ({e}); real mode needs root");
                }
                run::real(cfg).map(|o| report("run", &o))
            }
        }
        Command::Cleanup => cleanup(),
        Command::Check { file, params: list } => {
            let mut cfg = RunConfig::new(&file);
            cfg.params = params(list);
            run::check(&cfg).map(|o| {
                eprintln!(
                    "{}: ok ({} events over {:.3} s of experiment time)",
                    file.display(),
                    o.report.events,
                    p2plab::script::units::secs(o.report.end_time)
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

fn cleanup() -> Result<(), RunError> {
    p2plab::netns::require_privileges().map_err(|e| RunError::Setup(e.to_string()))?;
    let removed = p2plab::netns::cleanup_leftovers().map_err(|e| RunError::Setup(e.to_string()))?;
    if removed.is_empty() {
        eprintln!("nothing to clean up");
    }
    for item in removed {
        eprintln!("removed {item}");
    }
    Ok(())
}

fn report(mode: &str, o: &RunOutcome) {
    if let Some(dir) = &o.results {
        eprintln!(
            "{mode} finished at {:.3} s: {} events in {} (seed {}; replay with --seed {})",
            p2plab::script::units::secs(o.report.end_time),
            o.report.events,
            dir.join("events.jsonl").display(),
            o.seed,
            o.seed
        );
    }
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
