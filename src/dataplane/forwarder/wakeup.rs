//! What the data-plane thread sleeps on: one `mio::Poll` over the TUN device, the UDP socket
//! to other workers, a timerfd armed at the earliest deadline (absolute CLOCK_MONOTONIC:
//! late by tens of microseconds, where a runtime's timer wheel is late by a millisecond) and
//! the waker that announces commands. mio registers every source edge-triggered: the loop
//! reads each one until it would block, or does not sleep before reading it again.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

use crate::clock::MonotonicClock;
use crate::units::Nanos;

const TUN: Token = Token(0);
const UDP: Token = Token(1);
const TIMER: Token = Token(2);
const COMMANDS: Token = Token(3);

pub(super) struct Wakeups {
    poll: Poll,
    events: Events,
    /// Never read: arming it again resets its count, and the edge-triggered registration
    /// reports each expiry anew.
    timer: TimerFd,
    /// The deadline the timer is armed at; `None` when disarmed or expired.
    armed: Option<Nanos>,
}

impl Wakeups {
    /// Registers the TUN device and, with other workers, their UDP socket; returns the waker
    /// that announces commands.
    pub(super) fn new(
        tun: &impl AsRawFd,
        udp: Option<&impl AsRawFd>,
    ) -> io::Result<(Wakeups, Arc<Waker>)> {
        let poll = Poll::new()?;
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        let registry = poll.registry();
        registry.register(&mut SourceFd(&tun.as_raw_fd()), TUN, Interest::READABLE)?;
        if let Some(udp) = udp {
            registry.register(&mut SourceFd(&udp.as_raw_fd()), UDP, Interest::READABLE)?;
        }
        let timer_fd = timer.as_fd().as_raw_fd();
        registry.register(&mut SourceFd(&timer_fd), TIMER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(registry, COMMANDS)?);
        let wakeups = Wakeups {
            poll,
            events: Events::with_capacity(4),
            timer,
            armed: None,
        };
        Ok((wakeups, waker))
    }

    /// Makes sure the thread wakes by `deadline` on `clock` (`None`: no deadline). A timer
    /// armed earlier stays as it is: waking early costs one empty pass, while setting a
    /// timer costs a system call per pass (in a virtual machine, a trap to the host too),
    /// and under load each pass moves the deadline.
    pub(super) fn arm(
        &mut self,
        deadline: Option<Nanos>,
        clock: &MonotonicClock,
    ) -> io::Result<()> {
        let Some(t) = deadline else { return Ok(()) };
        if self.armed.is_some_and(|armed| armed <= t) {
            return Ok(());
        }
        let at = TimeSpec::from_duration(Duration::from_nanos(clock.to_monotonic(t)));
        self.timer.set(
            Expiration::OneShot(at),
            TimerSetTimeFlags::TFD_TIMER_ABSTIME,
        )?;
        self.armed = deadline;
        Ok(())
    }

    /// Sleeps until a packet arrives, the timer expires or a command is announced.
    pub(super) fn wait(&mut self) -> io::Result<()> {
        match self.poll.poll(&mut self.events, None) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            result => result?,
        }
        if self.events.iter().any(|e| e.token() == TIMER) {
            self.armed = None;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;

    use super::*;

    /// A socket stands in for the TUN device: any descriptor that becomes readable will do.
    fn wakeups() -> (Wakeups, Arc<Waker>, UdpSocket) {
        let fake_tun = UdpSocket::bind("127.0.0.1:0").unwrap();
        fake_tun.set_nonblocking(true).unwrap();
        let (w, waker) = Wakeups::new(&fake_tun, None::<&UdpSocket>).unwrap();
        (w, waker, fake_tun)
    }

    #[test]
    fn the_timer_wakes_at_its_deadline_never_before() {
        let (mut w, _waker, _tun) = wakeups();
        let clock = MonotonicClock::start();
        let deadline = clock.now() + 2_000_000;
        w.arm(Some(deadline), &clock).unwrap();
        w.wait().unwrap();
        assert!(clock.now() >= deadline, "woken before the deadline");
        assert_eq!(w.armed, None, "an expired timer must be armed again");
        // Armed again after expiring, without reading it: the next expiry wakes too.
        let deadline = clock.now() + 1_000_000;
        w.arm(Some(deadline), &clock).unwrap();
        w.wait().unwrap();
        assert!(clock.now() >= deadline);
    }

    #[test]
    fn a_command_or_a_packet_wakes_the_thread() {
        let (mut w, waker, tun) = wakeups();
        let clock = MonotonicClock::start();
        // A far deadline, so that only the waker or the packet can end the waits.
        w.arm(Some(clock.now() + 60_000_000_000), &clock).unwrap();
        waker.wake().unwrap();
        w.wait().unwrap();
        tun.send_to(b"x", tun.local_addr().unwrap()).unwrap();
        w.wait().unwrap();
    }

    #[test]
    fn an_earlier_timer_stays_and_a_later_one_is_brought_forward() {
        let (mut w, _waker, _tun) = wakeups();
        let clock = MonotonicClock::start();
        let soon = clock.now() + 1_000_000;
        w.arm(Some(soon), &clock).unwrap();
        w.arm(Some(soon + 50_000_000), &clock).unwrap();
        w.arm(None, &clock).unwrap();
        assert_eq!(w.armed, Some(soon), "the earlier deadline stays");
        w.wait().unwrap();
        assert!(clock.now() >= soon && clock.now() < soon + 50_000_000);
        let far = clock.now() + 60_000_000_000;
        w.arm(Some(far), &clock).unwrap();
        let near = clock.now() + 1_000_000;
        w.arm(Some(near), &clock).unwrap();
        assert_eq!(w.armed, Some(near), "brought forward");
        w.wait().unwrap();
        assert!(clock.now() >= near && clock.now() < far);
    }
}
