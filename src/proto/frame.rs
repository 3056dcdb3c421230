//! Framing: a 4-byte big-endian length, then that many bytes of JSON. Frames longer than
//! `MAX_FRAME` are refused before any byte of them is buffered. Also the two sides of the
//! handshake, which every connection goes through before any other frame is read.

use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use super::auth::{self, Role, Token};
use super::messages::Handshake;
use super::{HANDSHAKE_TIMEOUT, ProtoError, VERSION};

/// Largest frame either side accepts (a 1 MiB file chunk in base64 fits many times over).
pub const MAX_FRAME: usize = 16 << 20;
/// Largest frame before the handshake succeeded: handshake messages are small, and a
/// stranger must not make the worker buffer megabytes.
pub const HANDSHAKE_FRAME: usize = 4096;
/// Most messages written before one flush.
const BURST: usize = 256;

/// A framed, typed connection over any byte stream (TCP, or in-memory for the embedded worker).
pub struct Connection<S> {
    framed: Framed<S, LengthDelimitedCodec>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    pub fn new(stream: S) -> Self {
        let codec = LengthDelimitedCodec::builder()
            .max_frame_length(HANDSHAKE_FRAME)
            .new_codec();
        Connection {
            framed: Framed::new(stream, codec),
        }
    }

    pub async fn send<M: Serialize>(&mut self, msg: &M) -> Result<(), ProtoError> {
        let bytes = serde_json::to_vec(msg).map_err(|e| ProtoError::Malformed(e.to_string()))?;
        self.framed.send(Bytes::from(bytes)).await?;
        Ok(())
    }

    /// Separate halves for a reading task and a writing task: a side that is busy writing
    /// must still read, or two sides writing bursts at each other would both block.
    pub fn split(self) -> (FrameWriter<S>, FrameReader<S>) {
        let (sink, stream) = self.framed.split();
        (FrameWriter { sink }, FrameReader { stream })
    }

    /// The next message; `Closed` at the end of the stream.
    pub async fn recv<M: DeserializeOwned>(&mut self) -> Result<M, ProtoError> {
        decode_frame(self.framed.next().await)
    }

    async fn recv_within<M: DeserializeOwned>(&mut self, limit: Duration) -> Result<M, ProtoError> {
        tokio::time::timeout(limit, self.recv())
            .await
            .map_err(|_| ProtoError::Timeout(limit))?
    }

    /// Controller side: proves itself and checks the worker; returns the worker's self-description.
    pub async fn authenticate_to_worker(&mut self, token: &Token) -> Result<String, ProtoError> {
        let mine = auth::nonce();
        self.send(&Handshake::Hello {
            version: VERSION,
            nonce: hex::encode(mine),
        })
        .await?;
        let (theirs, proof) = match self.recv_within(HANDSHAKE_TIMEOUT).await? {
            Handshake::Challenge {
                version,
                nonce,
                proof,
            } => {
                if version != VERSION {
                    return Err(ProtoError::Version { theirs: version });
                }
                (decode(&nonce)?, decode(&proof)?)
            }
            Handshake::Refused { reason } => return Err(ProtoError::Refused(reason)),
            other => return Err(unexpected(&other)),
        };
        if theirs.len() != auth::NONCE_BYTES || !token.verify(Role::Worker, &theirs, &mine, &proof)
        {
            return Err(ProtoError::Auth(
                "the worker does not hold the same token".into(),
            ));
        }
        self.send(&Handshake::Proof {
            proof: hex::encode(token.proof(Role::Controller, &mine, &theirs)),
        })
        .await?;
        match self.recv_within(HANDSHAKE_TIMEOUT).await? {
            Handshake::Welcome { worker } => {
                self.authenticated();
                Ok(worker)
            }
            Handshake::Refused { reason } => Err(ProtoError::Refused(reason)),
            other => Err(unexpected(&other)),
        }
    }

    /// Worker side: checks the controller and proves itself. Once the controller's proof
    /// holds, `claim` decides whether it gets this worker (the worker serves one at a time):
    /// an error is sent as the reason of a refusal.
    pub async fn authenticate_controller(
        &mut self,
        token: &Token,
        describe: &str,
        claim: impl FnOnce() -> Result<(), String>,
    ) -> Result<(), ProtoError> {
        let theirs = match self.recv_within(HANDSHAKE_TIMEOUT).await? {
            Handshake::Hello { version, nonce } => {
                if version != VERSION {
                    let reason =
                        format!("protocol version {version} asked, this worker speaks {VERSION}");
                    let _ = self.send(&Handshake::Refused { reason }).await;
                    return Err(ProtoError::Version { theirs: version });
                }
                decode(&nonce)?
            }
            other => return Err(unexpected(&other)),
        };
        if theirs.len() != auth::NONCE_BYTES {
            return Err(ProtoError::Malformed("nonce of the wrong length".into()));
        }
        let mine = auth::nonce();
        self.send(&Handshake::Challenge {
            version: VERSION,
            nonce: hex::encode(mine),
            proof: hex::encode(token.proof(Role::Worker, &mine, &theirs)),
        })
        .await?;
        let proof = match self.recv_within(HANDSHAKE_TIMEOUT).await? {
            Handshake::Proof { proof } => decode(&proof)?,
            other => return Err(unexpected(&other)),
        };
        if !token.verify(Role::Controller, &theirs, &mine, &proof) {
            let reason = "authentication failed: not the worker's token".to_string();
            let _ = self.send(&Handshake::Refused { reason }).await;
            return Err(ProtoError::Auth(
                "the controller does not hold the token".into(),
            ));
        }
        if let Err(reason) = claim() {
            self.send(&Handshake::Refused {
                reason: reason.clone(),
            })
            .await?;
            return Err(ProtoError::Refused(reason));
        }
        self.send(&Handshake::Welcome {
            worker: describe.to_string(),
        })
        .await?;
        self.authenticated();
        Ok(())
    }

    /// Frames up to `MAX_FRAME` from now on; before, a stranger gets `HANDSHAKE_FRAME` at most.
    fn authenticated(&mut self) {
        self.framed.codec_mut().set_max_frame_length(MAX_FRAME);
    }
}

/// The writing half of a connection.
pub struct FrameWriter<S> {
    sink: SplitSink<Framed<S, LengthDelimitedCodec>, Bytes>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> FrameWriter<S> {
    pub async fn send<M: Serialize>(&mut self, msg: &M) -> Result<(), ProtoError> {
        let bytes = serde_json::to_vec(msg).map_err(|e| ProtoError::Malformed(e.to_string()))?;
        self.sink.send(Bytes::from(bytes)).await?;
        Ok(())
    }

    /// Sends `first` and every message already queued behind it, with one flush: a burst of
    /// pipelined requests or replies costs one write, not one per message.
    pub async fn send_burst<M: Serialize>(
        &mut self,
        first: M,
        mut queued: impl FnMut() -> Option<M>,
    ) -> Result<(), ProtoError> {
        let mut next = Some(first);
        let mut n = 0;
        while let Some(msg) = next {
            let bytes =
                serde_json::to_vec(&msg).map_err(|e| ProtoError::Malformed(e.to_string()))?;
            self.sink.feed(Bytes::from(bytes)).await?;
            n += 1;
            next = if n < BURST { queued() } else { None };
        }
        self.sink.flush().await?;
        Ok(())
    }
}

/// The reading half of a connection.
pub struct FrameReader<S> {
    stream: SplitStream<Framed<S, LengthDelimitedCodec>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> FrameReader<S> {
    /// The next message; `Closed` at the end of the stream.
    pub async fn recv<M: DeserializeOwned>(&mut self) -> Result<M, ProtoError> {
        decode_frame(self.stream.next().await)
    }
}

fn decode_frame<M: DeserializeOwned>(
    frame: Option<Result<bytes::BytesMut, std::io::Error>>,
) -> Result<M, ProtoError> {
    match frame {
        Some(Ok(frame)) => {
            serde_json::from_slice(&frame).map_err(|e| ProtoError::Malformed(e.to_string()))
        }
        // The codec reports an over-long frame as InvalidData.
        Some(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
            Err(ProtoError::Malformed(e.to_string()))
        }
        Some(Err(e)) => Err(e.into()),
        None => Err(ProtoError::Closed),
    }
}

fn decode(text: &str) -> Result<Vec<u8>, ProtoError> {
    hex::decode(text).map_err(|_| ProtoError::Malformed("expected hex".into()))
}

fn unexpected(msg: &Handshake) -> ProtoError {
    ProtoError::Malformed(format!("unexpected handshake message {msg:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn token(s: &str) -> Token {
        Token::parse(s, "test").unwrap()
    }

    async fn pair(
        controller: Token,
        worker: Token,
    ) -> (Result<String, ProtoError>, Result<(), ProtoError>) {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (mut c, mut w) = (Connection::new(a), Connection::new(b));
        tokio::join!(
            async move { c.authenticate_to_worker(&controller).await },
            async move { w.authenticate_controller(&worker, "w0", || Ok(())).await }
        )
    }

    #[test]
    fn the_same_token_on_both_sides_authenticates() {
        let (c, w) = rt().block_on(pair(
            token("secret-secret-secret"),
            token("secret-secret-secret"),
        ));
        assert_eq!(c.unwrap(), "w0");
        w.unwrap();
    }

    #[test]
    fn different_tokens_fail_on_both_sides() {
        let (c, w) = rt().block_on(pair(
            token("secret-secret-secret"),
            token("secret-secret-secreT"),
        ));
        assert!(matches!(c, Err(ProtoError::Auth(_))), "{c:?}");
        // The controller stops before proving anything: the worker sees the connection end.
        assert!(w.is_err());
    }

    #[test]
    fn an_over_long_frame_is_refused_before_it_is_read() {
        rt().block_on(async {
            let (a, b) = tokio::io::duplex(1 << 16);
            let mut w = Connection::new(b);
            let mut raw = a;
            use tokio::io::AsyncWriteExt;
            raw.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
            let r: Result<Handshake, _> = w.recv().await;
            assert!(matches!(r, Err(ProtoError::Malformed(_))), "{r:?}");
        });
    }
}
