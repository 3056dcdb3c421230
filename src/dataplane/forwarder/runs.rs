//! Segments of one super-packet that the link model delivers close together leave together:
//! consecutive segments due within `WINDOW` of the first of them are written as one packet
//! (a real NIC's interrupt coalescing and GRO do the same to the receiver), and a segment the
//! model dropped or delayed further starts a new run. Each segment keeps its own deadline,
//! so a segment held back for the others counts as late by that much. A run does not wait
//! for a segment that, spaced as the flow's segments were so far, would come too late: on a
//! slow link every segment leaves at its own deadline.
//! Runs are kept per flow (sender, receiver): a flow's packets leave in order.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::ops::Range;

use crate::units::Nanos;

/// How long the first segment of a run may wait for the next ones: a tenth of the fidelity
/// verdict's lateness bound. At 10 Gbit/s a whole 64 KiB super-packet fits; at 1 Gbit/s,
/// about eight segments.
pub(super) const WINDOW: Nanos = 100_000;

/// A flow: sender and receiver.
pub(super) type Flow = (Ipv4Addr, Ipv4Addr);

/// Consecutive segments of one super-packet (`burst`), each with its deadline.
#[derive(Debug)]
pub(super) struct Run<B> {
    pub(super) burst: B,
    /// Which super-packet: bursts are told apart by it.
    id: u64,
    first: usize,
    pub(super) deadlines: Vec<Nanos>,
}

impl<B> Run<B> {
    pub(super) fn segments(&self) -> Range<usize> {
        self.first..self.first + self.deadlines.len()
    }
}

/// What one segment the model delivered is.
pub(super) struct Segment<B> {
    pub(super) flow: Flow,
    pub(super) id: u64,
    /// Segments in its super-packet.
    pub(super) count: usize,
    pub(super) index: usize,
    pub(super) deadline: Nanos,
    pub(super) burst: B,
}

#[derive(Debug)]
pub(super) struct Runs<B> {
    open: HashMap<Flow, Run<B>>,
    /// Per flow that had segments: its last one and the spacing of the last two in a row.
    /// One entry per flow ever cut, some tens of bytes each.
    spacing: HashMap<Flow, Spacing>,
}

#[derive(Debug, Clone, Copy)]
struct Spacing {
    id: u64,
    index: usize,
    deadline: Nanos,
    gap: Option<Nanos>,
}

impl<B> Default for Runs<B> {
    fn default() -> Self {
        Runs {
            open: HashMap::new(),
            spacing: HashMap::new(),
        }
    }
}

impl<B> Runs<B> {
    pub(super) fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Takes a delivered segment; runs it completes or ends go to `out`, in write order.
    pub(super) fn segment(&mut self, s: Segment<B>, out: &mut Vec<Run<B>>) {
        let last = self.spacing.get(&s.flow).copied();
        let gap = match last {
            Some(l) if l.id == s.id && l.index + 1 == s.index => {
                Some(s.deadline.saturating_sub(l.deadline))
            }
            Some(l) => l.gap,
            None => None,
        };
        self.spacing.insert(
            s.flow,
            Spacing {
                id: s.id,
                index: s.index,
                deadline: s.deadline,
                gap,
            },
        );
        let extends = self.open.get(&s.flow).is_some_and(|run| {
            run.id == s.id
                && run.segments().end == s.index
                && s.deadline <= run.deadlines[0].saturating_add(WINDOW)
        });
        let run = if extends {
            let run = self.open.get_mut(&s.flow).expect("the run just found");
            run.deadlines.push(s.deadline);
            run
        } else {
            if let Some(ended) = self.open.remove(&s.flow) {
                out.push(ended);
            }
            self.open.entry(s.flow).or_insert(Run {
                burst: s.burst,
                id: s.id,
                first: s.index,
                deadlines: vec![s.deadline],
            })
        };
        let closes = run.deadlines[0].saturating_add(WINDOW);
        let next_too_late = gap.is_some_and(|g| s.deadline.saturating_add(g) > closes);
        if run.segments().end == s.count || next_too_late {
            out.extend(self.open.remove(&s.flow));
        }
    }

    /// A packet of `flow` that is no segment is about to leave: the flow's run goes first.
    pub(super) fn before_packet(&mut self, flow: Flow, out: &mut Vec<Run<B>>) {
        out.extend(self.open.remove(&flow));
    }

    /// Runs whose first segment has waited its `WINDOW` by `now`.
    pub(super) fn due(&mut self, now: Nanos, out: &mut Vec<Run<B>>) {
        let ended: Vec<Flow> = self
            .open
            .iter()
            .filter(|(_, run)| run.deadlines[0].saturating_add(WINDOW) <= now)
            .map(|(flow, _)| *flow)
            .collect();
        for flow in ended {
            out.extend(self.open.remove(&flow));
        }
    }

    /// When the earliest open run is due.
    pub(super) fn next_due(&self) -> Option<Nanos> {
        self.open
            .values()
            .map(|run| run.deadlines[0].saturating_add(WINDOW))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Flow = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    const B: Flow = (Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 1));

    fn seg(flow: Flow, id: u64, count: usize, index: usize, deadline: Nanos) -> Segment<u64> {
        Segment {
            flow,
            id,
            count,
            index,
            deadline,
            burst: id,
        }
    }

    fn ranges(out: &[Run<u64>]) -> Vec<(u64, Range<usize>)> {
        out.iter().map(|r| (r.burst, r.segments())).collect()
    }

    #[test]
    fn segments_due_within_the_window_leave_as_one_run_when_the_last_arrives() {
        let mut runs = Runs::default();
        let mut out = Vec::new();
        for i in 0..4 {
            runs.segment(seg(A, 7, 5, i, 1_000 + i as u64 * 1_200), &mut out);
        }
        assert!(out.is_empty(), "waiting for the fifth");
        assert_eq!(runs.next_due(), Some(1_000 + WINDOW));
        runs.segment(seg(A, 7, 5, 4, 5_800), &mut out);
        assert_eq!(ranges(&out), [(7, 0..5)]);
        assert_eq!(out[0].deadlines, [1_000, 2_200, 3_400, 4_600, 5_800]);
        assert!(runs.is_empty());
        assert_eq!(runs.next_due(), None);
    }

    #[test]
    fn a_slow_link_cuts_a_super_packet_into_runs_of_one_window() {
        // 12 µs per segment (1 Gbit/s): eight fit in 100 µs after the first.
        let mut runs = Runs::default();
        let mut out = Vec::new();
        for i in 0..20 {
            runs.segment(seg(A, 1, 20, i, i as u64 * 12_000), &mut out);
        }
        assert_eq!(ranges(&out), [(1, 0..9), (1, 9..18), (1, 18..20)]);
    }

    #[test]
    fn on_a_slow_link_segments_leave_at_their_deadlines_once_their_spacing_is_known() {
        // 128 kbit/s: 94 ms a segment. The first waits out its window (nothing is known
        // of the flow yet); from the second on, none waits.
        let mut runs = Runs::default();
        let mut out = Vec::new();
        runs.segment(seg(A, 1, 3, 0, 0), &mut out);
        assert!(out.is_empty());
        runs.due(WINDOW, &mut out);
        assert_eq!(ranges(&out), [(1, 0..1)]);
        out.clear();
        runs.segment(seg(A, 1, 3, 1, 94_000_000), &mut out);
        assert_eq!(ranges(&out), [(1, 1..2)], "written at once");
        out.clear();
        runs.segment(seg(A, 2, 3, 0, 300_000_000), &mut out);
        assert_eq!(ranges(&out), [(2, 0..1)], "the flow's next burst too");
        assert!(runs.is_empty());
    }

    #[test]
    fn a_dropped_segment_ends_the_run_and_the_window_ends_the_rest() {
        let mut runs = Runs::default();
        let mut out = Vec::new();
        runs.segment(seg(A, 1, 4, 0, 0), &mut out);
        runs.segment(seg(A, 1, 4, 2, 2_000), &mut out);
        assert_eq!(ranges(&out), [(1, 0..1)], "segment 1 was lost");
        out.clear();
        runs.due(2_000 + WINDOW - 1, &mut out);
        assert!(out.is_empty());
        runs.due(2_000 + WINDOW, &mut out);
        assert_eq!(ranges(&out), [(1, 2..3)], "segment 3 never came");
    }

    #[test]
    fn the_next_super_packet_of_a_flow_ends_the_run_and_other_flows_do_not() {
        let mut runs = Runs::default();
        let mut out = Vec::new();
        runs.segment(seg(A, 1, 3, 0, 0), &mut out);
        runs.segment(seg(B, 2, 3, 0, 10), &mut out);
        runs.segment(seg(A, 1, 3, 1, 20), &mut out);
        assert!(out.is_empty(), "the other flow's segment changes nothing");
        runs.segment(seg(A, 3, 3, 0, 30), &mut out);
        assert_eq!(ranges(&out), [(1, 0..2)]);
        out.clear();
        runs.before_packet(B, &mut out);
        assert_eq!(
            ranges(&out),
            [(2, 0..1)],
            "a plain packet of B leaves after B's run"
        );
        assert_eq!(
            runs.next_due(),
            Some(30 + WINDOW),
            "A's next super-packet waits"
        );
    }
}
