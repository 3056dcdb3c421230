//! One controller's session on a worker: the protocol side (an async task that reads requests,
//! writes replies and events, and exchanges heartbeats) and the lab side (a plain thread that
//! owns the lab, any `Executor` a `LabBuilder` makes, and carries the requests out in order).
//! When the controller stops the session, closes the connection or falls silent, the thread
//! drops the lab: for a machine's `LocalWorker`, processes killed and namespace removed.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use std::os::unix::fs::OpenOptionsExt;

use base64::Engine;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use super::node_files;
use crate::experiment::{Executor, NodeFile};
use crate::proto::frame::FrameWriter;
use crate::proto::wire::{Counters, Exit, Health, WireOutcome};
use crate::proto::{
    Binding, Connection, Failure, HEARTBEAT, ProtoError, Reply, Request, SILENCE, SILENCE_CHECK,
    Setup, ToController, ToWorker,
};

/// How often the lab thread looks for processes that ended.
const EXIT_POLL: Duration = Duration::from_millis(20);
/// Bytes of a file per `File` event.
const CHUNK: usize = 1 << 20;
/// Messages queued towards the controller before the lab thread waits for the network.
const OUTBOX: usize = 1024;
/// Longest wait to tell a controller why its session ends.
const FAREWELL: Duration = Duration::from_secs(1);

/// Builds the lab a session's requests run on, at the controller's `Setup`.
pub trait LabBuilder: Send + 'static {
    type Lab: Executor;
    /// The lab of one run, the name of its network namespace and how it binds programs.
    fn build(&mut self, setup: Setup) -> Result<(Self::Lab, String, Binding), Failure>;

    /// Removes a lab at the end of its run; returns its data plane's counters by name.
    fn close(&mut self, lab: Self::Lab) -> BTreeMap<String, u64> {
        drop(lab);
        BTreeMap::new()
    }
}

pub struct SessionOptions {
    /// Where node folders are (`<dir>/nodes/<ip>/`), for `Collect`.
    pub dir: PathBuf,
    /// Whether `Collect` sends the node folders (a remote worker) or has nothing to do (the
    /// embedded worker writes straight into the results folder).
    pub collect: bool,
    /// Ends the session on Ctrl-C/SIGTERM: the daemon's sessions do; the embedded worker's
    /// does not, since its controller shares the signal and still needs it to stop the run.
    pub watch_interrupt: bool,
}

/// How a session ended, for the worker's log.
#[derive(Debug)]
pub enum SessionEnd {
    Stopped,
    Lost(ProtoError),
    Silent,
    Interrupted,
}

/// Serves one authenticated controller until the session ends; the lab is gone on return.
pub async fn serve<S, B>(conn: Connection<S>, opts: SessionOptions, builder: B) -> SessionEnd
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    B: LabBuilder,
{
    let (writer, mut reader) = match conn.split() {
        Ok(halves) => halves,
        Err(e) => return SessionEnd::Lost(e),
    };
    let (requests, lab_requests) = std_mpsc::channel::<(u64, Request)>();
    let (outbox, to_send) = mpsc::channel::<ToController>(OUTBOX);
    let watch_interrupt = opts.watch_interrupt;
    // The lab thread logs in the session's span (the worker, the controller it serves).
    let span = tracing::Span::current();
    let lab = std::thread::Builder::new()
        .name("p2plab-session".into())
        .spawn(move || span.in_scope(|| lab_thread(opts, builder, lab_requests, outbox)));
    let lab = match lab {
        Ok(t) => t,
        Err(e) => return SessionEnd::Lost(ProtoError::Io(e)),
    };
    let (last_words, farewell) = mpsc::channel(1);
    let mut last_words = Some(last_words);
    // The writer ends when the lab thread has ended (its outbox closed): the lab is gone.
    let mut writer = tokio::spawn(write_loop(writer, to_send, farewell));
    let mut requests = Some(requests);
    let mut check = tokio::time::interval(SILENCE_CHECK);
    let mut heard = Instant::now();
    let mut end = None;
    // When the writer, given last words, must be done: a write already blocked on a
    // controller that does not read would otherwise hold the session, and the lab, forever.
    let mut farewell_by = None;
    loop {
        let ended = end.is_some();
        let give_up = tokio::time::sleep_until(
            farewell_by.unwrap_or_else(|| tokio::time::Instant::now() + SILENCE),
        );
        tokio::select! {
            biased;
            msg = reader.recv::<ToWorker>(), if !ended => match msg {
                Ok(ToWorker::Heartbeat) => heard = Instant::now(),
                Ok(ToWorker::Request { id, body }) => {
                    heard = Instant::now();
                    let stop = body == Request::Stop;
                    if let Some(r) = &requests {
                        let _ = r.send((id, body));
                    }
                    if stop {
                        end = Some(SessionEnd::Stopped);
                    }
                }
                Err(e) => {
                    // A record that failed its check, or an authentic one that makes no sense:
                    // the controller is told why before the session ends. Nothing of it runs.
                    if matches!(e, ProtoError::Integrity(_) | ProtoError::Malformed(_))
                        && let Some(tell) = last_words.take()
                    {
                        let _ = tell.try_send(e.to_string());
                        farewell_by = Some(tokio::time::Instant::now() + 2 * FAREWELL);
                    }
                    end = Some(SessionEnd::Lost(e));
                    requests = None;
                }
            },
            _ = check.tick(), if !ended => {
                if heard.elapsed() > SILENCE {
                    end = Some(SessionEnd::Silent);
                    requests = None;
                } else if watch_interrupt && crate::interrupt::requested() {
                    end = Some(SessionEnd::Interrupted);
                    requests = None;
                }
            },
            _ = &mut writer => break,
            () = give_up, if farewell_by.is_some() => writer.abort(),
        }
        // Nobody will read what is left to send: stop writing, so that a lab thread blocked
        // on a full outbox (a stalled controller during Collect) sees the channel close and
        // removes the lab now, not when TCP gives up. A writer with last words to say ends
        // by itself, within `FAREWELL`.
        if !ended && requests.is_none() && last_words.is_some() {
            writer.abort();
        }
    }
    let _ = tokio::task::spawn_blocking(move || lab.join()).await;
    end.unwrap_or(SessionEnd::Lost(ProtoError::Closed))
}

/// Writes replies and events as they come, and a heartbeat every `HEARTBEAT`; given last words,
/// sends them as the session's last message and ends. After a write error it keeps draining
/// the outbox, so the lab thread never blocks on a dead connection.
async fn write_loop<S>(
    mut writer: FrameWriter<S>,
    mut to_send: mpsc::Receiver<ToController>,
    mut farewell: mpsc::Receiver<String>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    loop {
        let sent = tokio::select! {
            // Last words come first: the outbox closes right behind them, as the lab goes.
            biased;
            Some(reason) = farewell.recv() => {
                let abort = ToController::Abort { reason };
                let _ = tokio::time::timeout(FAREWELL, writer.send(&abort)).await;
                return;
            },
            out = to_send.recv() => match out {
                Some(msg) => writer.send_burst(msg, || to_send.try_recv().ok()).await,
                None => return,
            },
            _ = heartbeat.tick() => writer.send(&ToController::Heartbeat).await,
        };
        if sent.is_err() {
            break;
        }
    }
    while to_send.recv().await.is_some() {}
}

/// Owns the lab: carries out requests in order, reports exits, and drops the lab at the end.
fn lab_thread<B: LabBuilder>(
    opts: SessionOptions,
    mut builder: B,
    requests: std_mpsc::Receiver<(u64, Request)>,
    outbox: mpsc::Sender<ToController>,
) {
    let mut lab: Option<B::Lab> = None;
    let mut last_poll = Instant::now();
    loop {
        match requests.recv_timeout(EXIT_POLL) {
            Ok((id, request)) => {
                tracing::debug!(id, "{}", request.kind());
                let stop = request == Request::Stop;
                let result = match request {
                    Request::Collect if opts.collect => {
                        handle(&mut builder, &mut lab, &opts.dir, Request::Collect)
                            .and_then(|_| collect(&opts.dir, &outbox))
                    }
                    request => handle(&mut builder, &mut lab, &opts.dir, request),
                };
                if let Err(e) = &result {
                    tracing::debug!(id, "refused: {e}");
                }
                if outbox
                    .blocking_send(ToController::Reply { id, result })
                    .is_err()
                    || stop
                {
                    break;
                }
            }
            Err(std_mpsc::RecvTimeoutError::Timeout) => {}
            Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if last_poll.elapsed() >= EXIT_POLL
            && let Some(worker) = lab.as_mut()
        {
            last_poll = Instant::now();
            for (_, exit) in worker.drain_exits().unwrap_or_default() {
                let exit = Exit::from(&exit);
                let _ = outbox.blocking_send(ToController::Exit { exit });
            }
        }
    }
    drop(lab);
}

/// Carries out one request; `dir` is where the node folders are.
fn handle<B: LabBuilder>(
    builder: &mut B,
    lab: &mut Option<B::Lab>,
    dir: &Path,
    request: Request,
) -> Result<Reply, Failure> {
    match request {
        Request::Setup(setup) => {
            if lab.is_some() {
                return Err(Failure::LabExists);
            }
            let (built, namespace, binding) = builder.build(setup)?;
            *lab = Some(built);
            Ok(Reply::Lab { namespace, binding })
        }
        // The reply says the lab is gone, so it goes first.
        Request::Stop => Ok(Reply::Stopped {
            dataplane: lab.take().map(|l| builder.close(l)).unwrap_or_default(),
        }),
        // What the lab still holds is written out first; the embedded worker writes node
        // folders straight into the results, the daemon's session sends them afterwards.
        Request::Collect => {
            if let Some(worker) = lab.as_mut() {
                worker.finish().map_err(|e| Failure::from(&e))?;
            }
            Ok(Reply::Done)
        }
        Request::Act { action } => {
            let worker = lab.as_mut().ok_or(Failure::NoLab)?;
            worker
                .execute(&action.into_action()?)
                .map(|outcome| Reply::Outcome {
                    outcome: WireOutcome::from(&outcome),
                })
                .map_err(|e| Failure::from(&e))
        }
        Request::ReadFile { ip, file } => read_file(dir, ip, &file),
        Request::Traffic { interval } => {
            let worker = lab.as_mut().ok_or(Failure::NoLab)?;
            let reading = worker.traffic(interval);
            Ok(Reply::Traffic {
                nodes: reading
                    .nodes
                    .iter()
                    .map(|(ip, c)| (*ip, Counters::from(c)))
                    .collect(),
                health: reading.health.first().map(|(_, h)| Health::from(h)),
            })
        }
    }
}

/// One file of the node at `ip`'s folder, in base64 (`None` if it does not exist).
fn read_file(dir: &Path, ip: Ipv4Addr, file: &str) -> Result<Reply, Failure> {
    let file = NodeFile::parse(file).map_err(|message| Failure::Other { message })?;
    let data = node_files::read(dir, ip, &file).map_err(|e| Failure::Other {
        message: e.to_string(),
    })?;
    Ok(Reply::NodeFile {
        data: data.map(|d| base64::engine::general_purpose::STANDARD.encode(d)),
    })
}

/// Every file under `<dir>/nodes`, as `File` events with paths relative to `dir`.
pub fn collect(dir: &Path, outbox: &mpsc::Sender<ToController>) -> Result<Reply, Failure> {
    let mut files = Vec::new();
    let failed = |message: String| Failure::Collect { message };
    list_files(&dir.join("nodes"), &mut files)
        .map_err(|e| failed(format!("listing node folders: {e}")))?;
    for file in files {
        let Ok(rel) = file.strip_prefix(dir) else {
            continue;
        };
        let rel = rel.to_string_lossy().into_owned();
        // Not through a symlink a node's program may have put in place since the listing
        // (the worker reads as root), and a regular file only.
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&file)
            .map_err(|e| failed(format!("reading {rel}: {e}")))?;
        if !f.metadata().is_ok_and(|m| m.is_file()) {
            continue;
        }
        // In chunks, so a large download in a node folder is never held whole in memory.
        let mut buf = vec![0u8; CHUNK];
        let mut offset = 0u64;
        loop {
            let n =
                read_full(&mut f, &mut buf).map_err(|e| failed(format!("reading {rel}: {e}")))?;
            // An empty file is sent too, so it exists on the controller.
            if n > 0 || offset == 0 {
                let data = base64::engine::general_purpose::STANDARD.encode(&buf[..n]);
                outbox
                    .blocking_send(ToController::File {
                        path: rel.clone(),
                        offset,
                        data,
                    })
                    .map_err(|_| failed("the connection closed".into()))?;
            }
            offset += n as u64;
            if n < CHUNK {
                break;
            }
        }
    }
    Ok(Reply::Done)
}

/// Reads until `buf` is full or the file ends.
fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::io::Read;
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn list_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            list_files(&entry.path(), out)?;
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}
