//! The controller's connection to one worker, as two tasks: a reader that hands replies to
//! whoever waits for them, records exits and writes collected files, and a writer that sends
//! requests in bursts and heartbeats. A connection that closes or falls silent marks the
//! worker lost.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use super::collected::write_collected;
use crate::clock::MonotonicClock;
use crate::experiment::{ExecError, ProcExit};
use crate::proto::frame::FrameWriter;
use crate::proto::{
    Connection, Failure, HEARTBEAT, ProtoError, Reply, SILENCE, SILENCE_CHECK, ToController,
    ToWorker,
};
use crate::units::Nanos;

/// What the reader task shares with the executor.
#[derive(Default)]
pub struct LinkState {
    inner: Mutex<LinkInner>,
}

#[derive(Default)]
pub struct LinkInner {
    pub pending: HashMap<u64, Pending>,
    pub exits: Vec<(Nanos, ProcExit)>,
    /// Why the connection ended, if it did.
    pub lost: Option<String>,
    /// An error met by a pipelined request or while writing a collected file.
    pub error: Option<ExecError>,
}

/// Someone waits for the reply to a request, or no one does (pipelined).
pub enum Pending {
    Waiting(std_mpsc::Sender<Result<Reply, Failure>>),
    Detached,
}

impl LinkState {
    pub fn lock(&self) -> MutexGuard<'_, LinkInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Reads frames from a worker and hands them over; a writer task beside it sends requests and
/// heartbeats, so that a burst of requests never keeps replies from being read.
pub async fn link_task<S>(
    conn: Connection<S>,
    out: mpsc::UnboundedReceiver<ToWorker>,
    state: Arc<LinkState>,
    results: PathBuf,
    clock: MonotonicClock,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (writer, mut reader) = match conn.split() {
        Ok(halves) => halves,
        Err(e) => {
            state.lock().lost = Some(e.to_string());
            return;
        }
    };
    let mut writer = tokio::spawn(write_loop(writer, out));
    let mut check = tokio::time::interval(SILENCE_CHECK);
    let mut heard = Instant::now();
    let reason = loop {
        tokio::select! {
            // Frames first: after a stall, a heartbeat already read must count before the
            // silence check looks at the clock.
            biased;
            frame = reader.recv::<ToController>() => {
                heard = Instant::now();
                match frame {
                    Ok(ToController::Heartbeat) => {}
                    Ok(ToController::Reply { id, result }) => {
                        let mut s = state.lock();
                        match s.pending.remove(&id) {
                            Some(Pending::Waiting(tx)) => {
                                let _ = tx.send(result);
                            }
                            Some(Pending::Detached) => {
                                if let Err(e) = result {
                                    tracing::debug!(request = id, "pipelined request failed: {e}");
                                    s.error.get_or_insert(e.into());
                                }
                            }
                            None => {}
                        }
                    }
                    Ok(ToController::Exit { exit }) => {
                        state.lock().exits.push((clock.now(), exit.into()));
                    }
                    Ok(ToController::File { path, offset, data }) => {
                        if let Err(e) = write_collected(&results, &path, offset, &data) {
                            state.lock().error.get_or_insert(ExecError::Results(Box::new(e)));
                        }
                    }
                    Ok(ToController::Abort { reason }) => {
                        break format!("it ended the session: {reason}");
                    }
                    Err(ProtoError::Closed) => break "the connection closed".to_string(),
                    Err(e) => break e.to_string(),
                }
            },
            _ = check.tick() => {
                if heard.elapsed() > SILENCE {
                    break format!("no heartbeat for {:.1} s", heard.elapsed().as_secs_f64());
                }
            },
            ended = &mut writer => match ended {
                // The controller is done with this worker.
                Ok(None) => return,
                Ok(Some(e)) => break e,
                Err(e) => break e.to_string(),
            },
        }
    };
    writer.abort();
    tracing::debug!("connection lost: {reason}");
    let mut s = state.lock();
    s.lost = Some(reason);
    // Whoever waits for a reply learns of the loss from the closed channel.
    s.pending.clear();
}

/// Sends requests as they come and a heartbeat every `HEARTBEAT`; returns the write error
/// that ended it, or `None` when the controller closed the queue.
async fn write_loop<S>(
    mut writer: FrameWriter<S>,
    mut out: mpsc::UnboundedReceiver<ToWorker>,
) -> Option<String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    loop {
        let sent = tokio::select! {
            msg = out.recv() => match msg {
                Some(msg) => writer.send_burst(msg, || out.try_recv().ok()).await,
                None => return None,
            },
            _ = heartbeat.tick() => writer.send(&ToWorker::Heartbeat).await,
        };
        if let Err(e) = sent {
            return Some(e.to_string());
        }
    }
}
