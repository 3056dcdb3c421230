//! Packet captures: `capture` (each node's packets into `nodes/<ip>/capture.pcap`, as its
//! access link sends and receives them) and `stop_capture`.

use super::ScriptState;
use super::args::{check_keys, size, targets};
use super::call::{ApiError, ApiResult, Args, Host, Prim};
use super::nodes::TARGET;
use super::value::Value;
use crate::dataplane::capture::{FILE_HEADER_LEN, MAX_SNAPLEN, RECORD_HEADER_LEN};

const CAPTURE_KEYS: &[&str] = &["snaplen", "max_size"];
/// Whole packets: larger than any IPv4 packet.
const DEFAULT_SNAPLEN: u32 = MAX_SNAPLEN;
/// 100 MiB per node.
const DEFAULT_MAX_SIZE: u64 = 100 << 20;
/// A file header and the record header of one packet.
const MIN_MAX_SIZE: u64 = FILE_HEADER_LEN + RECORD_HEADER_LEN;

pub const PRIMS: &[Prim] = &[
    Prim {
        name: "capture",
        min: 1,
        max: 2,
        expects: "a target (a Node, an array of Nodes or a group name) and optionally a map of options #{ snaplen, max_size }",
        f: capture,
    },
    Prim {
        name: "stop_capture",
        min: 1,
        max: 1,
        expects: TARGET,
        f: |s, _, a| {
            let ids = targets(s, a.at(0))?;
            s.lab().stop_capture(&ids)?;
            Ok(Value::Unit)
        },
    },
];

fn capture(state: &ScriptState, _: &mut dyn Host, a: &Args) -> ApiResult<Value> {
    let opts = a.opts(1)?;
    check_keys(&opts, CAPTURE_KEYS)?;
    let snaplen = match opts.get("snaplen") {
        None => DEFAULT_SNAPLEN,
        Some(v) => {
            let bytes = size("snaplen", v)?;
            u32::try_from(bytes)
                .ok()
                .filter(|b| *b <= MAX_SNAPLEN)
                .ok_or_else(|| {
                    ApiError::msg(format!(
                        "snaplen: expected at most {MAX_SNAPLEN} bytes (\"256kb\"), got \
                         {bytes} bytes"
                    ))
                })?
        }
    };
    let max_size = match opts.get("max_size") {
        None => DEFAULT_MAX_SIZE,
        Some(v) => {
            let bytes = size("max_size", v)?;
            if bytes < MIN_MAX_SIZE {
                return Err(ApiError::msg(format!(
                    "max_size: expected at least {MIN_MAX_SIZE} bytes (the file's header \
                     and one packet's), got {bytes} bytes"
                )));
            }
            bytes
        }
    };
    let ids = targets(state, a.at(0))?;
    state.lab().capture(&ids, snaplen, max_size)?;
    Ok(Value::Unit)
}
