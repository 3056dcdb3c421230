//! The raw `bpf(2)` commands node binding needs: create a hash map, update its elements,
//! load a program (with the verifier's log), attach and detach it on a cgroup.

use std::ffi::CStr;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::insn::Insn;

// `enum bpf_cmd`.
const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;

/// `BPF_MAP_TYPE_HASH`.
pub const MAP_TYPE_HASH: u32 = 1;
/// `BPF_PROG_TYPE_CGROUP_SOCK_ADDR`.
pub const PROG_TYPE_CGROUP_SOCK_ADDR: u32 = 18;
/// `BPF_F_ALLOW_MULTI`: other programs on the same cgroup and its ancestors keep running.
pub const F_ALLOW_MULTI: u32 = 2;
/// `BPF_ANY` for map updates: create or replace.
const BPF_ANY: u64 = 0;

/// Bytes kept of the verifier's log; it reports `ENOSPC` beyond.
const LOG_SIZE: usize = 1 << 16;

/// A failed `bpf(2)` command.
#[derive(Debug, thiserror::Error)]
pub enum SysError {
    #[error("bpf({cmd}) failed: {source}")]
    Call {
        cmd: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("the verifier refused program `{name}`: {source}\n{log}")]
    Refused {
        name: String,
        #[source]
        source: io::Error,
        log: String,
    },
}

#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

#[repr(C)]
#[derive(Default)]
struct MapElemAttr {
    map_fd: u32,
    pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

/// Runs one command; `attr` is the command's prefix of `union bpf_attr` (the kernel zero-fills
/// the rest).
fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live `#[repr(C)]` prefix of `union bpf_attr` of the given size; every
    // pointer stored in it refers to memory the caller keeps alive for the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Takes ownership of the fd a command returned.
fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: a successful MAP_CREATE / PROG_LOAD returns a new fd nobody else owns.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// The kernel's object names: up to 15 bytes, NUL-terminated.
fn object_name(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (slot, byte) in out.iter_mut().zip(name.bytes().take(15)) {
        *slot = byte;
    }
    out
}

/// Creates a `BPF_MAP_TYPE_HASH`.
pub fn map_create_hash(
    name: &str,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
) -> Result<OwnedFd, SysError> {
    let mut attr = MapCreateAttr {
        map_type: MAP_TYPE_HASH,
        key_size,
        value_size,
        max_entries,
        map_name: object_name(name),
        ..Default::default()
    };
    bpf(BPF_MAP_CREATE, &mut attr)
        .map(owned)
        .map_err(|source| SysError::Call {
            cmd: "MAP_CREATE",
            source,
        })
}

/// Sets `key` to `value` (sizes must be the map's).
pub fn map_update(map: BorrowedFd<'_>, key: &[u8], value: &[u8]) -> Result<(), SysError> {
    let mut attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        value: value.as_ptr() as u64,
        flags: BPF_ANY,
        ..Default::default()
    };
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr)
        .map(drop)
        .map_err(|source| SysError::Call {
            cmd: "MAP_UPDATE_ELEM",
            source,
        })
}

/// A program the verifier accepted, with its log (the last line counts processed insns).
pub struct Loaded {
    pub fd: OwnedFd,
    pub log: String,
}

/// How much the verifier writes to the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    /// Errors, and the instruction count on success.
    Brief = 1,
    /// Every instruction, disassembled, with register states.
    Verbose = 2,
}

/// Loads a program; a refusal carries the verifier's log.
pub fn prog_load(
    name: &str,
    prog_type: u32,
    expected_attach_type: u32,
    insns: &[Insn],
    license: &CStr,
    log_level: LogLevel,
) -> Result<Loaded, SysError> {
    let code: Vec<[u8; 8]> = insns.iter().map(Insn::encode).collect();
    let mut log = vec![0u8; LOG_SIZE];
    let mut attr = ProgLoadAttr {
        prog_type,
        insn_cnt: code.len() as u32,
        insns: code.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: log_level as u32,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        prog_name: object_name(name),
        expected_attach_type,
        ..Default::default()
    };
    let result = bpf(BPF_PROG_LOAD, &mut attr);
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let log = String::from_utf8_lossy(&log[..end]).into_owned();
    match result {
        Ok(fd) => Ok(Loaded { fd: owned(fd), log }),
        Err(source) => Err(SysError::Refused {
            name: name.to_owned(),
            source,
            log,
        }),
    }
}

/// Attaches `prog` to the cgroup directory `cgroup` for `attach_type`.
pub fn prog_attach(
    cgroup: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    attach_type: u32,
    flags: u32,
) -> Result<(), SysError> {
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type,
        attach_flags: flags,
    };
    bpf(BPF_PROG_ATTACH, &mut attr)
        .map(drop)
        .map_err(|source| SysError::Call {
            cmd: "PROG_ATTACH",
            source,
        })
}

/// Detaches `prog` (closing its fd is not enough: the cgroup holds it).
pub fn prog_detach(
    cgroup: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    attach_type: u32,
) -> Result<(), SysError> {
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type,
        attach_flags: 0,
    };
    bpf(BPF_PROG_DETACH, &mut attr)
        .map(drop)
        .map_err(|source| SysError::Call {
            cmd: "PROG_DETACH",
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    #[test]
    fn attr_layouts_match_union_bpf_attr() {
        assert_eq!(offset_of!(MapCreateAttr, map_name), 28);
        assert_eq!(offset_of!(MapElemAttr, key), 8);
        assert_eq!(offset_of!(MapElemAttr, flags), 24);
        assert_eq!(offset_of!(ProgLoadAttr, insns), 8);
        assert_eq!(offset_of!(ProgLoadAttr, log_buf), 32);
        assert_eq!(offset_of!(ProgLoadAttr, prog_name), 48);
        assert_eq!(offset_of!(ProgLoadAttr, expected_attach_type), 68);
        assert_eq!(offset_of!(AttachAttr, attach_flags), 12);
    }

    #[test]
    fn names_are_truncated_and_terminated() {
        assert_eq!(&object_name("p2p")[..4], b"p2p\0");
        assert_eq!(object_name("a_very_long_program_name")[15], 0);
    }
}
