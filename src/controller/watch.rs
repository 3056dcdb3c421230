//! What a live display sees of the run: once per second of experiment time in real mode,
//! a `Pulse` with the lab's size, its processes, its traffic so far and how late the data
//! plane delivered in the last second. The display itself belongs to the command line.

use crate::experiment::NodeCounters;
use crate::units::Nanos;

/// The lab at the end of one second of experiment time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pulse {
    pub now: Nanos,
    pub nodes: usize,
    /// Nodes failed by `fail_node` and not revived.
    pub failed: usize,
    pub procs_running: usize,
    /// All nodes' traffic since the start.
    pub totals: NodeCounters,
    /// The last second's packet lateness, at the worst worker: 99th percentile and maximum.
    pub late_p99_ns: u64,
    pub late_max_ns: u64,
}

/// Called with every pulse, on the thread that runs the script.
pub type Watch = Box<dyn FnMut(&Pulse) + Send>;
