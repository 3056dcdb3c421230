//! `p2plab doctor [FILE]`: what real mode needs on this machine (privileges, rootless support,
//! the TUN device, cgroups, BPF, the shim, limits) and the programs a script spawns, each with
//! what to do about a problem. Facts are gathered once (`Facts::gather`); judging them is free
//! of I/O (`judge`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::run::{self, RunConfig};

/// How a finding bears on real mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    /// Real mode works, with something less than the best this tool can do.
    Note,
    /// Real mode (or this script) will not work until it is fixed.
    Problem,
}

impl Level {
    pub fn word(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Note => "note",
            Level::Problem => "PROBLEM",
        }
    }
}

/// One line of the doctor's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub topic: &'static str,
    pub level: Level,
    pub text: String,
    /// What to do about it.
    pub fix: Option<String>,
}

fn finding(topic: &'static str, level: Level, text: impl Into<String>) -> Finding {
    Finding {
        topic,
        level,
        text: text.into(),
        fix: None,
    }
}

impl Finding {
    fn fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = Some(fix.into());
        self
    }
}

/// Where a program a script spawns was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program {
    Found { path: PathBuf, static_elf: bool },
    Missing,
}

/// What the machine offers, as found by [`Facts::gather`].
#[derive(Debug, Clone)]
pub struct Facts {
    pub root: bool,
    /// A user namespace with a network namespace could be made (tried in a child), or why not.
    pub rootless: Result<(), String>,
    /// `/dev/net/tun`: its mode, or why it is not there.
    pub tun_mode: Result<u32, String>,
    /// It opened for reading and writing, or why not.
    pub tun_open: Result<(), String>,
    pub v2_mount: Option<PathBuf>,
    /// A lab cgroup with the binding programs was made and removed, or why not (not tried
    /// without root).
    pub bpf: Option<Result<(), String>>,
    /// Where node CPU and memory limits would be enforced, e.g. "cgroup v1 (cpu, memory)".
    pub limits: Option<String>,
    pub cpu_pressure: bool,
    pub shim: Result<PathBuf, String>,
    /// The data-plane thread may take a real-time priority.
    pub realtime: bool,
    /// Soft and hard limit of open files, the kernel's pid_max and threads-max.
    pub open_files: (u64, u64),
    pub pid_max: Option<u64>,
    pub threads_max: Option<u64>,
    /// The script's spawned programs, or the error its dry-run gave; `None` without a script.
    pub programs: Option<Result<Vec<(String, Program)>, String>>,
}

/// Packages of Debian and Ubuntu that hold the programs the book's labs use.
const PACKAGES: &[(&str, &str)] = &[
    ("aria2c", "aria2"),
    ("ctorrent", "ctorrent"),
    ("curl", "curl"),
    ("iperf3", "iperf3"),
    ("jq", "jq"),
    ("opentracker", "opentracker"),
    ("ping", "iputils-ping"),
    ("python3", "python3"),
    ("transmission-cli", "transmission-cli"),
    ("nc", "netcat-openbsd"),
    ("tcpdump", "tcpdump"),
];

/// Processes a worker may run at once by default: what the system limits are measured by.
const MANY_PROCESSES: u64 = crate::controller::DEFAULT_MAX_PROCS as u64;

/// The findings, in the order they are printed.
pub fn judge(f: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    out.push(match (&f.root, &f.rootless) {
        (true, _) => finding(
            "privileges",
            Level::Ok,
            "root: labs are named namespaces (`ip netns`), `p2plab exec`/`shell` can join them",
        ),
        (false, Ok(())) => finding(
            "privileges",
            Level::Note,
            "not root: real mode runs rootless, in a user namespace of its own (binding by the \
             shim only, no node CPU or memory limits, no `p2plab exec`/`shell` into its lab)",
        )
        .fix("run p2plab with sudo for all of it: sudo \"$(command -v p2plab)\" ..."),
        (false, Err(why)) => finding(
            "privileges",
            Level::Problem,
            format!("not root, and no rootless lab is possible: {why}"),
        )
        .fix(
            "run p2plab with sudo: sudo \"$(command -v p2plab)\" ..., or allow user namespaces \
             (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0)",
        ),
    });
    out.push(match (&f.tun_mode, &f.tun_open) {
        (Err(why), _) => finding("TUN device", Level::Problem, why.clone())
            .fix("load the module: sudo modprobe tun"),
        (Ok(mode), Ok(())) => finding(
            "TUN device",
            Level::Ok,
            format!("/dev/net/tun (mode {mode:04o}) opens"),
        ),
        (Ok(mode), Err(why)) => finding(
            "TUN device",
            if f.root { Level::Problem } else { Level::Note },
            format!("/dev/net/tun (mode {mode:04o}) does not open for you: {why}"),
        )
        .fix("rootless real mode needs it open to users: sudo chmod 0666 /dev/net/tun (most distributions ship it so), or use sudo"),
    });
    out.push(match &f.v2_mount {
        Some(m) => finding(
            "cgroup v2",
            Level::Ok,
            format!("mounted at {}", m.display()),
        ),
        None => finding(
            "cgroup v2",
            Level::Note,
            "not mounted: programs are bound by the preloaded shim, nodes get no limits",
        )
        .fix("mount it: sudo mount -t cgroup2 none /sys/fs/cgroup/unified (or boot with systemd.unified_cgroup_hierarchy=1)"),
    });
    out.push(match &f.bpf {
        Some(Ok(())) => finding(
            "BPF binding",
            Level::Ok,
            "cgroup-BPF programs attach: every program is bound to its node's address, static and Go binaries too",
        ),
        Some(Err(why)) => finding(
            "BPF binding",
            Level::Note,
            format!("cgroup-BPF programs do not attach ({why}): the preloaded shim binds, statically linked programs are not bound"),
        )
        .fix("a kernel with CONFIG_CGROUP_BPF and cgroup v2 mounted, run as root"),
        None => finding(
            "BPF binding",
            Level::Note,
            "not tried without root: the preloaded shim binds, statically linked programs are not bound",
        ),
    });
    let node_cgroups = f.root && matches!(f.bpf, Some(Ok(())));
    out.push(match &f.limits {
        Some(where_) if !node_cgroups => finding(
            "node limits",
            Level::Note,
            format!(
                "{where_} has the cpu and memory controllers, but nodes get cgroups only as root \
                 with the BPF binding: a script's cpu/memory limits are errors here"
            ),
        )
        .fix("run p2plab as root on a kernel with cgroup-BPF"),
        Some(where_) => finding(
            "node limits",
            Level::Ok,
            format!("cpu and memory limits of nodes are enforced in {where_}"),
        ),
        None => finding(
            "node limits",
            Level::Note,
            "no cpu or memory controller: a script's cpu/memory limits are errors in real mode",
        )
        .fix("enable the cpu and memory controllers (cgroup v2 subtree_control, or mount them on v1)"),
    });
    out.push(if f.cpu_pressure {
        finding(
            "CPU pressure",
            Level::Ok,
            "cgroup cpu.pressure is there: the verdict judges how long nodes waited for a CPU",
        )
    } else {
        finding(
            "CPU pressure",
            Level::Note,
            "no cgroup cpu.pressure: summary.json leaves cpu_wait_seconds null (not measured)",
        )
        .fix("a kernel with CONFIG_PSI (and psi=1 on its command line where it is off by default)")
    });
    let shim_needed = !f.root || !matches!(f.bpf, Some(Ok(())));
    out.push(match &f.shim {
        Ok(path) => finding("bind shim", Level::Ok, path.display().to_string()),
        Err(why) => finding(
            "bind shim",
            if shim_needed {
                Level::Problem
            } else {
                Level::Note
            },
            why.clone(),
        )
        .fix("cargo build --release, then run target/release/p2plab (or `cargo install --path .`)"),
    });
    out.push(if f.realtime {
        finding(
            "data plane",
            Level::Ok,
            "may run at a real-time priority (SCHED_FIFO), above the programs it emulates links for",
        )
    } else {
        finding(
            "data plane",
            Level::Note,
            "no real-time priority allowed: on a busy machine packets leave late (the verdict flags it)",
        )
        .fix(format!(
            "run as root, or allow real-time priority {} to your user (`rtprio` in /etc/security/limits.conf)",
            crate::dataplane::forwarder::FIFO_PRIORITY
        ))
    });
    let (soft, hard) = f.open_files;
    let short: Vec<String> = [("pid_max", f.pid_max), ("threads-max", f.threads_max)]
        .into_iter()
        .filter_map(|(name, v)| {
            v.filter(|&v| v < 2 * MANY_PROCESSES)
                .map(|v| format!("{name} {v}"))
        })
        .chain((soft < 4 * MANY_PROCESSES).then(|| format!("open files {soft}")))
        .collect();
    let limits_text = format!(
        "open files {soft} (hard {hard}), pid_max {}, threads-max {}",
        f.pid_max.map_or("?".into(), |v| v.to_string()),
        f.threads_max.map_or("?".into(), |v| v.to_string())
    );
    out.push(if short.is_empty() {
        finding("system limits", Level::Ok, limits_text)
    } else {
        finding(
            "system limits",
            Level::Note,
            format!(
                "{limits_text}; too low for a swarm of {MANY_PROCESSES} processes (--max-procs): {}",
                short.join(", ")
            ),
        )
        .fix("raise them: ulimit -n 1048576; sysctl kernel.pid_max=4194304 kernel.threads-max=4194304")
    });
    match &f.programs {
        None => {}
        Some(Err(why)) => out.push(
            finding("script", Level::Problem, why.clone())
                .fix("p2plab check FILE shows the same error"),
        ),
        Some(Ok(programs)) if programs.is_empty() => out.push(finding(
            "programs",
            Level::Ok,
            "the script spawns no program",
        )),
        Some(Ok(programs)) => {
            for (name, found) in programs {
                out.push(program_finding(name, found, shim_needed));
            }
        }
    }
    out
}

fn program_finding(name: &str, found: &Program, shim_binds: bool) -> Finding {
    match found {
        Program::Found { path, static_elf } if *static_elf && shim_binds => finding(
            "program",
            Level::Note,
            format!("{name}: {} is statically linked: the shim cannot bind it here", path.display()),
        )
        .fix("run as root with cgroup v2 (binding bpf), or give it its node's address ($BINDIP) yourself"),
        Program::Found { path, .. } => {
            finding("program", Level::Ok, format!("{name}: {}", path.display()))
        }
        Program::Missing => {
            let fix = match PACKAGES.iter().find(|(p, _)| *p == name) {
                Some((_, package)) => format!("sudo apt-get install -y {package}"),
                None => format!("install {name}, or give its full path in the script"),
            };
            finding(
                "program",
                Level::Problem,
                format!("{name}: not found on PATH"),
            )
            .fix(fix)
        }
    }
}

/// The programs a command runs: its first word, or with `shell: true` the first word of each
/// simple command of the shell text (builtins and keywords left out). A heuristic for shell
/// text: a program named in a variable or built at run time is not seen.
pub fn programs_of(cmd: &str, shell: bool) -> Vec<String> {
    if !shell {
        let words = shell_words::split(cmd).unwrap_or_default();
        return words.into_iter().take(1).collect();
    }
    let mut found = Vec::new();
    for segment in simple_commands(cmd) {
        let Ok(words) = shell_words::split(&segment) else {
            continue;
        };
        if let Some(program) = first_program(&words) {
            found.push(program.to_string());
        }
    }
    found
}

/// Words that lead to the program after them.
const PREFIXES: &[&str] = &[
    "do", "then", "else", "elif", "!", "{", "exec", "time", "if", "while", "until",
];
/// Words after which no program follows in the same simple command.
const BUILTINS: &[&str] = &[
    "set", "cd", "echo", "printf", "export", "unset", "fi", "done", "esac", "case", "for", "in",
    "function", "return", "exit", "read", "wait", "trap", "shift", "true", "false", "test", "[",
    "[[", "]]", "local", "eval", "source", ".", ":", "kill", "command", "type", "ulimit", "umask",
    "break", "continue", "}", "let", "declare", "readonly", "alias", "pwd", "jobs",
];

fn first_program(words: &[String]) -> Option<&str> {
    for word in words {
        let w = word.as_str();
        let assignment = w.split_once('=').is_some_and(|(k, _)| {
            !k.is_empty() && k.chars().all(|c| c.is_alphanumeric() || c == '_')
        });
        if assignment || PREFIXES.contains(&w) {
            continue;
        }
        if BUILTINS.contains(&w)
            || w.starts_with('$')
            || w.starts_with(['<', '>'])
            || w.ends_with(')')
        {
            return None;
        }
        return Some(w);
    }
    None
}

/// Shell text cut at unquoted newlines, `;`, `|`, `&`, `(` and `)`.
fn simple_commands(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let (mut single, mut double, mut escaped) = (false, false, false);
    for c in text.chars() {
        let cut = !single && !double && !escaped && matches!(c, '\n' | ';' | '|' | '&' | '(' | ')');
        match c {
            _ if escaped => escaped = false,
            '\\' if !single => escaped = true,
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            _ => {}
        }
        if cut {
            out.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    out.push(current);
    out.retain(|s| !s.trim().is_empty() && !s.trim_start().starts_with('#'));
    out
}

impl Facts {
    /// Looks at this machine; with a script, dry-runs it (into a scratch folder) for the
    /// programs it spawns.
    pub fn gather(script: Option<(&Path, Vec<(String, String)>)>) -> Facts {
        let root = nix::unistd::geteuid().is_root();
        let v2_mount = crate::netns::cgroup::v2_mount();
        let shim = crate::worker::shim::locate().map_err(|e| e.to_string());
        Facts {
            root,
            rootless: if root { Ok(()) } else { try_rootless() },
            tun_mode: tun_mode(),
            tun_open: std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/net/tun")
                .map(drop)
                .map_err(|e| e.to_string()),
            bpf: root.then(try_bpf),
            limits: limits_home(v2_mount.as_deref()),
            cpu_pressure: v2_mount.as_ref().is_some_and(|m| {
                m.join("cgroup.pressure").exists() || Path::new("/proc/pressure/cpu").exists()
            }),
            v2_mount,
            shim,
            realtime: root
                || rlimit(nix::sys::resource::Resource::RLIMIT_RTPRIO).0
                    >= crate::dataplane::forwarder::FIFO_PRIORITY as u64,
            open_files: rlimit(nix::sys::resource::Resource::RLIMIT_NOFILE),
            pid_max: read_number("/proc/sys/kernel/pid_max"),
            threads_max: read_number("/proc/sys/kernel/threads-max"),
            programs: script.map(|(file, params)| script_programs(file, params)),
        }
    }
}

fn tun_mode() -> Result<u32, String> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    match std::fs::metadata("/dev/net/tun") {
        Ok(m) if m.file_type().is_char_device() => Ok(m.permissions().mode() & 0o7777),
        Ok(_) => Err("/dev/net/tun is not a character device".into()),
        Err(e) => Err(format!("/dev/net/tun: {e}")),
    }
}

/// Tries, in a child process, what `rootless::enter` does first.
fn try_rootless() -> Result<(), String> {
    // Our own binary, a program every machine running doctor has.
    let exe = std::env::current_exe().map_err(|e| format!("cannot find p2plab itself: {e}"))?;
    let mut probe = std::process::Command::new(exe);
    probe
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: the child calls unshare(2) only, between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut probe, || {
            if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    match probe.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("the probe exited with {s}")),
        Err(e) => Err(format!("user namespaces refused: {e}")),
    }
}

/// Makes a lab cgroup with the binding programs attached, and removes it.
fn try_bpf() -> Result<(), String> {
    // Named as a lab is, so that `p2plab cleanup` removes it if doctor dies before it does.
    let name = format!("p2plab-{}-doctor", std::process::id());
    let cgroup = crate::netns::cgroup::LabCgroup::create(&name).map_err(|e| e.to_string())?;
    cgroup.remove().map_err(|e| e.to_string())
}

fn limits_home(v2: Option<&Path>) -> Option<String> {
    let v2_has = |c: &str| {
        v2.and_then(|m| std::fs::read_to_string(m.join("cgroup.controllers")).ok())
            .is_some_and(|s| s.split_whitespace().any(|x| x == c))
    };
    if v2_has("cpu") && v2_has("memory") {
        return Some("cgroup v2".into());
    }
    let v1 = crate::netns::limits::v1_mounts();
    let names: Vec<&str> = v1.iter().map(|(c, _)| *c).collect();
    (names.len() == crate::netns::limits::V1_CONTROLLERS.len())
        .then(|| format!("cgroup v1 ({})", names.join(", ")))
}

fn rlimit(resource: nix::sys::resource::Resource) -> (u64, u64) {
    nix::sys::resource::getrlimit(resource).unwrap_or((0, 0))
}

fn read_number(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The distinct programs `file`'s dry-run spawns, in the order first spawned.
fn script_programs(
    file: &Path,
    params: Vec<(String, String)>,
) -> Result<Vec<(String, Program)>, String> {
    let scratch = std::env::temp_dir().join(format!("p2plab-doctor-{}", std::process::id()));
    let mut cfg = RunConfig::new(file);
    cfg.params = params.into_iter().collect();
    cfg.out = Some(scratch.clone());
    let events = run::dry_run(cfg).map_err(|e| e.to_string()).and_then(|_| {
        std::fs::read_to_string(scratch.join("events.jsonl"))
            .map_err(|e| format!("events.jsonl of the dry-run: {e}"))
    });
    let _ = std::fs::remove_dir_all(&scratch);
    let events = events?;
    let mut seen = BTreeSet::new();
    let mut programs = Vec::new();
    for line in events.lines() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if event["event"] != "spawn" {
            continue;
        }
        let cmd = event["cmd"].as_str().unwrap_or("");
        let shell = event["shell"].as_bool().unwrap_or(false);
        for name in programs_of(cmd, shell) {
            if seen.insert(name.clone()) {
                let found = find_program(&name);
                programs.push((name, found));
            }
        }
    }
    Ok(programs)
}

/// Where `name` is: as given when it has a slash, else the first executable on PATH.
fn find_program(name: &str) -> Program {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let path = if name.contains('/') {
        Some(PathBuf::from(name)).filter(|p| executable(p))
    } else {
        std::env::var_os("PATH")
            .map(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(name))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
            .into_iter()
            .find(|p| executable(p))
    };
    match path {
        Some(path) => Program::Found {
            static_elf: crate::worker::shim::is_static_elf(&path.display().to_string()),
            path,
        },
        None => Program::Missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good_root() -> Facts {
        Facts {
            root: true,
            rootless: Ok(()),
            tun_mode: Ok(0o600),
            tun_open: Ok(()),
            v2_mount: Some("/sys/fs/cgroup/unified".into()),
            bpf: Some(Ok(())),
            limits: Some("cgroup v1 (cpu, memory)".into()),
            cpu_pressure: true,
            shim: Ok("/opt/p2plab/libp2plab_shim.so".into()),
            realtime: true,
            open_files: (1 << 20, 1 << 20),
            pid_max: Some(4 << 20),
            threads_max: Some(1 << 20),
            programs: None,
        }
    }

    fn levels(findings: &[Finding]) -> Vec<(&'static str, Level)> {
        findings.iter().map(|f| (f.topic, f.level)).collect()
    }

    #[test]
    fn a_good_root_machine_is_all_ok() {
        let found = judge(&good_root());
        assert!(found.iter().all(|f| f.level == Level::Ok), "{found:#?}");
        assert_eq!(found.len(), 9);
    }

    #[test]
    fn a_user_without_namespaces_or_tun_access_is_told_what_to_do() {
        let mut f = good_root();
        f.root = false;
        f.rootless = Err("user namespaces refused: Operation not permitted".into());
        f.tun_open = Err("Permission denied".into());
        f.bpf = None;
        f.shim = Err("the bind shim was not found".into());
        let found = judge(&f);
        let privileges = &found[0];
        assert_eq!(privileges.level, Level::Problem);
        assert!(privileges.fix.as_deref().unwrap().contains("sudo"));
        let tun = &found[1];
        assert_eq!(tun.level, Level::Note);
        assert!(
            tun.fix
                .as_deref()
                .unwrap()
                .contains("chmod 0666 /dev/net/tun")
        );
        // Without root the shim binds every program: without it nothing runs.
        let shim = found.iter().find(|f| f.topic == "bind shim").unwrap();
        assert_eq!(shim.level, Level::Problem);
    }

    #[test]
    fn missing_programs_name_their_package() {
        let mut f = good_root();
        f.programs = Some(Ok(vec![
            ("iperf3".into(), Program::Missing),
            ("my-dht".into(), Program::Missing),
            (
                "python3".into(),
                Program::Found {
                    path: "/usr/bin/python3".into(),
                    static_elf: false,
                },
            ),
        ]));
        let found = judge(&f);
        let programs: Vec<&Finding> = found.iter().filter(|f| f.topic == "program").collect();
        assert_eq!(
            programs[0].fix.as_deref(),
            Some("sudo apt-get install -y iperf3")
        );
        assert_eq!(
            programs[1].fix.as_deref(),
            Some("install my-dht, or give its full path in the script")
        );
        assert_eq!(programs[2].level, Level::Ok);
    }

    #[test]
    fn low_system_limits_are_a_note_and_a_static_program_needs_bpf() {
        let mut f = good_root();
        f.open_files = (1024, 4096);
        f.bpf = Some(Err("no cgroup-BPF".into()));
        f.programs = Some(Ok(vec![(
            "tracker".into(),
            Program::Found {
                path: "/usr/bin/tracker".into(),
                static_elf: true,
            },
        )]));
        let found = judge(&f);
        assert_eq!(
            levels(&found)
                .into_iter()
                .filter(|(_, l)| *l != Level::Ok)
                .collect::<Vec<_>>(),
            [
                ("BPF binding", Level::Note),
                // No BPF, no node cgroups: the controllers are there but limits are not.
                ("node limits", Level::Note),
                ("system limits", Level::Note),
                ("program", Level::Note)
            ]
        );
    }

    #[test]
    fn shell_text_names_its_programs_not_its_builtins() {
        let cmd = "set -e\npython3 -c \"import x; print('a|b')\"\nctorrent -s t file > /dev/null\n\
                   md5sum file.bin | cut -d' ' -f1 > file.md5\nfor i in 1 2; do X=1 curl -s u; done\n\
                   # a comment\necho done && sleep 1 & wait";
        assert_eq!(
            programs_of(cmd, true),
            ["python3", "ctorrent", "md5sum", "cut", "curl", "sleep"]
        );
        assert_eq!(programs_of("iperf3 -s -B {ip}", false), ["iperf3"]);
        assert_eq!(programs_of("'my prog' --x", false), ["my prog"]);
    }
}
