//! `GroupMatrix`: the symmetric table of extra latency, jitter and loss between two groups
//! (`link_groups`), with O(1) lookup, by group index (`GroupIdx`), bounded to
//! [`GroupMatrix::MAX_GROUPS`]. It knows groups by index only, not by name.

use super::{GroupIdx, GroupLink, ModelError};
use crate::experiment::GroupTable;

/// Symmetric map `(g1, g2) → GroupLink`; a group may be linked with itself, and pairs
/// never set read as the zero default. Stored as `experiment::GroupTable` stores it: dense,
/// 4 bytes a pair, each distinct link once, because it is read once per packet.
#[derive(Clone, Debug, Default)]
pub struct GroupMatrix {
    table: GroupTable,
}

impl GroupMatrix {
    /// Largest number of groups: bounds the dense table to 4096² cells (64 MiB).
    pub const MAX_GROUPS: u32 = crate::experiment::MAX_GROUPS;

    /// An empty matrix: every pair reads as zero.
    pub fn new() -> Self {
        GroupMatrix::default()
    }

    /// The parameters between `g1` and `g2` (in either order).
    pub fn get(&self, g1: GroupIdx, g2: GroupIdx) -> &GroupLink {
        self.table.get(g1.0, g2.0)
    }

    /// Sets the parameters between `g1` and `g2`, both directions; applies to the next packet.
    pub fn set(&mut self, g1: GroupIdx, g2: GroupIdx, params: GroupLink) -> Result<(), ModelError> {
        for g in [g1, g2] {
            if g.0 >= Self::MAX_GROUPS {
                return Err(ModelError::TooManyGroups(g));
            }
        }
        self.table.set(g1.0, g2.0, params);
        Ok(())
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
