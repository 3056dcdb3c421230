//! The name of a file in a node's folder (`nodes/<ip>/`), as a script gives it to `spawn`'s
//! `stdout` or to `read_file`: relative, inside the folder, checked once where it is written
//! so every layer below can trust it.

use std::fmt;
use std::path::{Component, Path, PathBuf};

/// Most a script may read of one node file: results, not data (it travels in one frame).
pub const MAX_NODE_FILE: u64 = 8 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFile(String);

impl NodeFile {
    /// `name` if it stays inside the node's folder: no absolute path, no `..`, not the
    /// folder itself; `Err` says what was wrong.
    pub fn parse(name: &str) -> Result<NodeFile, String> {
        if name.is_empty() {
            return Err("expected a file name in the node's folder, got an empty string".into());
        }
        let path = Path::new(name);
        let mut normal = 0;
        for part in path.components() {
            match part {
                Component::Normal(_) => normal += 1,
                Component::CurDir => {}
                Component::RootDir | Component::Prefix(_) => {
                    return Err(format!(
                        "{name:?} is an absolute path; name a file in the node's folder, \
                         like \"result.json\""
                    ));
                }
                Component::ParentDir => {
                    return Err(format!(
                        "{name:?} leaves the node's folder (..); name a file inside it"
                    ));
                }
            }
        }
        if normal == 0 || name.ends_with('/') {
            return Err(format!("{name:?} names a folder, not a file"));
        }
        Ok(NodeFile(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Where it is under a node's folder.
    pub fn under(&self, node_dir: &Path) -> PathBuf {
        node_dir.join(&self.0)
    }
}

impl fmt::Display for NodeFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_inside_the_folder_pass() {
        for name in ["iperf.json", "out/result.txt", "./a", "a.b.c"] {
            assert_eq!(NodeFile::parse(name).unwrap().as_str(), name);
        }
        assert_eq!(
            NodeFile::parse("out/r.json")
                .unwrap()
                .under(Path::new("/res/nodes/10.0.0.1")),
            Path::new("/res/nodes/10.0.0.1/out/r.json")
        );
    }

    #[test]
    fn names_outside_the_folder_are_refused_with_why() {
        assert!(NodeFile::parse("").unwrap_err().contains("empty"));
        assert!(
            NodeFile::parse("/etc/passwd")
                .unwrap_err()
                .contains("absolute")
        );
        assert!(NodeFile::parse("../x").unwrap_err().contains(".."));
        assert!(NodeFile::parse("a/../../x").unwrap_err().contains(".."));
        assert!(NodeFile::parse(".").unwrap_err().contains("folder"));
        assert!(NodeFile::parse("out/").unwrap_err().contains("folder"));
    }
}
