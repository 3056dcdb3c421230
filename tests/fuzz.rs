//! Decoder-level fuzzing, without privileges: 120,000 random and mutated frames through the
//! decoder every frame a peer sends goes through (`decode_message`), as each message type of
//! the protocol. No input panics, and no decode allocates more than the frame limit (a counting
//! allocator records the largest single allocation made while decoding). The test prints how
//! many frames decoded to a valid message and how many were rejected.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use p2plab::proto::frame::{HANDSHAKE_FRAME, MAX_FRAME, decode_message};
use p2plab::proto::messages::{Handshake, ToController, ToWorker};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// The system allocator, which notes the largest allocation of a thread while it watches.
struct Counting;

thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: a thread's locals may be gone while it exits and still frees memory.
    let _ = WATCHING.try_with(|w| {
        if w.get() {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        }
    });
}

// SAFETY: every call is passed on unchanged to the system allocator; noting a size touches
// only const-initialised thread locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's contract for `alloc` is passed on as it is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: the caller's contract for `realloc` is passed on as it is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Decodes `frame` as every message type; how many decoded, and the largest allocation.
fn decode_all(frame: &[u8]) -> (usize, usize) {
    LARGEST.with(|l| l.set(0));
    WATCHING.with(|w| w.set(true));
    let ok = usize::from(decode_message::<Handshake>(frame).is_ok())
        + usize::from(decode_message::<ToWorker>(frame).is_ok())
        + usize::from(decode_message::<ToController>(frame).is_ok());
    WATCHING.with(|w| w.set(false));
    (ok, LARGEST.with(Cell::get))
}

/// One valid frame of every kind the protocol has.
const VALID: &[&str] = &[
    r#"{"type":"hello","version":3,"nonce":"0011"}"#,
    r#"{"type":"noise","message":"00ff"}"#,
    r#"{"type":"claim"}"#,
    r#"{"type":"welcome","worker":"p2plab worker on lab1"}"#,
    r#"{"type":"refused","reason":"busy"}"#,
    r#"{"type":"heartbeat"}"#,
    r#"{"type":"request","id":1,"body":{"request":"setup","index":0,"seed":1,"mtu":1500,"hint":"x","run":7,"key":"00","peers":[{"index":1,"data":"10.0.0.1:7000"}]}}"#,
    r#"{"type":"request","id":2,"body":{"request":"act","action":{"action":"add_node","node":0,"ip":"10.0.0.1","group":0,"worker":0}}}"#,
    r#"{"type":"request","id":3,"body":{"request":"act","action":{"action":"shape","node":0,"link":{"up":1000,"down":null,"latency_ns":5,"jitter_ns":0,"loss":0.1,"queue":null,"jitter":{"dist":"normal","correlation":0.25},"burst":{"p":0.01,"r":0.3,"loss_bad":1.0,"loss_good":0.0},"down_trace":{"id":0,"offset_ns":7}}}}}"#,
    r#"{"type":"request","id":4,"body":{"request":"act","action":{"action":"link_groups","a":0,"b":1,"link":{"latency_ns":1,"jitter_ns":2,"loss":0.0,"jitter":{"dist":"uniform","correlation":0.0}}}}}"#,
    r#"{"type":"request","id":5,"body":{"request":"act","action":{"action":"link_group_row","a":2,"links":[{"latency_ns":1,"jitter_ns":0,"loss":0.0,"jitter":{"dist":"pareto","correlation":0.0}}],"pairs":[[0,0],[1,0]]}}}"#,
    r#"{"type":"request","id":6,"body":{"request":"act","action":{"action":"load_trace","id":0,"trace":{"kind":"rate","runs":[[1,2],[4,1]]}}}}"#,
    r#"{"type":"request","id":7,"body":{"request":"act","action":{"action":"load_trace","id":1,"trace":{"kind":"delay","points":[[0,5000000]],"period_ns":null}}}}"#,
    r#"{"type":"request","id":5,"body":{"request":"act","action":{"action":"spawn","proc":0,"node":0,"cmd":"sleep 1","argv":["sleep","1"],"shell":false,"env":[["A","b"]],"user":null}}}"#,
    r#"{"type":"request","id":6,"body":{"request":"act","action":{"action":"leave","node":0,"procs":[1,2],"grace_ns":100}}}"#,
    r#"{"type":"request","id":7,"body":{"request":"traffic","interval":true}}"#,
    r#"{"type":"request","id":8,"body":{"request":"collect"}}"#,
    r#"{"type":"request","id":9,"body":{"request":"stop"}}"#,
    r#"{"type":"reply","id":1,"result":{"Ok":{"reply":"lab","namespace":"p2plab-1-x","binding":"bpf"}}}"#,
    r#"{"type":"reply","id":2,"result":{"Ok":{"reply":"outcome","outcome":{"pid":7,"exits":[{"proc":1,"code":0,"signal":null}],"spawn_error":null,"warning":null}}}}"#,
    r#"{"type":"reply","id":3,"result":{"Err":{"failure":"not_local","node":4}}}"#,
    r#"{"type":"reply","id":4,"result":{"Ok":{"reply":"traffic","nodes":[["10.0.0.1",{"sent_bytes":1,"sent_packets":1,"recv_bytes":2,"recv_packets":2,"dropped_queue":0,"dropped_loss":0}]],"health":{"timed_packets":3,"late_p50_ns":1,"late_p99_ns":2,"late_max_ns":3,"cpu_ns":4,"overruns":0,"write_errors":0}}}}"#,
    r#"{"type":"exit","exit":{"proc":1,"code":null,"signal":9}}"#,
    r#"{"type":"file","path":"nodes/10.0.0.1/stdout.log","offset":0,"data":"aGVsbG8K"}"#,
    r#"{"type":"abort","reason":"record 3 does not verify"}"#,
];

/// A change to a frame: a flipped bit, a byte replaced, cut short, bytes inserted, a slice
/// repeated (the positions are fractions of the length, so they fit any frame).
#[derive(Debug, Clone)]
enum Mutation {
    Flip(f64, u8),
    Set(f64, u8),
    Cut(f64),
    Insert(f64, Vec<u8>),
    Repeat(f64, f64),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = 0.0..1.0f64;
    prop_oneof![
        (at.clone(), 0..8u8).prop_map(|(p, b)| Mutation::Flip(p, b)),
        (at.clone(), any::<u8>()).prop_map(|(p, v)| Mutation::Set(p, v)),
        at.clone().prop_map(Mutation::Cut),
        (at.clone(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(p, v)| Mutation::Insert(p, v)),
        (at.clone(), at).prop_map(|(p, q)| Mutation::Repeat(p, q)),
    ]
}

fn apply(frame: &mut Vec<u8>, m: &Mutation) {
    let at = |p: f64, len: usize| ((p * len as f64) as usize).min(len.saturating_sub(1));
    let len = frame.len();
    if len == 0 {
        return;
    }
    match m {
        Mutation::Flip(p, bit) => frame[at(*p, len)] ^= 1 << bit,
        Mutation::Set(p, v) => frame[at(*p, len)] = *v,
        Mutation::Cut(p) => frame.truncate(at(*p, len)),
        Mutation::Insert(p, bytes) => {
            let i = at(*p, len);
            frame.splice(i..i, bytes.iter().copied());
        }
        Mutation::Repeat(p, q) => {
            let (i, j) = (at(*p, len), at(*q, len));
            let (i, j) = (i.min(j), i.max(j));
            let slice = frame[i..=j].to_vec();
            // Never past the frame limit: a peer cannot send a longer frame.
            if len + slice.len() <= HANDSHAKE_FRAME {
                frame.splice(i..i, slice);
            }
        }
    }
}

/// Runs `cases` frames of `strategy` through the decoders; returns (frames, valid, largest).
fn fuzz(cases: u32, strategy: impl Strategy<Value = Vec<u8>>) -> (u32, u32, usize) {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let (frames, valid, largest) = (Cell::new(0u32), Cell::new(0u32), Cell::new(0usize));
    let result = runner.run(&strategy, |frame| {
        let (ok, biggest) = decode_all(&frame);
        frames.set(frames.get() + 1);
        valid.set(valid.get() + u32::from(ok > 0));
        largest.set(largest.get().max(biggest));
        prop_assert!(
            biggest <= MAX_FRAME,
            "decoding {} bytes allocated {biggest}",
            frame.len()
        );
        // A frame makes at most a few copies of itself: strings, a buffer, a map.
        prop_assert!(
            biggest <= 4 * frame.len() + 4096,
            "decoding {} bytes allocated {biggest}",
            frame.len()
        );
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    (frames.get(), valid.get(), largest.get())
}

#[test]
fn every_valid_frame_decodes() {
    for v in VALID {
        assert!(decode_all(v.as_bytes()).0 > 0, "{v}");
    }
}

#[test]
fn random_and_mutated_frames_never_panic_nor_allocate_past_the_limit() {
    let random = prop::collection::vec(any::<u8>(), 0..HANDSHAKE_FRAME);
    let (n1, ok1, big1) = fuzz(40_000, random);
    let mutated = (0..VALID.len(), prop::collection::vec(mutation(), 1..5)).prop_map(|(i, ms)| {
        let mut f = VALID[i].as_bytes().to_vec();
        for m in &ms {
            apply(&mut f, m);
        }
        f
    });
    let (n2, ok2, big2) = fuzz(80_000, mutated);
    eprintln!(
        "decoded {} frames: {n1} random ({ok1} valid messages), {n2} mutated ({ok2} still \
         valid, {} rejected); largest allocation while decoding: {} bytes",
        n1 + n2,
        n2 - ok2,
        big1.max(big2)
    );
    assert!(n1 + n2 >= 100_000);
    // The mutations reach deep: most break the frame, some keep it valid.
    assert!(ok2 > 0 && ok2 < n2, "{ok2} of {n2}");
}
