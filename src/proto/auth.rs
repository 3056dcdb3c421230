//! The shared token: read (with a warning when others may read it too), generated, and turned
//! into the pre-shared key of the Noise handshake (`frame`). The token never crosses the wire.

use std::path::Path;

use rand::RngExt;
use sha2::{Digest, Sha256};

/// Random bytes in a generated token.
const TOKEN_BYTES: usize = 32;
/// Shortest token accepted: weaker secrets are refused instead of silently used.
const MIN_TOKEN_LEN: usize = 16;
/// Random bytes in a nonce.
pub const NONCE_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the token file {path}: {err}")]
    Read { path: String, err: std::io::Error },
    #[error(
        "the token in {0} is shorter than {MIN_TOKEN_LEN} characters: make one with `p2plab token FILE`"
    )]
    TooShort(String),
    #[error("cannot write the token file {path}: {err}")]
    Write { path: String, err: std::io::Error },
}

/// The secret shared by a controller and its workers.
#[derive(Clone)]
pub struct Token(Vec<u8>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// A token from text (surrounding whitespace ignored); `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Token, TokenError> {
        let text = text.trim();
        if text.len() < MIN_TOKEN_LEN {
            return Err(TokenError::TooShort(origin.to_string()));
        }
        Ok(Token(text.as_bytes().to_vec()))
    }

    /// The token in `path`; a file that its group or others may read gets a warning, as ssh
    /// gives for a key: whoever reads it can run programs as root on every worker.
    pub fn from_file(path: &Path) -> Result<Token, TokenError> {
        use std::os::unix::fs::PermissionsExt;
        let err = |err| TokenError::Read {
            path: path.display().to_string(),
            err,
        };
        let text = std::fs::read_to_string(path).map_err(err)?;
        let mode = std::fs::metadata(path).map_err(err)?.permissions().mode();
        if let Some(warning) = exposure_warning(path, mode) {
            tracing::warn!("{warning}");
        }
        Token::parse(&text, &path.display().to_string())
    }

    /// A fresh random token, as text.
    pub fn generate() -> String {
        let bytes: [u8; TOKEN_BYTES] = rand::rng().random();
        hex::encode(bytes)
    }

    /// Writes a fresh token to `path`, readable by its owner only.
    pub fn write_new(path: &Path) -> Result<(), TokenError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let err = |err| TokenError::Write {
            path: path.display().to_string(),
            err,
        };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(err)?;
        writeln!(file, "{}", Token::generate()).map_err(err)
    }

    /// The pre-shared key of the Noise handshake: a hash of the token under a label of its
    /// own, so that a token of any length gives 32 bytes and the key is never the token.
    pub fn psk(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"p2plab noise psk v1\0");
        h.update(&self.0);
        h.finalize().into()
    }
}

/// What to say about a token file of this mode, if its group or others have any access.
fn exposure_warning(path: &Path, mode: u32) -> Option<String> {
    (mode & 0o077 != 0).then(|| {
        format!(
            "the token file {p} has mode {:03o}: its group or others may read it, and whoever \
             holds the token can run programs as root on every worker; run `chmod 600 {p}`",
            mode & 0o777,
            p = path.display()
        )
    })
}

/// A fresh random nonce.
pub fn nonce() -> [u8; NONCE_BYTES] {
    rand::rng().random()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(s: &str) -> Token {
        Token::parse(s, "test").unwrap()
    }

    #[test]
    fn the_key_depends_on_the_whole_token_and_is_not_the_token() {
        let t = token("0123456789abcdef0123");
        assert_eq!(t.psk(), token(" 0123456789abcdef0123\n").psk());
        assert_ne!(t.psk(), token("0123456789abcdef0124").psk());
        assert_ne!(&t.psk()[..20], b"0123456789abcdef0123");
    }

    #[test]
    fn a_token_file_others_may_read_is_named_in_a_warning() {
        let p = Path::new("/x/lab.token");
        assert_eq!(exposure_warning(p, 0o100600), None);
        assert_eq!(exposure_warning(p, 0o100400), None);
        let w = exposure_warning(p, 0o100644).unwrap();
        assert!(
            w.contains("mode 644") && w.contains("chmod 600 /x/lab.token"),
            "{w}"
        );
        assert!(exposure_warning(p, 0o100640).is_some());
        assert!(exposure_warning(p, 0o100602).is_some());
    }

    #[test]
    fn short_tokens_are_refused_and_generated_ones_are_long() {
        assert!(matches!(
            Token::parse("  short \n", "f"),
            Err(TokenError::TooShort(_))
        ));
        assert_eq!(Token::generate().len(), 64);
        assert_ne!(Token::generate(), Token::generate());
        assert!(Token::parse(&format!(" {}\n", Token::generate()), "f").is_ok());
    }
}
