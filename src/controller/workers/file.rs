//! The workers file of a multi-machine run: `host:port [weight=N]` per line, `#` comments,
//! blank lines.

use crate::experiment::MAX_WORKERS;

/// One line of a workers file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSpec {
    pub addr: String,
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkersFileError {
    #[error("{file}:{line}: expected host:port, found {found:?}")]
    NotHostPort {
        file: String,
        line: usize,
        found: String,
    },
    #[error("{file}:{line}: expected weight=N with N >= 1, found {found:?}")]
    BadWeight {
        file: String,
        line: usize,
        found: String,
    },
    #[error("{file}: no worker listed (one host:port per line)")]
    Empty { file: String },
    #[error("{file}: {count} workers listed, at most {MAX_WORKERS} are supported")]
    TooMany { file: String, count: usize },
}

/// Parses the text of a workers file named `file` (for messages).
pub fn parse_workers_file(text: &str, file: &str) -> Result<Vec<WorkerSpec>, WorkersFileError> {
    let mut specs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let addr = words.next().unwrap_or_default();
        if !addr.contains(':') {
            return Err(WorkersFileError::NotHostPort {
                file: file.into(),
                line: n + 1,
                found: addr.into(),
            });
        }
        let mut weight = 1;
        for word in words {
            weight = word
                .strip_prefix("weight=")
                .and_then(|w| w.parse::<u32>().ok())
                .filter(|w| *w >= 1)
                .ok_or_else(|| WorkersFileError::BadWeight {
                    file: file.into(),
                    line: n + 1,
                    found: word.into(),
                })?;
        }
        specs.push(WorkerSpec {
            addr: addr.to_string(),
            weight,
        });
    }
    if specs.is_empty() {
        return Err(WorkersFileError::Empty { file: file.into() });
    }
    if specs.len() > MAX_WORKERS {
        return Err(WorkersFileError::TooMany {
            file: file.into(),
            count: specs.len(),
        });
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_files_with_weights_comments_and_mistakes() {
        let specs =
            parse_workers_file("# lab\nm1:7000 weight=2\n\n  m2:7000 # spare\n", "w").unwrap();
        assert_eq!(
            specs,
            vec![
                WorkerSpec {
                    addr: "m1:7000".into(),
                    weight: 2
                },
                WorkerSpec {
                    addr: "m2:7000".into(),
                    weight: 1
                },
            ]
        );
        assert_eq!(
            parse_workers_file("m1\n", "w").unwrap_err().to_string(),
            "w:1: expected host:port, found \"m1\""
        );
        assert!(
            parse_workers_file("m1:1 weight=0", "w")
                .unwrap_err()
                .to_string()
                .starts_with("w:1: expected weight=N")
        );
        assert!(
            parse_workers_file("# nothing\n", "w")
                .unwrap_err()
                .to_string()
                .contains("no worker")
        );
    }
}
