//! Starting one program as `posix_spawn` does: `clone` with `CLONE_VM | CLONE_VFORK`, so the
//! child borrows p2plab's memory until it execs instead of copying its page tables (a fork of
//! the worker cost 1.4 ms at 10,000 processes), and, unlike `posix_spawn`, moves itself into
//! its node's cgroups before it execs. All the child does is prepared before the clone, and the
//! child makes only system calls: it shares the memory of a process whose other threads run.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};

/// The child's own stack while it shares our memory: it runs a few system calls.
const STACK_BYTES: usize = 64 * 1024;

/// Signals are 1 to 64 on Linux.
const NSIG: libc::c_int = 65;

/// Used when the environment has no `PATH`, as by `execvp`.
const DEFAULT_PATH: &str = "/bin:/usr/bin";

/// One program to start, owned, in the forms the child uses.
pub struct Launch {
    path: CString,
    argv: Vec<CString>,
    /// `/bin/sh <path> <args>`, for a file without `#!` that the kernel will not execute.
    sh_argv: Vec<CString>,
    envp: Vec<CString>,
    cwd: CString,
    stdout: File,
    stderr: File,
    /// `cgroup.procs` files the child writes itself into. Raw: the caller keeps them open
    /// until `start` has returned (it waits for the spawner's reply).
    cgroups: Vec<RawFd>,
    user: Option<(u32, u32)>,
}

/// What the caller gives to build a `Launch`.
pub struct LaunchSpec<'a> {
    pub program: &'a Path,
    pub args: &'a [String],
    /// Set or replaced in p2plab's own environment, in order.
    pub env: Vec<(OsString, OsString)>,
    pub cwd: &'a Path,
    pub stdout: File,
    pub stderr: File,
    pub cgroups: Vec<RawFd>,
    pub user: Option<(u32, u32)>,
}

impl Launch {
    /// Resolves the program on the `PATH` of its environment (as `execvp` would, but before
    /// the clone) and turns everything into C strings.
    pub fn new(spec: LaunchSpec<'_>) -> io::Result<Launch> {
        let mut env: BTreeMap<OsString, OsString> = std::env::vars_os().collect();
        env.extend(spec.env);
        let search = env
            .get(OsStr::new("PATH"))
            .cloned()
            .unwrap_or_else(|| DEFAULT_PATH.into());
        let path = resolve(
            spec.program,
            &search,
            &std::env::current_dir()?.join(spec.cwd),
        )?;
        let argv: Vec<CString> = std::iter::once(spec.program.as_os_str().to_owned())
            .chain(spec.args.iter().map(OsString::from))
            .map(c_string)
            .collect::<io::Result<_>>()?;
        let path = c_string(path.into_os_string())?;
        let sh_argv = [c"/bin/sh".to_owned(), path.clone()]
            .into_iter()
            .chain(argv.iter().skip(1).cloned())
            .collect();
        let envp = env
            .into_iter()
            .map(|(k, v)| {
                let mut kv = k.into_vec();
                kv.push(b'=');
                kv.extend(v.into_vec());
                c_string(OsString::from_vec(kv))
            })
            .collect::<io::Result<_>>()?;
        Ok(Launch {
            path,
            argv,
            sh_argv,
            envp,
            cwd: c_string(spec.cwd.as_os_str().to_owned())?,
            stdout: spec.stdout,
            stderr: spec.stderr,
            cgroups: spec.cgroups,
            user: spec.user,
        })
    }
}

fn c_string(s: OsString) -> io::Result<CString> {
    CString::new(s.into_vec()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "a NUL byte in a command, argument or variable",
        )
    })
}

/// The program's path: as given when it has a slash, else the first executable file of that
/// name in `search`, whose relative entries (an empty one is `.`) are taken from `cwd`, the
/// absolute folder the program starts in, as `execvp` would there.
fn resolve(program: &Path, search: &OsStr, cwd: &Path) -> io::Result<PathBuf> {
    if program.as_os_str().as_bytes().contains(&b'/') {
        return Ok(program.to_path_buf());
    }
    let mut denied = false;
    for dir in search.as_bytes().split(|&b| b == b':') {
        let dir = if dir.is_empty() { b".".as_slice() } else { dir };
        let candidate = cwd.join(OsStr::from_bytes(dir)).join(program);
        match std::fs::metadata(&candidate) {
            Ok(meta) if meta.is_file() => {
                if nix::unistd::access(&candidate, nix::unistd::AccessFlags::X_OK).is_ok() {
                    return Ok(candidate);
                }
                denied = true;
            }
            _ => {}
        }
    }
    Err(io::Error::from_raw_os_error(if denied {
        libc::EACCES
    } else {
        libc::ENOENT
    }))
}

/// Starts programs; owns the stack its children run on until they exec, and `/dev/null`.
pub struct Launcher {
    stack: Vec<u8>,
    null: File,
}

/// Where the child failed, if it did, reported through the memory it shares with us.
const STAGE_NONE: i32 = 0;
const STAGE_CGROUP: i32 = 1;
const STAGE_USER: i32 = 2;
const STAGE_SETUP: i32 = 3;
const STAGE_EXEC: i32 = 4;

/// What the child reads: pointers into a `Launch` and the launcher, valid while the parent
/// waits in `clone` (`CLONE_VFORK`).
struct Shared {
    path: *const libc::c_char,
    argv: *const *const libc::c_char,
    sh_argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    cwd: *const libc::c_char,
    stdio: [RawFd; 3],
    cgroups: *const RawFd,
    n_cgroups: usize,
    user: Option<(u32, u32)>,
    stage: AtomicI32,
    errno: AtomicI32,
}

impl Launcher {
    pub fn new() -> io::Result<Launcher> {
        Ok(Launcher {
            stack: vec![0; STACK_BYTES],
            null: File::open("/dev/null")?,
        })
    }

    /// Starts `launch` in a new process group of its own; returns its pid once it has exec'd,
    /// or why it could not start (the failed child is reaped).
    pub fn start(&mut self, launch: &Launch) -> io::Result<i32> {
        let (argv, sh_argv, envp) = (
            pointers(&launch.argv),
            pointers(&launch.sh_argv),
            pointers(&launch.envp),
        );
        let shared = Shared {
            path: launch.path.as_ptr(),
            argv: argv.as_ptr(),
            sh_argv: sh_argv.as_ptr(),
            envp: envp.as_ptr(),
            cwd: launch.cwd.as_ptr(),
            stdio: [
                self.null.as_raw_fd(),
                launch.stdout.as_raw_fd(),
                launch.stderr.as_raw_fd(),
            ],
            cgroups: launch.cgroups.as_ptr(),
            n_cgroups: launch.cgroups.len(),
            user: launch.user,
            stage: AtomicI32::new(STAGE_NONE),
            errno: AtomicI32::new(0),
        };
        // The stack grows down from its end, which must be 16-byte aligned.
        let top = self.stack.as_mut_ptr_range().end;
        let top = top.wrapping_sub(top as usize % 16).cast::<libc::c_void>();
        let (pid, clone_error) = {
            let _blocked = BlockedSignals::all()?;
            // SAFETY: the child runs `child_main` on `self.stack`, which nothing else uses, and
            // reads `shared` and what it points to, all alive until this call returns: with
            // CLONE_VFORK the call returns only once the child has exec'd or exited. With every
            // signal blocked, no handler of ours runs on the child's stack in our memory.
            let pid = unsafe {
                libc::clone(
                    child_main,
                    top,
                    libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                    (&raw const shared).cast_mut().cast(),
                )
            };
            (pid, io::Error::last_os_error())
        };
        if pid < 0 {
            return Err(clone_error);
        }
        let stage = shared.stage.load(Ordering::Acquire);
        if stage == STAGE_NONE {
            return Ok(pid);
        }
        let mut status = 0;
        // SAFETY: reaps our own child, which has exited (`_exit` after the failure); again
        // when a signal interrupts the wait, or it would stay a zombie nobody knows of.
        while unsafe { libc::waitpid(pid, &mut status, 0) } < 0
            && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
        {}
        let err = io::Error::from_raw_os_error(shared.errno.load(Ordering::Acquire));
        Err(match stage {
            STAGE_CGROUP => {
                io::Error::new(err.kind(), format!("entering its node's cgroup: {err}"))
            }
            STAGE_USER => io::Error::new(err.kind(), format!("changing to its user: {err}")),
            STAGE_SETUP => io::Error::new(err.kind(), format!("setting up its process: {err}")),
            _ => err,
        })
    }
}

/// The NULL-ended array of pointers to `strings` that `execve` takes.
fn pointers(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// The calling thread's signals, all blocked until dropped (then restored).
struct BlockedSignals {
    old: libc::sigset_t,
}

impl BlockedSignals {
    fn all() -> io::Result<BlockedSignals> {
        // SAFETY: sigset_t is plain data; sigfillset and pthread_sigmask only write the sets
        // they are given, which live on this frame.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            match libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old) {
                0 => Ok(BlockedSignals { old }),
                e => Err(io::Error::from_raw_os_error(e)),
            }
        }
    }
}

impl Drop for BlockedSignals {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved by `all`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

/// The child, between clone and exec, on the launcher's stack in our memory: it may only make
/// system calls (no allocation, no lock: another thread may hold one forever from here).
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the parent's `Shared`, alive while the parent waits in clone.
    let shared = unsafe { &*arg.cast::<Shared>() };
    let fail = |stage: i32| -> libc::c_int {
        let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
        shared.errno.store(errno, Ordering::Release);
        shared.stage.store(stage, Ordering::Release);
        // SAFETY: ends the child without running anything of the parent's (atexit, buffers).
        unsafe { libc::_exit(127) }
    };
    // SAFETY: each call below is a system call on the child's own descriptors, signal table
    // (no CLONE_SIGHAND: a copy) and credentials, with pointers into `shared`.
    unsafe {
        // Handlers are the parent's code: reset them (exec would) before signals are unblocked.
        // SIGPIPE too, which Rust ignores and a program expects at its default.
        for sig in 1..NSIG {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                && (old.sa_sigaction != libc::SIG_IGN || sig == libc::SIGPIPE)
                && old.sa_sigaction != libc::SIG_DFL
            {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
        if libc::setpgid(0, 0) != 0 {
            return fail(STAGE_SETUP);
        }
        for (target, &fd) in shared.stdio.iter().enumerate() {
            let target = target as RawFd;
            let ok = if fd == target {
                libc::fcntl(fd, libc::F_SETFD, 0) == 0
            } else {
                libc::dup2(fd, target) == target
            };
            if !ok {
                return fail(STAGE_SETUP);
            }
        }
        // Before the user changes, with p2plab's right to move processes. "0": the writer.
        for i in 0..shared.n_cgroups {
            // Raw: glibc's write is a cancellation point, which touches the spawner's thread.
            let fd = libc::c_long::from(*shared.cgroups.add(i));
            if libc::syscall(libc::SYS_write, fd, b"0".as_ptr(), 1 as libc::c_long) != 1 {
                return fail(STAGE_CGROUP);
            }
        }
        // Raw system calls: glibc's wrappers would make every thread of our shared memory
        // change its credentials too (POSIX's process-wide set*id). As the standard library
        // does, the supplementary groups are dropped only by root.
        if let Some((uid, gid)) = shared.user
            && ((libc::getuid() == 0
                && libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) != 0)
                || libc::syscall(libc::SYS_setgid, libc::c_long::from(gid)) != 0
                || libc::syscall(libc::SYS_setuid, libc::c_long::from(uid)) != 0)
        {
            return fail(STAGE_USER);
        }
        if libc::chdir(shared.cwd) != 0 {
            return fail(STAGE_SETUP);
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        libc::execve(shared.path, shared.argv, shared.envp);
        if io::Error::last_os_error().raw_os_error() == Some(libc::ENOEXEC) {
            libc::execve(*shared.sh_argv, shared.sh_argv, shared.envp);
        }
    }
    fail(STAGE_EXEC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn programs_are_found_on_the_path_of_their_environment_from_their_folder() {
        let dir = tempfile::tempdir().unwrap();
        let node = dir.path().join("node");
        std::fs::create_dir_all(node.join("bin")).unwrap();
        let tool = node.join("bin/tool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plain = node.join("bin/plain");
        std::fs::write(&plain, "data").unwrap();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();

        let sh = resolve(Path::new("sh"), OsStr::new("/nonexistent:/bin"), &node).unwrap();
        assert_eq!(sh, Path::new("/bin/sh"));
        // A relative entry is the program's folder, not p2plab's.
        let found = resolve(Path::new("tool"), OsStr::new("/nonexistent:bin"), &node).unwrap();
        assert_eq!(found, tool);
        let given = resolve(Path::new("./x/y"), OsStr::new("/bin"), &node).unwrap();
        assert_eq!(given, Path::new("./x/y"), "a path is taken as it is");
        let missing = resolve(Path::new("no-such-tool"), OsStr::new("bin:/bin"), &node);
        assert_eq!(missing.unwrap_err().raw_os_error(), Some(libc::ENOENT));
        // Found but not executable, as execvp reports it (root may execute any file that
        // has an x bit, so this file has none).
        let denied = resolve(Path::new("plain"), OsStr::new("bin"), &node);
        assert_eq!(denied.unwrap_err().raw_os_error(), Some(libc::EACCES));
    }

    #[test]
    fn a_nul_byte_in_an_argument_is_an_error_not_a_cut() {
        let dir = tempfile::tempdir().unwrap();
        let file = || File::create(dir.path().join("log")).unwrap();
        let spec = LaunchSpec {
            program: Path::new("/bin/true"),
            args: &["a\0b".to_string()],
            env: Vec::new(),
            cwd: dir.path(),
            stdout: file(),
            stderr: file(),
            cgroups: Vec::new(),
            user: None,
        };
        let err = Launch::new(spec).err().expect("rejected");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
