//! Finding the processes that live in a lab namespace by their namespace in `/proc` (so
//! daemons that forked away from their node are found too), to signal a node's process groups
//! or kill them all when the lab goes away. Spawning and reaping belong to the supervisor.

use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::named::NsId;

/// How long to wait for killed processes to leave the namespace.
const KILL_WAIT: Duration = Duration::from_secs(2);

/// SIGKILLs every process found in `/proc` whose network namespace is `ns`, except this
/// process. Waits (briefly) until none is left in the namespace; a killed child of ours counts
/// as gone once it is a zombie.
pub fn kill_all_in(ns: NsId) {
    let deadline = Instant::now() + KILL_WAIT;
    let mut victims: Vec<u32> = Vec::new();
    // Two sweeps: a process may fork between the scan and the kill.
    for _ in 0..2 {
        let found: Vec<u32> = all_pids()
            .into_iter()
            .filter(|&pid| killable(pid) && ns.holds_pid(pid))
            .collect();
        if found.is_empty() {
            break;
        }
        for &pid in &found {
            signal(pid, Signal::SIGKILL);
            if !victims.contains(&pid) {
                victims.push(pid);
            }
        }
        while Instant::now() < deadline && victims.iter().any(|&pid| ns.holds_pid(pid)) {
            thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Sends `signal` to process `pid` unless `killable` forbids it. An error means the process
/// is already gone (`ESRCH`), which is what was wanted.
pub fn signal(pid: u32, signal: Signal) {
    if killable(pid) {
        let _ = kill(Pid::from_raw(pid as i32), signal);
    }
}

/// Never signal pid 0 (our process group), anything that would be negative, or ourselves.
fn killable(pid: u32) -> bool {
    pid > 1 && pid <= i32::MAX as u32 && pid != std::process::id()
}

/// Processes of the namespace `ns` whose process group is one of `groups`, found in `/proc`
/// (so a group's members are found even after its leader was reaped, and a reused group id
/// outside the lab is never touched).
pub fn members_of_groups(ns: NsId, groups: &[i32]) -> Vec<u32> {
    let groups: std::collections::HashSet<i32> = groups.iter().copied().collect();
    all_pids()
        .into_iter()
        .filter(|&pid| killable(pid))
        .filter(|&pid| process_group(pid).is_some_and(|g| groups.contains(&g)))
        .filter(|&pid| ns.holds_pid(pid))
        .collect()
}

/// Field 5 of `/proc/<pid>/stat`, after the command name in parentheses.
fn process_group(pid: u32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()
}

/// Every process id in `/proc`.
fn all_pids() -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_kills_itself_or_special_pids() {
        assert!(!killable(0));
        assert!(!killable(1));
        assert!(!killable(u32::MAX));
        assert!(!killable(std::process::id()));
        assert!(killable(4242));
        assert!(all_pids().contains(&std::process::id()));
    }
}
