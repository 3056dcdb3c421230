//! Node binding on one lab cgroup: the node map and the five programs attached to the lab's
//! cgroup v2 directory, so every task in a node's child cgroup uses the node's address.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::insn::AsmError;
use super::programs::{Hook, NodeMap};
use super::sys::{self, LogLevel, SysError};

/// Nodes one lab can hold in its map.
const MAX_NODES: u32 = 65_536;

#[derive(Debug, thiserror::Error)]
pub enum BindingError {
    #[error("cannot open cgroup {path}: {source}")]
    Cgroup {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("lab cgroup {lab} is not under the cgroup2 mount {mount}")]
    NotUnderMount { lab: PathBuf, mount: PathBuf },
    #[error("program {0:?} does not assemble: {1}")]
    Asm(Hook, AsmError),
    #[error(transparent)]
    Sys(#[from] SysError),
}

/// One attached program.
struct Program {
    hook: Hook,
    fd: OwnedFd,
}

/// The map and programs of one lab, attached to its cgroup until [`NodeBinding::detach`].
pub struct NodeBinding {
    cgroup: File,
    map: OwnedFd,
    programs: Vec<Program>,
}

/// The id `bpf_get_current_cgroup_id()` returns for tasks in `dir`: its kernfs inode number.
pub fn cgroup_id(dir: &Path) -> Result<u64, BindingError> {
    std::fs::metadata(dir)
        .map(|m| m.ino())
        .map_err(|source| BindingError::Cgroup {
            path: dir.to_owned(),
            source,
        })
}

/// The hierarchy level of `lab`'s children, counted from the mount (level 0). Inside a cgroup
/// namespace the mount is not the hierarchy's root and this would be too small.
fn node_level(mount: &Path, lab: &Path) -> Result<i32, BindingError> {
    let depth = lab
        .strip_prefix(mount)
        .map_err(|_| BindingError::NotUnderMount {
            lab: lab.to_owned(),
            mount: mount.to_owned(),
        })?
        .components()
        .count();
    Ok(depth as i32 + 1)
}

impl NodeBinding {
    /// Loads the programs and attaches them (BPF_F_ALLOW_MULTI) to the cgroup v2 dir `lab`
    /// under the cgroup2 mount `mount`; node cgroups are `lab`'s children.
    pub fn attach(mount: &Path, lab: &Path, log_level: LogLevel) -> Result<Self, BindingError> {
        let level = node_level(mount, lab)?;
        let cgroup = File::open(lab).map_err(|source| BindingError::Cgroup {
            path: lab.to_owned(),
            source,
        })?;
        let map = sys::map_create_hash("p2p_nodes", 8, 4, MAX_NODES)?;
        let mut binding = NodeBinding {
            cgroup,
            map,
            programs: Vec::new(),
        };
        for hook in Hook::ALL {
            let insns = hook
                .program(NodeMap {
                    fd: binding.map.as_raw_fd(),
                    level,
                })
                .map_err(|e| BindingError::Asm(hook, e))?;
            let loaded = sys::prog_load(
                hook.name(),
                sys::PROG_TYPE_CGROUP_SOCK_ADDR,
                hook.attach_type(),
                &insns,
                c"GPL",
                log_level,
            )?;
            sys::prog_attach(
                binding.cgroup.as_fd(),
                loaded.fd.as_fd(),
                hook.attach_type(),
                sys::F_ALLOW_MULTI,
            )?;
            // From here on Drop detaches it if a later hook fails.
            binding.programs.push(Program {
                hook,
                fd: loaded.fd,
            });
        }
        Ok(binding)
    }

    /// Tasks of the cgroup `cgroup_id` now use `addr`.
    pub fn set_node(&self, cgroup_id: u64, addr: Ipv4Addr) -> Result<(), BindingError> {
        sys::map_update(self.map.as_fd(), &cgroup_id.to_ne_bytes(), &addr.octets())?;
        Ok(())
    }

    /// Detaches every program; they and the map are freed with the fds.
    pub fn detach(mut self) -> Result<(), BindingError> {
        while let Some(program) = self.programs.pop() {
            sys::prog_detach(
                self.cgroup.as_fd(),
                program.fd.as_fd(),
                program.hook.attach_type(),
            )?;
        }
        Ok(())
    }
}

impl Drop for NodeBinding {
    /// An attached program outlives its fd: detach whatever is left (after an error).
    fn drop(&mut self) {
        for program in self.programs.drain(..) {
            let _ = sys::prog_detach(
                self.cgroup.as_fd(),
                program.fd.as_fd(),
                program.hook.attach_type(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_level_counts_from_the_mount() {
        let mount = Path::new("/sys/fs/cgroup/unified");
        assert_eq!(node_level(mount, mount).unwrap(), 1);
        assert_eq!(node_level(mount, &mount.join("p2plab/lab1")).unwrap(), 3);
        assert!(node_level(mount, Path::new("/tmp/x")).is_err());
    }
}
