//! The trace keys of `shape`: `up_trace`, `down_trace` (rate traces in Mahimahi's format),
//! `delay_trace` (latency over time) and `trace_offset`. Files are found from the script's
//! folder, read and checked before anything is applied, and loaded once per run.

use std::path::PathBuf;

use rand::{Rng, RngExt};
use rhai::{Dynamic, Map, NativeCallContext};

use super::call::{ApiError, ApiResult};
use super::{RhaiResult, ScriptState, duration};
use crate::experiment::{DelayTrace, LinkTrace, RateTrace, ShapeUpdate, TraceId, TraceRef};
use crate::script::error::at_call;
use crate::units::Nanos;

pub const TRACE_KEYS: &[&str] = &["up_trace", "down_trace", "delay_trace", "trace_offset"];

/// Each trace key with the constant key it replaces and the kind of trace it takes.
const TRACES: [(&str, &str, Kind); 3] = [
    ("up_trace", "up", Kind::Rate),
    ("down_trace", "down", Kind::Rate),
    ("delay_trace", "latency", Kind::Delay),
];

#[derive(Clone, Copy, PartialEq)]
pub enum Kind {
    Rate,
    Delay,
}

/// What one direction's key asks for.
enum Wanted {
    /// Back to the constant rate or latency (`()`, or the constant key given).
    Clear,
    /// A trace file, read and checked, not yet loaded.
    File {
        name: String,
        path: PathBuf,
        trace: LinkTrace,
    },
}

/// The trace keys of one `shape` call, checked; `load` makes them ready to apply.
pub struct TraceKeys {
    wanted: [Option<Wanted>; 3],
    offset: Option<Nanos>,
}

/// The traces of one `shape` call, loaded: each direction's change and the periods that
/// a random offset is drawn within.
pub struct LoadedTraces {
    ids: [Option<Option<TraceId>>; 3],
    offset: Option<Nanos>,
    /// The shortest period among the named traces that repeat.
    period: Option<Nanos>,
}

/// Reads and checks every trace file `opts` names; loads nothing.
pub fn trace_keys(
    ctx: &NativeCallContext,
    state: &ScriptState,
    opts: &Map,
) -> RhaiResult<TraceKeys> {
    let mut wanted: [Option<Wanted>; 3] = [None, None, None];
    for (slot, (key, constant, kind)) in wanted.iter_mut().zip(TRACES) {
        let value = opts.get(key);
        if opts.contains_key(constant) {
            if value.is_some() {
                return Err(at_call(
                    ctx,
                    format!("give `{constant}` or `{key}`, not both: the trace replaces it"),
                ));
            }
            *slot = Some(Wanted::Clear);
            continue;
        }
        let Some(value) = value else { continue };
        *slot = Some(read(ctx, state, key, value, kind)?);
    }
    let offset = opts
        .get("trace_offset")
        .map(|v| duration(ctx, "trace_offset", v))
        .transpose()?;
    let names_one = wanted
        .iter()
        .any(|w| matches!(w, Some(Wanted::File { .. })));
    if offset.is_some() && !names_one {
        return Err(at_call(
            ctx,
            "`trace_offset` without a trace: give `up_trace`, `down_trace` or `delay_trace` too",
        ));
    }
    Ok(TraceKeys { wanted, offset })
}

impl TraceKeys {
    /// Whether the call named or cleared any trace.
    pub fn is_empty(&self) -> bool {
        self.wanted.iter().all(Option::is_none)
    }

    /// Loads the named traces (each file once per run).
    pub fn load(self, ctx: &NativeCallContext, state: &ScriptState) -> RhaiResult<LoadedTraces> {
        let mut ids = [None, None, None];
        let mut period: Option<Nanos> = None;
        let mut lab = state.lab();
        for (slot, wanted) in ids.iter_mut().zip(self.wanted) {
            *slot = match wanted {
                None => None,
                Some(Wanted::Clear) => Some(None),
                Some(Wanted::File { name, path, trace }) => {
                    if let Some(p) = trace.period() {
                        period = Some(period.map_or(p, |q| q.min(p)));
                    }
                    let id = lab
                        .load_trace(&name, &path, trace)
                        .map_err(|e| super::lab_err(ctx, e))?;
                    Some(Some(id))
                }
            };
        }
        Ok(LoadedTraces {
            ids,
            offset: self.offset,
            period,
        })
    }
}

impl LoadedTraces {
    /// `base` with this call's traces, for one node: from the given offset, or from one
    /// drawn at random within the shortest period, so nodes on one trace are not in lockstep.
    pub fn update<R: Rng + ?Sized>(&self, base: &ShapeUpdate, rng: &mut R) -> ShapeUpdate {
        let offset = self.offset.unwrap_or_else(|| match self.period {
            Some(p) if p > 0 && self.names_one() => rng.random_range(0..p),
            _ => 0,
        });
        let reference =
            |ids: Option<Option<TraceId>>| ids.map(|id| id.map(|id| TraceRef { id, offset }));
        ShapeUpdate {
            up_trace: reference(self.ids[0]),
            down_trace: reference(self.ids[1]),
            delay_trace: reference(self.ids[2]),
            ..*base
        }
    }

    fn names_one(&self) -> bool {
        self.ids.iter().any(|id| matches!(id, Some(Some(_))))
    }
}

/// A trace key's value: a file name to read, or `()` to go back to the constant.
fn read(
    ctx: &NativeCallContext,
    state: &ScriptState,
    key: &str,
    value: &Dynamic,
    kind: Kind,
) -> RhaiResult<Wanted> {
    if value.is_unit() {
        return Ok(Wanted::Clear);
    }
    let Some(name) = value.clone().into_immutable_string().ok() else {
        return Err(at_call(
            ctx,
            format!(
                "`{key}` takes a trace file's name (a string), or () to go back to the constant \
                 value; found {}",
                crate::script::words::describe(value)
            ),
        ));
    };
    let (path, trace) = read_trace(state, key, &name, kind).map_err(|e| match e {
        ApiError::Msg(m) => at_call(ctx, m),
        other => at_call(ctx, format!("{other:?}")),
    })?;
    Ok(Wanted::File {
        name: name.to_string(),
        path,
        trace,
    })
}

/// Reads and parses the trace file `name` (from the script's folder) for `key`; errors name
/// the file and line and say what `key` expects. Returns the file's canonical path.
pub fn read_trace(
    state: &ScriptState,
    key: &str,
    name: &str,
    kind: Kind,
) -> ApiResult<(PathBuf, LinkTrace)> {
    let found = state.data_file(name);
    let text = std::fs::read_to_string(&found).map_err(|e| {
        ApiError::msg(format!(
            "cannot read the {key} file {}: {e}",
            found.display()
        ))
    })?;
    let trace = match kind {
        Kind::Rate => RateTrace::parse(&text).map(LinkTrace::Rate),
        Kind::Delay => DelayTrace::parse(&text).map(LinkTrace::Delay),
    }
    .map_err(|e| {
        let what = match kind {
            Kind::Rate => "a rate trace (Mahimahi's format: one millisecond timestamp per line)",
            Kind::Delay => "a delay trace (`<time ms> <latency ms>` per line)",
        };
        ApiError::msg(format!(
            "{}:{}: {} ({key} expects {what})",
            name, e.line, e.message
        ))
    })?;
    Ok((found.canonicalize().unwrap_or(found), trace))
}
