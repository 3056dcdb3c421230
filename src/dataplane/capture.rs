//! Packet captures of nodes: the packets a captured node's access link sends and receives, in
//! a classic pcap file (libpcap format, nanosecond timestamps, raw IPv4, as tcpdump and
//! Wireshark read it), up to a size cap. Formatting and the cap live here, free of clocks:
//! the forwarder taps packets and passes the wall-clock time in. A packet whose TCP or UDP
//! checksum the kernel left to the (virtual) network card is captured with it filled in,
//! as the card would send it.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::Ipv4Addr;

use super::packet::{VNET_HDR_LEN, ipv4_endpoints};
use crate::units::{Nanos, SEC};

/// The magic number of pcap files whose timestamps are in nanoseconds.
pub const MAGIC_NANOS: u32 = 0xa1b2_3c4d;
/// Packets begin with their IPv4 header: no link-layer header (a TUN device has none).
pub const LINKTYPE_RAW: u32 = 101;
pub const FILE_HEADER_LEN: u64 = 24;
pub const RECORD_HEADER_LEN: u64 = 16;
/// The largest snapshot length readers accept.
pub const MAX_SNAPLEN: u32 = 262_144;
/// How long written packets may wait in memory: a crash loses at most this much.
pub const FLUSH_EVERY: Nanos = SEC;

/// The file header: format version 2.4, UTC, packets cut at `snaplen` bytes, raw IP.
pub fn file_header(snaplen: u32) -> [u8; FILE_HEADER_LEN as usize] {
    let mut h = [0u8; FILE_HEADER_LEN as usize];
    h[0..4].copy_from_slice(&MAGIC_NANOS.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    // Bytes 8..16: time zone offset and timestamp accuracy, both 0 by convention.
    h[16..20].copy_from_slice(&snaplen.to_le_bytes());
    h[20..24].copy_from_slice(&LINKTYPE_RAW.to_le_bytes());
    h
}

/// The header of one packet's record: its time (ns since the Unix epoch), the bytes kept
/// and its length on the link.
pub fn record_header(at: Nanos, kept: u32, len: u32) -> [u8; RECORD_HEADER_LEN as usize] {
    let mut h = [0u8; RECORD_HEADER_LEN as usize];
    // Seconds fit the field's 32 bits until 2106.
    h[0..4].copy_from_slice(&((at / SEC) as u32).to_le_bytes());
    h[4..8].copy_from_slice(&((at % SEC) as u32).to_le_bytes());
    h[8..12].copy_from_slice(&kept.to_le_bytes());
    h[12..16].copy_from_slice(&len.to_le_bytes());
    h
}

/// The virtio-net flag of a packet whose checksum is still to be made (`NEEDS_CSUM`).
const NEEDS_CSUM: u8 = 1;

/// Whether a packet framed with virtio-net header `vnet` asks for its checksum.
pub fn needs_checksum(vnet: &[u8]) -> bool {
    vnet.len() >= VNET_HDR_LEN && vnet[0] & NEEDS_CSUM != 0
}

/// The checksum a network card would write into a packet framed with virtio-net header
/// `vnet` that asks for one: the ones' complement sum from `csum_start` to the end, over the
/// pseudo-header sum the kernel left in the field, stored at `csum_start + csum_offset`.
/// Returns false (and changes nothing) when the packet asks for none or its header does
/// not fit it.
pub fn complete_checksum(vnet: &[u8], packet: &mut [u8]) -> bool {
    if !needs_checksum(vnet) {
        return false;
    }
    let start = u16::from_ne_bytes([vnet[6], vnet[7]]) as usize;
    let field = start + u16::from_ne_bytes([vnet[8], vnet[9]]) as usize;
    if field + 2 > packet.len() {
        return false;
    }
    let mut sum: u64 = 0;
    let mut words = packet[start..].chunks_exact(2);
    for w in &mut words {
        sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u64::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let mut checksum = !(sum as u16);
    // UDP sends a computed 0 as 0xffff (0 means "no checksum"); the kernel does the same.
    if checksum == 0 {
        checksum = 0xffff;
    }
    packet[field..field + 2].copy_from_slice(&checksum.to_be_bytes());
    true
}

/// What became of a tapped packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tapped {
    Written,
    /// It did not fit under the cap: the capture stops here, this packet not written.
    Capped,
    /// The capture had stopped already.
    Stopped,
}

/// One node's capture: a pcap file that grows up to `max_size` bytes.
pub struct Capture<W: Write> {
    out: W,
    snaplen: u32,
    max_size: u64,
    /// Bytes in the file, its header included.
    size: u64,
    stopped: bool,
}

impl<W: Write> Capture<W> {
    /// A capture into `out`, which holds `existing` bytes of an earlier capture of the node
    /// already (an empty file gets the file header first). Snapshot lengths above
    /// `MAX_SNAPLEN` are cut to it.
    pub fn start(mut out: W, existing: u64, snaplen: u32, max_size: u64) -> io::Result<Self> {
        let snaplen = snaplen.clamp(1, MAX_SNAPLEN);
        let mut size = existing;
        if existing == 0 {
            out.write_all(&file_header(snaplen))?;
            size = FILE_HEADER_LEN;
        }
        Ok(Capture {
            out,
            snaplen,
            max_size,
            size,
            stopped: size > max_size,
        })
    }

    /// Appends `packet` (an IPv4 packet as the link carries it) at time `at`, cut to the
    /// snapshot length, unless the file would grow past its cap.
    pub fn packet(&mut self, at: Nanos, packet: &[u8]) -> io::Result<Tapped> {
        if self.stopped {
            return Ok(Tapped::Stopped);
        }
        let len = u32::try_from(packet.len()).unwrap_or(u32::MAX);
        let kept = len.min(self.snaplen);
        let record = RECORD_HEADER_LEN + u64::from(kept);
        if self.size + record > self.max_size {
            self.stopped = true;
            self.out.flush()?;
            return Ok(Tapped::Capped);
        }
        self.out.write_all(&record_header(at, kept, len))?;
        self.out.write_all(&packet[..kept as usize])?;
        self.size += record;
        Ok(Tapped::Written)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Bytes in the file so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn max_size(&self) -> u64 {
        self.max_size
    }

    #[cfg(test)]
    fn into_inner(self) -> W {
        self.out
    }
}

/// The captures of one data plane, by node address, with what they counted.
pub struct Captures<W: Write = BufWriter<File>> {
    by_ip: HashMap<Ipv4Addr, Capture<W>>,
    /// Packets written into any capture.
    pub packets: u64,
    /// Captures that reached their cap.
    pub capped: u64,
    /// Captures stopped because their file could not be written.
    pub failed: u64,
    /// Whether packets were written since the last flush.
    dirty: bool,
    last_flush: Nanos,
    /// Where a packet gets the checksum the kernel left to the network card.
    scratch: Vec<u8>,
}

impl<W: Write> Default for Captures<W> {
    fn default() -> Self {
        Captures {
            by_ip: HashMap::new(),
            packets: 0,
            capped: 0,
            failed: 0,
            dirty: false,
            last_flush: 0,
            scratch: Vec::new(),
        }
    }
}

impl<W: Write> Captures<W> {
    pub fn is_empty(&self) -> bool {
        self.by_ip.is_empty()
    }

    /// Starts capturing `ip`'s packets; a capture of it already running goes on instead.
    pub fn start(&mut self, ip: Ipv4Addr, capture: Capture<W>) {
        self.by_ip.entry(ip).or_insert(capture);
    }

    /// Stops capturing `ip`, its file written out.
    pub fn stop(&mut self, ip: Ipv4Addr) {
        if let Some(mut c) = self.by_ip.remove(&ip) {
            self.flush_one(ip, &mut c);
        }
    }

    pub fn stop_all(&mut self) {
        let ips: Vec<Ipv4Addr> = self.by_ip.keys().copied().collect();
        for ip in ips {
            self.stop(ip);
        }
        self.dirty = false;
    }

    /// A packet its source sent (read from the TUN device, behind its virtio-net header
    /// `vnet`, empty without offload): taken by the source's capture. `wall` (ns since the
    /// Unix epoch) is read only for a captured packet.
    pub fn sent(&mut self, vnet: &[u8], packet: &[u8], wall: impl FnOnce() -> Nanos) {
        if self.by_ip.is_empty() {
            return;
        }
        if let Some((src, _)) = ipv4_endpoints(packet) {
            self.tap(src, vnet, packet, wall);
        }
    }

    /// A packet delivered to its destination (written to the TUN device): taken by the
    /// destination's capture.
    pub fn received(&mut self, vnet: &[u8], packet: &[u8], wall: impl FnOnce() -> Nanos) {
        if self.by_ip.is_empty() {
            return;
        }
        if let Some((_, dst)) = ipv4_endpoints(packet) {
            self.tap(dst, vnet, packet, wall);
        }
    }

    fn tap(&mut self, ip: Ipv4Addr, vnet: &[u8], packet: &[u8], wall: impl FnOnce() -> Nanos) {
        let Some(capture) = self.by_ip.get_mut(&ip) else {
            return;
        };
        let packet = if needs_checksum(vnet) {
            // The copy that gets its checksum, in a buffer kept for reuse.
            self.scratch.clear();
            self.scratch.extend_from_slice(packet);
            complete_checksum(vnet, &mut self.scratch);
            &self.scratch[..]
        } else {
            packet
        };
        match capture.packet(wall(), packet) {
            Ok(Tapped::Written) => {
                self.packets += 1;
                self.dirty = true;
            }
            Ok(Tapped::Capped) => {
                self.capped += 1;
                tracing::warn!(
                    %ip,
                    "the packet capture of {ip} reached its max_size of {} bytes: \
                     it stops here",
                    capture.max_size()
                );
            }
            Ok(Tapped::Stopped) => {}
            Err(e) => {
                self.failed += 1;
                tracing::warn!(%ip, "the packet capture of {ip} stops: {e}");
                self.by_ip.remove(&ip);
            }
        }
    }

    /// When the packets written since the last flush are due on disk: `FLUSH_EVERY` after
    /// it (a packet after a quiet spell is flushed at once).
    pub fn flush_deadline(&self) -> Option<Nanos> {
        self.dirty
            .then(|| self.last_flush.saturating_add(FLUSH_EVERY))
    }

    /// Writes out what waits in memory, when it is due (`flush_deadline`).
    pub fn flush_due(&mut self, now: Nanos) {
        if self.flush_deadline().is_none_or(|t| now < t) {
            return;
        }
        self.dirty = false;
        self.last_flush = now;
        let ips: Vec<Ipv4Addr> = self.by_ip.keys().copied().collect();
        for ip in ips {
            if let Some(mut c) = self.by_ip.remove(&ip)
                && self.flush_one(ip, &mut c)
            {
                self.by_ip.insert(ip, c);
            }
        }
    }

    /// Flushes one capture; false when its file failed (it is then given up).
    fn flush_one(&mut self, ip: Ipv4Addr, capture: &mut Capture<W>) -> bool {
        match capture.flush() {
            Ok(()) => true,
            Err(e) => {
                self.failed += 1;
                tracing::warn!(%ip, "the packet capture of {ip} stops: {e}");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ping(src: [u8; 4], dst: [u8; 4], len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = 0x45;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        p
    }

    #[test]
    fn the_file_header_is_pcap_2_4_in_nanoseconds_of_raw_ip() {
        assert_eq!(
            file_header(262_144),
            [
                0x4d, 0x3c, 0xb2, 0xa1, // magic, little-endian
                2, 0, 4, 0, // version 2.4
                0, 0, 0, 0, 0, 0, 0, 0, // time zone, accuracy
                0x00, 0x00, 0x04, 0x00, // snaplen 262144
                101, 0, 0, 0, // LINKTYPE_RAW
            ]
        );
    }

    #[test]
    fn a_record_header_holds_seconds_nanoseconds_and_both_lengths() {
        let at = 1_795_636_566 * SEC + 123_456_789;
        let mut want = Vec::new();
        want.extend_from_slice(&1_795_636_566u32.to_le_bytes());
        want.extend_from_slice(&123_456_789u32.to_le_bytes());
        want.extend_from_slice(&96u32.to_le_bytes());
        want.extend_from_slice(&1500u32.to_le_bytes());
        assert_eq!(record_header(at, 96, 1500).to_vec(), want);
    }

    #[test]
    fn packets_are_cut_to_the_snapshot_length() {
        let mut c = Capture::start(Vec::new(), 0, 40, 1 << 20).unwrap();
        let p = ping([10, 0, 0, 1], [10, 0, 0, 2], 84);
        assert_eq!(c.packet(5 * SEC + 7, &p).unwrap(), Tapped::Written);
        let file = c.into_inner();
        assert_eq!(file.len(), 24 + 16 + 40);
        assert_eq!(&file[..24], &file_header(40));
        assert_eq!(&file[24..40], &record_header(5 * SEC + 7, 40, 84));
        assert_eq!(&file[40..], &p[..40]);
    }

    #[test]
    fn the_cap_stops_the_file_at_the_last_packet_that_fits() {
        // Header 24 + two records of 16 + 84 = 224 bytes; a third would make 324.
        let mut c = Capture::start(Vec::new(), 0, MAX_SNAPLEN, 300).unwrap();
        let p = ping([10, 0, 0, 1], [10, 0, 0, 2], 84);
        assert_eq!(c.packet(1, &p).unwrap(), Tapped::Written);
        assert_eq!(c.packet(2, &p).unwrap(), Tapped::Written);
        assert_eq!(c.packet(3, &p).unwrap(), Tapped::Capped);
        let small = ping([10, 0, 0, 1], [10, 0, 0, 2], 20);
        assert_eq!(
            c.packet(4, &small).unwrap(),
            Tapped::Stopped,
            "a capped capture stays stopped, even for a packet that would fit"
        );
        assert_eq!(c.size(), 224);
        assert_eq!(c.into_inner().len(), 224);
    }

    #[test]
    fn a_capture_resumed_on_its_file_appends_records_only() {
        let c = Capture::start(Vec::new(), 124, 100, 1000).unwrap();
        assert_eq!(c.size(), 124);
        assert!(c.into_inner().is_empty(), "no second file header");
    }

    #[test]
    fn captures_take_what_their_node_sends_and_receives_and_count_it() {
        let (a, b, c) = ([10, 0, 0, 1], [10, 0, 0, 2], [10, 0, 0, 3]);
        let mut set: Captures<Vec<u8>> = Captures::default();
        let never = || -> Nanos { panic!("no capture: the clock is not read") };
        set.sent(&[], &ping(a, b, 84), never);
        set.start(
            Ipv4Addr::from(a),
            Capture::start(Vec::new(), 0, MAX_SNAPLEN, 1 << 20).unwrap(),
        );
        set.sent(&[], &ping(b, c, 84), never);
        set.received(&[], &ping(a, c, 84), never);
        assert_eq!(set.packets, 0, "neither from nor to a");
        assert_eq!(set.flush_deadline(), None, "nothing to write out");
        set.sent(&[], &ping(a, b, 84), || 1);
        assert_eq!(set.flush_deadline(), Some(FLUSH_EVERY));
        set.flush_due(5 * SEC);
        assert_eq!(set.flush_deadline(), None, "flushed");
        set.received(&[], &ping(b, a, 84), || 2);
        assert_eq!(set.packets, 2);
        assert_eq!(
            set.flush_deadline(),
            Some(6 * SEC),
            "a second after the last flush"
        );
        set.flush_due(6 * SEC - 1);
        assert!(set.flush_deadline().is_some(), "not due yet");
        set.flush_due(6 * SEC);
        assert_eq!(set.flush_deadline(), None);
        set.stop(Ipv4Addr::from(a));
        assert!(set.is_empty());
    }

    /// A UDP datagram 10.0.0.1:1000 → 10.0.0.2:2000 with payload "abc" (odd, to cover the
    /// last byte), its checksum as the kernel leaves it for the card: the pseudo-header sum.
    fn udp_needing_checksum() -> ([u8; VNET_HDR_LEN], Vec<u8>) {
        let mut p = ping([10, 0, 0, 1], [10, 0, 0, 2], 20 + 8 + 3);
        p[9] = 17;
        p[20..22].copy_from_slice(&1000u16.to_be_bytes());
        p[22..24].copy_from_slice(&2000u16.to_be_bytes());
        p[24..26].copy_from_slice(&11u16.to_be_bytes());
        p[28..31].copy_from_slice(b"abc");
        // Pseudo-header: addresses 0x0a00 0x0001 0x0a00 0x0002, protocol 17, length 11:
        // 0x141f.
        let pseudo: u32 = 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 17 + 11;
        p[26..28].copy_from_slice(&(pseudo as u16).to_be_bytes());
        let mut vnet = [0u8; VNET_HDR_LEN];
        vnet[0] = NEEDS_CSUM;
        vnet[6..8].copy_from_slice(&20u16.to_ne_bytes());
        vnet[8..10].copy_from_slice(&6u16.to_ne_bytes());
        (vnet, p)
    }

    #[test]
    fn a_checksum_left_to_the_card_is_filled_in() {
        let (vnet, mut p) = udp_needing_checksum();
        assert!(complete_checksum(&vnet, &mut p));
        // The checksum of RFC 768, computed apart: ones' complement of the sum of the
        // pseudo-header (0x141f), the ports, the length and the data.
        assert_eq!(&p[26..28], &0x1bbbu16.to_be_bytes());
        let untouched = udp_needing_checksum().1;
        assert_eq!(p[..26], untouched[..26], "only the checksum changes");
        assert_eq!(p[28..], untouched[28..]);

        let mut q = untouched.clone();
        assert!(
            !complete_checksum(&[0; VNET_HDR_LEN], &mut q),
            "asks for none"
        );
        assert!(!complete_checksum(&[], &mut q), "no offload");
        let mut short = vnet;
        short[8..10].copy_from_slice(&100u16.to_ne_bytes());
        assert!(
            !complete_checksum(&short, &mut q),
            "the field is past the end"
        );
        assert_eq!(q, untouched);
    }

    #[test]
    fn captures_write_checksums_the_card_would_have_made() {
        let (vnet, p) = udp_needing_checksum();
        let mut set: Captures<Vec<u8>> = Captures::default();
        set.start(
            Ipv4Addr::new(10, 0, 0, 1),
            Capture::start(Vec::new(), 0, MAX_SNAPLEN, 1 << 20).unwrap(),
        );
        set.sent(&vnet, &p, || 1);
        let file = set
            .by_ip
            .remove(&Ipv4Addr::new(10, 0, 0, 1))
            .unwrap()
            .into_inner();
        assert_eq!(&file[40 + 26..40 + 28], &0x1bbbu16.to_be_bytes());
    }

    #[test]
    fn a_capped_capture_is_counted_once() {
        let a = [10, 0, 0, 1];
        let mut set: Captures<Vec<u8>> = Captures::default();
        set.start(
            Ipv4Addr::from(a),
            Capture::start(Vec::new(), 0, MAX_SNAPLEN, 200).unwrap(),
        );
        for t in 0..5 {
            set.sent(&[], &ping(a, [10, 0, 0, 2], 84), || t);
        }
        assert_eq!((set.packets, set.capped), (1, 1));
    }
}
