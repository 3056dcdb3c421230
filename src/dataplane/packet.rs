//! Just enough packet parsing for the data plane: who sent a packet to whom, and how many
//! bytes it takes on the wire when it is a segmentation-offload super-packet.

use std::net::Ipv4Addr;

/// Source and destination of an IPv4 packet; `None` for anything else (IPv6, runts).
pub fn ipv4_endpoints(packet: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr)> {
    if packet.len() < 20 || packet[0] >> 4 != 4 {
        return None;
    }
    let src = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
    let dst = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
    Some((src, dst))
}

/// Length of the virtio-net header in front of each packet of an offloading TUN device.
pub const VNET_HDR_LEN: usize = 10;

/// Bytes on the wire of a packet of `ip_len` bytes: a TCP super-packet (GSO) stands for
/// several MTU-sized segments, each with its own headers, and is charged for all of them.
pub fn wire_len(vnet_hdr: &[u8], ip_len: usize) -> usize {
    if vnet_hdr.len() < VNET_HDR_LEN || vnet_hdr[1] == 0 {
        return ip_len;
    }
    let headers = u16::from_ne_bytes([vnet_hdr[2], vnet_hdr[3]]) as usize;
    let segment = u16::from_ne_bytes([vnet_hdr[4], vnet_hdr[5]]) as usize;
    if segment == 0 || headers >= ip_len {
        return ip_len;
    }
    let segments = (ip_len - headers).div_ceil(segment);
    ip_len + (segments - 1) * headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let mut p = [0u8; 20];
        p[0] = 0x45;
        p[12..16].copy_from_slice(&[10, 0, 0, 1]);
        p[16..20].copy_from_slice(&[10, 0, 0, 2]);
        assert_eq!(
            ipv4_endpoints(&p),
            Some((Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)))
        );
        p[0] = 0x60;
        assert_eq!(ipv4_endpoints(&p), None);
        assert_eq!(ipv4_endpoints(&p[..10]), None);
    }

    #[test]
    fn super_packets_are_charged_per_segment() {
        // 52 bytes of IP+TCP headers, 1448-byte segments, 10 full segments.
        let mut hdr = [0u8; VNET_HDR_LEN];
        hdr[1] = 1;
        hdr[2..4].copy_from_slice(&52u16.to_ne_bytes());
        hdr[4..6].copy_from_slice(&1448u16.to_ne_bytes());
        assert_eq!(wire_len(&hdr, 52 + 14_480), 10 * 1500);
        assert_eq!(wire_len(&hdr, 52 + 100), 152);
        hdr[1] = 0;
        assert_eq!(wire_len(&hdr, 52 + 14_480), 52 + 14_480);
        assert_eq!(wire_len(&[], 1500), 1500);
    }
}
