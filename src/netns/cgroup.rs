//! The lab's cgroup (cgroup v2): `<v2 mount>/<lab name>/`, named like the lab namespace, with
//! one child per node of this worker that runs programs (`n<ip>`) and the node-binding
//! programs (`bpf`) attached to it, so that every socket a node's programs open uses the
//! node's address, the node's CPU and memory limits (`limits`) are enforced, and what its
//! programs used and how long they waited for a CPU is read. Removed, with whatever still
//! runs in it, on drop or by `p2plab cleanup`.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::limits::{self, NodeUsage};
use crate::bpf::binding::{self, BindingError, NodeBinding};
use crate::bpf::sys::LogLevel;
use crate::experiment::NodeLimits;

/// Longest wait for the processes of a cgroup to die once killed.
const KILL_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("no cgroup v2 hierarchy is mounted (no cgroup2 line in /proc/self/mountinfo)")]
    NoV2Mount,
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cgroup {} still has processes {}s after they were killed", path.display(), KILL_TIMEOUT.as_secs())]
    StillPopulated { path: PathBuf },
    #[error("node binding: {0}")]
    Binding(#[from] BindingError),
    #[error(
        "node limits need the cpu and memory controllers: neither the lab's cgroup v2 parent \
         enables them (cgroup.subtree_control) nor are they mounted as cgroup v1"
    )]
    NoControllers,
}

fn io_error<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// A node's cgroup and those of its v1 hierarchies. Their `cgroup.procs` are opened for
/// each spawn, not held: four descriptors a node ran the process out of them near 5,000
/// nodes (`ulimit -n` is often 1,024 to 20,000).
struct NodeCgroup {
    dir: PathBuf,
    /// Its cgroup in each v1 hierarchy of [`Controllers::V1`], in the same order.
    v1: Vec<PathBuf>,
    /// The out-of-memory kills already told of.
    oom_seen: u64,
    /// Its usage's `seconds` count from here.
    made: Instant,
}

/// Where the lab's node limits are enforced.
enum Controllers {
    /// In the node cgroups themselves: the lab's cgroup hands cpu and memory down.
    V2,
    /// In the v1 hierarchies: the lab's cgroup in each (`<mount>/<lab name>`) with the
    /// controllers mounted there.
    V1(Vec<(PathBuf, Vec<&'static str>)>),
    /// Nowhere: setting limits is an error.
    Missing,
}

/// The lab's cgroup, its node cgroups and the attached programs.
pub struct LabCgroup {
    dir: PathBuf,
    binding: Option<NodeBinding>,
    controllers: Controllers,
    nodes: HashMap<Ipv4Addr, NodeCgroup>,
    removed: bool,
}

impl LabCgroup {
    /// Creates `<v2 mount>/<name>` and attaches the node-binding programs to it.
    pub fn create(name: &str) -> Result<LabCgroup, CgroupError> {
        let mount = v2_mount().ok_or(CgroupError::NoV2Mount)?;
        let dir = mount.join(name);
        fs::create_dir(&dir).map_err(io_error("create cgroup", &dir))?;
        match NodeBinding::attach(&mount, &dir, LogLevel::Brief) {
            Ok(binding) => {
                let mut lab = LabCgroup {
                    controllers: Controllers::Missing,
                    dir,
                    binding: Some(binding),
                    nodes: HashMap::new(),
                    removed: false,
                };
                lab.controllers = controllers(&mount, &lab.dir, name)?;
                Ok(lab)
            }
            Err(e) => {
                let _ = fs::remove_dir(&dir);
                Err(e.into())
            }
        }
    }

    /// Sets node `ip`'s CPU and memory limits (lifting those `limits` leaves unset), for
    /// its running programs at once and for those it starts later.
    pub fn set_limits(&mut self, ip: Ipv4Addr, limits: &NodeLimits) -> Result<(), CgroupError> {
        self.node_procs(ip)?;
        let node_dir = self.dir.join(node_dir_name(ip));
        let fail = |path: PathBuf| {
            move |source| CgroupError::Io {
                action: "write",
                path,
                source,
            }
        };
        match &self.controllers {
            Controllers::Missing => return Err(CgroupError::NoControllers),
            Controllers::V2 => {
                for (file, value) in limits::v2_writes(limits) {
                    limits::write(&node_dir, file, &value).map_err(fail(node_dir.join(file)))?;
                }
            }
            Controllers::V1(mounts) => {
                let node = &self.nodes[&ip];
                for (controller, file, value) in limits::v1_writes(limits) {
                    let Some(dir) = v1_dir(mounts, node, controller) else {
                        continue;
                    };
                    // The kernel keeps memsw at least memory: a memory limit raised above
                    // its swap twin fails, and goes in once the twin is raised.
                    let first = limits::write(dir, file, &value);
                    if first.is_err() && file == "memory.limit_in_bytes" {
                        let _ = limits::write(dir, "memory.memsw.limit_in_bytes", &value);
                        limits::write(dir, file, &value).map_err(fail(dir.join(file)))?;
                    } else {
                        first.map_err(fail(dir.join(file)))?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether node `ip` had an out-of-memory kill not told of yet; true tells of one.
    pub fn take_oom_kill(&mut self, ip: Ipv4Addr) -> bool {
        let dir = self.dir.join(node_dir_name(ip));
        let Some(node) = self.nodes.get_mut(&ip) else {
            return false;
        };
        let kills = match &self.controllers {
            Controllers::V2 => limits::read(&dir, "memory.events", Some("oom_kill")),
            Controllers::V1(mounts) => v1_dir(mounts, node, "memory")
                .and_then(|d| limits::read(d, "memory.oom_control", Some("oom_kill"))),
            Controllers::Missing => None,
        };
        let new = kills.is_some_and(|k| k > node.oom_seen);
        if new {
            node.oom_seen += 1;
        }
        new
    }

    /// What each node that ran programs used so far: CPU time, the time its programs waited
    /// for a CPU and the time its quota held them back, and its memory peak where the kernel
    /// keeps one.
    pub fn usage(&self) -> Vec<(Ipv4Addr, NodeUsage)> {
        let mut all: Vec<_> = self
            .nodes
            .iter()
            .map(|(&ip, node)| {
                let dir = self.dir.join(node_dir_name(ip));
                let memory_peak = match &self.controllers {
                    Controllers::V1(mounts) => v1_dir(mounts, node, "memory")
                        .and_then(|d| limits::read(d, "memory.max_usage_in_bytes", None)),
                    _ => limits::read(&dir, "memory.peak", None),
                };
                // The quota is enforced in the v1 cpu hierarchy where there is one.
                let quota_dir = match &self.controllers {
                    Controllers::V1(mounts) => v1_dir(mounts, node, "cpu"),
                    _ => Some(dir.as_path()),
                };
                let throttled_usec = quota_dir
                    .and_then(|d| fs::read_to_string(d.join("cpu.stat")).ok())
                    .map_or(0, |text| limits::throttled_usec(&text));
                let cpu_wait_usec = fs::read_to_string(dir.join("cpu.pressure"))
                    .ok()
                    .and_then(|text| limits::pressure_total(&text, "some"));
                let usage = NodeUsage {
                    cpu_usec: limits::read(&dir, "cpu.stat", Some("usage_usec")).unwrap_or(0),
                    cpu_wait_usec,
                    throttled_usec,
                    seconds: node.made.elapsed().as_secs_f64(),
                    memory_peak: memory_peak.unwrap_or(0),
                };
                (ip, usage)
            })
            .collect();
        all.sort_by_key(|(ip, _)| *ip);
        all
    }

    /// `<v2 mount>/<lab name>`.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The `cgroup.procs` of node `ip`'s cgroups (v2, then v1), opened for writing; the
    /// cgroups are made (and mapped to `ip`) on first use. Writing `0` to each moves the
    /// writer into the node, so a child can move itself between fork and exec.
    pub fn node_procs(&mut self, ip: Ipv4Addr) -> Result<Vec<File>, CgroupError> {
        let node = match self.nodes.entry(ip) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(slot) => {
                let mut node = make_node(&self.dir, self.binding.as_ref(), ip)?;
                if let Controllers::V1(mounts) = &self.controllers {
                    for (lab_dir, _) in mounts {
                        let dir = lab_dir.join(node_dir_name(ip));
                        make_cgroup(&dir)?;
                        node.v1.push(dir);
                    }
                }
                slot.insert(node)
            }
        };
        std::iter::once(&node.dir)
            .chain(&node.v1)
            .map(|dir| open_procs(dir))
            .collect()
    }

    /// Kills every process of node `ip`, however it left its process group (a daemon that
    /// forked twice, a `setsid`), and waits until they are gone. A node that never ran a
    /// program has nothing to kill.
    pub fn kill_node(&self, ip: Ipv4Addr) -> Result<(), CgroupError> {
        if !self.nodes.contains_key(&ip) {
            return Ok(());
        }
        kill_all(&self.dir.join(node_dir_name(ip)))
    }

    /// Every process of node `ip` now, its sub-cgroups included.
    pub fn node_pids(&self, ip: Ipv4Addr) -> Vec<u32> {
        let mut pids = Vec::new();
        if self.nodes.contains_key(&ip) {
            list_tree(&self.dir.join(node_dir_name(ip)), &mut pids);
        }
        pids
    }

    /// Kills what still runs in the lab's cgroups, detaches the programs and removes the
    /// cgroups. Dropping the lab cgroup does the same, ignoring errors.
    pub fn remove(mut self) -> Result<(), CgroupError> {
        self.removed = true;
        self.tear_down()
    }

    fn tear_down(&mut self) -> Result<(), CgroupError> {
        self.nodes.clear();
        let killed = kill_all(&self.dir);
        if let Some(b) = self.binding.take() {
            b.detach()?;
        }
        killed?;
        remove_tree(&self.dir)?;
        if let Controllers::V1(mounts) = &self.controllers {
            for (dir, _) in mounts {
                remove_v1(dir)?;
            }
        }
        Ok(())
    }
}

/// Where node limits go: the v2 node cgroups when the v2 root hands `cpu` and `memory` to
/// the lab's cgroup (then enabled for its children), else the lab's cgroup `name` made in
/// each v1 hierarchy of those controllers.
fn controllers(mount: &Path, lab: &Path, name: &str) -> Result<Controllers, CgroupError> {
    let root = fs::read_to_string(mount.join("cgroup.subtree_control")).unwrap_or_default();
    let enabled: Vec<&str> = root.split_whitespace().collect();
    if enabled.contains(&"cpu") && enabled.contains(&"memory") {
        let path = lab.join("cgroup.subtree_control");
        fs::write(&path, "+cpu +memory").map_err(io_error("write", &path))?;
        return Ok(Controllers::V2);
    }
    let mut mounts: Vec<(PathBuf, Vec<&'static str>)> = Vec::new();
    for (controller, point) in limits::v1_mounts() {
        let dir = point.join(name);
        match mounts.iter_mut().find(|(d, _)| *d == dir) {
            Some((_, cs)) => cs.push(controller),
            None => mounts.push((dir, vec![controller])),
        }
    }
    if mounts.is_empty() {
        return Ok(Controllers::Missing);
    }
    for (i, (dir, _)) in mounts.iter().enumerate() {
        if let Err(e) = fs::create_dir(dir) {
            // Binding works without limits: only setting them is then an error.
            tracing::info!(
                "no node limits: cannot create cgroup {}: {e}",
                dir.display()
            );
            for (made, _) in &mounts[..i] {
                let _ = fs::remove_dir(made);
            }
            return Ok(Controllers::Missing);
        }
    }
    Ok(Controllers::V1(mounts))
}

/// Node `node`'s cgroup in the v1 hierarchy of `controller`, if one is mounted.
fn v1_dir<'a>(
    mounts: &[(PathBuf, Vec<&'static str>)],
    node: &'a NodeCgroup,
    controller: &str,
) -> Option<&'a Path> {
    mounts
        .iter()
        .zip(&node.v1)
        .find(|((_, cs), _)| cs.contains(&controller))
        .map(|(_, dir)| dir.as_path())
}

/// Makes cgroup `dir`; one already there is fine.
fn make_cgroup(dir: &Path) -> Result<(), CgroupError> {
    match fs::create_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            Err(io_error("create cgroup", dir)(e))
        }
        _ => Ok(()),
    }
}

/// Opens cgroup `dir`'s `cgroup.procs` for writing.
fn open_procs(dir: &Path) -> Result<File, CgroupError> {
    let path = dir.join("cgroup.procs");
    OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(io_error("open", &path))
}

/// Kills what is left in a lab's v1 cgroup `dir` (v1 has neither `cgroup.kill` nor
/// `cgroup.events`), waits until it is empty and removes it with its node cgroups.
pub fn remove_v1(dir: &Path) -> Result<(), CgroupError> {
    let started = Instant::now();
    loop {
        let mut pids = Vec::new();
        list_tree(dir, &mut pids);
        if pids.is_empty() {
            break;
        }
        if started.elapsed() > KILL_TIMEOUT {
            return Err(CgroupError::StillPopulated {
                path: dir.to_path_buf(),
            });
        }
        signal_tree(dir);
        std::thread::sleep(Duration::from_millis(1));
    }
    remove_tree(dir)
}

impl Drop for LabCgroup {
    fn drop(&mut self) {
        if !self.removed {
            let _ = self.tear_down();
        }
    }
}

/// A node cgroup's name: `n10.0.0.5`.
fn node_dir_name(ip: Ipv4Addr) -> String {
    format!("n{ip}")
}

/// Where the cgroup v2 hierarchy is mounted (its root, not a cgroup namespace's view of a
/// part of it), from `/proc/self/mountinfo`.
pub fn v2_mount() -> Option<PathBuf> {
    parse_v2_mount(&fs::read_to_string("/proc/self/mountinfo").ok()?)
}

/// The mount point of the first `cgroup2` line whose root is the hierarchy's root: node
/// levels are counted from it (`bpf::binding`).
fn parse_v2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (mount, fs) = line.split_once(" - ")?;
        if fs.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let mut fields = mount.split_whitespace();
        let root = fields.nth(3)?;
        let point = fields.next()?;
        (root == "/").then(|| PathBuf::from(unescape(point)))
    })
}

/// Mount points escape space, tab, newline and backslash as `\ooo` octal.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok());
        match octal {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Makes node `ip`'s cgroup below the lab's `dir` and maps its id to `ip`.
fn make_node(
    dir: &Path,
    binding: Option<&NodeBinding>,
    ip: Ipv4Addr,
) -> Result<NodeCgroup, CgroupError> {
    let dir = dir.join(node_dir_name(ip));
    make_cgroup(&dir)?;
    if let Some(b) = binding {
        b.set_node(binding::cgroup_id(&dir)?, ip)?;
    }
    Ok(NodeCgroup {
        dir,
        v1: Vec::new(),
        oom_seen: 0,
        made: Instant::now(),
    })
}

/// Kills every process in `dir` and its descendants (`cgroup.kill`, Linux 5.14+; before it,
/// SIGKILL to each listed process until none is left) and waits until they are gone.
pub fn kill_all(dir: &Path) -> Result<(), CgroupError> {
    let kill_file = dir.join("cgroup.kill");
    let has_kill = kill_file.exists() && fs::write(&kill_file, "1").is_ok();
    let started = Instant::now();
    while populated(dir)? {
        if started.elapsed() > KILL_TIMEOUT {
            return Err(CgroupError::StillPopulated {
                path: dir.to_path_buf(),
            });
        }
        if !has_kill {
            signal_tree(dir);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// Whether a process lives in `dir` or below (`populated 1` in `cgroup.events`).
fn populated(dir: &Path) -> Result<bool, CgroupError> {
    let path = dir.join("cgroup.events");
    match fs::read_to_string(&path) {
        Ok(events) => Ok(events.lines().any(|l| l == "populated 1")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error("read", &path)(e)),
    }
}

/// SIGKILL to every process listed in `dir` and its descendants.
fn signal_tree(dir: &Path) {
    let mut pids = Vec::new();
    list_tree(dir, &mut pids);
    for pid in pids.into_iter().filter_map(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// The processes listed in `dir` and its descendants.
fn list_tree(dir: &Path, pids: &mut Vec<u32>) {
    if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
        pids.extend(procs.lines().filter_map(|l| l.parse::<u32>().ok()));
    }
    for child in children(dir) {
        list_tree(&child, pids);
    }
}

/// The child cgroups of `dir` (its subdirectories; control files are plain files).
fn children(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Removes the cgroup `dir` and every cgroup below it, deepest first; they must be empty
/// ([`kill_all`]). Gone already is no error. Removing a cgroup detaches its programs.
pub fn remove_tree(dir: &Path) -> Result<(), CgroupError> {
    for child in children(dir) {
        remove_tree(&child)?;
    }
    match fs::remove_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error("remove cgroup", dir)(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_v2_mount_is_found_among_v1_mounts() {
        let hybrid = "\
25 30 0:22 / /sys rw,nosuid - sysfs sysfs rw
33 25 0:28 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755
34 33 0:29 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
36 33 0:31 / /sys/fs/cgroup/cpu,cpuacct rw shared:14 - cgroup cgroup rw,cpu,cpuacct
";
        assert_eq!(
            parse_v2_mount(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let v1_only = "36 33 0:31 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
        assert_eq!(parse_v2_mount(v1_only), None);
        assert_eq!(parse_v2_mount(""), None);
        assert_eq!(parse_v2_mount("garbage\n1 2 3\n - cgroup2"), None);
    }

    #[test]
    fn a_mount_of_part_of_the_hierarchy_is_not_the_root() {
        let nested = "\
40 30 0:29 /user.slice /mnt/part rw - cgroup2 cgroup2 rw
41 30 0:29 / /mnt/my\\040cgroups rw - cgroup2 cgroup2 rw
";
        assert_eq!(
            parse_v2_mount(nested),
            Some(PathBuf::from("/mnt/my cgroups"))
        );
    }

    #[test]
    fn escapes_are_octal_bytes_and_others_stay() {
        assert_eq!(unescape(r"a\040b\134c"), r"a b\c");
        assert_eq!(unescape(r"a\09b\"), r"a\09b\");
        assert_eq!(unescape("plain"), "plain");
    }

    #[test]
    fn node_cgroups_are_named_by_address() {
        assert_eq!(node_dir_name(Ipv4Addr::new(10, 0, 0, 5)), "n10.0.0.5");
    }
}
