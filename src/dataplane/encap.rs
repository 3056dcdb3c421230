//! The format of packets between the data planes of two workers: one UDP datagram per packet,
//! a 20-byte header, then the packet as the TUN device gave it (virtio-net header included).
//! The header carries the time the packet still has to travel, not a timestamp, so the
//! machines' clocks need not agree, and the run's random id, so that a late datagram of an
//! earlier run never reaches the nodes of the next one.

use crate::units::Nanos;

const MAGIC: [u8; 4] = *b"P2PL";
const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 20;
/// Longest hold a datagram may ask for: a corrupt or hostile value cannot park a packet
/// for hours.
pub const MAX_REMAINING: Nanos = 60_000_000_000;

/// Why a datagram was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    Short,
    NotOurs,
    /// From another run than this one.
    OtherRun,
    /// The sender's TUN device frames packets differently (virtio-net header or not).
    Framing,
}

/// Writes the header for a packet that must still travel `remaining` ns, framed with a
/// virtio-net header of `vnet_len` bytes.
pub fn header(run: u32, remaining: Nanos, vnet_len: usize) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(&MAGIC);
    h[4] = VERSION;
    h[5] = vnet_len as u8;
    h[8..12].copy_from_slice(&run.to_be_bytes());
    h[12..].copy_from_slice(&remaining.to_be_bytes());
    h
}

/// Checks a datagram and returns the time the packet still has to travel (capped) and the
/// packet itself (virtio-net header included).
pub fn parse(datagram: &[u8], run: u32, vnet_len: usize) -> Result<(Nanos, &[u8]), Rejected> {
    if datagram.len() < HEADER_LEN + vnet_len + 20 {
        return Err(Rejected::Short);
    }
    if datagram[..4] != MAGIC || datagram[4] != VERSION {
        return Err(Rejected::NotOurs);
    }
    if usize::from(datagram[5]) != vnet_len {
        return Err(Rejected::Framing);
    }
    if datagram[8..12] != run.to_be_bytes() {
        return Err(Rejected::OtherRun);
    }
    let mut remaining = [0u8; 8];
    remaining.copy_from_slice(&datagram[12..HEADER_LEN]);
    let remaining = u64::from_be_bytes(remaining).min(MAX_REMAINING);
    Ok((remaining, &datagram[HEADER_LEN..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packet_survives_the_round_trip() {
        let packet = [7u8; 30];
        let mut d = header(77, 1_234_567, 10).to_vec();
        d.extend_from_slice(&packet);
        assert_eq!(parse(&d, 77, 10), Ok((1_234_567, &packet[..])));
        assert_eq!(parse(&d, 78, 10), Err(Rejected::OtherRun));
    }

    #[test]
    fn foreign_short_misframed_and_greedy_datagrams() {
        let mut d = header(1, u64::MAX, 0).to_vec();
        d.extend_from_slice(&[0u8; 20]);
        assert_eq!(parse(&d, 1, 0).unwrap().0, MAX_REMAINING);
        assert_eq!(parse(&d, 1, 10), Err(Rejected::Short));
        assert_eq!(parse(&d[..HEADER_LEN + 19], 1, 0), Err(Rejected::Short));
        let mut other = d.clone();
        other[0] = b'X';
        assert_eq!(parse(&other, 1, 0), Err(Rejected::NotOurs));
        let mut framed = header(1, 5, 10).to_vec();
        framed.extend_from_slice(&[0u8; 30]);
        assert_eq!(parse(&framed, 1, 0), Err(Rejected::Framing));
    }
}
