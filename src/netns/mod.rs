//! The lab network namespace (`LabNamespace`): a named namespace per worker (or, rootless, the
//! process's own) holding the policy-routing hairpin into the data plane's TUN device, with a
//! ledger so crashed runs can be cleaned up, and the lab's cgroup (`cgroup`) where programs
//! are bound to their node by cgroup-BPF. The TUN device belongs to `dataplane`; which
//! routes make node addresses local is the worker's choice (`worker`).
//!
//! What a thread inside the namespace sees (checked on Linux 6.18, `tests/netns.rs`):
//! `/proc/sys/net` and `/proc/thread-self/net` follow the namespace of the *thread* that looks
//! the path up, so writing `/proc/sys/net/...` from [`LabNamespace::run_in`] configures the lab
//! and not the host; `/proc/net` (= `/proc/self/net`, the main thread's) and `/sys/class/net`
//! (the namespace of whoever mounted sysfs) still show the host.

pub mod cgroup;
mod cleanup;
mod error;
mod ledger;
pub mod limits;
mod named;
pub mod netlink;
mod processes;
pub mod rootless;

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::sched::{CloneFlags, setns};
use nix::sys::signal::Signal;

pub use cleanup::cleanup_leftovers;
pub use error::{NetnsError, require_privileges, require_tun_device};
pub use ledger::{LEDGER_DIR, Ledger};
pub use named::NETNS_RUN_DIR;
use named::NsId;
use netlink::{Netlink, Route, Rule, TABLE_LOCAL};

/// The routing table that sends node-to-node traffic into the TUN device.
pub const HAIRPIN_TABLE: u32 = 100;
/// Priority of the rule `iif lo to <lab prefix> lookup 100`.
pub const HAIRPIN_RULE_PRIORITY: u32 = 100;
/// Priority the `lookup local` rule moves to, below the hairpin rule (it was 0).
pub const LOCAL_RULE_PRIORITY: u32 = 1000;

/// Packets the kernel may queue for the TUN device's reader.
pub const TUN_QUEUE_LEN: u32 = 4096;

/// A named network namespace `p2plab-<owner pid>-<hint>`, visible to `ip netns`. Removed,
/// with everything in it, on drop or [`LabNamespace::remove`].
#[derive(Debug)]
pub struct LabNamespace {
    name: String,
    /// `/run/netns/<name>`, open: what `setns` takes.
    file: File,
    id: NsId,
    ledger_path: PathBuf,
    /// The lab's own netlink client, opened inside on first use.
    rtnl: Mutex<Option<Netlink>>,
    removed: bool,
    /// The process's own namespace (rootless): no name in /run/netns, no ledger.
    rootless: bool,
}

impl LabNamespace {
    /// Creates the namespace `p2plab-<this pid>-<hint>` as `ip netns add` would, and its
    /// ledger. `hint`: 1 to 40 characters among `a-z A-Z 0-9 - _`, unique in this process.
    pub fn create(hint: &str) -> Result<LabNamespace, NetnsError> {
        let valid = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if hint.is_empty() || hint.len() > 40 || !hint.chars().all(valid) {
            return Err(NetnsError::BadHint { hint: hint.into() });
        }
        require_privileges()?;
        let name = format!("p2plab-{}-{hint}", std::process::id());
        named::reserve(&name)?;
        let ledger = Ledger::for_this_process(&name);
        let ledger_path = Ledger::path(Path::new(LEDGER_DIR), &name);
        let made = std::fs::create_dir_all(LEDGER_DIR)
            .map_err(|e| NetnsError::io(format!("create {LEDGER_DIR}"), e))
            .and_then(|()| ledger.write(&ledger_path))
            .and_then(|()| named::attach(&name))
            .and_then(|()| {
                let path = named::path_of(&name);
                let file = File::open(&path)
                    .map_err(|e| NetnsError::io(format!("open {}", path.display()), e))?;
                let meta = file
                    .metadata()
                    .map_err(|e| NetnsError::io(format!("stat {}", path.display()), e))?;
                Ok((file, NsId::of_metadata(&meta)))
            });
        match made {
            Ok((file, id)) => Ok(LabNamespace {
                name,
                file,
                id,
                ledger_path,
                rtnl: Mutex::new(None),
                removed: false,
                rootless: false,
            }),
            Err(e) => {
                let _ = named::remove(&name);
                let _ = std::fs::remove_file(&ledger_path);
                Err(e)
            }
        }
    }

    /// The lab of a rootless run: the network namespace this process entered with
    /// `rootless::enter`. It has no name in /run/netns and no ledger (an unprivileged user
    /// cannot write there); it ends with the process and the programs it started.
    pub fn adopt_current(hint: &str) -> Result<LabNamespace, NetnsError> {
        let path = Path::new("/proc/self/ns/net");
        let file = File::open(path).map_err(|e| NetnsError::io("open /proc/self/ns/net", e))?;
        let meta = file
            .metadata()
            .map_err(|e| NetnsError::io("stat /proc/self/ns/net", e))?;
        let name = format!("rootless-{}-{hint}", std::process::id());
        Ok(LabNamespace {
            name,
            file,
            id: NsId::of_metadata(&meta),
            ledger_path: PathBuf::new(),
            rtnl: Mutex::new(None),
            removed: false,
            rootless: true,
        })
    }

    /// Sends `signal` to each of `pids` (never to this process or pid 0 or 1); one that is
    /// gone already is skipped. A `signal` that is no signal number does nothing.
    pub fn signal_pids(&self, pids: &[u32], signal: i32) {
        let Ok(signal) = Signal::try_from(signal) else {
            return;
        };
        for &pid in pids {
            processes::signal(pid, signal);
        }
    }

    /// Sends `signal` to every process of the lab in one of the process `groups`, including
    /// members whose group leader has already exited (a shell's background job).
    /// A `signal` that is no signal number does nothing.
    pub fn signal_groups(&self, groups: &[i32], signal: i32) {
        let Ok(signal) = Signal::try_from(signal) else {
            return;
        };
        for pid in processes::members_of_groups(self.id, groups) {
            processes::signal(pid, signal);
        }
    }

    /// `p2plab-<owner pid>-<hint>`, as `ip netns exec` takes it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// An open descriptor of the namespace, for `setns(fd, CLONE_NEWNET)` (the worker's
    /// spawner thread joins the lab with it). It is close-on-exec and lives as long as `self`.
    pub fn ns_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// `/run/p2plab/<name>.json`.
    pub fn ledger_path(&self) -> &Path {
        &self.ledger_path
    }

    /// Notes the lab's cgroup in its ledger, so that `p2plab cleanup` removes it after a
    /// crash. A rootless lab has no ledger (and no cgroup).
    pub fn record_cgroup(&self, cgroup: &Path) -> Result<(), NetnsError> {
        if self.rootless {
            return Ok(());
        }
        let mut ledger = Ledger::read(&self.ledger_path)?;
        ledger.cgroup = Some(cgroup.to_path_buf());
        ledger.write(&self.ledger_path)
    }

    /// Runs `f` on a thread that has entered the namespace, and returns its result. Sockets
    /// and devices `f` opens stay in the lab namespace. A panic in `f` is resumed here.
    pub fn run_in<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, NetnsError> {
        let ns = &self.file;
        std::thread::scope(|scope| {
            let spawned = std::thread::Builder::new()
                .name("p2plab-netns".into())
                .spawn_scoped(scope, move || {
                    // Only this scoped, short-lived thread moves into the lab.
                    setns(ns, CloneFlags::CLONE_NEWNET)
                        .map_err(|e| NetnsError::os("enter the lab network namespace", e))?;
                    Ok(f())
                })
                .map_err(|e| NetnsError::io("start a thread", e))?;
            match spawned.join() {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// A netlink client whose socket was opened inside the namespace.
    pub fn netlink(&self) -> Result<Netlink, NetnsError> {
        self.run_in(Netlink::open)?
    }

    /// Sets `lo` up (a new namespace starts with it down).
    pub fn bring_up_loopback(&self) -> Result<(), NetnsError> {
        self.with_netlink(|nl| {
            let lo = self.ifindex(nl, "lo")?;
            nl.set_link_up(lo, None)
        })
    }

    /// Steers traffic between addresses of `prefix/prefix_len` through the TUN device
    /// `tun_ifname` (which must exist in the namespace): sets it up with `mtu`, moves
    /// `lookup local` from priority 0 to 1000, adds `iif lo to <prefix> lookup 100` at 100 and
    /// `<prefix> dev <tun> table 100`, and turns off reverse-path filtering and allows local
    /// sources on the TUN device, so packets written back into it are delivered locally.
    pub fn install_hairpin(
        &self,
        tun_ifname: &str,
        prefix: Ipv4Addr,
        prefix_len: u8,
        mtu: u32,
    ) -> Result<(), NetnsError> {
        let prefix_len = prefix_len.min(32);
        let mask = u32::MAX
            .checked_shl(32 - u32::from(prefix_len))
            .unwrap_or(0);
        let prefix = Ipv4Addr::from(u32::from(prefix) & mask);
        self.with_netlink(|nl| {
            let tun = self.ifindex(nl, tun_ifname)?;
            nl.set_link_up(tun, Some(mtu))?;
            // The kernel's queue in front of the forwarder: the default 500 packets overflow in
            // bursts of a fast TCP flow before the forwarder thread gets the CPU.
            nl.set_txqlen(tun, TUN_QUEUE_LEN)?;
            let local = |priority| Rule {
                priority,
                table: TABLE_LOCAL,
                iifname: None,
                dst: None,
            };
            // Moving the local rule twice is no error: the lab is already in that state.
            tolerate(nl.add_rule(&local(LOCAL_RULE_PRIORITY)), libc::EEXIST)?;
            tolerate(nl.del_rule(&local(0)), libc::ENOENT)?;
            nl.add_rule(&Rule {
                priority: HAIRPIN_RULE_PRIORITY,
                table: HAIRPIN_TABLE,
                iifname: Some("lo".into()),
                dst: Some((prefix, prefix_len)),
            })?;
            nl.add_route(&Route {
                dst: prefix,
                prefix_len,
                oif: tun,
                table: HAIRPIN_TABLE,
            })?;
            Ok(())
        })?;
        self.write_sysctl("net/ipv4/conf/all/rp_filter", "0")?;
        self.write_sysctl(&format!("net/ipv4/conf/{tun_ifname}/rp_filter"), "0")?;
        self.write_sysctl(&format!("net/ipv4/conf/{tun_ifname}/accept_local"), "1")
    }

    /// Writes `/proc/sys/<key>` from a thread inside the namespace.
    pub fn write_sysctl(&self, key: &str, value: &str) -> Result<(), NetnsError> {
        let path = Path::new("/proc/sys").join(key);
        self.run_in(|| std::fs::write(&path, value))?
            .map_err(|e| NetnsError::io(format!("write {} in the lab", path.display()), e))
    }

    /// Kills the lab's processes, removes the namespace (with its TUN device, addresses,
    /// rules and routes) and the ledger. Dropping the lab does the same, ignoring errors.
    pub fn remove(mut self) -> Result<(), NetnsError> {
        let result = self.tear_down();
        self.removed = true;
        result
    }

    fn tear_down(&mut self) -> Result<(), NetnsError> {
        processes::kill_all_in(self.id);
        if self.rootless {
            return Ok(());
        }
        // Only if the name still refers to our namespace: `p2plab cleanup` may have removed
        // it, and another lab may have taken the name since.
        match NsId::of_path(&named::path_of(&self.name)) {
            Ok(id) if id == self.id => named::remove(&self.name)?,
            Ok(_) => return Ok(()),
            Err(_) => {}
        }
        match std::fs::remove_file(&self.ledger_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(NetnsError::io(
                format!("remove {}", self.ledger_path.display()),
                e,
            )),
            _ => Ok(()),
        }
    }

    /// Packets the kernel dropped on their way out of `ifname` (see `Netlink::tx_dropped`).
    pub fn tx_dropped(&self, ifname: &str) -> Result<u64, NetnsError> {
        self.with_netlink(|nl| nl.tx_dropped(ifname))
    }

    /// Runs `f` with the lab's netlink client, opening it on first use. A client that failed
    /// on the socket level (not a refused request) is replaced next time.
    fn with_netlink<T>(
        &self,
        f: impl FnOnce(&mut Netlink) -> Result<T, NetnsError>,
    ) -> Result<T, NetnsError> {
        let mut cached = self.rtnl.lock().unwrap_or_else(|p| p.into_inner());
        let nl = match cached.as_mut() {
            Some(nl) => nl,
            None => cached.insert(self.netlink()?),
        };
        let result = f(nl);
        if matches!(
            result,
            Err(NetnsError::Io { .. } | NetnsError::NetlinkReply { .. })
        ) {
            *cached = None;
        }
        result
    }

    fn ifindex(&self, nl: &mut Netlink, ifname: &str) -> Result<u32, NetnsError> {
        nl.ifindex(ifname).map_err(|e| match e {
            NetnsError::Netlink { errno, .. } if errno == libc::ENODEV => {
                NetnsError::NoSuchInterface {
                    ifname: ifname.into(),
                    namespace: self.name.clone(),
                }
            }
            e => e,
        })
    }
}

impl Drop for LabNamespace {
    fn drop(&mut self) {
        if !self.removed {
            let _ = self.tear_down();
        }
    }
}

/// `Ok` when `result` failed with `errno`.
fn tolerate(result: Result<(), NetnsError>, errno: i32) -> Result<(), NetnsError> {
    match result {
        Err(NetnsError::Netlink { errno: e, .. }) if e == errno => Ok(()),
        other => other,
    }
}
