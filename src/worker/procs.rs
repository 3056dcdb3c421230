//! Starting and stopping real programs on a node: inside the lab namespace, in the node's
//! folder, in a process group of their own so that a signal reaches their children too.

use std::fs::{File, OpenOptions};
use std::io;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

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

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on a process group we created; ESRCH (already gone) is fine.
        unsafe { libc::kill(-self.pgid(), sig) };
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
    let cname = std::ffi::CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "user name with NUL"))?;
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwnam_r fills `pwd` using `buf`; `result` says whether it found the user.
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no user {name:?} on this machine"),
        ));
    }
    Ok((pwd.pw_uid, pwd.pw_gid))
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

/// Starts `spec` on node `node` (address `ip`) inside the namespace of `ns_fd`, with the bind
/// shim preloaded, its working directory, stdout.log and stderr.log in `node_dir`.
pub fn spawn(
    spec: &SpawnSpec,
    node: NodeId,
    ip: Ipv4Addr,
    node_dir: &Path,
    ns_fd: i32,
    shim: &Path,
) -> io::Result<RunningProc> {
    std::fs::create_dir_all(node_dir)?;
    let (program, args) = spec
        .argv
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(node_dir)
        .env("P2PLAB_NODE", node.0.to_string())
        .env("P2PLAB_IP", ip.to_string())
        .env("BINDIP", ip.to_string())
        .env("LD_PRELOAD", shim)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log_file(&node_dir.join("stdout.log"))?)
        .stderr(log_file(&node_dir.join("stderr.log"))?)
        .process_group(0);
    // Not `Command::uid`: std drops privileges before `pre_exec` runs, and joining the lab
    // namespace needs them, so the switch to the user happens in `pre_exec`, after `setns`.
    let user = spec.user.as_deref().map(lookup_user).transpose()?;
    // SAFETY: only async-signal-safe system calls run between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(ns_fd, libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            if let Some((uid, gid)) = user {
                let groups = [gid];
                if libc::setgroups(1, groups.as_ptr()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot start {program:?}: {e}")))?;
    Ok(RunningProc { child })
}
