//! Starting and stopping real programs on a node: inside the lab namespace, in the node's
//! folder, in a process group of their own so that a signal reaches their children too, and
//! bound to the node's address (in the node's cgroup, or with the shim preloaded).

use std::fs::{File, OpenOptions};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use nix::sched::CloneFlags;

use super::shim::contract;
use crate::experiment::{ExitStatus, NodeId, SpawnSpec};

/// A program we started and have not reaped yet.
pub struct RunningProc {
    pub child: Child,
}

impl RunningProc {
    /// The process group: the child leads its own.
    pub fn pgid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        // ESRCH (the group is already gone) is fine.
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(self.pgid()), sig);
    }

    /// The exit status if the process ended.
    pub fn try_exit(&mut self) -> io::Result<Option<ExitStatus>> {
        Ok(self.child.try_wait()?.map(convert))
    }

    /// Blocks until the process ends.
    pub fn wait_exit(&mut self) -> io::Result<ExitStatus> {
        self.child.wait().map(convert)
    }
}

/// The pid of a child of this process that has ended and waits to be reaped, left unreaped
/// (`waitid` with `WNOWAIT`); `None` when there is none. One system call, however many
/// children run: asking each of 10,000 in turn cost a pass over the kernel's list of
/// children per question.
pub fn ended_child() -> Option<u32> {
    // SAFETY: siginfo_t is plain data, for which all zeros is a valid value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
    // SAFETY: `info` outlives the call, which fills it or leaves si_pid at 0 (WNOHANG with
    // nothing to report); with WNOWAIT it reaps nothing, with WNOHANG it does not block.
    if unsafe { libc::waitid(libc::P_ALL, 0, &mut info, flags) } != 0 {
        return None;
    }
    // SAFETY: waitid filled the SIGCHLD fields of `info`, or left them zero.
    let pid = unsafe { info.si_pid() };
    u32::try_from(pid).ok().filter(|&p| p > 0)
}

fn convert(status: std::process::ExitStatus) -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => ExitStatus::Code(c),
        (None, Some(s)) => ExitStatus::Signal(s),
        (None, None) => ExitStatus::Code(-1),
    }
}

fn log_file(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// uid and gid of a user name, for `#{user: "name"}`.
fn lookup_user(name: &str) -> io::Result<(u32, u32)> {
    match nix::unistd::User::from_name(name) {
        Ok(Some(user)) => Ok((user.uid.as_raw(), user.gid.as_raw())),
        _ => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no user {name:?} on this machine"),
        )),
    }
}

/// Appends why a program could not start to the node's stderr.log, where its own errors
/// would have gone.
pub fn note_failure(node_dir: &Path, err: &io::Error) {
    use std::io::Write;
    if std::fs::create_dir_all(node_dir).is_ok()
        && let Ok(mut f) = log_file(&node_dir.join("stderr.log"))
    {
        let _ = writeln!(f, "p2plab: {err}");
    }
}

/// How a spawned program's sockets get its node's address.
#[derive(Clone, Copy)]
pub enum Bind<'a> {
    /// The `cgroup.procs` of the node's cgroups: the child moves itself in before exec.
    Cgroup(&'a [BorrowedFd<'a>]),
    /// The shim library, preloaded.
    Preload(&'a Path),
}

/// Spawns programs from a thread that has joined the lab namespace, so children are born in
/// it: no `setns` between fork and exec, which lets the standard library use its fast
/// `posix_spawn` path where the shim binds. Entering a node cgroup needs a `pre_exec` write,
/// hence fork (`benches/processes.rs` measures both).
pub struct Spawner {
    requests: Option<mpsc::Sender<(Command, mpsc::Sender<io::Result<Child>>)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Spawner {
    pub fn start(ns_fd: i32) -> io::Result<Spawner> {
        let (tx, rx) = mpsc::channel::<(Command, mpsc::Sender<io::Result<Child>>)>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("p2plab-spawner".into())
            .spawn(move || {
                // Joins the lab for this thread only; the lab outlives the spawner (it is
                // dropped after it), so the descriptor stays open while it is used.
                // SAFETY: `ns_fd` is the lab's open namespace descriptor, alive for the call.
                let fd = unsafe { BorrowedFd::borrow_raw(ns_fd) };
                let joined =
                    nix::sched::setns(fd, CloneFlags::CLONE_NEWNET).map_err(io::Error::from);
                let ok = joined.is_ok();
                let _ = ready_tx.send(joined);
                if !ok {
                    return;
                }
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })?;
        ready_rx
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("spawner thread died")))?;
        Ok(Spawner {
            requests: Some(tx),
            thread: Some(thread),
        })
    }

    /// Starts `spec` on node `node` (address `ip`), bound by `bind`, its working directory,
    /// stdout.log and stderr.log in `node_dir`.
    pub fn spawn(
        &self,
        spec: &SpawnSpec,
        node: NodeId,
        ip: Ipv4Addr,
        node_dir: &Path,
        bind: Bind<'_>,
    ) -> io::Result<RunningProc> {
        if !node_dir.is_dir() {
            std::fs::create_dir_all(node_dir)?;
        }
        let (program, args) = spec
            .argv
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
        // A relative path with a slash means the folder p2plab runs in, not the node's folder
        // the program starts in.
        let program = if program.contains('/') && Path::new(program).is_relative() {
            std::env::current_dir()?.join(program)
        } else {
            std::path::PathBuf::from(program)
        };
        let mut cmd = Command::new(&program);
        cmd.args(args)
            .current_dir(node_dir)
            .env(contract::P2PLAB_NODE, node.0.to_string())
            .env(contract::P2PLAB_IP, ip.to_string())
            // Scripts and wrappers read it (`$BINDIP`), whichever way programs are bound.
            .env(contract::BINDIP, ip.to_string());
        match bind {
            // Before the script's `env`, which may replace it.
            Bind::Preload(shim) => {
                cmd.env(contract::LD_PRELOAD, shim);
            }
            Bind::Cgroup(procs) => {
                let fds: Vec<i32> = procs.iter().map(|f| f.as_raw_fd()).collect();
                // SAFETY: the hook runs in the child between fork and exec, where only
                // async-signal-safe calls are allowed: it makes one write(2) per descriptor
                // opened before the fork, reads a vector made before it, and neither
                // allocates nor locks. The descriptors are borrowed for this call, which
                // returns once the child has exec'd. "0" moves the writing process.
                unsafe {
                    cmd.pre_exec(move || {
                        for &fd in &fds {
                            if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                                return Err(io::Error::last_os_error());
                            }
                        }
                        Ok(())
                    });
                }
            }
        }
        cmd.envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log_file(&node_dir.join("stdout.log"))?)
            .stderr(log_file(&node_dir.join("stderr.log"))?)
            .process_group(0);
        if let Some(user) = &spec.user {
            let (uid, gid) = lookup_user(user)?;
            // std also clears the supplementary groups when it drops root.
            cmd.uid(uid).gid(gid);
        }
        let (reply_tx, reply_rx) = mpsc::channel();
        self.requests
            .as_ref()
            .ok_or_else(|| io::Error::other("spawner stopped"))?
            .send((cmd, reply_tx))
            .map_err(|_| io::Error::other("spawner thread died"))?;
        let child = reply_rx
            .recv()
            .map_err(|_| io::Error::other("spawner thread died"))?
            .map_err(|e| {
                let name = spec.argv.first().map_or("", String::as_str);
                io::Error::new(e.kind(), format!("cannot start {name:?}: {e}"))
            })?;
        Ok(RunningProc { child })
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        self.requests.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
