//! Framing and the handshake. Every frame is a 4-byte big-endian length, then its bytes. Before
//! the handshake a frame is one JSON message in the clear, at most `HANDSHAKE_FRAME` bytes, so a
//! stranger never makes the worker buffer more. The handshake is Noise `NNpsk0` keyed by the
//! token (`snow`); after it, every frame is one sealed record (`record`), and messages of up to
//! `MAX_FRAME` bytes of JSON travel in one or more records.

use bytes::{Bytes, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use snow::HandshakeState;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use super::auth::{self, Token};
use super::messages::Handshake;
use super::record::{MAX_RECORD, Opener, Sealer, SessionKeys};
use super::{HANDSHAKE_TIMEOUT, ProtoError, VERSION};

/// Largest message either side accepts (a 1 MiB file chunk in base64 fits many times over).
pub const MAX_FRAME: usize = 16 << 20;
/// Largest frame before the handshake succeeded: handshake messages are small, and a
/// stranger must not make the worker buffer megabytes.
pub const HANDSHAKE_FRAME: usize = 4096;
/// Most messages written before one flush.
const BURST: usize = 256;
/// The Noise protocol: no static keys (the token is the only identity), ephemeral
/// Curve25519 keys for forward secrecy, ChaCha20-Poly1305, BLAKE2s.
const NOISE: &str = "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s";
/// Room for a Noise handshake message of this pattern (an ephemeral key and a tag).
const NOISE_MESSAGE: usize = 128;

/// A framed, typed connection over any byte stream (TCP, or in-memory for the embedded worker).
pub struct Connection<S> {
    framed: Framed<S, LengthDelimitedCodec>,
    /// The session's keys, once the handshake succeeded.
    keys: Option<(Sealer, Opener)>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    pub fn new(stream: S) -> Self {
        let codec = LengthDelimitedCodec::builder()
            .max_frame_length(HANDSHAKE_FRAME)
            .new_codec();
        Connection {
            framed: Framed::new(stream, codec),
            keys: None,
        }
    }

    /// Sends a message: sealed once the handshake succeeded, in the clear before.
    pub async fn send<M: Serialize>(&mut self, msg: &M) -> Result<(), ProtoError> {
        self.send_bytes(&encode(msg)?).await
    }

    /// Sends bytes as one message, whatever they are (the fuzz tests send malformed ones).
    pub async fn send_bytes(&mut self, message: &[u8]) -> Result<(), ProtoError> {
        match &mut self.keys {
            Some((sealer, _)) => {
                for record in sealer.seal(message)? {
                    self.framed.feed(Bytes::from(record)).await?;
                }
                SinkExt::<Bytes>::flush(&mut self.framed).await?;
            }
            None => self.framed.send(Bytes::copy_from_slice(message)).await?,
        }
        Ok(())
    }

    /// The next message; `Closed` at the end of the stream.
    pub async fn recv<M: DeserializeOwned>(&mut self) -> Result<M, ProtoError> {
        let message = match &mut self.keys {
            Some((_, opener)) => next_message(&mut self.framed, opener).await?,
            None => next_frame(self.framed.next().await)?.to_vec(),
        };
        decode_message(&message)
    }

    /// Separate halves for a reading task and a writing task: a side that is busy writing
    /// must still read, or two sides writing bursts at each other would both block. Only an
    /// authenticated connection splits: its halves never speak in the clear.
    pub fn split(self) -> Result<(FrameWriter<S>, FrameReader<S>), ProtoError> {
        let (sealer, opener) = self
            .keys
            .ok_or_else(|| ProtoError::Auth("the handshake has not been made".into()))?;
        let (sink, stream) = self.framed.split();
        Ok((FrameWriter { sink, sealer }, FrameReader { stream, opener }))
    }

    /// Controller side: the handshake, then the claim; returns the worker's self-description.
    pub async fn authenticate_to_worker(&mut self, token: &Token) -> Result<String, ProtoError> {
        within_deadline(self.controller_handshake(token)).await
    }

    async fn controller_handshake(&mut self, token: &Token) -> Result<String, ProtoError> {
        let hello = encode(&Handshake::Hello {
            version: VERSION,
            nonce: hex::encode(auth::nonce()),
        })?;
        self.send_bytes(&hello).await?;
        let mut noise = handshake_state(token, &hello, Side::Controller)?;
        let mut buf = [0u8; NOISE_MESSAGE];
        let n = noise.write_message(&[], &mut buf).map_err(noise_error)?;
        self.send(&Handshake::Noise {
            message: hex::encode(&buf[..n]),
        })
        .await?;
        match self.recv().await? {
            Handshake::Noise { message } => {
                if noise.read_message(&decode(&message)?, &mut buf).is_err() {
                    return Err(ProtoError::Auth(
                        "the worker does not hold the same token (or its answer was altered \
                         on the way)"
                            .into(),
                    ));
                }
            }
            Handshake::Refused { reason } => return Err(ProtoError::Refused(reason)),
            other => return Err(unexpected(&other)),
        }
        self.start_session(noise)?;
        self.send(&Handshake::Claim).await?;
        match self.recv().await? {
            Handshake::Welcome { worker } => Ok(worker),
            Handshake::Refused { reason } => Err(ProtoError::Refused(reason)),
            other => Err(unexpected(&other)),
        }
    }

    /// Worker side: the handshake, then the controller's claim. Once the claim came sealed (so
    /// from a controller that holds the token, in this handshake), `claim` decides whether it
    /// gets this worker (the worker serves one at a time): an error is sent as the reason of
    /// a refusal.
    pub async fn authenticate_controller(
        &mut self,
        token: &Token,
        describe: &str,
        claim: impl FnOnce() -> Result<(), String>,
    ) -> Result<(), ProtoError> {
        within_deadline(self.worker_handshake(token, describe, || {}, claim)).await
    }

    /// `authenticate_controller`, and `proven` is called as soon as the controller's first
    /// Noise message shows that it holds the token (before the claim, a round trip later):
    /// the worker's door stops counting it among strangers.
    pub async fn authenticate_controller_admitted(
        &mut self,
        token: &Token,
        describe: &str,
        proven: impl FnOnce(),
        claim: impl FnOnce() -> Result<(), String>,
    ) -> Result<(), ProtoError> {
        within_deadline(self.worker_handshake(token, describe, proven, claim)).await
    }

    async fn worker_handshake(
        &mut self,
        token: &Token,
        describe: &str,
        proven: impl FnOnce(),
        claim: impl FnOnce() -> Result<(), String>,
    ) -> Result<(), ProtoError> {
        let hello = next_frame(self.framed.next().await)?;
        match decode_message(&hello) {
            Ok(Handshake::Hello { version, .. }) if version == VERSION => {}
            Ok(Handshake::Hello { version, .. }) => {
                let reason =
                    format!("protocol version {version} asked, this worker speaks {VERSION}");
                self.refuse(reason).await;
                return Err(ProtoError::Version { theirs: version });
            }
            Ok(other) => return Err(self.refuse_unexpected(&other).await),
            Err(e) => {
                self.refuse(format!("expected a p2plab hello: {e}")).await;
                return Err(e);
            }
        }
        let mut noise = handshake_state(token, &hello, Side::Worker)?;
        let mut buf = [0u8; NOISE_MESSAGE];
        let message = match self.recv().await? {
            Handshake::Noise { message } => decode(&message)?,
            other => return Err(self.refuse_unexpected(&other).await),
        };
        if noise.read_message(&message, &mut buf).is_err() {
            self.refuse(
                "authentication failed: not the worker's token (or the hello was altered on \
                 the way)"
                    .into(),
            )
            .await;
            return Err(ProtoError::Auth(
                "the controller does not hold the token".into(),
            ));
        }
        proven();
        let n = noise.write_message(&[], &mut buf).map_err(noise_error)?;
        self.send(&Handshake::Noise {
            message: hex::encode(&buf[..n]),
        })
        .await?;
        self.start_session(noise)?;
        match self.recv().await? {
            Handshake::Claim => {}
            other => return Err(unexpected(&other)),
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
        .await
    }

    /// Tells the other side why the handshake ends; it may already be gone.
    async fn refuse(&mut self, reason: String) {
        let _ = self.send(&Handshake::Refused { reason }).await;
    }

    async fn refuse_unexpected(&mut self, msg: &Handshake) -> ProtoError {
        let e = unexpected(msg);
        self.refuse(e.to_string()).await;
        e
    }

    /// Records from now on: sealed, and up to `MAX_RECORD` bytes per frame.
    fn start_session(&mut self, noise: HandshakeState) -> Result<(), ProtoError> {
        let transport = noise.into_stateless_transport_mode().map_err(noise_error)?;
        self.keys = Some(SessionKeys::new(transport).halves(MAX_FRAME));
        self.framed.codec_mut().set_max_frame_length(MAX_RECORD);
        Ok(())
    }
}

/// The two ends of the handshake.
#[derive(Clone, Copy)]
enum Side {
    Controller,
    Worker,
}

/// A Noise handshake keyed by the token, bound to the exact `Hello` frame that opened it (a
/// man in the middle who changes it, the version say, makes the handshake fail).
fn handshake_state(token: &Token, hello: &[u8], side: Side) -> Result<HandshakeState, ProtoError> {
    let params = NOISE.parse().map_err(noise_error)?;
    let psk = token.psk();
    let mut prologue = b"p2plab control channel\0".to_vec();
    prologue.extend_from_slice(hello);
    let builder = snow::Builder::new(params)
        .psk(0, &psk)
        .and_then(|b| b.prologue(&prologue))
        .map_err(noise_error)?;
    match side {
        Side::Controller => builder.build_initiator(),
        Side::Worker => builder.build_responder(),
    }
    .map_err(noise_error)
}

fn noise_error(e: snow::Error) -> ProtoError {
    ProtoError::Auth(format!("noise: {e}"))
}

/// The whole handshake gets `HANDSHAKE_TIMEOUT`, not each message: a stranger who trickles
/// bytes cannot keep a connection half-open for longer.
async fn within_deadline<T>(
    handshake: impl Future<Output = Result<T, ProtoError>>,
) -> Result<T, ProtoError> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .map_err(|_| ProtoError::Timeout(HANDSHAKE_TIMEOUT))?
}

/// The writing half of an authenticated connection.
pub struct FrameWriter<S> {
    sink: SplitSink<Framed<S, LengthDelimitedCodec>, Bytes>,
    sealer: Sealer,
}

impl<S: AsyncRead + AsyncWrite + Unpin> FrameWriter<S> {
    pub async fn send<M: Serialize>(&mut self, msg: &M) -> Result<(), ProtoError> {
        self.feed(msg).await?;
        self.sink.flush().await?;
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
            self.feed(&msg).await?;
            n += 1;
            next = if n < BURST { queued() } else { None };
        }
        self.sink.flush().await?;
        Ok(())
    }

    async fn feed<M: Serialize>(&mut self, msg: &M) -> Result<(), ProtoError> {
        for record in self.sealer.seal(&encode(msg)?)? {
            self.sink.feed(Bytes::from(record)).await?;
        }
        Ok(())
    }
}

/// The reading half of an authenticated connection.
pub struct FrameReader<S> {
    stream: SplitStream<Framed<S, LengthDelimitedCodec>>,
    opener: Opener,
}

impl<S: AsyncRead + AsyncWrite + Unpin> FrameReader<S> {
    /// The next message; `Closed` at the end of the stream.
    pub async fn recv<M: DeserializeOwned>(&mut self) -> Result<M, ProtoError> {
        decode_message(&next_message(&mut self.stream, &mut self.opener).await?)
    }
}

/// Opens records until one completes a message.
async fn next_message<F>(frames: &mut F, opener: &mut Opener) -> Result<Vec<u8>, ProtoError>
where
    F: futures_util::Stream<Item = Result<BytesMut, std::io::Error>> + Unpin,
{
    loop {
        let record = next_frame(frames.next().await)?;
        if let Some(message) = opener.open(&record)? {
            return Ok(message);
        }
    }
}

fn next_frame(frame: Option<Result<BytesMut, std::io::Error>>) -> Result<BytesMut, ProtoError> {
    match frame {
        Some(Ok(frame)) => Ok(frame),
        // The codec reports an over-long frame as InvalidData.
        Some(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
            Err(ProtoError::Malformed(e.to_string()))
        }
        Some(Err(e)) => Err(e.into()),
        None => Err(ProtoError::Closed),
    }
}

fn encode<M: Serialize>(msg: &M) -> Result<Vec<u8>, ProtoError> {
    let bytes = serde_json::to_vec(msg).map_err(|e| ProtoError::Malformed(e.to_string()))?;
    if bytes.len() > MAX_FRAME {
        return Err(ProtoError::Malformed(format!(
            "a message of {} bytes is longer than {MAX_FRAME}",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// One message from its bytes: the decoder every frame a peer sends goes through.
pub fn decode_message<M: DeserializeOwned>(bytes: &[u8]) -> Result<M, ProtoError> {
    serde_json::from_slice(bytes).map_err(|e| ProtoError::Malformed(e.to_string()))
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
        // The worker finds out first, from the first Noise message, and says so.
        assert!(
            matches!(&c, Err(ProtoError::Refused(r)) if r.contains("not the worker's token")),
            "{c:?}"
        );
        assert!(matches!(w, Err(ProtoError::Auth(_))), "{w:?}");
    }

    #[test]
    fn another_version_is_told_both_versions() {
        rt().block_on(async {
            let (a, b) = tokio::io::duplex(1 << 16);
            let (mut c, mut w) = (Connection::new(a), Connection::new(b));
            let t = token("secret-secret-secret");
            let (refused, theirs) = tokio::join!(
                async move {
                    // What a p2plab of protocol version 2 sent first.
                    c.send(&Handshake::Hello {
                        version: 2,
                        nonce: hex::encode([1u8; 32]),
                    })
                    .await
                    .unwrap();
                    c.recv::<Handshake>().await
                },
                async move { w.authenticate_controller(&t, "w0", || Ok(())).await }
            );
            let Ok(Handshake::Refused { reason }) = refused else {
                panic!("{refused:?}")
            };
            assert_eq!(
                reason,
                format!("protocol version 2 asked, this worker speaks {VERSION}")
            );
            assert!(matches!(theirs, Err(ProtoError::Version { theirs: 2 })));
        });
    }

    #[test]
    fn after_the_handshake_messages_of_any_size_are_sealed_both_ways() {
        rt().block_on(async {
            let (a, b) = tokio::io::duplex(1 << 16);
            let (mut c, mut w) = (Connection::new(a), Connection::new(b));
            let (tc, tw) = (token("secret-secret-secret"), token("secret-secret-secret"));
            let (r1, r2) = tokio::join!(
                c.authenticate_to_worker(&tc),
                w.authenticate_controller(&tw, "w0", || Ok(()))
            );
            r1.unwrap();
            r2.unwrap();
            let big = "x".repeat(3 << 20);
            let ((), got) = tokio::join!(
                async {
                    c.send(&big).await.unwrap();
                    c.send(&"small").await.unwrap();
                },
                async {
                    let a: String = w.recv().await.unwrap();
                    let b: String = w.recv().await.unwrap();
                    (a, b)
                }
            );
            assert_eq!(got, (big, "small".to_string()));
            // The halves go on counting where the connection stopped.
            let (mut cw, _cr) = c.split().unwrap();
            let (_ww, mut wr) = w.split().unwrap();
            cw.send(&"after split").await.unwrap();
            assert_eq!(wr.recv::<String>().await.unwrap(), "after split");
        });
    }

    #[test]
    fn a_connection_that_never_shook_hands_does_not_split() {
        let (a, _b) = tokio::io::duplex(64);
        assert!(matches!(
            Connection::new(a).split(),
            Err(ProtoError::Auth(_))
        ));
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
