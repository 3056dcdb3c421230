//! Node folders collected from remote workers, written into the controller's results folder.
//! A worker is not trusted with paths: only files below `nodes/<ip>/` are accepted.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};

use base64::Engine;

#[derive(Debug, thiserror::Error)]
pub enum CollectedError {
    #[error("a worker sent a file outside the node folders: {0:?}")]
    Outside(String),
    #[error("collected file {path}: {source}")]
    Encoding {
        path: String,
        #[source]
        source: base64::DecodeError,
    },
    #[error("{}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Writes a piece of a collected file, refusing any path outside `nodes/` of the results.
pub fn write_collected(
    results: &Path,
    path: &str,
    offset: u64,
    data: &str,
) -> Result<(), CollectedError> {
    let rel = Path::new(path);
    let inside = rel.components().all(|c| matches!(c, Component::Normal(_)))
        && rel.components().next() == Some(Component::Normal("nodes".as_ref()))
        && rel.components().count() >= 3;
    if !inside {
        return Err(CollectedError::Outside(path.into()));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|source| CollectedError::Encoding {
            path: path.into(),
            source,
        })?;
    let target = results.join(rel);
    let failed = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CollectedError::Write { path, source }
    };
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(failed(parent))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(offset == 0)
        .open(&target)
        .map_err(failed(&target))?;
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.write_all(&bytes))
        .map_err(failed(&target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collected_files_stay_inside_the_node_folders() {
        let dir = tempfile::tempdir().unwrap();
        let data = base64::engine::general_purpose::STANDARD.encode(b"hello");
        write_collected(dir.path(), "nodes/10.1.0.1/stdout.log", 0, &data).unwrap();
        write_collected(dir.path(), "nodes/10.1.0.1/stdout.log", 5, &data).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("nodes/10.1.0.1/stdout.log")).unwrap(),
            b"hellohello"
        );
        for evil in [
            "../x",
            "/etc/passwd",
            "nodes/../../x",
            "events.jsonl",
            "nodes/x",
        ] {
            assert!(
                write_collected(dir.path(), evil, 0, &data).is_err(),
                "{evil}"
            );
        }
    }
}
