//! Which datagrams of one sending worker are new: a sliding window over their counters (a
//! ring of 2048 bits, RFC 6479, as WireGuard keeps it), so a datagram recorded and sent again
//! is refused while datagrams reordered on the way are still taken. Pure logic: the caller
//! asks before checking the MAC and records only after it verified.

const WORDS: usize = 32;
/// How far below the highest counter seen a datagram may still arrive. One word of the ring
/// is the one being cleared as the window slides, hence less than its 2048 bits.
pub const WINDOW: u64 = (WORDS as u64 - 1) * 64;

#[derive(Debug, Clone)]
pub struct ReplayWindow {
    /// The highest counter recorded, plus one (0: none yet), so that counter 0 is usable.
    top: u64,
    ring: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow {
            top: 0,
            ring: [0; WORDS],
        }
    }
}

/// The word of the ring and the bit in it that stand for position `n` (a counter plus one).
fn slot(n: u64) -> (usize, u64) {
    ((n / 64) as usize % WORDS, 1 << (n % 64))
}

impl ReplayWindow {
    /// Whether `counter` may be new: above the window, or inside it and not recorded yet.
    pub fn fresh(&self, counter: u64) -> bool {
        let Some(n) = counter.checked_add(1) else {
            return false;
        };
        if n > self.top {
            return true;
        }
        if self.top - n >= WINDOW {
            return false;
        }
        let (word, bit) = slot(n);
        self.ring[word] & bit == 0
    }

    /// Records `counter` as seen: only once `fresh` said so and the datagram's MAC verified,
    /// or a forgery could slide the window past real datagrams.
    pub fn record(&mut self, counter: u64) {
        let n = counter.saturating_add(1);
        if n > self.top {
            // The words the window slides over hold counters of a lap ago: cleared.
            let (from, to) = (self.top / 64, n / 64);
            for w in from + 1..=to.min(from + WORDS as u64) {
                self.ring[w as usize % WORDS] = 0;
            }
            self.top = n;
        }
        let (word, bit) = slot(n);
        self.ring[word] |= bit;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the data plane does with a datagram whose MAC verified.
    trait Accept {
        fn accept(&mut self, counter: u64) -> bool;
    }

    impl Accept for ReplayWindow {
        fn accept(&mut self, counter: u64) -> bool {
            let fresh = self.fresh(counter);
            if fresh {
                self.record(counter);
            }
            fresh
        }
    }

    #[test]
    fn in_order_counters_are_taken_once() {
        let mut w = ReplayWindow::default();
        for c in 0..10_000 {
            assert!(w.accept(c), "{c}");
        }
        for c in 0..10_000 {
            assert!(!w.fresh(c), "{c} again");
        }
    }

    #[test]
    fn out_of_order_within_the_window_is_taken_once() {
        let mut w = ReplayWindow::default();
        assert!(w.accept(5000));
        // Every counter the window still covers, backwards, then each once more.
        for c in (5000 - WINDOW + 1..5000).rev() {
            assert!(w.accept(c), "{c}");
        }
        for c in 5000 - WINDOW + 1..=5000 {
            assert!(!w.accept(c), "{c} twice");
        }
        // Interleaved: evens first, then odds.
        let mut w = ReplayWindow::default();
        for c in (0..1000).step_by(2).chain((1..1000).step_by(2)) {
            assert!(w.accept(c), "{c}");
        }
    }

    #[test]
    fn too_old_is_refused_even_if_never_seen() {
        let mut w = ReplayWindow::default();
        assert!(w.accept(10_000));
        assert!(!w.fresh(10_000 - WINDOW));
        assert!(!w.fresh(0));
        assert!(
            w.fresh(10_000 - WINDOW + 1),
            "the oldest still in the window"
        );
    }

    #[test]
    fn duplicates_are_refused_and_asking_changes_nothing() {
        let mut w = ReplayWindow::default();
        assert!(w.fresh(0));
        assert!(w.fresh(0), "fresh alone records nothing");
        assert!(w.accept(0));
        assert!(!w.accept(0));
        assert!(w.accept(2));
        assert!(!w.accept(2));
        assert!(w.accept(1));
        assert!(!w.accept(1));
    }

    #[test]
    fn a_far_jump_clears_the_whole_ring() {
        let mut w = ReplayWindow::default();
        for c in 0..3000 {
            assert!(w.accept(c));
        }
        // Far ahead: everything before the new window is too old, everything in it new,
        // including positions whose bits were set a lap or more ago.
        let far = 1_000_000;
        assert!(w.accept(far));
        for c in far - WINDOW + 1..far {
            assert!(w.fresh(c), "{c}");
        }
        assert!(!w.fresh(2999));
        // A jump of exactly one lap of the ring: the same slot, a new counter.
        let lap = far + 64 * WORDS as u64;
        assert!(w.accept(lap));
        assert!(!w.fresh(far));
        assert!(w.fresh(lap - 1));
    }

    #[test]
    fn the_last_counters_never_wrap() {
        let mut w = ReplayWindow::default();
        assert!(w.accept(u64::MAX - 1));
        assert!(!w.fresh(u64::MAX), "its position would overflow");
        assert!(!w.fresh(u64::MAX - 1));
    }
}
