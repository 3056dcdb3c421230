//! `p2plab worker`: the daemon of one machine. It listens for controllers on a TCP port and
//! receives other workers' packets on the UDP port of the same number; each connection must
//! authenticate within a few seconds (and only so many may try at once: `admission`), and one
//! authenticated controller at a time gets a session.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::MachineLabs;
use super::admission::{Admission, MAX_PENDING, MAX_PER_SOURCE};
use super::session::{self, SessionEnd, SessionOptions};
use crate::proto::{Connection, ProtoError, Token};
use tracing::Instrument;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the scratch folder {path}: {source}")]
    Scratch {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

pub struct ServerOptions {
    pub listen: SocketAddr,
    pub token: Token,
    /// Where sessions keep their nodes' folders until the controller collected them.
    pub dir: PathBuf,
    pub shim: PathBuf,
}

/// A bound worker, not yet serving: the caller learns the real port (for `--listen :0`).
pub struct Server {
    opts: ServerOptions,
    tcp: TcpListener,
    udp: UdpSocket,
}

impl Server {
    pub fn bind(opts: ServerOptions) -> Result<Server, ServerError> {
        let listen = opts.listen;
        let err = |source| ServerError::Listen {
            addr: listen,
            source,
        };
        let tcp = TcpListener::bind(listen).map_err(err)?;
        let local = tcp.local_addr().map_err(err)?;
        let udp = UdpSocket::bind(local).map_err(err)?;
        set_buffers(&udp);
        tcp.set_nonblocking(true).map_err(err)?;
        std::fs::create_dir_all(&opts.dir).map_err(|source| ServerError::Scratch {
            path: opts.dir.display().to_string(),
            source,
        })?;
        Ok(Server { opts, tcp, udp })
    }

    pub fn local_addr(&self) -> Result<SocketAddr, ServerError> {
        self.tcp.local_addr().map_err(|source| ServerError::Listen {
            addr: self.opts.listen,
            source,
        })
    }

    /// Serves controllers until Ctrl-C or SIGTERM; a session in progress removes its lab first.
    pub fn run(self) -> Result<(), ServerError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(ServerError::Runtime)?;
        runtime.block_on(self.accept_loop())
    }

    async fn accept_loop(self) -> Result<(), ServerError> {
        let listen = self.opts.listen;
        let listener =
            tokio::net::TcpListener::from_std(self.tcp).map_err(|source| ServerError::Listen {
                addr: listen,
                source,
            })?;
        let shared = Arc::new(Shared {
            token: self.opts.token,
            dir: self.opts.dir,
            shim: self.opts.shim,
            udp: self.udp,
            busy: AtomicBool::new(false),
            sessions: AtomicU64::new(0),
            admission: Mutex::new(Admission::new(MAX_PENDING, MAX_PER_SOURCE)),
        });
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
        let mut sessions = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        sessions.spawn(serve_connection(shared.clone(), stream, peer));
                    }
                    Err(e) => {
                        // Out of descriptors, say: wait instead of spinning on the error.
                        tracing::warn!("accept: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                },
                _ = tick.tick() => {
                    while sessions.try_join_next().is_some() {}
                    if crate::interrupt::requested() {
                        break;
                    }
                }
            }
        }
        // Sessions notice the interrupt themselves and remove their labs.
        while sessions.join_next().await.is_some() {}
        Ok(())
    }
}

struct Shared {
    token: Token,
    dir: PathBuf,
    shim: PathBuf,
    udp: UdpSocket,
    busy: AtomicBool,
    sessions: AtomicU64,
    /// Connections half-way through the handshake, each with the sender that lets it go.
    admission: Mutex<Admission<oneshot::Sender<()>>>,
}

impl Shared {
    /// A ticket for a new connection, and the signal that it must give way to newer ones.
    fn admit(&self, peer: SocketAddr) -> (u64, oneshot::Receiver<()>) {
        let (release, released) = oneshot::channel();
        let mut admission = self.admission();
        let (ticket, evicted) = admission.admit(peer.ip(), release);
        if !evicted.is_empty() {
            let pending = admission.pending();
            tracing::debug!(%peer, pending, "too many handshakes at once: the oldest gives way");
        }
        for e in evicted {
            let _ = e.send(());
        }
        (ticket, released)
    }

    fn admission(&self) -> std::sync::MutexGuard<'_, Admission<oneshot::Sender<()>>> {
        self.admission.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Holds the worker for one controller; lets it go when dropped, however the holder ends.
struct Claim<'a>(&'a AtomicBool);

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// A connection's place among those half-way through a handshake, given up when dropped.
struct Pending<'a> {
    shared: &'a Shared,
    ticket: u64,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.shared.admission().done(self.ticket);
    }
}

/// At most this much of a stranger's refusal reason goes into a log line.
const LOGGED_REASON: usize = 200;

async fn serve_connection(shared: Arc<Shared>, stream: tokio::net::TcpStream, peer: SocketAddr) {
    let mut conn = Connection::new(stream);
    // The worker is claimed only by a controller whose claim came sealed, before it is
    // welcomed.
    let mut claimed = None;
    let claim = || {
        if shared.busy.swap(true, Ordering::SeqCst) {
            return Err("this worker is serving another controller; one run at a time".into());
        }
        claimed = Some(Claim(&shared.busy));
        Ok(())
    };
    let describe = format!(
        "p2plab worker {} on {}",
        env!("CARGO_PKG_VERSION"),
        hostname()
    );
    let (ticket, released) = shared.admit(peer);
    let mut pending = Some(Pending {
        shared: &shared,
        ticket,
    });
    // Once the controller's first Noise message holds, it is no stranger: strangers can no
    // longer push it out.
    let proven = || pending = None;
    let handshake = tokio::select! {
        // A handshake that is done wins over a release that came at the same time.
        biased;
        done = conn.authenticate_controller_admitted(&shared.token, &describe, proven, claim) => done,
        Ok(()) = released => Err(ProtoError::Refused(
            "let go: newer connections are waiting to authenticate".into(),
        )),
    };
    drop(pending);
    if let Err(e) = handshake {
        drop(claimed);
        let why = match e {
            ProtoError::Refused(why) => why,
            e => e.to_string(),
        };
        let why: String = why.chars().take(LOGGED_REASON).collect();
        tracing::warn!(%peer, "refused: {why}");
        return;
    }
    let n = shared.sessions.fetch_add(1, Ordering::SeqCst);
    let dir = shared
        .dir
        .join(format!("session-{}-{n}", std::process::id()));
    let span = tracing::info_span!("session", n, %peer);
    run_session(&shared, conn, dir).instrument(span).await;
    drop(claimed);
}

/// One authenticated controller's session, in its own scratch folder `dir`.
async fn run_session(shared: &Shared, conn: Connection<tokio::net::TcpStream>, dir: PathBuf) {
    tracing::info!("controller connected");
    let labs = MachineLabs {
        dir: dir.clone(),
        shim: shared.shim.clone(),
        socket: shared.udp.try_clone().ok(),
    };
    let opts = SessionOptions {
        dir: dir.clone(),
        collect: true,
        watch_interrupt: true,
    };
    let end = session::serve(conn, opts, labs).await;
    // Node folders were sent to the controller (or the controller is gone).
    let _ = std::fs::remove_dir_all(&dir);
    match end {
        SessionEnd::Stopped => tracing::info!("session ended; lab removed"),
        SessionEnd::Lost(e) => tracing::warn!("controller lost ({e}); lab removed"),
        SessionEnd::Silent => tracing::warn!("controller silent for too long; lab removed"),
        SessionEnd::Interrupted => tracing::info!("interrupted; lab removed"),
    }
}

/// Large socket buffers: a burst of datagrams from a fast flow must not overflow the default.
/// The kernel caps them at `net.core.{r,w}mem_max`; smaller buffers still work, so a refusal
/// is only logged.
fn set_buffers(socket: &UdpSocket) {
    use nix::sys::socket::{setsockopt, sockopt};
    let size = 4 << 20;
    if let Err(e) = setsockopt(socket, sockopt::RcvBuf, &size)
        .and_then(|()| setsockopt(socket, sockopt::SndBuf, &size))
    {
        tracing::warn!("data-plane socket buffers stay at their default: {e}");
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}
