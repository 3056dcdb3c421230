//! Starting and stopping real programs on a node: inside the lab namespace, in the node's
//! folder, in a process group of their own so that a signal reaches their children too, and
//! bound to the node's address (in the node's cgroup, or with the shim preloaded).

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use nix::sched::CloneFlags;

use super::launch::{Launch, LaunchSpec, Launcher};
use super::shim::contract;
use crate::experiment::{ExitStatus, NodeFile, NodeId, ProcId, SpawnSpec};

/// The programs we started and have not reaped, found by the run's process id or by pid.
#[derive(Default)]
pub struct Children {
    procs: HashMap<ProcId, RunningProc>,
    by_pid: HashMap<u32, ProcId>,
}

impl Children {
    pub fn insert(&mut self, id: ProcId, proc: RunningProc) {
        self.by_pid.insert(proc.pid(), id);
        self.procs.insert(id, proc);
    }

    pub fn remove(&mut self, id: ProcId) -> Option<RunningProc> {
        let proc = self.procs.remove(&id)?;
        self.by_pid.remove(&proc.pid());
        Some(proc)
    }

    pub fn get_mut(&mut self, id: ProcId) -> Option<&mut RunningProc> {
        self.procs.get_mut(&id)
    }

    pub fn of_pid(&self, pid: u32) -> Option<ProcId> {
        self.by_pid.get(&pid).copied()
    }

    /// The child not reaped yet that leads process group `pgid` (each leads its own).
    pub fn leader_of(&self, pgid: i32) -> Option<(ProcId, &RunningProc)> {
        let id = self.of_pid(u32::try_from(pgid).ok()?)?;
        Some((id, self.procs.get(&id)?))
    }

    /// Reaps every child that has ended; returns them with their exit statuses.
    pub fn reap_ended(&mut self) -> Vec<(ProcId, ExitStatus)> {
        let mut ended = Vec::new();
        let by_pid = &mut self.by_pid;
        self.procs.retain(|id, p| match p.try_exit() {
            Ok(Some(status)) => {
                by_pid.remove(&p.pid());
                ended.push((*id, status));
                false
            }
            _ => true,
        });
        ended
    }

    pub fn signal_all(&self, sig: nix::sys::signal::Signal) {
        for p in self.procs.values() {
            p.signal(sig);
        }
    }

    /// Removes every child, for the caller to reap.
    pub fn take_all(&mut self) -> Vec<RunningProc> {
        self.by_pid.clear();
        self.procs.drain().map(|(_, p)| p).collect()
    }
}

/// A program we started and have not reaped yet.
pub struct RunningProc {
    pid: i32,
}

impl RunningProc {
    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// The process group: the child leads its own.
    pub fn pgid(&self) -> i32 {
        self.pid
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        // ESRCH (the group is already gone) is fine.
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(self.pgid()), sig);
    }

    /// The exit status if the process ended (it is reaped then).
    pub fn try_exit(&mut self) -> io::Result<Option<ExitStatus>> {
        self.wait(libc::WNOHANG)
    }

    /// Blocks until the process ends.
    pub fn wait_exit(&mut self) -> io::Result<ExitStatus> {
        loop {
            if let Some(status) = self.wait(0)? {
                return Ok(status);
            }
        }
    }

    fn wait(&mut self, flags: libc::c_int) -> io::Result<Option<ExitStatus>> {
        let mut status = 0;
        // SAFETY: waits for our own child into a local.
        match unsafe { libc::waitpid(self.pid, &mut status, flags) } {
            0 => Ok(None),
            pid if pid == self.pid => Ok(Some(convert(status))),
            _ => match io::Error::last_os_error() {
                e if e.kind() == io::ErrorKind::Interrupted => Ok(None),
                // Reaped already, by no one of ours: gone, its status unknown.
                e if e.raw_os_error() == Some(libc::ECHILD) => Ok(Some(ExitStatus::Code(-1))),
                e => Err(e),
            },
        }
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

fn convert(status: libc::c_int) -> ExitStatus {
    if libc::WIFEXITED(status) {
        ExitStatus::Code(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        ExitStatus::Signal(libc::WTERMSIG(status))
    } else {
        ExitStatus::Code(-1)
    }
}

fn log_file(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// A process's own output file (`#{ stdout: "name" }`), emptied first like a shell's `>`; not
/// through a symlink a node's program may have left there.
fn own_output(node_dir: &Path, file: &NodeFile) -> io::Result<File> {
    let path = file.under(node_dir);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("{file}: {e}")))
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

type Request = (Launch, mpsc::Sender<io::Result<i32>>);

/// Spawns programs from a thread that has joined the lab namespace, so children are born in
/// it, with the `Launcher` (vfork and exec: `benches/processes.rs` compares it with the
/// standard library's fork).
pub struct Spawner {
    requests: Option<mpsc::Sender<Request>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Spawner {
    pub fn start(ns_fd: i32) -> io::Result<Spawner> {
        // Inherited as ignored, SIGCHLD would have the kernel reap our children itself: their
        // exit statuses would be lost and their numbers free for reuse under us.
        // SAFETY: sets the default disposition, which installs no handler.
        unsafe {
            nix::sys::signal::signal(
                nix::sys::signal::Signal::SIGCHLD,
                nix::sys::signal::SigHandler::SigDfl,
            )
        }
        .map_err(io::Error::from)?;
        let (tx, rx) = mpsc::channel::<Request>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("p2plab-spawner".into())
            .spawn(move || {
                // Joins the lab for this thread only; the lab outlives the spawner (it is
                // dropped after it), so the descriptor stays open while it is used.
                // SAFETY: `ns_fd` is the lab's open namespace descriptor, alive for the call.
                let fd = unsafe { BorrowedFd::borrow_raw(ns_fd) };
                let joined = nix::sched::setns(fd, CloneFlags::CLONE_NEWNET)
                    .map_err(io::Error::from)
                    .and_then(|()| Launcher::new());
                let mut launcher = match joined {
                    Ok(launcher) => {
                        let _ = ready_tx.send(Ok(()));
                        launcher
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                for (launch, reply) in rx {
                    if let Err(unsent) = reply.send(launcher.start(&launch))
                        && let Ok(pid) = unsent.0
                    {
                        // Its caller is gone: nobody would reap it.
                        let mut orphan = RunningProc { pid };
                        orphan.signal(nix::sys::signal::Signal::SIGKILL);
                        let _ = orphan.wait_exit();
                    }
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
        let name = spec.argv.first().map_or("", String::as_str);
        let cannot = |e: io::Error| io::Error::new(e.kind(), format!("cannot start {name:?}: {e}"));
        let launch = self
            .prepare(spec, node, ip, node_dir, bind)
            .map_err(cannot)?;
        let (reply_tx, reply_rx) = mpsc::channel();
        self.requests
            .as_ref()
            .ok_or_else(|| io::Error::other("spawner stopped"))?
            .send((launch, reply_tx))
            .map_err(|_| io::Error::other("spawner thread died"))?;
        // Waiting here also keeps `bind`'s descriptors open until the child has used them.
        let pid = reply_rx
            .recv()
            .map_err(|_| io::Error::other("spawner thread died"))?
            .map_err(cannot)?;
        Ok(RunningProc { pid })
    }

    fn prepare(
        &self,
        spec: &SpawnSpec,
        node: NodeId,
        ip: Ipv4Addr,
        node_dir: &Path,
        bind: Bind<'_>,
    ) -> io::Result<Launch> {
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
            PathBuf::from(program)
        };
        let mut env: Vec<(OsString, OsString)> = vec![
            (contract::P2PLAB_NODE.into(), node.0.to_string().into()),
            (contract::P2PLAB_IP.into(), ip.to_string().into()),
            // Scripts and wrappers read it (`$BINDIP`), whichever way programs are bound.
            (contract::BINDIP.into(), ip.to_string().into()),
        ];
        let cgroups = match bind {
            // Before the script's `env`, which may replace it.
            Bind::Preload(shim) => {
                env.push((contract::LD_PRELOAD.into(), shim.into()));
                Vec::new()
            }
            Bind::Cgroup(procs) => procs.iter().map(|f| f.as_raw_fd()).collect(),
        };
        env.extend(spec.env.iter().map(|(k, v)| (k.into(), v.into())));
        let user = spec.user.as_deref().map(lookup_user).transpose()?;
        Launch::new(LaunchSpec {
            program: &program,
            args,
            env,
            cwd: node_dir,
            stdout: match &spec.stdout {
                Some(file) => own_output(node_dir, file)?,
                None => log_file(&node_dir.join("stdout.log"))?,
            },
            stderr: log_file(&node_dir.join("stderr.log"))?,
            cgroups,
            user,
        })
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
