//! Shared-token authentication: both sides prove they hold the token by an HMAC-SHA256 over
//! both fresh nonces and their role, so no proof can be replayed on another connection or
//! reflected back, and the token itself never crosses the wire.

use std::path::Path;

use hmac::{Hmac, Mac};
use rand::RngExt;
use sha2::Sha256;

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

/// Who computes a proof: the two roles hash different labels, so a worker's proof is never
/// a valid controller proof.
#[derive(Debug, Clone, Copy)]
pub enum Role {
    Controller,
    Worker,
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

    pub fn from_file(path: &Path) -> Result<Token, TokenError> {
        let text = std::fs::read_to_string(path).map_err(|err| TokenError::Read {
            path: path.display().to_string(),
            err,
        })?;
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

    /// The proof `role` gives: HMAC(token, role ‖ its own nonce ‖ the other side's nonce).
    pub fn proof(&self, role: Role, own_nonce: &[u8], their_nonce: &[u8]) -> Vec<u8> {
        self.mac(role, own_nonce, their_nonce)
            .finalize()
            .into_bytes()
            .to_vec()
    }

    /// Checks, in constant time, a proof that `role` gave.
    pub fn verify(&self, role: Role, own_nonce: &[u8], their_nonce: &[u8], proof: &[u8]) -> bool {
        self.mac(role, own_nonce, their_nonce)
            .verify_slice(proof)
            .is_ok()
    }

    /// The HMAC state over what a proof covers, before finalizing.
    fn mac(&self, role: Role, own_nonce: &[u8], their_nonce: &[u8]) -> Hmac<Sha256> {
        // HMAC takes a key of any length.
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts every key length");
        mac.update(match role {
            Role::Controller => b"p2plab controller v1",
            Role::Worker => b"p2plab worker v1",
        });
        mac.update(own_nonce);
        mac.update(their_nonce);
        mac
    }
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
    fn a_proof_verifies_only_with_the_same_token_role_and_nonces() {
        let t = token("0123456789abcdef0123");
        let (a, b) = (nonce(), nonce());
        let p = t.proof(Role::Worker, &a, &b);
        assert!(t.verify(Role::Worker, &a, &b, &p));
        assert!(!t.verify(Role::Controller, &a, &b, &p), "reflected");
        assert!(!t.verify(Role::Worker, &b, &a, &p), "nonces swapped");
        assert!(!t.verify(Role::Worker, &a, &nonce(), &p), "another session");
        assert!(!token("0123456789abcdef0124").verify(Role::Worker, &a, &b, &p));
        assert!(!t.verify(Role::Worker, &a, &b, &p[..31]), "truncated");
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
