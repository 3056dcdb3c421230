//! Node folders on this machine (`<results>/nodes/<ip>/`: a node's working directory, its
//! logs and what its programs write) and reading one file back for a script (`read_file`).

use std::io::{self, Read};
use std::net::Ipv4Addr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::experiment::{MAX_NODE_FILE, NodeFile};

/// The folder of the node at `ip` under a run's results (or a worker's node folders).
pub fn node_dir(results: &Path, ip: Ipv4Addr) -> PathBuf {
    results.join("nodes").join(ip.to_string())
}

/// The bytes of `file` in the node's folder, `None` when it does not exist (yet). It must be
/// a regular file of at most `MAX_NODE_FILE` bytes, reached without leaving the folder: a
/// node's program may have put a symlink there, and the worker reads as root.
pub fn read(results: &Path, ip: Ipv4Addr, file: &NodeFile) -> io::Result<Option<Vec<u8>>> {
    let dir = node_dir(results, ip);
    let path = file.under(&dir);
    let what = |e: io::Error| io::Error::new(e.kind(), format!("nodes/{ip}/{file}: {e}"));
    let real = match path.canonicalize() {
        Ok(real) => real,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(what(e)),
    };
    let inside = dir.canonicalize().is_ok_and(|d| real.starts_with(d));
    if !inside {
        return Err(what(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "it leads out of the node's folder (a symlink)",
        )));
    }
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&real)
        .map_err(what)?;
    let meta = f.metadata().map_err(what)?;
    if !meta.is_file() {
        return Err(what(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    if meta.len() > MAX_NODE_FILE {
        return Err(what(too_large()));
    }
    // A program may still be writing: read what is there, within the bound.
    let mut data = Vec::with_capacity(meta.len() as usize);
    (&mut f)
        .take(MAX_NODE_FILE + 1)
        .read_to_end(&mut data)
        .map_err(what)?;
    if data.len() as u64 > MAX_NODE_FILE {
        return Err(what(too_large()));
    }
    Ok(Some(data))
}

fn too_large() -> io::Error {
    io::Error::new(
        io::ErrorKind::FileTooLarge,
        format!(
            "larger than {} MiB, the most a script reads",
            MAX_NODE_FILE >> 20
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

    fn file(name: &str) -> NodeFile {
        NodeFile::parse(name).unwrap()
    }

    #[test]
    fn reads_a_file_of_the_node_and_says_none_when_absent() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_dir(dir.path(), IP);
        std::fs::create_dir_all(node.join("out")).unwrap();
        std::fs::write(node.join("out/r.json"), b"{\"a\":1}").unwrap();
        assert_eq!(
            read(dir.path(), IP, &file("out/r.json")).unwrap().unwrap(),
            b"{\"a\":1}"
        );
        assert_eq!(read(dir.path(), IP, &file("nope.json")).unwrap(), None);
        assert_eq!(
            read(dir.path(), Ipv4Addr::new(10, 0, 0, 9), &file("x")).unwrap(),
            None
        );
    }

    #[test]
    fn a_symlink_out_of_the_folder_or_a_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_dir(dir.path(), IP);
        std::fs::create_dir_all(node.join("sub")).unwrap();
        std::fs::write(dir.path().join("secret"), b"no").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), node.join("link")).unwrap();
        let e = read(dir.path(), IP, &file("link")).unwrap_err();
        assert!(e.to_string().contains("out of the node's folder"), "{e}");
        let e = read(dir.path(), IP, &file("sub")).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }

    #[test]
    fn a_file_over_the_bound_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_dir(dir.path(), IP);
        std::fs::create_dir_all(&node).unwrap();
        let f = std::fs::File::create(node.join("big")).unwrap();
        f.set_len(MAX_NODE_FILE + 1).unwrap();
        let e = read(dir.path(), IP, &file("big")).unwrap_err();
        assert!(e.to_string().contains("larger than 8 MiB"), "{e}");
    }
}
