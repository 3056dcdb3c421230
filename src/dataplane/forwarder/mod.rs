//! The data-plane thread and its handle. The thread runs the link model (`model::Fabric`) on
//! real packets between the lab's TUN device and the kernel (`forwarding`), with TCP
//! super-packets only while they change nothing (`offload`); a packet for a node of another
//! worker leaves in a UDP datagram after the sending half of the model, and datagrams from
//! other workers are checked before the receiving half takes them (`remote`), both sent and
//! read in batches of datagrams (`batch`). Super-packets
//! keep the buffer they were read into (`buffers`); on a shaped route they travel as their
//! segments, and segments due together are written together (`runs`). The thread sleeps on the TUN device, the
//! UDP socket, a timerfd armed at the earliest deadline and a waker for commands (`wakeup`);
//! the rest of the worker talks to it only through `Dataplane`.

mod batch;
mod buffers;
mod forwarding;
mod offload;
mod priority;
pub use priority::FIFO_PRIORITY;
mod remote;
mod runs;
mod wakeup;

use std::fs::File;
use std::io::{self, BufWriter};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use crate::clock::MonotonicClock;
use crate::experiment::{DataplaneHealth, GroupLink, LinkShape, LinkTrace, NodeCounters, TraceId};

use super::capture::Capture;
use super::tun::TunDevice;
use forwarding::Forwarder;
pub use remote::RemoteLinks;
use wakeup::Wakeups;

/// What the controller asks of the data plane; applied before the next packet is handled.
pub enum Command {
    /// A node; `home` is the data plane of the worker it lives on, `None` for this one.
    AddNode {
        ip: Ipv4Addr,
        group: u32,
        home: Option<SocketAddr>,
    },
    SetParams {
        ip: Ipv4Addr,
        params: LinkShape,
    },
    SetGroupLink {
        a: u32,
        b: u32,
        params: GroupLink,
    },
    /// `SetGroupLink` from `a` to each of many groups.
    SetGroupRow {
        a: u32,
        links: Vec<(u32, GroupLink)>,
    },
    /// A trace that links may name from now on.
    LoadTrace {
        id: TraceId,
        trace: Arc<LinkTrace>,
    },
    SetFailed {
        ip: Ipv4Addr,
        failed: bool,
    },
    /// Captures the packets a local node sends and receives, until `StopCapture`.
    Capture {
        ip: Ipv4Addr,
        capture: Capture<BufWriter<File>>,
    },
    StopCapture {
        ip: Ipv4Addr,
    },
    /// Ends every capture, its file written out, before the reply.
    StopCaptures(mpsc::Sender<()>),
    /// This worker's nodes' totals; with `interval`, also the health since the last such
    /// reading (its overruns are the worker's to count: 0 here).
    Counters {
        interval: bool,
        reply: mpsc::Sender<Counted>,
    },
    /// Answered once every command sent before it is in force.
    Barrier(mpsc::Sender<()>),
    Stop,
}

/// What `Command::Counters` returns.
pub type Counted = (Vec<(Ipv4Addr, NodeCounters)>, Option<DataplaneHealth>);

/// Packets that did not belong to two nodes (passed through unshaped), write errors, and
/// the datagrams exchanged with other workers: each refused one under the first check it
/// failed, in the order they are made (source, format, run, tag and pair, replay window,
/// destination). Then how late the packets the link model delivered left, and the thread's
/// CPU time, both as of `Stop`, and what the packet captures wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ForwarderStats {
    pub passed_through: u64,
    pub write_errors: u64,
    pub remote_sent: u64,
    /// Datagrams the socket refused, or for an address that is no worker of the run.
    pub remote_send_errors: u64,
    /// Datagrams whose packet went on to a node of this worker.
    pub remote_received: u64,
    /// From an address that is no other worker of the run.
    pub remote_stranger: u64,
    /// Too short, not of this protocol, or framed differently.
    pub remote_malformed: u64,
    pub remote_other_run: u64,
    /// The tag did not verify, or the header named another pair of workers.
    pub remote_forged: u64,
    /// A counter seen already, or older than the replay window.
    pub remote_replayed: u64,
    /// Authentic, but for no node of this worker.
    pub remote_misaddressed: u64,
    /// Packets the link model delivered, each timed from its deadline to its write (one that
    /// failed too: it is counted in `write_errors` as well).
    pub timed_packets: u64,
    /// Median and 99th percentile of that lateness (< 0.8 % above the true value), and its
    /// exact maximum; 0 without timed packets.
    pub late_p50_ns: u64,
    pub late_p99_ns: u64,
    pub late_max_ns: u64,
    /// CPU time the data-plane thread used, user and system.
    pub cpu_ns: u64,
    /// TCP super-packets that travelled as their segments (a shaped or lossy route), and
    /// the packets those segments were written back in (runs of segments due together).
    pub cut_super_packets: u64,
    pub segment_runs: u64,
    /// Packets written into the captures of nodes.
    pub captured_packets: u64,
    /// Captures of nodes that reached their `max_size` and stopped there.
    pub capture_capped: u64,
    /// Captures of nodes stopped because their file could not be written.
    pub capture_errors: u64,
}

/// The handle of a running data plane; stopping or dropping it ends the thread.
pub struct Dataplane {
    commands: mpsc::Sender<Command>,
    waker: Arc<mio::Waker>,
    thread: Option<JoinHandle<io::Result<ForwarderStats>>>,
}

impl Dataplane {
    /// Starts the forwarding thread on `tun`; `seed` drives loss and jitter draws.
    pub fn start(
        tun: TunDevice,
        clock: MonotonicClock,
        seed: u64,
        remote: Option<RemoteLinks>,
    ) -> io::Result<Self> {
        if let Some(r) = &remote {
            r.socket.set_nonblocking(true)?;
        }
        let (wakeups, waker) = Wakeups::new(&tun, remote.as_ref().map(|r| &r.socket))?;
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("p2plab-dataplane".into())
            .spawn(move || {
                let scheduling = priority::raise();
                tracing::debug!(?scheduling, "data-plane thread");
                Forwarder::new(tun, wakeups, clock, seed, remote).run(rx)
            })?;
        Ok(Dataplane {
            commands: tx,
            waker,
            thread: Some(thread),
        })
    }

    pub fn send(&self, cmd: Command) {
        // A closed channel means the thread ended; `stop` reports why. A wake can only fail
        // if the eventfd behind the waker does, which nothing here can cause.
        if self.commands.send(cmd).is_ok() {
            let _ = self.waker.wake();
        }
    }

    /// Per-node counters, read from the running thread; with `interval`, also the health
    /// of the interval this reading ends.
    pub fn counters(&self, interval: bool) -> Counted {
        let (tx, rx) = mpsc::channel();
        self.send(Command::Counters {
            interval,
            reply: tx,
        });
        rx.recv().unwrap_or_default()
    }

    /// Ends every capture of nodes, their files written out.
    pub fn stop_captures(&self) {
        let (tx, rx) = mpsc::channel();
        self.send(Command::StopCaptures(tx));
        let _ = rx.recv();
    }

    /// Returns once every command sent so far applies, so that what happens next (say, a
    /// killed process's reset) meets the new state.
    pub fn barrier(&self) {
        let (tx, rx) = mpsc::channel();
        self.send(Command::Barrier(tx));
        let _ = rx.recv();
    }

    /// The error that ended the thread early, if it did (the lab's traffic then goes nowhere).
    pub fn check(&mut self) -> io::Result<()> {
        if self.thread.as_ref().is_some_and(|t| t.is_finished()) {
            return self
                .join()
                .map(drop)
                .and(Err(io::Error::other("the thread ended")));
        }
        Ok(())
    }

    /// Stops the thread and returns its statistics or the error that ended it.
    pub fn stop(mut self) -> io::Result<ForwarderStats> {
        self.join()
    }

    fn join(&mut self) -> io::Result<ForwarderStats> {
        self.send(Command::Stop);
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("data-plane thread panicked"))),
            None => Ok(ForwarderStats::default()),
        }
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        let _ = self.join();
    }
}

#[cfg(test)]
mod tests {
    use nix::sched::{CloneFlags, unshare};

    use super::*;

    /// A TUN device in a network namespace of its own (gone with the device), or `None`
    /// without the privileges for one; under `CI=true` they must be there.
    fn private_tun() -> Option<TunDevice> {
        let created = std::thread::spawn(|| -> io::Result<TunDevice> {
            // Only this short-lived thread moves into the new namespace.
            unshare(CloneFlags::CLONE_NEWNET)?;
            TunDevice::create("p2ptest0", true)
        })
        .join()
        .expect("thread");
        match created {
            Ok(tun) => Some(tun),
            Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("a TUN device in a namespace of its own: {e}, and CI=true forbids skipping")
            }
            Err(e) => {
                eprintln!("skipping: a TUN device in a namespace of its own: {e} (needs root)");
                None
            }
        }
    }

    #[test]
    fn commands_apply_in_order_and_stop_returns_the_statistics() {
        let Some(tun) = private_tun() else { return };
        let mut dp = Dataplane::start(tun, MonotonicClock::start(), 1, None).unwrap();
        let (a, b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        for ip in [a, b, a] {
            dp.send(Command::AddNode {
                ip,
                group: 0,
                home: None,
            });
        }
        dp.send(Command::SetParams {
            ip: a,
            params: LinkShape {
                up: Some(1_000_000),
                ..LinkShape::default()
            },
        });
        dp.barrier();
        let (nodes, health) = dp.counters(true);
        let ips: Vec<Ipv4Addr> = nodes.into_iter().map(|(ip, _)| ip).collect();
        assert_eq!(ips, [a, b], "each node once, in the order added");
        let health = health.expect("an interval reading has the health");
        assert_eq!((health.timed_packets, health.write_errors), (0, 0));
        assert!(
            dp.counters(false).1.is_none(),
            "only an interval reading has it"
        );
        dp.check().unwrap();
        let stats = dp.stop().unwrap();
        assert_eq!(stats.write_errors, 0);
        assert_eq!(stats.remote_sent + stats.remote_received, 0);
    }
}
