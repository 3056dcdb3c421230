//! Where the bind shim is: `P2PLAB_SHIM` if set, else `libp2plab_shim.so` next to the p2plab
//! binary (`cargo build --release` puts both in `target/release/`), in `deps/` below it (where
//! `cargo test` alone leaves it), one folder up (test binaries live in `target/<p>/deps/`), or
//! in `../lib/p2plab/` (an installed `/usr/local/bin/p2plab`).

use std::path::{Path, PathBuf};

/// The environment contract with the shim (variable names, the library's file name), defined
/// once in the shim's crate and included here, not linked: linking the shim would interpose
/// p2plab's own sockets.
#[path = "../../shim/src/env.rs"]
pub mod contract;

pub use contract::SHIM_FILE;

#[derive(Debug, thiserror::Error)]
#[error(
    "the bind shim {SHIM_FILE} was not found (looked in: {looked}); build it with \
     `cargo build --release` (it lands next to the p2plab binary) or set P2PLAB_SHIM"
)]
pub struct ShimMissing {
    looked: String,
}

/// The absolute path of the shim library.
pub fn locate() -> Result<PathBuf, ShimMissing> {
    let mut candidates = Vec::new();
    if let Some(path) = std::env::var_os("P2PLAB_SHIM") {
        candidates.push(PathBuf::from(path));
    } else if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        candidates.push(dir.join(SHIM_FILE));
        candidates.push(dir.join("deps").join(SHIM_FILE));
        if let Some(up) = dir.parent() {
            candidates.push(up.join(SHIM_FILE));
            // Installed: `/usr/local/bin/p2plab` finds `/usr/local/lib/p2plab/<shim>`.
            candidates.push(up.join("lib/p2plab").join(SHIM_FILE));
        }
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .and_then(|p| std::fs::canonicalize(p).ok())
        .ok_or_else(|| ShimMissing {
            looked: candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// True when `program` (as found on PATH) is a statically linked ELF: no dynamic loader, so
/// LD_PRELOAD and the shim never run in it (Go binaries built without cgo are like this).
pub fn is_static_elf(program: &str) -> bool {
    resolve(program).is_some_and(|p| elf_without_interpreter(&p).unwrap_or(false))
}

fn resolve(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
}

/// Reads the ELF program headers: `Some(true)` if it is a 64-bit little-endian ELF with no
/// PT_INTERP entry, `Some(false)` if it has one, `None` if it is not such an ELF (a script).
fn elf_without_interpreter(path: &Path) -> Option<bool> {
    // Program headers sit near the start; 64 KiB is plenty and spares reading a big binary.
    let mut data = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::fs::File::open(path).ok()?, 64 * 1024),
        &mut data,
    )
    .ok()?;
    if data.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let u16_at = |o: usize| Some(u16::from_le_bytes(data.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(data.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(data.get(o..o + 8)?.try_into().ok()?));
    let phoff = u64_at(0x20)? as usize;
    let phentsize = u16_at(0x36)? as usize;
    let phnum = u16_at(0x38)? as usize;
    const PT_INTERP: u32 = 3;
    // Offsets come from the file: a corrupt header must not overflow.
    let has_interp = (0..phnum).any(|i| {
        i.checked_mul(phentsize)
            .and_then(|o| o.checked_add(phoff))
            .and_then(u32_at)
            == Some(PT_INTERP)
    });
    Some(!has_interp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_programs_and_scripts_are_not_static() {
        assert!(!is_static_elf("sh"));
        assert!(!is_static_elf("/bin/ls"));
        assert!(!is_static_elf("no-such-program-here"));
        // A script (not an ELF) is not reported either.
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("s");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        assert!(!is_static_elf(script.to_str().unwrap()));
    }

    #[test]
    fn an_elf_without_interpreter_is_static() {
        // A minimal ELF64 header with no program headers at all: static by our definition.
        let mut elf = vec![0u8; 64];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("static");
        std::fs::write(&path, &elf).unwrap();
        assert_eq!(elf_without_interpreter(&path), Some(true));
        assert!(is_static_elf(path.to_str().unwrap()));
    }
}
