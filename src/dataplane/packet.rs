//! Just enough IPv4 parsing for the data plane: who sent a packet and to whom.

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
}
