//! `NetnsError`, the one error type of the lab namespace part, and the privilege checks real
//! mode runs before it touches the host.

use std::io;
use std::path::{Path, PathBuf};

/// Everything that can go wrong while creating, configuring or removing a lab namespace. The
/// messages say what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("p2plab real mode needs root or CAP_NET_ADMIN+CAP_SYS_ADMIN: run it with sudo")]
    NotPrivileged,

    #[error(
        "/dev/net/tun is missing: load the tun module (`modprobe tun`), or give the container \
         the device (`--device /dev/net/tun`)"
    )]
    NoTunDevice,

    #[error("lab name hint {hint:?} must be 1 to 40 characters among a-z, A-Z, 0-9, '-' and '_'")]
    BadHint { hint: String },

    #[error(
        "network namespace {name} already exists: choose another name, or run `p2plab cleanup` \
         if a crashed run left it behind"
    )]
    NamespaceExists { name: String },

    #[error(
        "no interface {ifname:?} in lab namespace {namespace}: create it inside the namespace \
         first (open the TUN device from `LabNamespace::run_in`)"
    )]
    NoSuchInterface { ifname: String, namespace: String },

    #[error("netlink {op} failed: {}", io::Error::from_raw_os_error(*errno))]
    Netlink { op: &'static str, errno: i32 },

    #[error("netlink {op}: unexpected reply from the kernel ({detail})")]
    NetlinkReply { op: &'static str, detail: String },

    #[error("{action}: {source}")]
    Io {
        action: String,
        #[source]
        source: io::Error,
    },

    #[error(transparent)]
    Cgroup(#[from] super::cgroup::CgroupError),

    #[error("lab ledger {}: {source}", path.display())]
    Ledger {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl NetnsError {
    /// An I/O error with the action that failed; `EPERM`/`EACCES` become [`NetnsError::NotPrivileged`].
    pub(crate) fn io(action: impl Into<String>, source: io::Error) -> NetnsError {
        match source.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => NetnsError::NotPrivileged,
            _ => NetnsError::Io {
                action: action.into(),
                source,
            },
        }
    }

    /// A failed system call (as `nix` reports it), for the action that failed.
    pub(crate) fn os(action: impl Into<String>, errno: nix::errno::Errno) -> NetnsError {
        NetnsError::io(action, io::Error::from(errno))
    }
}

/// `CAP_NET_ADMIN` and `CAP_SYS_ADMIN` bits in `CapEff`.
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;

/// Checks that this process may create and configure network namespaces: effective uid 0, or
/// both `CAP_NET_ADMIN` and `CAP_SYS_ADMIN` in its effective capability set.
pub fn require_privileges() -> Result<(), NetnsError> {
    if nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| NetnsError::io("read /proc/self/status", e))?;
    match cap_eff(&status) {
        Some(caps) if has_cap(caps, CAP_NET_ADMIN) && has_cap(caps, CAP_SYS_ADMIN) => Ok(()),
        _ => Err(NetnsError::NotPrivileged),
    }
}

/// Checks that the TUN device the data plane needs exists.
pub fn require_tun_device() -> Result<(), NetnsError> {
    if Path::new("/dev/net/tun").exists() {
        Ok(())
    } else {
        Err(NetnsError::NoTunDevice)
    }
}

/// The `CapEff:` mask of a `/proc/<pid>/status` text.
fn cap_eff(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line["CapEff:".len()..].trim(), 16).ok()
}

fn has_cap(mask: u64, cap: u32) -> bool {
    mask & (1u64 << cap) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_mask_is_read_from_status() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t0000000000201000\n";
        let caps = cap_eff(status).unwrap();
        assert!(has_cap(caps, CAP_NET_ADMIN));
        assert!(has_cap(caps, CAP_SYS_ADMIN));
        let only_net = cap_eff("CapEff:\t0000000000001000\n").unwrap();
        assert!(!has_cap(only_net, CAP_SYS_ADMIN));
        assert_eq!(cap_eff("Name: x\n"), None);
    }

    #[test]
    fn permission_errors_say_to_use_sudo() {
        let e = NetnsError::io("mount", io::Error::from_raw_os_error(libc::EPERM));
        assert!(e.to_string().contains("run it with sudo"));
        let e = NetnsError::Netlink {
            op: "add address",
            errno: libc::EEXIST,
        };
        assert!(
            e.to_string()
                .starts_with("netlink add address failed: File exists")
        );
    }
}
