//! Attaching a command to a node of a running lab (`p2plab exec NODE -- CMD`, `p2plab shell
//! NODE`): which lab, which of its cgroups and what environment make a program that node, and
//! starting it there, as the worker's spawner would.

use std::ffi::OsString;
use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::netns::Ledger;
use crate::worker::shim::contract::{BINDIP, LD_PRELOAD, P2PLAB_IP, P2PLAB_NODE};

/// The lab's namespace name, for a prompt or a script that wants to know.
const LAB_VAR: &str = "P2PLAB_LAB";

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error(
        "no lab is running on this machine (a `sudo p2plab script FILE` run makes one; a \
         rootless run's lab is private to it and cannot be joined)"
    )]
    NoLab,
    #[error("{} labs are running: say which with --lab NAME ({})", .names.len(), .names.join(", "))]
    SeveralLabs { names: Vec<String> },
    #[error("no running lab is called {name:?} (running: {})", list_or_none(.running))]
    UnknownLab { name: String, running: Vec<String> },
    #[error("expected a node's address such as 10.0.0.1, got {given:?}")]
    BadNode { given: String },
    #[error(
        "{ip} is not a node of lab {lab} that has started a program (nodes with programs: {})",
        list_or_none(.nodes)
    )]
    UnknownNode {
        ip: Ipv4Addr,
        lab: String,
        nodes: Vec<String>,
    },
    #[error("lab {lab} binds programs with the preloaded shim, and it was not found: {why}")]
    NoShim { lab: String, why: String },
    #[error(
        "p2plab exec and shell need root: the lab's namespace and cgroups are root's (run it with sudo)"
    )]
    NotRoot,
    #[error("no command given (p2plab exec NODE -- COMMAND [ARGS...])")]
    NoCommand,
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> AttachError {
    let what = what.into();
    move |source| AttachError::Io { what, source }
}

/// The labs whose owner still runs, from the ledgers in `dir` (`/run/p2plab`), by name.
/// A ledger that cannot be read is skipped, as `p2plab cleanup` skips it: no lab to join.
pub fn running_labs(dir: &Path) -> Result<Vec<Ledger>, AttachError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(format!("read {}", dir.display()))(e)),
    };
    let mut labs: Vec<Ledger> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p| Ledger::read(&p).ok())
        .filter(Ledger::owner_alive)
        .collect();
    labs.sort_by(|a, b| a.namespace.cmp(&b.namespace));
    Ok(labs)
}

/// The lab named `wanted`, or the only one running.
pub fn choose_lab(labs: Vec<Ledger>, wanted: Option<&str>) -> Result<Ledger, AttachError> {
    let names = || labs.iter().map(|l| l.namespace.clone()).collect::<Vec<_>>();
    match wanted {
        Some(name) => match labs.iter().position(|l| l.namespace == name) {
            Some(i) => Ok(labs[i].clone()),
            None => Err(AttachError::UnknownLab {
                name: name.into(),
                running: names(),
            }),
        },
        None if labs.len() == 1 => Ok(labs[0].clone()),
        None if labs.is_empty() => Err(AttachError::NoLab),
        None => Err(AttachError::SeveralLabs { names: names() }),
    }
}

/// A node as the user names it: its address, as in `nodes/<ip>/` and the timeline, or the
/// name of its cgroup (`n10.0.0.1`).
pub fn parse_node(given: &str) -> Result<Ipv4Addr, AttachError> {
    let text = given.trim();
    text.strip_prefix('n')
        .unwrap_or(text)
        .parse()
        .map_err(|_| AttachError::BadNode {
            given: given.into(),
        })
}

/// Everything needed to start a program as a node of a lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub lab: String,
    pub ip: Ipv4Addr,
    /// `/run/netns/<lab>`: the namespace the program joins.
    pub namespace: PathBuf,
    /// The `cgroup.procs` files it writes itself into: v2 first, then each v1 hierarchy's.
    /// Joining them binds its sockets by the lab's BPF programs, holds it to the node's limits
    /// and ends it with the node; empty in a lab without cgroups, whose programs get the shim.
    pub cgroup_procs: Vec<PathBuf>,
    pub env: Vec<(String, String)>,
}

/// Where node `node` (an address) of the running lab `lab` (or the only one) lives, on this
/// machine: its ledger, namespace, cgroups and the shim, found where p2plab keeps them.
pub fn plan_for(node: &str, lab: Option<&str>) -> Result<Attachment, AttachError> {
    require_root()?;
    let ip = parse_node(node)?;
    let lab = choose_lab(running_labs(Path::new(crate::netns::LEDGER_DIR))?, lab)?;
    plan(
        &lab,
        ip,
        Path::new(crate::netns::NETNS_RUN_DIR),
        &crate::netns::limits::v1_mount_points(),
        crate::worker::shim::locate().map_err(|e| e.to_string()),
    )
}

/// Where node `ip` of `lab` lives: `netns_dir` holds the lab's namespace, `v1_mounts` are the
/// v1 hierarchies whose lab cgroups hold node cgroups too, `shim` the bind shim if found
/// (only a lab without a cgroup needs it).
pub fn plan(
    lab: &Ledger,
    ip: Ipv4Addr,
    netns_dir: &Path,
    v1_mounts: &[PathBuf],
    shim: Result<PathBuf, String>,
) -> Result<Attachment, AttachError> {
    let node_dir = format!("n{ip}");
    let mut env = vec![
        (P2PLAB_IP.to_string(), ip.to_string()),
        (BINDIP.to_string(), ip.to_string()),
        (LAB_VAR.to_string(), lab.namespace.clone()),
    ];
    let cgroup_procs = match &lab.cgroup {
        Some(cgroup) => {
            let node = cgroup.join(&node_dir);
            if !node.is_dir() {
                return Err(AttachError::UnknownNode {
                    ip,
                    lab: lab.namespace.clone(),
                    nodes: node_names(cgroup),
                });
            }
            if let Some(id) = node_number(&node) {
                env.push((P2PLAB_NODE.to_string(), id));
            }
            let v1 = v1_mounts
                .iter()
                .map(|m| m.join(&lab.namespace).join(&node_dir))
                .filter(|d| d.is_dir());
            std::iter::once(node)
                .chain(v1)
                .map(|d| d.join("cgroup.procs"))
                .collect()
        }
        None => {
            let shim = shim.map_err(|why| AttachError::NoShim {
                lab: lab.namespace.clone(),
                why,
            })?;
            env.push((LD_PRELOAD.to_string(), shim.display().to_string()));
            Vec::new()
        }
    };
    Ok(Attachment {
        lab: lab.namespace.clone(),
        ip,
        namespace: netns_dir.join(&lab.namespace),
        cgroup_procs,
        env,
    })
}

/// The addresses of the nodes with a cgroup below `lab_cgroup`, in address order.
fn node_names(lab_cgroup: &Path) -> Vec<String> {
    let mut ips: Vec<Ipv4Addr> = std::fs::read_dir(lab_cgroup)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix('n')?.parse().ok())
        .collect();
    ips.sort();
    ips.iter().map(Ipv4Addr::to_string).collect()
}

/// The node's number (`P2PLAB_NODE`), from the environment of one of its programs that still
/// runs: the lab's ledger does not know it.
fn node_number(node_cgroup: &Path) -> Option<String> {
    let procs = std::fs::read_to_string(node_cgroup.join("cgroup.procs")).ok()?;
    procs.lines().find_map(|pid| {
        let environ = std::fs::read(format!("/proc/{}/environ", pid.trim())).ok()?;
        environ.split(|&b| b == 0).find_map(|kv| {
            let value = kv
                .strip_prefix(P2PLAB_NODE.as_bytes())?
                .strip_prefix(b"=")?;
            Some(String::from_utf8_lossy(value).into_owned())
        })
    })
}

/// Attaching needs root: the lab's namespace and cgroups are root's. Checked before anything
/// else, so that a user without it is told that and not a lab's details.
pub fn require_root() -> Result<(), AttachError> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(AttachError::NotRoot)
    }
}

/// Runs `argv` as the node of `attachment`, with this terminal, and waits for it: its exit
/// code, or 128 + the signal that ended it, as a shell reports it. Ctrl-C goes to the
/// program (it shares our process group) and does not end p2plab before it.
pub fn run(attachment: &Attachment, argv: &[OsString]) -> Result<i32, AttachError> {
    let (program, args) = argv.split_first().ok_or(AttachError::NoCommand)?;
    let namespace = File::open(&attachment.namespace)
        .map_err(io_error(format!("open {}", attachment.namespace.display())))?;
    let procs: Vec<File> = attachment
        .cgroup_procs
        .iter()
        .map(|p| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(p)
                .map_err(io_error(format!("open {}", p.display())))
        })
        .collect::<Result<_, _>>()?;
    let ns_fd = namespace.as_raw_fd();
    let proc_fds: Vec<RawFd> = procs.iter().map(AsRawFd::as_raw_fd).collect();
    let mut command = Command::new(program);
    command.args(args).envs(attachment.env.iter().cloned());
    // SAFETY: the closure runs in the child between fork and exec and makes only system calls
    // (setns, write) on descriptors this process holds open until the child has exec'd.
    unsafe {
        command.pre_exec(move || {
            if libc::setns(ns_fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            for &fd in &proc_fds {
                if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(io_error(format!("start {}", program.to_string_lossy())))?;
    drop((namespace, procs));
    let ignored = IgnoreInterrupts::now();
    let status = child
        .wait()
        .map_err(io_error(format!("wait for {}", program.to_string_lossy())));
    drop(ignored);
    let status = status?;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

/// SIGINT and SIGQUIT ignored while the attached program runs, as `system(3)` does; the
/// previous handlers come back on drop.
struct IgnoreInterrupts {
    saved: Vec<(nix::sys::signal::Signal, nix::sys::signal::SigAction)>,
}

impl IgnoreInterrupts {
    fn now() -> IgnoreInterrupts {
        use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
        let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
        let saved = [Signal::SIGINT, Signal::SIGQUIT]
            .into_iter()
            // SAFETY: installs SIG_IGN, which runs no code of ours in a signal context.
            .filter_map(|s| unsafe { sigaction(s, &ignore) }.ok().map(|old| (s, old)))
            .collect();
        IgnoreInterrupts { saved }
    }
}

impl Drop for IgnoreInterrupts {
    fn drop(&mut self) {
        for (signal, old) in &self.saved {
            // SAFETY: puts back the disposition this process had before.
            let _ = unsafe { nix::sys::signal::sigaction(*signal, old) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger(name: &str, cgroup: Option<&Path>) -> Ledger {
        let mut l = Ledger::for_this_process(name);
        l.cgroup = cgroup.map(Path::to_path_buf);
        l
    }

    #[test]
    fn the_only_lab_is_chosen_and_several_need_a_name() {
        let one = vec![ledger("p2plab-1-a", None)];
        assert_eq!(choose_lab(one, None).unwrap().namespace, "p2plab-1-a");
        let two = vec![ledger("p2plab-1-a", None), ledger("p2plab-1-b", None)];
        let err = choose_lab(two.clone(), None).unwrap_err().to_string();
        assert_eq!(
            err,
            "2 labs are running: say which with --lab NAME (p2plab-1-a, p2plab-1-b)"
        );
        assert_eq!(
            choose_lab(two.clone(), Some("p2plab-1-b"))
                .unwrap()
                .namespace,
            "p2plab-1-b"
        );
        let err = choose_lab(two, Some("x")).unwrap_err().to_string();
        assert_eq!(
            err,
            "no running lab is called \"x\" (running: p2plab-1-a, p2plab-1-b)"
        );
        assert!(matches!(choose_lab(vec![], None), Err(AttachError::NoLab)));
    }

    #[test]
    fn a_node_is_its_address_or_its_cgroup_name() {
        assert_eq!(parse_node("10.0.0.7").unwrap(), Ipv4Addr::new(10, 0, 0, 7));
        assert_eq!(parse_node("n10.1.0.2").unwrap(), Ipv4Addr::new(10, 1, 0, 2));
        let err = parse_node("peer3").unwrap_err().to_string();
        assert_eq!(
            err,
            "expected a node's address such as 10.0.0.1, got \"peer3\""
        );
    }

    #[test]
    fn a_node_with_a_cgroup_is_joined_in_v2_then_v1() {
        let root = tempfile::tempdir().unwrap();
        let v2 = root.path().join("v2/p2plab-1-a");
        let cpu = root.path().join("cpu");
        let memory = root.path().join("memory");
        for dir in [
            v2.join("n10.0.0.2"),
            v2.join("n10.0.0.10"),
            cpu.join("p2plab-1-a/n10.0.0.2"),
        ] {
            std::fs::create_dir_all(dir).unwrap();
        }
        let lab = ledger("p2plab-1-a", Some(&v2));
        let ip = Ipv4Addr::new(10, 0, 0, 2);
        let a = plan(
            &lab,
            ip,
            Path::new("/run/netns"),
            &[cpu.clone(), memory],
            Err("unused".into()),
        )
        .unwrap();
        assert_eq!(a.namespace, Path::new("/run/netns/p2plab-1-a"));
        assert_eq!(
            a.cgroup_procs,
            vec![
                v2.join("n10.0.0.2/cgroup.procs"),
                cpu.join("p2plab-1-a/n10.0.0.2/cgroup.procs")
            ]
        );
        assert!(a.env.contains(&("BINDIP".into(), "10.0.0.2".into())));
        assert!(!a.env.iter().any(|(k, _)| k == "LD_PRELOAD"));

        let err = plan(
            &lab,
            Ipv4Addr::new(10, 0, 0, 3),
            Path::new("/run/netns"),
            &[],
            Err("unused".into()),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "10.0.0.3 is not a node of lab p2plab-1-a that has started a program \
             (nodes with programs: 10.0.0.2, 10.0.0.10)"
        );
    }

    #[test]
    fn a_lab_without_a_cgroup_preloads_the_shim_or_says_why_not() {
        let lab = ledger("p2plab-1-a", None);
        let ip = Ipv4Addr::new(10, 0, 0, 2);
        let shim = PathBuf::from("/opt/libp2plab_shim.so");
        let a = plan(&lab, ip, Path::new("/run/netns"), &[], Ok(shim)).unwrap();
        assert!(a.cgroup_procs.is_empty());
        assert!(
            a.env
                .contains(&("LD_PRELOAD".into(), "/opt/libp2plab_shim.so".into()))
        );
        let err = plan(
            &lab,
            ip,
            Path::new("/run/netns"),
            &[],
            Err("not built".into()),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "lab p2plab-1-a binds programs with the preloaded shim, and it was not found: not built"
        );
    }

    #[test]
    fn labs_of_dead_owners_and_other_files_are_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let live = ledger("p2plab-1-live", None);
        live.write(&Ledger::path(dir.path(), "p2plab-1-live"))
            .unwrap();
        let mut dead = ledger("p2plab-1-dead", None);
        dead.owner_start_time += 1;
        dead.write(&Ledger::path(dir.path(), "p2plab-1-dead"))
            .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        std::fs::write(dir.path().join("broken.json"), "{").unwrap();
        let names: Vec<String> = running_labs(dir.path())
            .unwrap()
            .into_iter()
            .map(|l| l.namespace)
            .collect();
        assert_eq!(names, ["p2plab-1-live"]);
        assert!(running_labs(&dir.path().join("absent")).unwrap().is_empty());
    }
}
