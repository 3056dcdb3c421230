//! Network conditions: `shape` (access links, and a node's CPU and memory: `limits`) and
//! `link_groups` (latency and loss between groups). Every value is validated before anything
//! is applied.

use std::sync::Arc;

use rhai::{Dynamic, Engine, ImmutableString, Map, NativeCallContext};

use super::limits::{LIMIT_KEYS, limits_update};
use super::traces::{TRACE_KEYS, trace_keys};
use super::{
    RhaiResult, ScriptState, check_keys, duration, lab_err, probability, rate, size, targets,
};
use crate::experiment::{GroupLink, ShapeUpdate};
use crate::script::error::at_call;

const SHAPE_KEYS: &[&str] = &["up", "down", "latency", "jitter", "loss", "queue"];
const GROUP_KEYS: &[&str] = &["latency", "jitter", "loss"];

pub fn register(engine: &mut Engine, state: &Arc<ScriptState>) {
    let s = state.clone();
    engine.register_fn(
        "shape",
        move |ctx: NativeCallContext, target: Dynamic, opts: Map| -> RhaiResult<()> {
            let update = shape_update(&ctx, &opts)?;
            let limits = limits_update(&ctx, &opts)?;
            let traces = trace_keys(&ctx, &s, &opts)?;
            let ids = targets(&ctx, &s, &target)?;
            if traces.is_empty() {
                return s
                    .lab()
                    .shape(&ids, &update, &limits)
                    .map_err(|e| lab_err(&ctx, e));
            }
            let traces = traces.load(&ctx, &s)?;
            let mut lab = s.lab();
            for id in ids {
                let update = traces.update(&update, &mut lab.rng);
                lab.shape(&[id], &update, &limits)
                    .map_err(|e| lab_err(&ctx, e))?;
            }
            Ok(())
        },
    );

    let s = state.clone();
    engine.register_fn(
        "link_groups",
        move |ctx: NativeCallContext,
              a: ImmutableString,
              b: ImmutableString,
              opts: Map|
              -> RhaiResult<()> {
            check_keys(&ctx, &opts, GROUP_KEYS)?;
            let get = |key: &str| opts.get(key);
            let link = GroupLink {
                latency: get("latency")
                    .map(|v| duration(&ctx, "latency", v))
                    .transpose()?
                    .unwrap_or(0),
                jitter: get("jitter")
                    .map(|v| duration(&ctx, "jitter", v))
                    .transpose()?
                    .unwrap_or(0),
                loss: get("loss")
                    .map(|v| probability(&ctx, "loss", v))
                    .transpose()?
                    .unwrap_or(0.0),
                ..GroupLink::default()
            };
            let mut lab = s.lab();
            let ga = lab.state().group(&a).map_err(|e| at_call(&ctx, e))?;
            let gb = lab.state().group(&b).map_err(|e| at_call(&ctx, e))?;
            lab.link_groups(ga, gb, link).map_err(|e| lab_err(&ctx, e))
        },
    );
}

fn shape_update(ctx: &NativeCallContext, opts: &Map) -> RhaiResult<ShapeUpdate> {
    let keys: Vec<&str> = SHAPE_KEYS
        .iter()
        .chain(LIMIT_KEYS)
        .chain(TRACE_KEYS)
        .copied()
        .collect();
    check_keys(ctx, opts, &keys)?;
    if opts.is_empty() {
        return Err(at_call(
            ctx,
            format!(
                "nothing to change: give at least one of {}",
                keys.join(", ")
            ),
        ));
    }
    let get = |key: &str| opts.get(key);
    Ok(ShapeUpdate {
        up: get("up").map(|v| rate(ctx, "up", v)).transpose()?,
        down: get("down").map(|v| rate(ctx, "down", v)).transpose()?,
        latency: get("latency")
            .map(|v| duration(ctx, "latency", v))
            .transpose()?,
        jitter: get("jitter")
            .map(|v| duration(ctx, "jitter", v))
            .transpose()?,
        loss: get("loss")
            .map(|v| probability(ctx, "loss", v))
            .transpose()?,
        queue: get("queue").map(|v| size(ctx, "queue", v)).transpose()?,
        ..ShapeUpdate::default()
    })
}
