//! A `p2plab worker` daemon on 127.0.0.1 for the tests of its door and its channel: started
//! with a known token in a folder of its own, checked for life and labs, killed on drop.
// Shared by several test binaries; each uses a part.
#![allow(dead_code)]

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use p2plab::proto::{Connection, ProtoError, Token};

pub const TOKEN: &str = "protocol-test-token-0123456789abcdef";

pub struct Daemon {
    pub child: Child,
    pub addr: String,
    pub log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Daemon {
    pub fn start() -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, TOKEN).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
        let log = dir.path().join("worker.log");
        let child = Command::new(env!("CARGO_BIN_EXE_p2plab"))
            .args(["worker", "--listen", "127.0.0.1:0", "--token-file"])
            .arg(&token)
            .arg("--dir")
            .arg(dir.path().join("scratch"))
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let start = Instant::now();
        let addr = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(rest) = text.split("listening on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "worker did not start: {text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Daemon {
            child,
            addr,
            log,
            _dir: dir,
        }
    }

    pub fn token() -> Token {
        Token::parse(TOKEN, "test").unwrap()
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How many sessions the worker started: it logs each.
    pub fn sessions(&self) -> usize {
        self.log_text().matches("controller connected").count()
    }

    /// A rightful controller still gets in (within `limit`), and no lab is left: returns how
    /// long the handshake took.
    pub fn still_serves(&mut self, limit: Duration) -> Duration {
        assert!(self.alive(), "the worker died: {}", self.log_text());
        assert!(
            crate::common::poll(Duration::from_secs(5), || crate::common::namespaces_of(
                self.child.id()
            )
            .is_empty()),
            "a lab is left"
        );
        let token = Daemon::token();
        // The session of an earlier check may still be ending: the worker is then busy.
        let start = Instant::now();
        loop {
            let attempt = Instant::now();
            let r = rt().block_on(async {
                let s = tokio::net::TcpStream::connect(&self.addr).await.unwrap();
                Connection::new(s).authenticate_to_worker(&token).await
            });
            match r {
                Ok(_) => return attempt.elapsed(),
                Err(ProtoError::Refused(why)) if why.contains("another controller") => {
                    assert!(start.elapsed() < limit, "busy for {limit:?}");
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("a rightful controller was refused: {e}"),
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A frame as the protocol writes it: 4-byte big-endian length, then the bytes.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(payload);
    f
}
