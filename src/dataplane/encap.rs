//! The format of packets between the data planes of two workers: one UDP datagram per packet,
//! a 34-byte header, the packet as the TUN device gave it (virtio-net header included), and a
//! 16-byte tag that authenticates both under a key of the sending and receiving worker. The
//! header carries the time the packet still has to travel, not a timestamp, so the machines'
//! clocks need not agree, and the run's random id, so that a late datagram of an earlier run
//! never reaches the nodes of the next one. Which datagrams are new is `replay`'s business.
//!
//! ```text
//!  0..4   magic "P2PL"            18..26  counter (per sender → receiver, from 0)
//!  4      version (2)             26..34  remaining delay, ns
//!  5      virtio-net header len   34..    packet
//!  6..10  run id                  last 16 tag: AES-256-GCM of no plaintext, with all
//! 10..14  sender worker index             the bytes before it as associated data
//! 14..18  receiver worker index
//! ```
//!
//! All integers are big-endian. The MAC is AES-256-GCM with an empty plaintext (a GMAC),
//! chosen by `cargo bench --bench mac --features mac-candidates` on this AMD EPYC (AES-NI,
//! VAES, PCLMULQDQ, AVX-512), ns per datagram, best of 5 on a quiet machine:
//!
//! | bytes  | AES-256-GCM | ChaCha20-Poly1305 | BLAKE3 keyed, 16 B |
//! | ------ | ----------- | ----------------- | ------------------ |
//! | 1,500  |         334 |             1,337 |              1,879 |
//! | 65,535 |      11,221 |            12,997 |             10,990 |
//!
//! Packets between workers are MTU-sized (no super-packets with other workers, `offload`),
//! where GMAC costs a quarter of the others; at 64 KB all three run at 5-6 GB/s. The whole
//! `seal`, or `peek` and `open`, of a 1,500-byte packet takes about 370 ns.
//!
//! The nonce is the sender's index and its counter, and each direction between two workers has
//! its own key (HKDF-SHA256 from the run's key), so a nonce never repeats under one key: the
//! counter of one direction only grows, in one thread, and the next run has another key.

use aes_gcm::aead::Nonce;
use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Tag};
use hkdf::Hkdf;
use sha2::Sha256;

use crate::units::Nanos;

const MAGIC: [u8; 4] = *b"P2PL";
const VERSION: u8 = 2;
pub const HEADER_LEN: usize = 34;
pub const TAG_LEN: usize = 16;
/// Bytes a datagram adds to the packet it carries.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// The shortest packet a datagram may carry: an IPv4 header.
const MIN_PACKET: usize = 20;
/// Longest hold a datagram may ask for: a corrupt or hostile value cannot park a packet
/// for hours.
pub const MAX_REMAINING: Nanos = 60_000_000_000;

/// Why a datagram was not accepted, as far as the datagram alone tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    Short,
    NotOurs,
    /// From another run than this one.
    OtherRun,
    /// The sender's TUN device frames packets differently (virtio-net header or not).
    Framing,
    /// The tag does not match: altered, or sealed with another key.
    Forged,
}

/// What a datagram's header says; the tag covers all of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub run: u32,
    pub sender: u32,
    pub receiver: u32,
    pub counter: u64,
    /// Nanoseconds the packet still has to travel (capped at `MAX_REMAINING` when read).
    pub remaining: Nanos,
    /// Bytes of virtio-net header in front of the packet.
    pub vnet_len: usize,
}

/// The key of one direction (sender → receiver) of one run.
pub struct Key(Aes256Gcm);

impl Key {
    /// Derives the key of datagrams from worker `sender` to worker `receiver` from the run's
    /// key, so that no two directions, and no two runs, share one.
    pub fn derive(run_key: &[u8; 32], run: u32, sender: u32, receiver: u32) -> Key {
        let info: [&[u8]; 4] = [
            b"p2plab data plane v2 AES-256-GCM",
            &run.to_be_bytes(),
            &sender.to_be_bytes(),
            &receiver.to_be_bytes(),
        ];
        let mut key = [0u8; 32];
        Hkdf::<Sha256>::new(Some(b"p2plab datagrams"), run_key)
            .expand_multi_info(&info, &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Key(Aes256Gcm::new(&key.into()))
    }

    fn tag(&self, nonce: &Nonce<Aes256Gcm>, covered: &[u8]) -> Tag {
        self.0
            .encrypt_inout_detached(nonce, covered, (&mut [][..]).into())
            .expect("a datagram is far below GCM's length limit")
    }
}

fn nonce(sender: u32, counter: u64) -> Nonce<Aes256Gcm> {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(&sender.to_be_bytes());
    n[4..].copy_from_slice(&counter.to_be_bytes());
    n.into()
}

/// Writes the datagram that carries `packet` into `out`: header, packet, tag.
pub fn seal(key: &Key, header: &Header, packet: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(header.vnet_len as u8);
    out.extend_from_slice(&header.run.to_be_bytes());
    out.extend_from_slice(&header.sender.to_be_bytes());
    out.extend_from_slice(&header.receiver.to_be_bytes());
    out.extend_from_slice(&header.counter.to_be_bytes());
    out.extend_from_slice(&header.remaining.to_be_bytes());
    out.extend_from_slice(packet);
    let tag = key.tag(&nonce(header.sender, header.counter), out);
    out.extend_from_slice(&tag);
}

fn be<const N: usize>(bytes: &[u8]) -> [u8; N] {
    bytes.try_into().expect("a fixed-size field")
}

/// Reads the header of a datagram of run `run` framed with `vnet_len` bytes of virtio-net
/// header: the cheap checks, done before the MAC. Nothing it returns is trusted until
/// [`open`] has checked the tag.
pub fn peek(datagram: &[u8], run: u32, vnet_len: usize) -> Result<Header, Rejected> {
    if datagram.len() < OVERHEAD + vnet_len + MIN_PACKET {
        return Err(Rejected::Short);
    }
    if datagram[..4] != MAGIC || datagram[4] != VERSION {
        return Err(Rejected::NotOurs);
    }
    // The run before the framing: a late datagram of an earlier run is that, however framed.
    if datagram[6..10] != run.to_be_bytes() {
        return Err(Rejected::OtherRun);
    }
    if usize::from(datagram[5]) != vnet_len {
        return Err(Rejected::Framing);
    }
    Ok(Header {
        run,
        sender: u32::from_be_bytes(be(&datagram[10..14])),
        receiver: u32::from_be_bytes(be(&datagram[14..18])),
        counter: u64::from_be_bytes(be(&datagram[18..26])),
        remaining: u64::from_be_bytes(be(&datagram[26..HEADER_LEN])).min(MAX_REMAINING),
        vnet_len,
    })
}

/// Checks the tag of a datagram whose header [`peek`] read, under the key of its direction;
/// returns the packet (virtio-net header included).
pub fn open<'d>(key: &Key, header: &Header, datagram: &'d [u8]) -> Result<&'d [u8], Rejected> {
    let (covered, tag) = datagram.split_at(datagram.len() - TAG_LEN);
    let tag = Tag::try_from(tag).expect("TAG_LEN bytes");
    key.0
        .decrypt_inout_detached(
            &nonce(header.sender, header.counter),
            covered,
            (&mut [][..]).into(),
            &tag,
        )
        .map_err(|_| Rejected::Forged)?;
    Ok(&covered[HEADER_LEN..])
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN_KEY: [u8; 32] = [9; 32];

    fn header(counter: u64) -> Header {
        Header {
            run: 77,
            sender: 1,
            receiver: 2,
            counter,
            remaining: 1_234_567,
            vnet_len: 10,
        }
    }

    fn sealed(h: &Header, packet: &[u8]) -> Vec<u8> {
        let mut d = Vec::new();
        seal(
            &Key::derive(&RUN_KEY, h.run, h.sender, h.receiver),
            h,
            packet,
            &mut d,
        );
        d
    }

    /// What worker 2 makes of a datagram that claims to come from worker 1.
    fn receive(d: &[u8]) -> Result<(Header, Vec<u8>), Rejected> {
        let h = peek(d, 77, 10)?;
        let key = Key::derive(&RUN_KEY, 77, 1, 2);
        open(&key, &h, d).map(|p| (h, p.to_vec()))
    }

    #[test]
    fn a_packet_survives_the_round_trip() {
        let packet: Vec<u8> = (0..40).collect();
        let d = sealed(&header(5), &packet);
        assert_eq!(d.len(), OVERHEAD + packet.len());
        assert_eq!(receive(&d), Ok((header(5), packet)));
    }

    #[test]
    fn a_bit_flipped_anywhere_is_refused_by_the_cheap_checks_or_the_tag() {
        let d = sealed(&header(5), &[3u8; 40]);
        for byte in 0..d.len() {
            for bit in 0..8 {
                let mut bad = d.clone();
                bad[byte] ^= 1 << bit;
                let want = match byte {
                    0..5 => Rejected::NotOurs,
                    5 => Rejected::Framing,
                    6..10 => Rejected::OtherRun,
                    _ => Rejected::Forged,
                };
                assert_eq!(receive(&bad), Err(want), "byte {byte} bit {bit}");
            }
        }
    }

    #[test]
    fn another_run_another_receiver_or_another_direction_does_not_pass() {
        let packet = [3u8; 40];
        let other_run = Header {
            run: 78,
            ..header(5)
        };
        assert_eq!(
            receive(&sealed(&other_run, &packet)),
            Err(Rejected::OtherRun)
        );
        // Sealed for worker 3 and sent to worker 2: 2 checks it under the key of 1 → 2.
        let for_three = Header {
            receiver: 3,
            ..header(5)
        };
        assert_eq!(receive(&sealed(&for_three, &packet)), Err(Rejected::Forged));
        // Worker 2's own datagram to 1, reflected back at 2.
        let reflected = Header {
            sender: 2,
            receiver: 1,
            ..header(5)
        };
        assert_eq!(receive(&sealed(&reflected, &packet)), Err(Rejected::Forged));
        // The same run id with another run's key.
        let mut d = Vec::new();
        seal(
            &Key::derive(&[8; 32], 77, 1, 2),
            &header(5),
            &packet,
            &mut d,
        );
        assert_eq!(receive(&d), Err(Rejected::Forged));
    }

    #[test]
    fn truncated_foreign_misframed_and_greedy_datagrams() {
        // The shortest datagram: a virtio-net header and an IPv4 header.
        let d = sealed(&header(5), &[3u8; 30]);
        for len in 0..d.len() {
            assert_eq!(receive(&d[..len]), Err(Rejected::Short), "{len} bytes");
        }
        let mut longer = d.clone();
        longer.push(0);
        assert_eq!(receive(&longer), Err(Rejected::Forged), "a byte appended");
        assert_eq!(receive(&[0u8; 100]), Err(Rejected::NotOurs));
        let unframed = Header {
            vnet_len: 0,
            ..header(5)
        };
        assert_eq!(
            receive(&sealed(&unframed, &[3u8; 40])),
            Err(Rejected::Framing)
        );
        let greedy = Header {
            remaining: u64::MAX,
            ..header(5)
        };
        let (h, _) = receive(&sealed(&greedy, &[3u8; 40])).unwrap();
        assert_eq!(h.remaining, MAX_REMAINING);
    }

    #[test]
    fn each_direction_and_run_has_its_own_key() {
        let d = |k: Key| {
            let mut out = Vec::new();
            seal(&k, &header(0), &[0u8; 30], &mut out);
            out
        };
        let base = d(Key::derive(&RUN_KEY, 77, 1, 2));
        assert_ne!(base, d(Key::derive(&RUN_KEY, 77, 2, 1)));
        assert_ne!(base, d(Key::derive(&RUN_KEY, 78, 1, 2)));
        assert_ne!(base, d(Key::derive(&[0; 32], 77, 1, 2)));
        assert_eq!(base, d(Key::derive(&RUN_KEY, 77, 1, 2)));
    }
}
