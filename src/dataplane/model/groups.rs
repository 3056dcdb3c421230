//! `GroupMatrix`: the symmetric table of extra latency, jitter and loss between two groups
//! (`link_groups`), with O(1) lookup. It knows groups by index only, not by name.

use super::{GroupIdx, GroupLink, ModelError};

/// Symmetric map `(g1, g2) → GroupLink`; a group may be linked with itself, and pairs
/// never set read as the zero default.
///
/// Stored dense (`g1 * n + g2`, both orders written) because it is read once per packet and
/// labs have few groups; it grows to the largest group index set so far.
#[derive(Clone, Debug, Default)]
pub struct GroupMatrix {
    /// Side of the square `cells`.
    n: usize,
    cells: Vec<GroupLink>,
}

/// What pairs never set read as.
const NONE: GroupLink = GroupLink::NONE;

impl GroupMatrix {
    /// Largest number of groups: bounds the dense table to 1024² cells (24 MiB).
    pub const MAX_GROUPS: u32 = crate::experiment::MAX_GROUPS;

    /// An empty matrix: every pair reads as zero.
    pub fn new() -> Self {
        GroupMatrix::default()
    }

    /// The parameters between `g1` and `g2` (in either order).
    pub fn get(&self, g1: GroupIdx, g2: GroupIdx) -> &GroupLink {
        let (i, j) = (g1.0 as usize, g2.0 as usize);
        if i < self.n && j < self.n {
            &self.cells[i * self.n + j]
        } else {
            &NONE
        }
    }

    /// Sets the parameters between `g1` and `g2`, both directions; applies to the next packet.
    pub fn set(&mut self, g1: GroupIdx, g2: GroupIdx, params: GroupLink) -> Result<(), ModelError> {
        for g in [g1, g2] {
            if g.0 >= Self::MAX_GROUPS {
                return Err(ModelError::TooManyGroups(g));
            }
        }
        let (i, j) = (g1.0 as usize, g2.0 as usize);
        self.grow_to(i.max(j) + 1);
        self.cells[i * self.n + j] = params;
        self.cells[j * self.n + i] = params;
        Ok(())
    }

    fn grow_to(&mut self, n: usize) {
        if n <= self.n {
            return;
        }
        let mut cells = vec![NONE; n * n];
        for i in 0..self.n {
            cells[i * n..i * n + self.n].copy_from_slice(&self.cells[i * self.n..(i + 1) * self.n]);
        }
        self.cells = cells;
        self.n = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::MS;

    fn lat(ms: u64) -> GroupLink {
        GroupLink {
            latency: ms * MS,
            ..GroupLink::default()
        }
    }

    #[test]
    fn symmetric_self_and_default() {
        let mut m = GroupMatrix::new();
        assert_eq!(m.get(GroupIdx(0), GroupIdx(7)), &GroupLink::default());
        m.set(GroupIdx(0), GroupIdx(2), lat(40)).unwrap();
        m.set(GroupIdx(1), GroupIdx(1), lat(5)).unwrap();
        assert_eq!(m.get(GroupIdx(0), GroupIdx(2)).latency, 40 * MS);
        assert_eq!(m.get(GroupIdx(2), GroupIdx(0)).latency, 40 * MS);
        assert_eq!(m.get(GroupIdx(1), GroupIdx(1)).latency, 5 * MS);
        assert_eq!(m.get(GroupIdx(0), GroupIdx(1)).latency, 0);
        assert_eq!(m.get(GroupIdx(0), GroupIdx(0)).latency, 0);
        // Growing keeps what was set.
        m.set(GroupIdx(9), GroupIdx(3), lat(1)).unwrap();
        assert_eq!(m.get(GroupIdx(2), GroupIdx(0)).latency, 40 * MS);
        assert_eq!(m.get(GroupIdx(1), GroupIdx(1)).latency, 5 * MS);
        assert_eq!(m.get(GroupIdx(3), GroupIdx(9)).latency, MS);
        // Overwrite.
        m.set(GroupIdx(2), GroupIdx(0), lat(7)).unwrap();
        assert_eq!(m.get(GroupIdx(0), GroupIdx(2)).latency, 7 * MS);
    }

    #[test]
    fn huge_group_index_is_an_error_not_an_allocation() {
        let mut m = GroupMatrix::new();
        let g = GroupIdx(u32::MAX);
        assert_eq!(
            m.set(GroupIdx(0), g, lat(1)),
            Err(ModelError::TooManyGroups(g))
        );
        assert_eq!(m.get(g, g), &GroupLink::default());
    }
}
