//! A node's share of the machine, as `shape(n, #{ cpu, cpu_weight, memory })` sets it: kept
//! by the experiment state beside the link shape and enforced by the node's cgroups, never
//! read by the data plane.

/// A node's CPU and memory limits; `None` is unlimited (the default weight).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct NodeLimits {
    /// The CPU time the node may use, in cores: 0.25 is a quarter of one core.
    pub cpu: Option<f64>,
    /// Its weight against other nodes when the CPU is busy, 1..=10000 (the default is 100).
    pub cpu_weight: Option<u32>,
    /// The memory its processes may hold, in bytes; past it the kernel kills one of them.
    pub memory: Option<u64>,
}

impl NodeLimits {
    /// The limits after a partial update: what the update does not give keeps its value.
    pub fn apply(&self, update: &NodeLimits) -> NodeLimits {
        NodeLimits {
            cpu: update.cpu.or(self.cpu),
            cpu_weight: update.cpu_weight.or(self.cpu_weight),
            memory: update.memory.or(self.memory),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == NodeLimits::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_keeps_what_it_does_not_give() {
        let set = NodeLimits {
            cpu: Some(0.5),
            memory: Some(1 << 20),
            ..Default::default()
        };
        let update = NodeLimits {
            cpu: Some(0.25),
            cpu_weight: Some(200),
            ..Default::default()
        };
        assert_eq!(
            set.apply(&update),
            NodeLimits {
                cpu: Some(0.25),
                cpu_weight: Some(200),
                memory: Some(1 << 20),
            }
        );
        assert!(NodeLimits::default().is_empty() && !set.is_empty());
    }
}
