//! Which connections may be half-way through a handshake: at most `MAX_PENDING` in all and
//! `MAX_PER_SOURCE` from one address. A new connection always gets its chance: past a cap, the
//! oldest pending connection (of that address, or of all) is let go. Strangers who hold
//! connections open therefore cannot keep a rightful controller out, whose handshake takes a
//! round trip or two; the handshake's deadline ends the rest.

use std::collections::VecDeque;
use std::net::IpAddr;

/// Connections half-way through a handshake, in all.
pub const MAX_PENDING: usize = 64;
/// Connections half-way through a handshake from one address.
pub const MAX_PER_SOURCE: usize = 8;

/// The pending connections, oldest first, each with what lets it go (`T`).
pub struct Admission<T> {
    pending: VecDeque<Pending<T>>,
    next: u64,
    max_pending: usize,
    max_per_source: usize,
}

struct Pending<T> {
    ticket: u64,
    source: IpAddr,
    release: T,
}

impl<T> Admission<T> {
    pub fn new(max_pending: usize, max_per_source: usize) -> Self {
        Admission {
            pending: VecDeque::new(),
            next: 0,
            max_pending: max_pending.max(1),
            max_per_source: max_per_source.max(1),
        }
    }

    /// Admits a connection from `source`: its ticket, and the connections it pushes out.
    pub fn admit(&mut self, source: IpAddr, release: T) -> (u64, Vec<T>) {
        let mut evicted = Vec::new();
        let from_source = self.pending.iter().filter(|p| p.source == source).count();
        if from_source >= self.max_per_source
            && let Some(i) = self.pending.iter().position(|p| p.source == source)
            && let Some(p) = self.pending.remove(i)
        {
            evicted.push(p.release);
        }
        if self.pending.len() >= self.max_pending
            && let Some(p) = self.pending.pop_front()
        {
            evicted.push(p.release);
        }
        let ticket = self.next;
        self.next += 1;
        self.pending.push_back(Pending {
            ticket,
            source,
            release,
        });
        (ticket, evicted)
    }

    /// The connection of `ticket` finished its handshake (or was let go).
    pub fn done(&mut self, ticket: u64) {
        self.pending.retain(|p| p.ticket != ticket);
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn one_address_past_its_cap_loses_its_own_oldest() {
        let mut a = Admission::new(10, 3);
        for i in 0..3 {
            assert!(a.admit(ip(1), i).1.is_empty());
        }
        assert!(a.admit(ip(2), 100).1.is_empty());
        assert_eq!(a.admit(ip(1), 3).1, vec![0]);
        assert_eq!(a.admit(ip(1), 4).1, vec![1]);
        assert_eq!(a.pending(), 4);
    }

    #[test]
    fn past_the_total_cap_the_oldest_of_all_goes() {
        let mut a = Admission::new(3, 3);
        let (t0, _) = a.admit(ip(1), 0);
        a.admit(ip(2), 1);
        a.admit(ip(3), 2);
        assert_eq!(a.admit(ip(4), 3).1, vec![0]);
        // Done with a ticket already let go: nothing else changes.
        a.done(t0);
        assert_eq!(a.pending(), 3);
        assert_eq!(a.admit(ip(5), 4).1, vec![1]);
    }

    #[test]
    fn finished_handshakes_leave_room() {
        let mut a = Admission::new(2, 2);
        let (t0, _) = a.admit(ip(1), 0);
        let (t1, _) = a.admit(ip(1), 1);
        a.done(t0);
        a.done(t1);
        assert_eq!(a.pending(), 0);
        assert!(a.admit(ip(1), 2).1.is_empty());
        assert!(a.admit(ip(1), 3).1.is_empty());
    }

    #[test]
    fn the_newest_connection_survives_a_flood_from_its_own_address() {
        let mut a = Admission::new(MAX_PENDING, MAX_PER_SOURCE);
        for i in 0..200 {
            a.admit(ip(1), i);
        }
        let (mine, _) = a.admit(ip(1), 999);
        assert_eq!(a.pending(), MAX_PER_SOURCE);
        assert!(a.pending.iter().any(|p| p.ticket == mine));
    }
}
