//! The lab ledger: one JSON file per lab namespace in `/run/p2plab`, naming the owner process,
//! so `p2plab cleanup` can tell a crashed run's leftovers from a live lab. It does not kill or
//! remove anything itself (the lab's processes are found by their namespace in `/proc`).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::NetnsError;

/// Where ledgers live (a tmpfs on most systems, so a reboot forgets them with the namespaces).
pub const LEDGER_DIR: &str = "/run/p2plab";

/// What `/run/p2plab/<namespace>.json` holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    pub owner_pid: u32,
    /// Field 22 of `/proc/<owner_pid>/stat` (clock ticks after boot): a recycled pid has
    /// another start time, so it is not mistaken for the owner.
    pub owner_start_time: u64,
    pub namespace: String,
    /// The lab's cgroup (`<v2 mount>/<namespace>`), where programs are bound by cgroup-BPF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<PathBuf>,
}

impl Ledger {
    /// A fresh ledger for a namespace owned by this process.
    pub fn for_this_process(namespace: &str) -> Ledger {
        let owner_pid = std::process::id();
        Ledger {
            owner_pid,
            owner_start_time: start_time(owner_pid).unwrap_or(0),
            namespace: namespace.to_string(),
            cgroup: None,
        }
    }

    /// `<dir>/<namespace>.json`.
    pub fn path(dir: &Path, namespace: &str) -> PathBuf {
        dir.join(format!("{namespace}.json"))
    }

    pub fn read(path: &Path) -> Result<Ledger, NetnsError> {
        let text =
            fs::read(path).map_err(|e| NetnsError::io(format!("read {}", path.display()), e))?;
        serde_json::from_slice(&text).map_err(|source| NetnsError::Ledger {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Writes the ledger atomically: a temporary file next to it, then a rename.
    pub fn write(&self, path: &Path) -> Result<(), NetnsError> {
        let json = serde_json::to_vec(self).map_err(|source| NetnsError::Ledger {
            path: path.to_path_buf(),
            source,
        })?;
        let tmp = path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(&json)?;
            file.write_all(b"\n")?;
            fs::rename(&tmp, path)
        };
        write().map_err(|e| NetnsError::io(format!("write {}", path.display()), e))
    }

    /// Whether the owner still runs: its pid exists with the recorded start time.
    /// A zombie owner (killed, not yet reaped by its parent) counts as dead.
    pub fn owner_alive(&self) -> bool {
        start_time(self.owner_pid) == Some(self.owner_start_time) && !is_zombie(self.owner_pid)
    }
}

fn is_zombie(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .map(|rest| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// The start time of `pid` (field 22 of `/proc/<pid>/stat`), or `None` if it does not exist.
pub fn start_time(pid: u32) -> Option<u64> {
    parse_start_time(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Field 22 of a `/proc/<pid>/stat` line. The command (field 2) may hold spaces and
/// parentheses, so fields are counted after its last `)`.
fn parse_start_time(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(22 - 3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_skips_a_command_with_spaces() {
        let stat = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                    987654 1000 100 18446744073709551615";
        assert_eq!(parse_start_time(stat), Some(987654));
        assert_eq!(parse_start_time("12 (x) S 1"), None);
    }

    #[test]
    fn this_process_is_alive_and_a_changed_start_time_is_not() {
        let mut ledger = Ledger::for_this_process("p2plab-test");
        assert!(ledger.owner_start_time > 0);
        assert!(ledger.owner_alive());
        ledger.owner_start_time += 1;
        assert!(!ledger.owner_alive());
    }

    #[test]
    fn a_ledger_of_an_older_version_with_pids_still_reads() {
        // Earlier versions listed spawned pids; cleanup must still judge their labs.
        let dir = tempfile::tempdir().unwrap();
        let path = Ledger::path(dir.path(), "p2plab-7-x");
        let old = r#"{"owner_pid":7,"owner_start_time":42,"namespace":"p2plab-7-x","pids":[8]}"#;
        fs::write(&path, old).unwrap();
        let ledger = Ledger::read(&path).unwrap();
        assert_eq!((ledger.owner_pid, ledger.owner_start_time), (7, 42));
        assert_eq!(ledger.namespace, "p2plab-7-x");
        assert_eq!(ledger.cgroup, None);
    }

    #[test]
    fn ledger_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = Ledger::path(dir.path(), "p2plab-1-x");
        let mut ledger = Ledger::for_this_process("p2plab-1-x");
        ledger.cgroup = Some(PathBuf::from("/sys/fs/cgroup/p2plab-1-x"));
        ledger.write(&path).unwrap();
        assert_eq!(Ledger::read(&path).unwrap(), ledger);
        assert!(!path.with_extension("json.tmp").exists());
        fs::write(&path, "{").unwrap();
        assert!(matches!(
            Ledger::read(&path),
            Err(NetnsError::Ledger { .. })
        ));
    }
}
