//! Packet captures: `capture` (each node's packets into `nodes/<ip>/capture.pcap`, as its
//! access link sends and receives them) and `stop_capture`.

use std::sync::Arc;

use rhai::{Dynamic, Engine, Map, NativeCallContext};

use super::{RhaiResult, ScriptState, check_keys, lab_err, size, targets};
use crate::dataplane::capture::{FILE_HEADER_LEN, MAX_SNAPLEN, RECORD_HEADER_LEN};
use crate::script::error::at_call;

const CAPTURE_KEYS: &[&str] = &["snaplen", "max_size"];
/// Whole packets: larger than any IPv4 packet.
const DEFAULT_SNAPLEN: u32 = MAX_SNAPLEN;
/// 100 MiB per node.
const DEFAULT_MAX_SIZE: u64 = 100 << 20;
/// A file header and the record header of one packet.
const MIN_MAX_SIZE: u64 = FILE_HEADER_LEN + RECORD_HEADER_LEN;

pub fn register(engine: &mut Engine, state: &Arc<ScriptState>) {
    let s = state.clone();
    engine.register_fn(
        "capture",
        move |ctx: NativeCallContext, target: Dynamic| -> RhaiResult<()> {
            capture(&ctx, &s, &target, &Map::new())
        },
    );
    let s = state.clone();
    engine.register_fn(
        "capture",
        move |ctx: NativeCallContext, target: Dynamic, opts: Map| -> RhaiResult<()> {
            capture(&ctx, &s, &target, &opts)
        },
    );
    let s = state.clone();
    engine.register_fn(
        "stop_capture",
        move |ctx: NativeCallContext, target: Dynamic| -> RhaiResult<()> {
            let ids = targets(&ctx, &s, &target)?;
            s.lab().stop_capture(&ids).map_err(|e| lab_err(&ctx, e))
        },
    );
}

fn capture(
    ctx: &NativeCallContext,
    state: &ScriptState,
    target: &Dynamic,
    opts: &Map,
) -> RhaiResult<()> {
    check_keys(ctx, opts, CAPTURE_KEYS)?;
    let snaplen = match opts.get("snaplen") {
        None => DEFAULT_SNAPLEN,
        Some(v) => {
            let bytes = size(ctx, "snaplen", v)?;
            u32::try_from(bytes)
                .ok()
                .filter(|b| *b <= MAX_SNAPLEN)
                .ok_or_else(|| {
                    at_call(
                        ctx,
                        format!(
                            "snaplen: expected at most {MAX_SNAPLEN} bytes (\"256kb\"), got \
                             {bytes} bytes"
                        ),
                    )
                })?
        }
    };
    let max_size = match opts.get("max_size") {
        None => DEFAULT_MAX_SIZE,
        Some(v) => {
            let bytes = size(ctx, "max_size", v)?;
            if bytes < MIN_MAX_SIZE {
                return Err(at_call(
                    ctx,
                    format!(
                        "max_size: expected at least {MIN_MAX_SIZE} bytes (the file's header \
                         and one packet's), got {bytes} bytes"
                    ),
                ));
            }
            bytes
        }
    };
    let ids = targets(ctx, state, target)?;
    state
        .lab()
        .capture(&ids, snaplen, max_size)
        .map_err(|e| lab_err(ctx, e))
}
