//! Named network namespaces exactly as iproute2 makes them (`ip netns add`/`delete`): a file
//! `/run/netns/NAME` with the namespace bind-mounted on it, and the identity (`NsId`) that
//! tells whether a path or a process refers to that namespace.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, umount2};
use nix::sched::{CloneFlags, unshare};

use super::NetnsError;

/// Where iproute2 keeps named namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Serialises the one-time setup of `/run/netns` between threads of this process (iproute2's
/// own sequence is racy when run twice at once: it would stack two bind mounts).
static RUN_DIR_SETUP: Mutex<()> = Mutex::new(());

/// A namespace's identity: the device and inode of its nsfs file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NsId {
    dev: u64,
    ino: u64,
}

impl NsId {
    /// The namespace `path` (a `/run/netns` file or `/proc/<pid>/ns/net`) refers to.
    pub fn of_path(path: &Path) -> io::Result<NsId> {
        fs::metadata(path).map(|m| NsId::of_metadata(&m))
    }

    pub fn of_metadata(m: &fs::Metadata) -> NsId {
        NsId {
            dev: m.dev(),
            ino: m.ino(),
        }
    }

    /// Whether process `pid` currently lives in this namespace (a zombie lives nowhere).
    pub fn holds_pid(&self, pid: u32) -> bool {
        NsId::of_path(Path::new(&format!("/proc/{pid}/ns/net"))).is_ok_and(|id| id == *self)
    }
}

pub fn path_of(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

/// Makes `/run/netns` exist and be a shared mount, as iproute2's `netns_add` does: if making
/// it shared fails with `EINVAL` (it is not a mount point yet), bind-mount it on itself and
/// try again. Shared, so that namespaces mounted later are seen from every mount namespace.
fn prepare_run_dir() -> Result<(), NetnsError> {
    let _guard = RUN_DIR_SETUP.lock().unwrap_or_else(|p| p.into_inner());
    match fs::DirBuilder::new().mode(0o755).create(NETNS_RUN_DIR) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            return Err(NetnsError::io(format!("create {NETNS_RUN_DIR}"), e));
        }
        _ => {}
    }
    let dir = Path::new(NETNS_RUN_DIR);
    let mut bound = false;
    loop {
        match mount(None, dir, MsFlags::MS_SHARED | MsFlags::MS_REC) {
            Ok(()) => return Ok(()),
            Err(Errno::EINVAL) if !bound => {}
            Err(e) => {
                return Err(NetnsError::os(
                    format!("make {NETNS_RUN_DIR} a shared mount"),
                    e,
                ));
            }
        }
        mount(Some(dir), dir, MsFlags::MS_BIND | MsFlags::MS_REC)
            .map_err(|e| NetnsError::os(format!("bind-mount {NETNS_RUN_DIR} on itself"), e))?;
        bound = true;
    }
}

/// Reserves the name: creates the empty file `/run/netns/NAME` (fails if it exists).
pub fn reserve(name: &str) -> Result<(), NetnsError> {
    prepare_run_dir()?;
    let path = path_of(name);
    match fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o000)
        .open(&path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(NetnsError::NamespaceExists {
            name: name.to_string(),
        }),
        Err(e) => Err(NetnsError::io(format!("create {}", path.display()), e)),
    }
}

/// Creates a new network namespace and bind-mounts it on the reserved file. The namespace is
/// made on a fresh thread (`unshare(CLONE_NEWNET)` changes only that thread), never on the
/// caller's; the thread ends, the mount keeps the namespace alive.
pub fn attach(name: &str) -> Result<(), NetnsError> {
    let target = path_of(name);
    let spawned = std::thread::Builder::new()
        .name("p2plab-netns".into())
        .spawn(move || -> Result<(), NetnsError> {
            // Only this fresh thread moves; the bind mount keeps the namespace once it ends.
            unshare(CloneFlags::CLONE_NEWNET)
                .map_err(|e| NetnsError::os("create network namespace (unshare)", e))?;
            let source = Path::new("/proc/thread-self/ns/net");
            mount(Some(source), &target, MsFlags::MS_BIND)
                .map_err(|e| NetnsError::os("bind-mount the new network namespace", e))
        })
        .map_err(|e| NetnsError::io("start a thread", e))?;
    match spawned.join() {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Unmounts and removes `/run/netns/NAME`, as `ip netns delete` does. Succeeds if it is
/// already gone; the namespace itself ends when nothing uses it any more.
pub fn remove(name: &str) -> Result<(), NetnsError> {
    let path = path_of(name);
    match umount2(&path, MntFlags::MNT_DETACH) {
        // EINVAL: not a mount point (a reserved file left by a crash); ENOENT: gone.
        Ok(()) | Err(Errno::EINVAL | Errno::ENOENT) => {}
        Err(e) => return Err(NetnsError::os(format!("unmount {}", path.display()), e)),
    }
    match fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(NetnsError::io(format!("remove {}", path.display()), e))
        }
        _ => Ok(()),
    }
}

/// mount(2) with filesystem type "none" and no data, as iproute2 calls it.
fn mount(source: Option<&Path>, target: &Path, flags: MsFlags) -> nix::Result<()> {
    nix::mount::mount(source, target, Some("none"), flags, None::<&str>)
}
