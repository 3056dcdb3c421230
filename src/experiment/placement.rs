//! Where new nodes live: which worker hosts them (by weight, or as asked) and which address
//! they get from that worker's block. Worker `k` owns `10.k.0.0/16` inside the lab prefix
//! `10.0.0.0/8`; host parts ending in .0 or .255 are skipped because some programs treat them
//! as network or broadcast addresses.

use std::net::Ipv4Addr;

/// Addresses usable in one worker's block: 256 × 254.
pub const NODES_PER_WORKER: u32 = 256 * 254;
/// At most one block per second octet.
pub const MAX_WORKERS: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("worker {asked} does not exist (this run has {count} worker(s), numbered from 0)")]
    NoSuchWorker { asked: u32, count: usize },
    #[error("worker {worker} has no address left: its block holds {NODES_PER_WORKER} nodes")]
    BlockFull { worker: u32 },
}

/// The address plan of a lab: the prefix every worker routes into its data plane.
pub struct AddressPlan;

impl AddressPlan {
    pub const PREFIX: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 0);
    pub const PREFIX_LEN: u8 = 8;

    /// The address block of one worker: `10.k.0.0/16`.
    pub fn block(worker: u32) -> (Ipv4Addr, u8) {
        (Ipv4Addr::new(10, worker as u8, 0, 0), 16)
    }

    /// The address of the `index`-th node of `worker`.
    pub fn address(worker: u32, index: u32) -> Option<Ipv4Addr> {
        if worker as usize >= MAX_WORKERS || index >= NODES_PER_WORKER {
            return None;
        }
        Some(Ipv4Addr::new(
            10,
            worker as u8,
            (index / 254) as u8,
            (index % 254 + 1) as u8,
        ))
    }
}

#[derive(Debug, Clone, Default)]
pub struct Placement {
    weights: Vec<u32>,
    counts: Vec<u32>,
}

impl Placement {
    /// One worker (the embedded one).
    pub fn single() -> Self {
        Self::weighted(vec![1])
    }

    /// Workers with weights (each ≥ 1, at most `MAX_WORKERS`; the caller validates).
    pub fn weighted(weights: Vec<u32>) -> Self {
        let counts = vec![0; weights.len()];
        Placement { weights, counts }
    }

    pub fn workers(&self) -> usize {
        self.weights.len()
    }

    /// Chooses workers and addresses for `n` new nodes without committing them. Unpinned nodes
    /// go to the worker whose load per weight is lowest after adding one (lowest index on ties),
    /// which spreads nodes in proportion to the weights and is deterministic.
    pub fn place(
        &self,
        n: usize,
        pinned: Option<u32>,
    ) -> Result<Vec<(u32, Ipv4Addr)>, PlacementError> {
        let mut counts = self.counts.clone();
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let worker = match pinned {
                Some(k) if (k as usize) < counts.len() => k as usize,
                Some(k) => {
                    return Err(PlacementError::NoSuchWorker {
                        asked: k,
                        count: counts.len(),
                    });
                }
                None => (0..counts.len())
                    .filter(|&k| counts[k] < NODES_PER_WORKER)
                    .min_by(|&a, &b| {
                        let load =
                            |k: usize| (counts[k] as u64 + 1) * 1_000_000 / self.weights[k] as u64;
                        load(a).cmp(&load(b))
                    })
                    .ok_or(PlacementError::BlockFull { worker: 0 })?,
            };
            let ip = AddressPlan::address(worker as u32, counts[worker]).ok_or(
                PlacementError::BlockFull {
                    worker: worker as u32,
                },
            )?;
            counts[worker] += 1;
            out.push((worker as u32, ip));
        }
        Ok(out)
    }

    pub fn commit(&mut self, worker: u32) {
        self.counts[worker as usize] += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_skip_network_and_broadcast() {
        assert_eq!(AddressPlan::address(0, 0), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(
            AddressPlan::address(0, 253),
            Some(Ipv4Addr::new(10, 0, 0, 254))
        );
        assert_eq!(
            AddressPlan::address(2, 254),
            Some(Ipv4Addr::new(10, 2, 1, 1))
        );
        assert_eq!(AddressPlan::address(0, NODES_PER_WORKER), None);
    }

    #[test]
    fn weights_spread_nodes() {
        let mut p = Placement::weighted(vec![1, 3]);
        let placed = p.place(8, None).unwrap();
        for (w, _) in &placed {
            p.commit(*w);
        }
        let on1 = placed.iter().filter(|(w, _)| *w == 1).count();
        assert_eq!(on1, 6);
        assert_eq!(
            p.place(1, Some(2)).unwrap_err(),
            PlacementError::NoSuchWorker { asked: 2, count: 2 }
        );
    }
}
