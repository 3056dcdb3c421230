//! `p2plab cleanup`: finds the lab namespaces and cgroups of crashed runs (owner dead) and
//! removes them with their processes and ledgers. Labs of live p2plab processes and namespaces that are not
//! p2plab's are never touched.

use std::fs;
use std::io;
use std::path::Path;

use super::ledger::{self, LEDGER_DIR, Ledger};
use super::named::{self, NETNS_RUN_DIR, NsId};
use super::{NetnsError, cgroup, processes};

/// Removes what crashed runs left behind: every lab whose ledger names a dead owner (pid gone,
/// or reused by a process with another start time), and every `/run/netns/p2plab-<pid>-*`
/// without a ledger whose `<pid>` no longer runs, and likewise every lab cgroup
/// (`<v2 mount>/p2plab-<pid>-*`, and `<v1 mount>/p2plab-<pid>-*` of node limits) of a dead
/// owner. Kills the processes still in those
/// namespaces. Returns the names of the labs removed.
pub fn cleanup_leftovers() -> Result<Vec<String>, NetnsError> {
    let mut removed = Vec::new();
    for entry in list_dir(Path::new(LEDGER_DIR))? {
        let path = Path::new(LEDGER_DIR).join(&entry);
        if let Some(stem) = entry.strip_suffix(".json.tmp") {
            // A ledger write interrupted by a crash.
            if owner_pid_of(stem).is_some_and(|pid| ledger::start_time(pid).is_none()) {
                remove_file(&path)?;
            }
            continue;
        }
        let Some(name) = entry.strip_suffix(".json") else {
            continue;
        };
        let Ok(ledger) = Ledger::read(&path) else {
            continue; // not ours to judge; a live owner may be rewriting it
        };
        if ledger.owner_alive() || ledger.namespace != name || owner_pid_of(name).is_none() {
            continue;
        }
        remove_lab(name)?;
        // Only a cgroup named like the lab: a ledger cannot make cleanup remove another.
        if let Some(dir) = ledger
            .cgroup
            .filter(|d| d.file_name() == Some(name.as_ref()))
        {
            remove_cgroup(&dir)?;
        }
        remove_file(&path)?;
        removed.push(name.to_string());
    }
    for name in list_dir(Path::new(NETNS_RUN_DIR))? {
        let Some(owner) = owner_pid_of(&name) else {
            continue;
        };
        let has_ledger = Ledger::path(Path::new(LEDGER_DIR), &name).exists();
        if has_ledger || ledger::start_time(owner).is_some() {
            continue;
        }
        remove_lab(&name)?;
        removed.push(name);
    }
    if let Some(mount) = cgroup::v2_mount() {
        for name in orphan_cgroups(&mount)? {
            remove_cgroup(&mount.join(&name))?;
            if !removed.contains(&name) {
                removed.push(name);
            }
        }
    }
    for mount in super::limits::v1_mount_points() {
        for name in orphan_cgroups(&mount)? {
            cgroup::remove_v1(&mount.join(&name))?;
            if !removed.contains(&name) {
                removed.push(name);
            }
        }
    }
    Ok(removed)
}

/// The `p2plab-<pid>-*` cgroups under `mount` whose owner is dead and that no ledger names
/// (a ledger's lab is removed with its cgroup above).
fn orphan_cgroups(mount: &Path) -> Result<Vec<String>, NetnsError> {
    let mut orphans = list_dir(mount)?;
    orphans.retain(|name| {
        owner_pid_of(name).is_some_and(|owner| {
            !Ledger::path(Path::new(LEDGER_DIR), name).exists()
                && ledger::start_time(owner).is_none()
        })
    });
    Ok(orphans)
}

/// Kills what is left in a lab's cgroup and removes it with its node cgroups (and so the
/// programs attached to it).
fn remove_cgroup(dir: &Path) -> Result<(), NetnsError> {
    cgroup::kill_all(dir)?;
    cgroup::remove_tree(dir)?;
    Ok(())
}

/// Kills the processes in namespace `name` and removes its `/run/netns` entry.
fn remove_lab(name: &str) -> Result<(), NetnsError> {
    if let Ok(ns) = NsId::of_path(&named::path_of(name)) {
        processes::kill_all_in(ns);
    }
    named::remove(name)
}

/// The owner pid in a lab name `p2plab-<pid>-<hint>`, or `None` if it is not one.
pub(crate) fn owner_pid_of(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("p2plab-")?;
    let (pid, hint) = rest.split_once('-')?;
    if hint.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok().filter(|&pid| pid > 0)
}

/// File names in `dir`; none if it does not exist.
fn list_dir(dir: &Path) -> Result<Vec<String>, NetnsError> {
    match fs::read_dir(dir) {
        Ok(entries) => Ok(entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(NetnsError::io(format!("list {}", dir.display()), e)),
    }
}

fn remove_file(path: &Path) -> Result<(), NetnsError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(NetnsError::io(format!("remove {}", path.display()), e))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_p2plab_names_have_owners() {
        assert_eq!(owner_pid_of("p2plab-1234-worker"), Some(1234));
        assert_eq!(owner_pid_of("p2plab-1234-a-b"), Some(1234));
        assert_eq!(owner_pid_of("p2plab-1234-"), None);
        assert_eq!(owner_pid_of("p2plab-x1-worker"), None);
        assert_eq!(owner_pid_of("p2plab-0-worker"), None);
        assert_eq!(owner_pid_of("p2plab--1-worker"), None);
        assert_eq!(owner_pid_of("docker-1234-x"), None);
        assert_eq!(owner_pid_of("p2plab-+5-x"), None);
    }
}
