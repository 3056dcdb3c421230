//! The control protocol between the controller and its workers: a versioned Noise handshake
//! keyed by the shared token (`auth`, `frame`), then sealed, numbered records (`record`)
//! carrying JSON messages: requests with ids, their replies, asynchronous events and
//! heartbeats (`messages`). The embedded worker speaks it too, over an in-memory stream.

pub mod auth;
pub mod frame;
pub mod messages;
pub mod record;
pub mod wire;

use std::time::Duration;

pub use auth::{Token, TokenError};
pub use frame::{Connection, MAX_FRAME};
pub use messages::{Binding, BindingChoice, Peer, Reply, Request, Setup, ToController, ToWorker};
pub use wire::{Failure, WireAction};

/// Bumped whenever a message changes meaning; both sides must agree exactly.
pub const VERSION: u32 = 5;
/// How often each side says it is alive.
pub const HEARTBEAT: Duration = Duration::from_millis(500);
/// Silence after which the other side counts as gone: four heartbeats missed. Checked every
/// `SILENCE_CHECK`, so a silent side is named within 2.25 s (users are promised 3 s).
pub const SILENCE: Duration = Duration::from_secs(2);
pub const SILENCE_CHECK: Duration = Duration::from_millis(250);
/// Time an unauthenticated connection gets to finish the whole handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("connection closed")]
    Closed,
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error(
        "protocol version {theirs} on the other side, {VERSION} here: use the same p2plab on every machine"
    )]
    Version { theirs: u32 },
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("refused: {0}")]
    Refused(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("session integrity check failed: {0}")]
    Integrity(#[from] record::Integrity),
}
