//! The segments of a TCP super-packet (segmentation offload), as the link model charges them:
//! where each one's payload lies, its size on the wire, and the headers of a run of
//! consecutive segments written back as one packet, the way the kernel's own TCP
//! segmentation would have cut them (sequence numbers, IP ids, FIN/PSH on the last, CWR on
//! the first; the TCP checksum left to the kernel as in the super-packet).

use std::ops::Range;

use super::packet::VNET_HDR_LEN;

/// virtio-net header: the checksum is partial, to be completed from `csum_start`.
const NEEDS_CSUM: u8 = 1;
/// virtio-net GSO types.
const GSO_NONE: u8 = 0;
const GSO_TCPV4: u8 = 1;
const GSO_ECN: u8 = 0x80;
const TCP: u8 = 6;
const FIN: u8 = 0x01;
const PSH: u8 = 0x08;
const CWR: u8 = 0x80;

/// The shape of an IPv4 TCP super-packet: its headers and how its payload divides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// IP header bytes (where the TCP header starts).
    ip_header: usize,
    /// IP and TCP header bytes (where the payload starts).
    headers: usize,
    /// Payload bytes per segment (the last may be shorter).
    mss: usize,
    payload: usize,
    /// The super-packet's GSO type, kept (with its ECN bit) on runs of several segments.
    gso_type: u8,
}

impl Layout {
    /// The layout of `ip` (behind virtio-net header `vnet`) if it is an IPv4 TCP super-packet
    /// of at least two segments; `None` for anything else, which travels as one packet.
    pub fn of(vnet: &[u8], ip: &[u8]) -> Option<Layout> {
        if vnet.len() < VNET_HDR_LEN || vnet[1] & !GSO_ECN != GSO_TCPV4 {
            return None;
        }
        let mss = u16::from_ne_bytes([vnet[4], vnet[5]]) as usize;
        if ip.len() < 20 || ip[0] >> 4 != 4 || ip[9] != TCP || mss == 0 {
            return None;
        }
        let ip_header = usize::from(ip[0] & 0x0f) * 4;
        let tcp_header = usize::from(*ip.get(ip_header + 12)? >> 4) * 4;
        let headers = ip_header + tcp_header;
        if ip_header < 20 || tcp_header < 20 || headers >= ip.len() {
            return None;
        }
        let layout = Layout {
            ip_header,
            headers,
            mss,
            payload: ip.len() - headers,
            gso_type: vnet[1],
        };
        (layout.count() >= 2).then_some(layout)
    }

    /// How many segments the super-packet holds.
    pub fn count(&self) -> usize {
        self.payload.div_ceil(self.mss)
    }

    /// Payload bytes of segments `run`, as offsets into the IP packet.
    pub fn payload(&self, run: Range<usize>) -> Range<usize> {
        let end = (run.end * self.mss).min(self.payload);
        self.headers + run.start * self.mss..self.headers + end
    }

    /// Bytes of segment `i` on the wire: its headers and its payload.
    pub fn wire_len(&self, i: usize) -> usize {
        self.headers + self.payload(i..i + 1).len()
    }

    /// Writes into `out` the virtio-net header and the IP and TCP headers of the packet that
    /// carries segments `run` of super-packet `ip`; its payload is `ip[self.payload(run)]`.
    /// Returns the header bytes written. A run of one segment is a plain packet; a longer
    /// one stays a super-packet with the same segment size.
    pub fn run_headers(&self, ip: &[u8], run: Range<usize>, out: &mut Vec<u8>) -> usize {
        let payload = self.payload(run.clone()).len();
        let several = run.len() > 1;
        out.clear();
        out.push(NEEDS_CSUM);
        out.push(if several { self.gso_type } else { GSO_NONE });
        let (hdr_len, gso_size) = if several {
            (self.headers as u16, self.mss as u16)
        } else {
            (0, 0)
        };
        out.extend_from_slice(&hdr_len.to_ne_bytes());
        out.extend_from_slice(&gso_size.to_ne_bytes());
        out.extend_from_slice(&(self.ip_header as u16).to_ne_bytes());
        out.extend_from_slice(&16u16.to_ne_bytes());
        let at = out.len();
        out.extend_from_slice(&ip[..self.headers]);
        let (h, ip_len) = (&mut out[at..], self.headers + payload);
        // IP: the total length, the id the kernel would have given the first segment, and
        // the header checksum, which no one offloads.
        h[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
        let id = u16::from_be_bytes([h[4], h[5]]).wrapping_add(run.start as u16);
        h[4..6].copy_from_slice(&id.to_be_bytes());
        h[10..12].copy_from_slice(&[0, 0]);
        let check = !fold(sum(&h[..self.ip_header]));
        h[10..12].copy_from_slice(&check.to_be_bytes());
        // TCP: the run's first sequence number and flags.
        let t = &mut h[self.ip_header..];
        let seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]])
            .wrapping_add((run.start * self.mss) as u32);
        t[4..8].copy_from_slice(&seq.to_be_bytes());
        if run.end < self.count() {
            t[13] &= !(FIN | PSH);
        }
        if run.start > 0 {
            t[13] &= !CWR;
        }
        // The pseudo-header's sum, as the kernel leaves it for a partial checksum.
        let tcp_len = ip_len - self.ip_header;
        let pseudo = sum(&h[12..20]) + u32::from(TCP) + tcp_len as u32;
        h[self.ip_header + 16..self.ip_header + 18].copy_from_slice(&fold(pseudo).to_be_bytes());
        out.len()
    }
}

/// The one's-complement sum of big-endian 16-bit words, not yet folded.
fn sum(bytes: &[u8]) -> u32 {
    let mut chunks = bytes.chunks_exact(2);
    let mut s: u32 = chunks
        .by_ref()
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    if let [last] = chunks.remainder() {
        s += u32::from(*last) << 8;
    }
    s
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: [u8; 4] = [10, 0, 0, 1];
    const DST: [u8; 4] = [10, 0, 0, 2];

    /// A super-packet of `payload` bytes cut in `mss`-byte segments, TCP flags `flags`,
    /// with a 12-byte TCP option (timestamps) as Linux sends.
    fn super_packet(payload: usize, mss: usize, flags: u8) -> (Vec<u8>, Vec<u8>) {
        let mut vnet = vec![0u8; VNET_HDR_LEN];
        vnet[0] = NEEDS_CSUM;
        vnet[1] = GSO_TCPV4;
        vnet[2..4].copy_from_slice(&52u16.to_ne_bytes());
        vnet[4..6].copy_from_slice(&(mss as u16).to_ne_bytes());
        vnet[6..8].copy_from_slice(&20u16.to_ne_bytes());
        vnet[8..10].copy_from_slice(&16u16.to_ne_bytes());
        let mut ip = vec![0u8; 52];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((52 + payload) as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&0xfffeu16.to_be_bytes());
        ip[6] = 0x40;
        ip[8] = 64;
        ip[9] = TCP;
        ip[12..16].copy_from_slice(&SRC);
        ip[16..20].copy_from_slice(&DST);
        ip[20..22].copy_from_slice(&5201u16.to_be_bytes());
        ip[22..24].copy_from_slice(&40000u16.to_be_bytes());
        ip[24..28].copy_from_slice(&0xffff_f000u32.to_be_bytes());
        ip[32] = 8 << 4;
        ip[33] = flags;
        ip.extend((0..payload).map(|i| (i % 251) as u8));
        (vnet, ip)
    }

    fn seq(t: &[u8]) -> u32 {
        u32::from_be_bytes([t[24], t[25], t[26], t[27]])
    }

    #[test]
    fn only_tcp_super_packets_of_two_segments_or_more_are_cut() {
        let (vnet, ip) = super_packet(3000, 1448, 0x10);
        let l = Layout::of(&vnet, &ip).expect("a super-packet");
        assert_eq!(l.count(), 3);
        assert_eq!(
            [l.wire_len(0), l.wire_len(1), l.wire_len(2)],
            [1500, 1500, 52 + 104]
        );
        assert_eq!(l.payload(0..3), 52..3052);
        assert_eq!(Layout::of(&vnet, &ip[..52 + 1000]), None, "one segment");
        let mut plain = vnet.clone();
        plain[1] = GSO_NONE;
        assert_eq!(Layout::of(&plain, &ip), None);
        let mut udp = ip.clone();
        udp[9] = 17;
        assert_eq!(Layout::of(&vnet, &udp), None);
        assert_eq!(Layout::of(&vnet, &ip[..30]), None, "a runt");
        assert_eq!(Layout::of(&[], &ip), None, "no virtio-net header");
        let mut ecn = vnet.clone();
        ecn[1] |= GSO_ECN;
        assert_eq!(Layout::of(&ecn, &ip).map(|l| l.count()), Some(3));
    }

    #[test]
    fn runs_carry_their_own_sequence_numbers_lengths_ids_and_flags() {
        // ACK, PSH, FIN and CWR on the super-packet; the sequence number wraps inside it.
        let (vnet, ip) = super_packet(5 * 1448 + 10, 1448, 0x10 | PSH | FIN | CWR);
        let l = Layout::of(&vnet, &ip).unwrap();
        assert_eq!(l.count(), 6);
        let mut payload = Vec::new();
        let mut out = Vec::new();
        for (k, run) in [0..1, 1..4, 4..6].into_iter().enumerate() {
            let n = l.run_headers(&ip, run.clone(), &mut out);
            assert_eq!(n, VNET_HDR_LEN + 52);
            let (v, h) = out.split_at(VNET_HDR_LEN);
            let body = &ip[l.payload(run.clone())];
            payload.extend_from_slice(body);
            assert_eq!(
                u16::from_be_bytes([h[2], h[3]]) as usize,
                52 + body.len(),
                "IP total length"
            );
            assert_eq!(
                u16::from_be_bytes([h[4], h[5]]),
                0xfffeu16.wrapping_add(run.start as u16)
            );
            assert_eq!(fold(sum(&h[..20])), 0xffff, "a valid IP header checksum");
            assert_eq!(
                seq(h),
                0xffff_f000u32.wrapping_add((run.start * 1448) as u32)
            );
            let flags = h[33];
            assert_eq!(flags & (FIN | PSH) != 0, k == 2, "FIN and PSH on the last");
            assert_eq!(flags & CWR != 0, k == 0, "CWR on the first");
            assert_eq!(flags & 0x10, 0x10, "ACK on all");
            let tcp_len = (52 - 20 + body.len()) as u32;
            let pseudo = fold(sum(&SRC) + sum(&DST) + 6 + tcp_len);
            assert_eq!(u16::from_be_bytes([h[36], h[37]]), pseudo);
            assert_eq!(v[0], NEEDS_CSUM);
            assert_eq!(u16::from_ne_bytes([v[6], v[7]]), 20, "csum_start");
            assert_eq!(u16::from_ne_bytes([v[8], v[9]]), 16, "csum_offset");
            if run.len() > 1 {
                assert_eq!(v[1], GSO_TCPV4);
                assert_eq!(u16::from_ne_bytes([v[4], v[5]]), 1448, "segment size kept");
                assert_eq!(u16::from_ne_bytes([v[2], v[3]]), 52);
            } else {
                assert_eq!((v[1], v[4], v[5]), (GSO_NONE, 0, 0), "a plain packet");
            }
        }
        assert_eq!(
            payload,
            ip[52..],
            "the runs carry the payload once, in order"
        );
    }

    #[test]
    fn the_pseudo_header_sum_completes_to_the_true_checksum() {
        // What the kernel computes from the partial sum must equal a checksum from scratch.
        let (vnet, ip) = super_packet(2 * 1448 + 7, 1448, 0x10);
        let l = Layout::of(&vnet, &ip).unwrap();
        let mut out = Vec::new();
        l.run_headers(&ip, 2..3, &mut out);
        let mut packet = out[VNET_HDR_LEN..].to_vec();
        packet.extend_from_slice(&ip[l.payload(2..3)]);
        let tcp = &packet[20..];
        // The kernel: checksum over the TCP bytes with the partial sum in place, complemented.
        let completed = !fold(sum(tcp));
        let mut zeroed = tcp.to_vec();
        zeroed[16..18].copy_from_slice(&[0, 0]);
        let scratch = !fold(sum(&SRC) + sum(&DST) + 6 + tcp.len() as u32 + sum(&zeroed));
        assert_eq!(completed, scratch);
    }
}
