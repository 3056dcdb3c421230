//! The record layer of an authenticated session. A message is cut into records of at most one
//! Noise transport message; each is sealed (ChaCha20-Poly1305) under the keys of the session's
//! Noise handshake with its sequence number as the nonce, and carries that number in the clear.
//! A record opens only at the number that comes next, so an altered, forged, replayed, dropped,
//! reordered or truncated record ends the session, and the error says which of these it was.

use std::sync::Arc;

use snow::StatelessTransportState;

/// Bytes of the sequence number in front of every record.
pub const SEQ_LEN: usize = 8;
/// Bytes of the authentication tag at the end of every record.
pub const TAG_LEN: usize = 16;
/// A Noise transport message is at most this long, tag included.
const NOISE_MAX: usize = 65535;
/// Longest record: sequence number and one Noise transport message.
pub const MAX_RECORD: usize = SEQ_LEN + NOISE_MAX;
/// Plaintext bytes per record: the first byte of a record's plaintext says whether the
/// message goes on in the next record.
const CHUNK: usize = NOISE_MAX - TAG_LEN - 1;
const MORE: u8 = 1;
const LAST: u8 = 0;

/// Why a record was not accepted. Every one of them ends the session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Integrity {
    /// `seq` is what the record says of itself, which may be altered too.
    #[error("a record (marked {seq}) does not verify: altered or forged")]
    Forged { seq: u64 },
    #[error("a record of {len} bytes is too short to be sealed: truncated")]
    Truncated { len: usize },
    #[error("a record of {len} bytes is longer than any sealed record")]
    Oversized { len: usize },
    #[error("record {seq} came a second time, after record {} (replayed)", expected.saturating_sub(1))]
    Replayed { seq: u64, expected: u64 },
    #[error("record {seq} arrived where record {expected} was due: records dropped or reordered")]
    Missing { seq: u64, expected: u64 },
    #[error("a message grew past the limit of {limit} bytes")]
    TooLong { limit: usize },
    #[error("the session has sealed 2^64 records and must end")]
    Exhausted,
    #[error("sealing a record: {0}")]
    Sealing(String),
}

/// The keys of one session, as both halves of a connection use them. Not `Clone`: two sealers
/// of one session would both count from 0, and so use one nonce twice under one key.
pub struct SessionKeys(Arc<StatelessTransportState>);

impl SessionKeys {
    pub fn new(transport: StatelessTransportState) -> Self {
        SessionKeys(Arc::new(transport))
    }

    /// The sealing and opening halves, each counting its own direction from 0: the only
    /// sealer this session ever has.
    pub(crate) fn halves(self, limit: usize) -> (Sealer, Opener) {
        let sealer = Sealer {
            keys: SessionKeys(self.0.clone()),
            next: 0,
        };
        let opener = Opener {
            keys: self,
            next: 0,
            partial: Vec::new(),
            limit,
        };
        (sealer, opener)
    }
}

/// Seals outgoing messages into records.
pub struct Sealer {
    keys: SessionKeys,
    next: u64,
}

impl Sealer {
    /// The records of one message, in order.
    pub fn seal(&mut self, message: &[u8]) -> Result<Vec<Vec<u8>>, Integrity> {
        // An empty message still makes one record.
        let n = message.len().div_ceil(CHUNK).max(1);
        let mut records = Vec::with_capacity(n);
        let mut plain = Vec::with_capacity(CHUNK.min(message.len()) + 1);
        for i in 0..n {
            let chunk = &message[i * CHUNK..message.len().min((i + 1) * CHUNK)];
            plain.clear();
            plain.push(if i + 1 < n { MORE } else { LAST });
            plain.extend_from_slice(chunk);
            records.push(self.seal_record(&plain)?);
        }
        Ok(records)
    }

    fn seal_record(&mut self, plain: &[u8]) -> Result<Vec<u8>, Integrity> {
        let seq = self.next;
        self.next = seq.checked_add(1).ok_or(Integrity::Exhausted)?;
        let mut record = vec![0u8; SEQ_LEN + plain.len() + TAG_LEN];
        record[..SEQ_LEN].copy_from_slice(&seq.to_be_bytes());
        let n = self
            .keys
            .0
            .write_message(seq, plain, &mut record[SEQ_LEN..])
            .map_err(|e| Integrity::Sealing(e.to_string()))?;
        record.truncate(SEQ_LEN + n);
        Ok(record)
    }
}

/// Opens incoming records and puts their messages back together.
pub struct Opener {
    keys: SessionKeys,
    next: u64,
    partial: Vec<u8>,
    /// Longest message accepted: a peer cannot make this side buffer more.
    limit: usize,
}

impl Opener {
    /// The message this record completes, if it is the last of one.
    pub fn open(&mut self, record: &[u8]) -> Result<Option<Vec<u8>>, Integrity> {
        if record.len() < SEQ_LEN + TAG_LEN + 1 {
            return Err(Integrity::Truncated { len: record.len() });
        }
        if record.len() > MAX_RECORD {
            return Err(Integrity::Oversized { len: record.len() });
        }
        let mut seq = [0u8; SEQ_LEN];
        seq.copy_from_slice(&record[..SEQ_LEN]);
        let seq = u64::from_be_bytes(seq);
        let sealed = &record[SEQ_LEN..];
        let mut plain = vec![0u8; sealed.len()];
        let opened = self.keys.0.read_message(seq, sealed, &mut plain);
        let n = match opened {
            Ok(n) if seq == self.next => n,
            // A genuine record of this session, out of its place.
            Ok(_) if seq < self.next => {
                return Err(Integrity::Replayed {
                    seq,
                    expected: self.next,
                });
            }
            Ok(_) => {
                return Err(Integrity::Missing {
                    seq,
                    expected: self.next,
                });
            }
            Err(_) => return Err(Integrity::Forged { seq }),
        };
        self.next += 1;
        let (flag, chunk) = plain[..n].split_first().ok_or(Integrity::Forged { seq })?;
        if self.partial.len() + chunk.len() > self.limit {
            return Err(Integrity::TooLong { limit: self.limit });
        }
        self.partial.extend_from_slice(chunk);
        match *flag {
            LAST => Ok(Some(std::mem::take(&mut self.partial))),
            MORE => Ok(None),
            // Only a rightful peer's bug gets here: its record verified.
            _ => Err(Integrity::Forged { seq }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two ends of a fresh Noise session, the way the handshake makes them.
    fn session() -> (SessionKeys, SessionKeys) {
        let psk = [3u8; 32];
        let params: snow::params::NoiseParams =
            "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s".parse().unwrap();
        let mut i = snow::Builder::new(params.clone())
            .psk(0, &psk)
            .unwrap()
            .build_initiator()
            .unwrap();
        let mut r = snow::Builder::new(params)
            .psk(0, &psk)
            .unwrap()
            .build_responder()
            .unwrap();
        let (mut a, mut b) = ([0u8; 256], [0u8; 256]);
        let n = i.write_message(&[], &mut a).unwrap();
        r.read_message(&a[..n], &mut b).unwrap();
        let n = r.write_message(&[], &mut a).unwrap();
        i.read_message(&a[..n], &mut b).unwrap();
        (
            SessionKeys::new(i.into_stateless_transport_mode().unwrap()),
            SessionKeys::new(r.into_stateless_transport_mode().unwrap()),
        )
    }

    fn pair(limit: usize) -> (Sealer, Opener) {
        let (i, r) = session();
        (i.halves(limit).0, r.halves(limit).1)
    }

    thread_local! {
        /// One session for the many cases of a property (a handshake is slow): each case
        /// seals one record and opens it, so both ends stay in step.
        static SHARED: std::cell::RefCell<(Sealer, Opener)> =
            std::cell::RefCell::new(pair(1 << 20));
    }

    #[test]
    fn messages_of_every_size_come_through_in_order() {
        let (mut s, mut o) = pair(1 << 20);
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 7] {
            let msg: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let records = s.seal(&msg).unwrap();
            assert_eq!(records.len(), len.div_ceil(CHUNK).max(1), "{len}");
            assert!(records.iter().all(|r| r.len() <= MAX_RECORD));
            let (last, rest) = records.split_last().unwrap();
            for r in rest {
                assert_eq!(o.open(r), Ok(None));
            }
            assert_eq!(o.open(last), Ok(Some(msg)));
        }
    }

    #[test]
    fn a_flipped_bit_anywhere_is_caught() {
        let (mut s, mut o) = pair(1 << 20);
        let record = s.seal(b"{\"type\":\"heartbeat\"}").unwrap().remove(0);
        for bit in 0..record.len() * 8 {
            let mut bad = record.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let err = o.open(&bad).unwrap_err();
            assert!(matches!(err, Integrity::Forged { .. }), "bit {bit}: {err}");
        }
        assert_eq!(
            o.open(&record),
            Ok(Some(b"{\"type\":\"heartbeat\"}".to_vec()))
        );
    }

    #[test]
    fn replayed_dropped_reordered_and_truncated_records_are_named() {
        let (mut s, mut o) = pair(1 << 20);
        let r: Vec<Vec<u8>> = (0..4).map(|i| s.seal(&[i]).unwrap().remove(0)).collect();
        assert_eq!(o.open(&r[0]), Ok(Some(vec![0])));
        assert_eq!(o.open(&r[1]), Ok(Some(vec![1])));
        assert_eq!(
            o.open(&r[0]),
            Err(Integrity::Replayed {
                seq: 0,
                expected: 2
            })
        );
        assert_eq!(
            o.open(&r[3]),
            Err(Integrity::Missing {
                seq: 3,
                expected: 2
            })
        );
        assert_eq!(o.open(&r[2][..20]), Err(Integrity::Truncated { len: 20 }));
        assert!(matches!(
            o.open(&r[2][..r[2].len() - 1]),
            Err(Integrity::Forged { seq: 2 })
        ));
        // The other direction's records, or another session's, do not open here.
        let (mut other, _) = pair(1 << 20);
        let foreign = other.seal(&[2]).unwrap().remove(0);
        assert!(matches!(
            o.open(&foreign),
            Err(Integrity::Forged { seq: 0 })
        ));
        assert_eq!(o.open(&r[2]), Ok(Some(vec![2])));
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            cases: 10_000,
            failure_persistence: None,
            ..Default::default()
        })]

        /// Any change to a sealed record (a bit, a byte, its length) is caught, and the
        /// record still opens afterwards: nothing of the bad one was kept.
        #[test]
        fn a_changed_record_never_opens(
            message in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            at in 0.0..1.0f64,
            byte in 1..=255u8,
            cut in proptest::prelude::any::<bool>(),
        ) {
            let (refused, bad, opened) = SHARED.with(|shared| {
                let (s, o) = &mut *shared.borrow_mut();
                let record = s.seal(&message).unwrap().remove(0);
                let i = ((at * record.len() as f64) as usize).min(record.len() - 1);
                let mut bad = record.clone();
                if cut {
                    bad.truncate(i);
                } else {
                    bad[i] ^= byte;
                }
                let refused = o.open(&bad).is_err();
                (refused, bad.len(), o.open(&record))
            });
            proptest::prop_assert!(refused, "a changed record of {bad} bytes opened");
            proptest::prop_assert_eq!(opened, Ok(Some(message)));
        }
    }

    #[test]
    fn a_message_past_the_limit_is_refused_before_it_is_whole() {
        let (mut s, mut o) = pair(2 * CHUNK);
        let records = s.seal(&vec![0u8; 3 * CHUNK]).unwrap();
        assert_eq!(o.open(&records[0]), Ok(None));
        assert_eq!(o.open(&records[1]), Ok(None));
        assert_eq!(
            o.open(&records[2]),
            Err(Integrity::TooLong { limit: 2 * CHUNK })
        );
    }
}
