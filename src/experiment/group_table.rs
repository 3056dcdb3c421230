//! `GroupTable`: the symmetric table of links between groups, by group index, compact enough
//! for a topology of thousands of groups: each pair holds a 4-byte index into the distinct
//! links set so far (measured graphs repeat the same few latencies and losses many times).

use std::collections::HashMap;

use super::GroupLink;

/// Rows and columns grow in steps of this many groups, so a topology that adds its groups
/// one by one copies the table a few dozen times, not once per group.
const GROWTH: usize = 128;

/// Symmetric map `(a, b) → GroupLink`; a group may be linked with itself, and pairs never
/// set read as [`GroupLink::NONE`]. O(1) lookup: one index load, one link load.
#[derive(Clone, Debug)]
pub struct GroupTable {
    /// Groups that pairs were set for: indices below it are in the table.
    n: usize,
    /// Side of the square `cells` (≥ n).
    stride: usize,
    cells: Vec<u32>,
    /// Distinct links; index 0 is `GroupLink::NONE`.
    links: Vec<GroupLink>,
    index: HashMap<[u64; 9], u32>,
}

impl Default for GroupTable {
    fn default() -> Self {
        GroupTable {
            n: 0,
            stride: 0,
            cells: Vec::new(),
            links: vec![GroupLink::NONE],
            index: HashMap::from([(GroupLink::NONE.bits(), 0)]),
        }
    }
}

impl GroupTable {
    pub fn new() -> Self {
        GroupTable::default()
    }

    /// The link between groups `a` and `b` (in either order).
    pub fn get(&self, a: u32, b: u32) -> &GroupLink {
        let (i, j) = (a as usize, b as usize);
        if i < self.n && j < self.n {
            &self.links[self.cells[i * self.stride + j] as usize]
        } else {
            &self.links[0]
        }
    }

    /// Sets the link between `a` and `b`, both directions. The caller bounds the indices:
    /// the table grows to the square of the largest.
    pub fn set(&mut self, a: u32, b: u32, link: GroupLink) {
        let (i, j) = (a as usize, b as usize);
        self.grow_to(i.max(j) + 1);
        let k = self.intern(link);
        self.cells[i * self.stride + j] = k;
        self.cells[j * self.stride + i] = k;
    }

    /// How many distinct links are held (`GroupLink::NONE` included).
    pub fn distinct(&self) -> usize {
        self.links.len()
    }

    /// Bytes the table takes, about: cells, links and their index.
    pub fn footprint(&self) -> usize {
        self.cells.capacity() * 4
            + self.links.capacity() * std::mem::size_of::<GroupLink>()
            + self.index.capacity() * (std::mem::size_of::<([u64; 9], u32)>() + 1)
    }

    fn intern(&mut self, link: GroupLink) -> u32 {
        let next = self.links.len() as u32;
        let k = *self.index.entry(link.bits()).or_insert(next);
        if k == next {
            self.links.push(link);
        }
        k
    }

    fn grow_to(&mut self, n: usize) {
        if n <= self.n {
            return;
        }
        if n > self.stride {
            let stride = n.next_multiple_of(GROWTH);
            let mut cells = vec![0; stride * stride];
            for i in 0..self.n {
                cells[i * stride..i * stride + self.n]
                    .copy_from_slice(&self.cells[i * self.stride..i * self.stride + self.n]);
            }
            self.cells = cells;
            self.stride = stride;
        }
        self.n = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::GilbertElliott;
    use crate::units::MS;

    fn lat(ms: u64) -> GroupLink {
        GroupLink {
            latency: ms * MS,
            ..GroupLink::NONE
        }
    }

    #[test]
    fn symmetric_self_default_and_growth() {
        let mut t = GroupTable::new();
        assert_eq!(t.get(0, 7), &GroupLink::NONE);
        t.set(0, 2, lat(40));
        t.set(1, 1, lat(5));
        assert_eq!(t.get(2, 0).latency, 40 * MS);
        assert_eq!(t.get(1, 1).latency, 5 * MS);
        assert_eq!(t.get(0, 1), &GroupLink::NONE);
        // Growing past a step keeps what was set.
        t.set(300, 3, lat(1));
        assert_eq!(t.get(0, 2).latency, 40 * MS);
        assert_eq!(t.get(1, 1).latency, 5 * MS);
        assert_eq!(t.get(3, 300).latency, MS);
        assert_eq!(t.get(300, 299), &GroupLink::NONE);
        t.set(2, 0, lat(7));
        assert_eq!(t.get(0, 2).latency, 7 * MS);
    }

    #[test]
    fn equal_links_are_stored_once() {
        let mut t = GroupTable::new();
        for a in 0..200 {
            for b in a..200 {
                t.set(a, b, lat(u64::from((a + b) % 10)));
            }
        }
        // 0 ms is NONE itself; 1..9 ms are nine more.
        assert_eq!(t.distinct(), 10);
        let bursty = GroupLink {
            burst: Some(GilbertElliott {
                p: 0.01,
                r: 0.5,
                loss_bad: 1.0,
                loss_good: 0.0,
            }),
            ..lat(3)
        };
        t.set(5, 6, bursty);
        assert_eq!(t.get(6, 5), &bursty);
        assert_eq!(t.get(5, 7).latency, 2 * MS);
        assert_eq!(t.distinct(), 11);
    }
}
