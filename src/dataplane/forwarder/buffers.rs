//! Packet buffers. A packet is read into a buffer that fits the largest super-packet; a small
//! packet then gets a right-sized copy (thousands may wait in queues), while a super-packet
//! keeps the buffer it was read into, which comes back for reuse once the packet is written:
//! copying tens of kilobytes per packet, and allocating for it, cost as much as forwarding.

/// The largest IP packet, and so the largest TCP super-packet.
pub(super) const MAX_PACKET: usize = 65_535;
/// Packets up to this size are copied out of the read buffer.
const COPY_LIMIT: usize = 16 * 1024;
/// Read buffers kept for reuse: enough for the bursts of one unshaped flow; more packets in
/// flight (a long delay) get new buffers, freed when they are written.
const SPARES: usize = 16;

/// A packet: the first `len` bytes of `buf`.
pub(super) struct Packet {
    buf: Vec<u8>,
    len: usize,
}

impl Packet {
    pub(super) fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl From<&[u8]> for Packet {
    fn from(bytes: &[u8]) -> Self {
        Packet {
            buf: bytes.to_vec(),
            len: bytes.len(),
        }
    }
}

pub(super) struct Buffers {
    /// Where the next packet is read.
    read: Vec<u8>,
    spares: Vec<Vec<u8>>,
}

impl Buffers {
    /// Buffers for packets framed with a virtio-net header of `hdr` bytes.
    pub(super) fn new(hdr: usize) -> Self {
        Buffers {
            read: vec![0; hdr + MAX_PACKET],
            spares: Vec::new(),
        }
    }

    /// The buffer to read the next packet into.
    pub(super) fn read_buffer(&mut self) -> &mut [u8] {
        &mut self.read
    }

    /// The packet of `len` bytes just read into the read buffer.
    pub(super) fn take(&mut self, len: usize) -> Packet {
        if len <= COPY_LIMIT {
            return Packet::from(&self.read[..len]);
        }
        let size = self.read.len();
        let next = self.spares.pop().unwrap_or_else(|| vec![0; size]);
        Packet {
            buf: std::mem::replace(&mut self.read, next),
            len,
        }
    }

    /// Keeps the read buffer of a packet that has been written, for the next super-packet.
    pub(super) fn recycle(&mut self, packet: Packet) {
        if packet.buf.len() == self.read.len() && self.spares.len() < SPARES {
            self.spares.push(packet.buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::packet::VNET_HDR_LEN;

    #[test]
    fn small_packets_are_copied_super_packets_keep_their_buffer_which_comes_back() {
        let mut b = Buffers::new(VNET_HDR_LEN);
        b.read_buffer()[..3].copy_from_slice(&[1, 2, 3]);
        let small = b.take(3);
        assert_eq!(small.bytes(), [1, 2, 3]);
        assert_eq!(small.buf.capacity(), 3, "right-sized");

        b.read_buffer()[COPY_LIMIT] = 9;
        let first = b.read.as_ptr();
        let big = b.take(COPY_LIMIT + 1);
        assert_eq!(big.bytes().len(), COPY_LIMIT + 1);
        assert_eq!(big.bytes()[COPY_LIMIT], 9);
        assert_eq!(big.buf.as_ptr(), first, "not copied");
        assert_ne!(b.read.as_ptr(), first, "a new read buffer");

        b.recycle(small);
        b.recycle(big);
        assert_eq!(b.spares.len(), 1, "only read buffers come back");
        b.take(COPY_LIMIT + 1);
        assert_eq!(b.read.as_ptr(), first, "the spare is reused");
    }
}
