//! The lab's readings of the data planes, once per second of experiment time and at the end:
//! each one ends an interval that goes to `traffic.csv` and `dataplane.csv`, to the fidelity
//! verdict (with the rates in force, except for nodes reshaped during the interval), and to
//! the live display.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use super::{LabError, Pulse, Watch};
use crate::experiment::{DataplaneHealth, Experiment, NodeCounters, NodeId, TrafficReading};
use crate::results::conformance::NodeInterval;
use crate::results::{Conformance, HealthCsv, TrafficCsv};
use crate::units::Nanos;

/// Where each interval goes; every part is optional (a dry-run has files but no data plane).
#[derive(Default)]
pub struct Readings {
    pub traffic: Option<TrafficCsv>,
    pub health: Option<HealthCsv>,
    pub conformance: Option<Arc<Mutex<Conformance>>>,
    pub watch: Option<Watch>,
    /// When the last interval ended.
    last_at: Nanos,
    /// Nodes whose shape changed since then: their rates are not judged for this interval.
    reshaped: HashSet<NodeId>,
}

impl Readings {
    /// True once a second of experiment time ended without its reading.
    pub fn due(&self, now: Nanos) -> bool {
        self.traffic.as_ref().is_some_and(|csv| csv.due(now))
    }

    pub fn reshaped(&mut self, node: NodeId) {
        self.reshaped.insert(node);
    }

    /// Ends the interval at `now` with `reading` (`last`: the run's final, partial one).
    /// Returns every node's totals, in allocation order.
    pub fn interval(
        &mut self,
        now: Nanos,
        state: &Experiment,
        reading: TrafficReading,
        last: bool,
    ) -> Result<Vec<(Ipv4Addr, NodeCounters)>, LabError> {
        let by_ip: HashMap<_, _> = reading.nodes.into_iter().collect();
        let totals: Vec<_> = state
            .nodes()
            .iter()
            .filter_map(|n| by_ip.get(&n.ip).map(|c| (n.ip, *c)))
            .collect();
        let counted = match self.traffic.as_mut() {
            Some(csv) if last => csv.last(now, &totals),
            Some(csv) => csv.second(now, &totals),
            None => Ok(Vec::new()),
        }
        .map_err(LabError::Traffic)?;
        if let Some(csv) = self.health.as_mut() {
            if last {
                csv.last(now, &reading.health)
            } else {
                csv.second(now, &reading.health)
            }
            .map_err(LabError::Health)?;
        }
        if let Some(conformance) = &self.conformance {
            let judged = self.judged(state, &counted);
            let len = now.saturating_sub(self.last_at);
            conformance
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .observe(len, &judged, &reading.health);
        }
        if let Some(watch) = self.watch.as_mut().filter(|_| !last) {
            watch(&pulse(now, state, &totals, &reading.health));
        }
        self.last_at = now;
        self.reshaped.clear();
        Ok(totals)
    }

    /// The interval's counts with the rates in force throughout it.
    fn judged(
        &self,
        state: &Experiment,
        counted: &[(Ipv4Addr, NodeCounters)],
    ) -> Vec<NodeInterval> {
        let by_ip: HashMap<Ipv4Addr, NodeId> = state.nodes().iter().map(|n| (n.ip, n.id)).collect();
        counted
            .iter()
            .filter_map(|(ip, counts)| {
                let id = *by_ip.get(ip)?;
                let steady = !self.reshaped.contains(&id);
                let shape = state.node(id).shape;
                let rate = |r: Option<u64>| r.filter(|&r| r > 0 && steady);
                Some(NodeInterval {
                    ip: *ip,
                    counts: *counts,
                    // A trace-driven direction has no one rate to hold it to.
                    up_bps: rate(shape.up).filter(|_| shape.traces.up.is_none()),
                    down_bps: rate(shape.down).filter(|_| shape.traces.down.is_none()),
                })
            })
            .collect()
    }
}

fn pulse(
    now: Nanos,
    state: &Experiment,
    totals: &[(Ipv4Addr, NodeCounters)],
    health: &[(u32, DataplaneHealth)],
) -> Pulse {
    let mut sum = NodeCounters::default();
    for (_, c) in totals {
        sum.add(c);
    }
    let nodes = state.nodes();
    Pulse {
        now,
        nodes: nodes.len(),
        failed: nodes.iter().filter(|n| n.failed).count(),
        procs_running: state.running(),
        totals: sum,
        late_p99_ns: health.iter().map(|(_, h)| h.late_p99_ns).max().unwrap_or(0),
        late_max_ns: health.iter().map(|(_, h)| h.late_max_ns).max().unwrap_or(0),
    }
}
