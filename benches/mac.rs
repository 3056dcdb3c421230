//! The cost of authenticating datagrams between workers, per datagram (best of 5 rounds):
//! sealing and checking one in the real format (`encap::seal`, `peek` + `open`), and, with
//! `--features mac-candidates`, the MACs it was chosen among, bare: AES-256-GCM and
//! ChaCha20-Poly1305 with the packet as associated data and no plaintext, and BLAKE3's keyed
//! hash cut to 16 bytes. Packets between workers are MTU-sized; 64 KB is a super-packet.
//!   cargo bench --bench mac [--features mac-candidates]

use std::hint::black_box;
use std::time::Instant;

use p2plab::dataplane::encap::{self, Header, Key};

const SIZES: [(usize, usize); 3] = [(1_500, 200_000), (9_000, 40_000), (65_535, 5_000)];

/// Nanoseconds per call of `f` on a packet of `len` bytes, best of 5 rounds of `iters`.
fn best_ns(len: usize, iters: usize, mut f: impl FnMut(&[u8], u64)) -> f64 {
    let packet = vec![0x5a; len];
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        for i in 0..iters {
            f(black_box(&packet), i as u64);
        }
        best = best.min(t.elapsed().as_nanos() as f64 / iters as f64);
    }
    best
}

fn report(name: &str, len: usize, ns: f64) {
    println!(
        "{name:>26} {len:>6} B: {ns:>8.0} ns  {:>5.2} GB/s",
        len as f64 / ns
    );
}

fn main() {
    let run_key = [7u8; 32];
    let key = Key::derive(&run_key, 1, 0, 1);
    let mut datagram = Vec::new();
    for (len, iters) in SIZES {
        let ns = best_ns(len, iters, |p, counter| {
            let h = Header {
                run: 1,
                sender: 0,
                receiver: 1,
                counter,
                remaining: 0,
                vnet_len: 10,
            };
            encap::seal(&key, &h, p, &mut datagram);
            black_box(&datagram);
        });
        report("encap::seal", len, ns);
        // The datagram sealed last, checked over and over.
        let ns = best_ns(len, iters, |_, _| {
            let h = encap::peek(black_box(&datagram), 1, 10).expect("ours");
            assert!(encap::open(&key, &h, &datagram).is_ok());
        });
        report("encap::peek + open", len, ns);
    }
    #[cfg(feature = "mac-candidates")]
    candidates::run(&run_key);
}

#[cfg(feature = "mac-candidates")]
mod candidates {
    use std::hint::black_box;

    use aes_gcm::Aes256Gcm;
    use aes_gcm::aead::{AeadInOut, KeyInit};
    use chacha20poly1305::ChaCha20Poly1305;

    use super::{SIZES, best_ns, report};

    fn nonce(counter: u64) -> [u8; 12] {
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&counter.to_be_bytes());
        n
    }

    pub fn run(key: &[u8; 32]) {
        let gcm = Aes256Gcm::new(key.into());
        let chacha = ChaCha20Poly1305::new(key.into());
        for (len, iters) in SIZES {
            let ns = best_ns(len, iters, |p, c| {
                let tag = gcm.encrypt_inout_detached(&nonce(c).into(), p, (&mut [][..]).into());
                black_box(tag.expect("short"));
            });
            report("AES-256-GCM (GMAC)", len, ns);
            let ns = best_ns(len, iters, |p, c| {
                let tag = chacha.encrypt_inout_detached(&nonce(c).into(), p, (&mut [][..]).into());
                black_box(tag.expect("short"));
            });
            report("ChaCha20-Poly1305", len, ns);
            let ns = best_ns(len, iters, |p, _| {
                let hash = blake3::keyed_hash(key, p);
                black_box(<[u8; 16]>::try_from(&hash.as_bytes()[..16]).expect("16"));
            });
            report("BLAKE3 keyed, 16 bytes", len, ns);
        }
    }
}
