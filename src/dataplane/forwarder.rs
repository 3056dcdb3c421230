//! The data-plane thread: reads packets from the TUN device, runs them through the link model
//! (`model::Fabric`) and writes each back when it is due. It sleeps in `poll(2)` on three file
//! descriptors: the TUN device, one timerfd armed at the earliest deadline (precise to tens of
//! microseconds, unlike a runtime's timer wheel), and an eventfd that announces commands;
//! with other workers, also on the UDP socket that links it to their data planes: a packet for
//! a node of another worker leaves after the sending half of the link model (`encap`).

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::mpsc;
use std::thread::JoinHandle;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::clock::MonotonicClock;
use super::encap;
use super::model::{Fabric, GroupIdx, NodeIdx};
use crate::experiment::{GroupLink, LinkShape, NodeCounters};
use super::packet::{VNET_HDR_LEN, ipv4_endpoints, wire_len};
use super::tun::TunDevice;
use crate::units::Nanos;

/// Packets read per wake-up before delivering what is due, so a flood cannot starve timers.
const READ_BATCH: usize = 256;
/// The largest IP packet, and so the largest TCP super-packet.
const MAX_PACKET: usize = 65_535;

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
    SetFailed {
        ip: Ipv4Addr,
        failed: bool,
    },
    Counters(mpsc::Sender<Vec<(Ipv4Addr, NodeCounters)>>),
    /// Answered once every command sent before it is in force.
    Barrier(mpsc::Sender<()>),
    Stop,
}

/// Packets that did not belong to two nodes (passed through unshaped), write errors, and
/// the traffic with other workers.
#[derive(Debug, Default, Clone, Copy)]
pub struct ForwarderStats {
    pub passed_through: u64,
    pub write_errors: u64,
    pub remote_sent: u64,
    pub remote_received: u64,
    /// Datagrams refused: from a stranger, not ours, or for no node of this worker.
    pub remote_rejected: u64,
    pub remote_send_errors: u64,
}

/// The link to the other workers' data planes: one UDP socket (bound in the machine's own
/// network namespace) and the addresses it accepts datagrams from.
pub struct RemoteLinks {
    pub socket: UdpSocket,
    pub peers: Vec<SocketAddr>,
    /// The run's id: datagrams of another run are refused.
    pub run: u32,
}

/// The handle of a running data plane; stopping or dropping it ends the thread.
pub struct Dataplane {
    commands: mpsc::Sender<Command>,
    wake: std::sync::Arc<OwnedFd>,
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
        let wake = std::sync::Arc::new(eventfd()?);
        let timer = timerfd()?;
        let (tx, rx) = mpsc::channel();
        let thread_wake = wake.clone();
        let thread = std::thread::Builder::new()
            .name("p2plab-dataplane".into())
            .spawn(move || {
                let hdr = if tun.offload() { VNET_HDR_LEN } else { 0 };
                let mut fwd = Forwarder {
                    hdr,
                    scratch: vec![0; hdr + MAX_PACKET],
                    impaired_nodes: HashSet::new(),
                    lossy_groups: HashSet::new(),
                    tso: tun.offload(),
                    remote,
                    datagram: vec![0; encap::HEADER_LEN + VNET_HDR_LEN + MAX_PACKET],
                    homes: Vec::new(),
                    tun,
                    timer,
                    wake: thread_wake,
                    clock,
                    fabric: Fabric::new(),
                    nodes: HashMap::new(),
                    ips: Vec::new(),
                    rng: ChaCha8Rng::seed_from_u64(seed),
                    stats: ForwarderStats::default(),
                    armed: None,
                };
                fwd.run(rx)
            })?;
        Ok(Dataplane {
            commands: tx,
            wake,
            thread: Some(thread),
        })
    }

    pub fn send(&self, cmd: Command) {
        // A closed channel means the thread ended; `stop` reports why.
        if self.commands.send(cmd).is_ok() {
            signal(&self.wake);
        }
    }

    /// Per-node counters, read from the running thread.
    pub fn counters(&self) -> Vec<(Ipv4Addr, NodeCounters)> {
        let (tx, rx) = mpsc::channel();
        self.send(Command::Counters(tx));
        rx.recv().unwrap_or_default()
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

struct Forwarder {
    tun: TunDevice,
    /// Bytes of virtio-net header in front of each packet (0 without offload).
    hdr: usize,
    /// One read's worth: the largest super-packet the kernel may hand over.
    scratch: Vec<u8>,
    /// Nodes with a rate limit or loss, and group pairs with loss: while there are any, TCP
    /// super-packets are turned off. A super-packet is a burst of segments: a loss draw would
    /// drop them all at once, and a FIFO would release them together instead of one by one.
    /// Unlimited, lossless links deliver a burst at once anyway, so there it changes nothing.
    impaired_nodes: HashSet<Ipv4Addr>,
    lossy_groups: HashSet<(u32, u32)>,
    tso: bool,
    remote: Option<RemoteLinks>,
    /// One datagram's worth, for packets from other workers.
    datagram: Vec<u8>,
    /// Per node index: the data plane of the worker it lives on, `None` for this one.
    homes: Vec<Option<SocketAddr>>,
    timer: OwnedFd,
    wake: std::sync::Arc<OwnedFd>,
    clock: MonotonicClock,
    fabric: Fabric<Vec<u8>>,
    nodes: HashMap<Ipv4Addr, NodeIdx>,
    ips: Vec<Ipv4Addr>,
    rng: ChaCha8Rng,
    stats: ForwarderStats,
    armed: Option<Nanos>,
}

impl Forwarder {
    fn run(&mut self, commands: mpsc::Receiver<Command>) -> io::Result<ForwarderStats> {
        let mut due = Vec::new();
        // With other workers, no super-packets from the start: they would not fit a datagram.
        self.update_tso();
        loop {
            while let Ok(cmd) = commands.try_recv() {
                if !self.apply(cmd) {
                    return Ok(self.stats);
                }
            }
            let full_batch = self.read_batch()? | self.read_remote_batch();
            self.fabric.poll(self.clock.now(), &mut due);
            for (_, packet) in due.drain(..) {
                self.emit(packet);
            }
            self.arm_timer()?;
            if !full_batch {
                self.wait()?;
            }
        }
    }

    /// Returns false on `Stop`.
    fn apply(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::AddNode { ip, group, home } => {
                if !self.nodes.contains_key(&ip) {
                    let idx = self.fabric.add_node(GroupIdx(group));
                    self.nodes.insert(ip, idx);
                    self.ips.push(ip);
                    self.homes.push(home);
                }
            }
            Command::SetParams { ip, params } => {
                if let Some(&idx) = self.nodes.get(&ip) {
                    let _ = self.fabric.set_params(idx, params);
                    if params.loss > 0.0 || params.up.is_some() || params.down.is_some() {
                        self.impaired_nodes.insert(ip);
                    } else {
                        self.impaired_nodes.remove(&ip);
                    }
                    self.update_tso();
                }
            }
            Command::SetGroupLink { a, b, params } => {
                let _ = self.fabric.set_group_link(GroupIdx(a), GroupIdx(b), params);
                let pair = (a.min(b), a.max(b));
                if params.loss > 0.0 {
                    self.lossy_groups.insert(pair);
                } else {
                    self.lossy_groups.remove(&pair);
                }
                self.update_tso();
            }
            Command::SetFailed { ip, failed } => {
                if let Some(&idx) = self.nodes.get(&ip) {
                    let _ = self.fabric.set_failed(idx, failed);
                }
            }
            Command::Counters(reply) => {
                // Only this worker's nodes: the counts of the others are on their machines.
                let all = self
                    .ips
                    .iter()
                    .zip(&self.homes)
                    .filter(|(_, home)| home.is_none())
                    .map(|(ip, _)| (*ip, *self.fabric.counters(self.nodes[ip])))
                    .collect();
                let _ = reply.send(all);
            }
            Command::Barrier(reply) => {
                let _ = reply.send(());
            }
            Command::Stop => return false,
        }
        true
    }

    fn update_tso(&mut self) {
        // A super-packet does not fit a UDP datagram to another worker.
        let want = self.hdr > 0
            && self.impaired_nodes.is_empty()
            && self.lossy_groups.is_empty()
            && self.remote.is_none();
        if want != self.tso && self.tun.set_tso(want).is_ok() {
            self.tso = want;
        }
    }

    /// Reads up to `READ_BATCH` packets; true when the batch was full (more may wait).
    fn read_batch(&mut self) -> io::Result<bool> {
        for _ in 0..READ_BATCH {
            match self.tun.read(&mut self.scratch) {
                // A right-sized copy: the scratch buffer fits a 64 KiB super-packet, and
                // thousands of packets may wait in queues.
                Ok(n) => self.ingress(self.scratch[..n].to_vec()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    fn ingress(&mut self, packet: Vec<u8>) {
        let (vnet, ip) = packet.split_at(self.hdr.min(packet.len()));
        let route = ipv4_endpoints(ip)
            .and_then(|(src, dst)| Some((*self.nodes.get(&src)?, *self.nodes.get(&dst)?)));
        match route {
            Some((src, dst)) => {
                let len = wire_len(vnet, ip.len());
                let now = self.clock.now();
                match self.homes.get(dst.0 as usize).copied().flatten() {
                    // A dropped packet is counted by the fabric; its buffer is simply freed.
                    None => {
                        let _ = self.fabric.send(now, src, dst, len, packet, &mut self.rng);
                    }
                    Some(home) => {
                        if let Ok(arrival) =
                            self.fabric
                                .send_to_remote(now, src, dst, len, &mut self.rng)
                        {
                            self.ship(home, arrival.saturating_sub(now), &packet);
                        }
                    }
                }
            }
            None => {
                self.stats.passed_through += 1;
                self.emit(packet);
            }
        }
    }

    /// Sends a packet to the worker of its destination, which holds it for `remaining` ns
    /// and then offers it to the destination's downlink.
    fn ship(&mut self, home: SocketAddr, remaining: Nanos, packet: &[u8]) {
        let Some(remote) = &self.remote else { return };
        let header = encap::header(remote.run, remaining, self.hdr);
        let bufs = [io::IoSlice::new(&header), io::IoSlice::new(packet)];
        if send_vectored_to(&remote.socket, &bufs, home).is_ok() {
            self.stats.remote_sent += 1;
        } else {
            self.stats.remote_send_errors += 1;
        }
    }

    /// Reads up to `READ_BATCH` datagrams from other workers; true when the batch was full.
    fn read_remote_batch(&mut self) -> bool {
        let Some(remote) = &self.remote else {
            return false;
        };
        let buf = &mut self.datagram;
        let mut accepted = Vec::new();
        let mut full = true;
        for _ in 0..READ_BATCH {
            let (n, from) = match remote.socket.recv_from(buf) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    full = false;
                    break;
                }
            };
            if !remote.peers.contains(&from) {
                self.stats.remote_rejected += 1;
                continue;
            }
            match encap::parse(&buf[..n], remote.run, self.hdr) {
                Ok((remaining, packet)) => accepted.push((remaining, packet.to_vec())),
                Err(_) => self.stats.remote_rejected += 1,
            }
        }
        for (remaining, packet) in accepted {
            self.receive_remote(remaining, packet);
        }
        full
    }

    /// The receiving half for a packet from another worker: its destination must live here.
    fn receive_remote(&mut self, remaining: Nanos, packet: Vec<u8>) {
        let (vnet, ip) = packet.split_at(self.hdr.min(packet.len()));
        let dst = ipv4_endpoints(ip)
            .and_then(|(_, dst)| self.nodes.get(&dst).copied())
            .filter(|d| matches!(self.homes.get(d.0 as usize), Some(None)));
        let Some(dst) = dst else {
            self.stats.remote_rejected += 1;
            return;
        };
        self.stats.remote_received += 1;
        let len = wire_len(vnet, ip.len());
        let arrival = self.clock.now().saturating_add(remaining);
        let _ = self.fabric.receive_from_remote(arrival, dst, len, packet);
    }

    fn emit(&mut self, packet: Vec<u8>) {
        if self.tun.write(&packet).is_err() {
            self.stats.write_errors += 1;
        }
    }

    fn arm_timer(&mut self) -> io::Result<()> {
        let next = self.fabric.next_deadline();
        if next == self.armed {
            return Ok(());
        }
        let at = next.map_or(0, |t| self.clock.to_monotonic(t).max(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: (at / 1_000_000_000) as libc::time_t,
                tv_nsec: (at % 1_000_000_000) as libc::c_long,
            },
        };
        // SAFETY: arms (or, with a zero value, disarms) our own timerfd.
        let rc = unsafe {
            libc::timerfd_settime(
                self.timer.as_raw_fd(),
                libc::TFD_TIMER_ABSTIME,
                &spec,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        self.armed = next;
        Ok(())
    }

    fn wait(&mut self) -> io::Result<()> {
        // Without other workers the last entry is -1, which poll(2) ignores.
        let udp = self.remote.as_ref().map_or(-1, |r| r.socket.as_raw_fd());
        let mut fds = [
            pollfd(self.tun.as_raw_fd()),
            pollfd(self.timer.as_raw_fd()),
            pollfd(self.wake.as_raw_fd()),
            pollfd(udp),
        ];
        // SAFETY: `fds` is a valid array of pollfd for its length.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            return if err.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(err)
            };
        }
        if fds[1].revents != 0 {
            drain(&self.timer);
            self.armed = None;
        }
        if fds[2].revents != 0 {
            drain(&self.wake);
        }
        Ok(())
    }
}

fn pollfd(fd: i32) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd(2) returns a new descriptor or -1.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn timerfd() -> io::Result<OwnedFd> {
    // SAFETY: timerfd_create(2) returns a new descriptor or -1.
    let fd = unsafe {
        libc::timerfd_create(
            libc::CLOCK_MONOTONIC,
            libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn signal(fd: &OwnedFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes to our eventfd; a full counter (EAGAIN) still wakes the reader.
    unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
}

fn drain(fd: &OwnedFd) {
    let mut value: u64 = 0;
    // SAFETY: reads 8 bytes from an eventfd/timerfd into a u64.
    unsafe { libc::read(fd.as_raw_fd(), (&mut value as *mut u64).cast(), 8) };
}

/// `sendmsg(2)` of header and packet in one datagram, without copying them together.
fn send_vectored_to(
    socket: &UdpSocket,
    bufs: &[io::IoSlice<'_>],
    to: SocketAddr,
) -> io::Result<()> {
    let SocketAddr::V4(v4) = to else {
        return Err(io::Error::other("workers are reached over IPv4"));
    };
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*v4.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: msghdr is plain data; every pointer in it outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&addr as *const libc::sockaddr_in).cast_mut().cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    msg.msg_iov = bufs.as_ptr().cast_mut().cast();
    msg.msg_iovlen = bufs.len() as _;
    // SAFETY: a valid socket and a msghdr built above.
    let rc = unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
