//! Network conditions: `shape` (access links, and a node's CPU and memory: `limits`) and
//! `link_groups` (latency and loss between groups), with netem's jitter distributions and
//! Gilbert–Elliott loss. Every value is validated before anything is applied.

use std::sync::Arc;

use rhai::{Dynamic, Engine, ImmutableString, Map, NativeCallContext};

use super::limits::{LIMIT_KEYS, limits_update};
use super::traces::{TRACE_KEYS, trace_keys};
use super::{
    RhaiResult, ScriptState, check_keys, duration, expected, lab_err, number, probability, rate,
    size, targets,
};
use crate::experiment::{GilbertElliott, GroupLink, JitterDist, JitterModel, ShapeUpdate};
use crate::script::error::at_call;
use crate::units;

const SHAPE_KEYS: &[&str] = &[
    "up",
    "down",
    "latency",
    "jitter",
    "jitter_dist",
    "jitter_correlation",
    "loss",
    "queue",
];
const GROUP_KEYS: &[&str] = &[
    "latency",
    "jitter",
    "jitter_dist",
    "jitter_correlation",
    "loss",
];
/// The keys of a Gilbert–Elliott `loss` map; only `p` is required.
const BURST_KEYS: &[&str] = &["p", "r", "loss_bad", "loss_good"];

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
        "group_link",
        move |ctx: NativeCallContext, a: &str, b: &str| group_link(&ctx, &s, a, b),
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
            let loss = get("loss").map(|v| loss_model(&ctx, v)).transpose()?;
            let link = GroupLink {
                latency: get("latency")
                    .map(|v| duration(&ctx, "latency", v))
                    .transpose()?
                    .unwrap_or(0),
                jitter: get("jitter")
                    .map(|v| duration(&ctx, "jitter", v))
                    .transpose()?
                    .unwrap_or(0),
                loss: match loss {
                    Some(Loss::Bernoulli(p)) => p,
                    _ => 0.0,
                },
                jitter_model: jitter_model(&ctx, &opts)?.unwrap_or_default(),
                burst: match loss {
                    Some(Loss::Burst(ge)) => Some(ge),
                    _ => None,
                },
            };
            let mut lab = s.lab();
            let ga = lab.state().group(&a).map_err(|e| at_call(&ctx, e))?;
            let gb = lab.state().group(&b).map_err(|e| at_call(&ctx, e))?;
            lab.link_groups(ga, gb, link).map_err(|e| lab_err(&ctx, e))
        },
    );
}

/// What the lab holds between two groups, as `link_groups` or a topology set it (both
/// directions are the same): `#{ latency, jitter, loss }` in seconds, seconds, probability.
fn group_link(ctx: &NativeCallContext, s: &ScriptState, a: &str, b: &str) -> RhaiResult<Map> {
    let lab = s.lab();
    let ga = lab.state().group(a).map_err(|e| at_call(ctx, e))?;
    let gb = lab.state().group(b).map_err(|e| at_call(ctx, e))?;
    let link = lab.state().group_link(ga, gb);
    let mut m = Map::new();
    m.insert("latency".into(), Dynamic::from(units::secs(link.latency)));
    m.insert("jitter".into(), Dynamic::from(units::secs(link.jitter)));
    m.insert("loss".into(), Dynamic::from(link.loss));
    Ok(m)
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
    let loss = get("loss").map(|v| loss_model(ctx, v)).transpose()?;
    Ok(ShapeUpdate {
        up: get("up").map(|v| rate(ctx, "up", v)).transpose()?,
        down: get("down").map(|v| rate(ctx, "down", v)).transpose()?,
        latency: get("latency")
            .map(|v| duration(ctx, "latency", v))
            .transpose()?,
        jitter: get("jitter")
            .map(|v| duration(ctx, "jitter", v))
            .transpose()?,
        loss: match loss {
            Some(Loss::Bernoulli(p)) => Some(p),
            _ => None,
        },
        queue: get("queue").map(|v| size(ctx, "queue", v)).transpose()?,
        jitter_model: jitter_model(ctx, opts)?,
        // A number goes back to Bernoulli loss; a map starts a burst model.
        burst: loss.map(|l| match l {
            Loss::Bernoulli(_) => None,
            Loss::Burst(ge) => Some(ge),
        }),
        ..ShapeUpdate::default()
    })
}

/// What a `loss` key says: a probability, or a Gilbert–Elliott map.
#[derive(Clone, Copy)]
enum Loss {
    Bernoulli(f64),
    Burst(GilbertElliott),
}

/// `loss: 0.01` (Bernoulli) or `loss: #{ p, r, loss_bad, loss_good }` (Gilbert–Elliott, with
/// netem's defaults for what is left out: `r = 1 - p`, `loss_bad = 1`, `loss_good = 0`).
fn loss_model(ctx: &NativeCallContext, v: &Dynamic) -> RhaiResult<Loss> {
    let Some(map) = v.read_lock::<Map>() else {
        if number(v).is_none() {
            return Err(expected(
                ctx,
                "loss",
                "a number between 0.0 and 1.0, or a burst model such as #{ p: 0.01, r: 0.3 }",
                v,
            ));
        }
        return probability(ctx, "loss", v).map(Loss::Bernoulli);
    };
    for key in map.keys() {
        if !BURST_KEYS.contains(&key.as_str()) {
            return Err(at_call(
                ctx,
                format!(
                    "loss: unknown key {key:?} of a burst model (expected one of: {})",
                    BURST_KEYS.join(", ")
                ),
            ));
        }
    }
    let get = |key: &str| {
        map.get(key)
            .map(|x| probability(ctx, &format!("loss.{key}"), x))
            .transpose()
    };
    let Some(p) = get("p")? else {
        return Err(at_call(
            ctx,
            format!(
                "loss: a burst model needs p, the chance to enter the bad state (keys: {})",
                BURST_KEYS.join(", ")
            ),
        ));
    };
    Ok(Loss::Burst(GilbertElliott {
        p,
        r: get("r")?.unwrap_or(1.0 - p),
        loss_bad: get("loss_bad")?.unwrap_or(1.0),
        loss_good: get("loss_good")?.unwrap_or(0.0),
    }))
}

/// The jitter's model from `jitter_dist` and `jitter_correlation`, when either is given; the
/// other then takes its default (uniform, 0), as in netem's `delay` where both go together.
fn jitter_model(ctx: &NativeCallContext, opts: &Map) -> RhaiResult<Option<JitterModel>> {
    let (dist, correlation) = (opts.get("jitter_dist"), opts.get("jitter_correlation"));
    if dist.is_none() && correlation.is_none() {
        return Ok(None);
    }
    Ok(Some(JitterModel {
        dist: dist
            .map(|v| jitter_dist(ctx, v))
            .transpose()?
            .unwrap_or_default(),
        correlation: correlation
            .map(|v| jitter_correlation(ctx, v))
            .transpose()?
            .unwrap_or(0.0),
    }))
}

fn jitter_dist(ctx: &NativeCallContext, v: &Dynamic) -> RhaiResult<JitterDist> {
    let names = || {
        JitterDist::NAMES
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(name) = v.read_lock::<ImmutableString>() else {
        let what = format!("a distribution name ({})", names());
        return Err(expected(ctx, "jitter_dist", &what, v));
    };
    JitterDist::NAMES
        .iter()
        .find(|(known, _)| *known == name.as_str())
        .map(|(_, dist)| *dist)
        .ok_or_else(|| {
            at_call(
                ctx,
                format!(
                    "jitter_dist: {:?} is not a distribution (expected one of: {})",
                    name.as_str(),
                    names()
                ),
            )
        })
}

/// A correlation in `[0, 1)`: a number such as `0.25`, or a percentage such as `"25%"`.
fn jitter_correlation(ctx: &NativeCallContext, v: &Dynamic) -> RhaiResult<f64> {
    const WHAT: &str = "a correlation in [0, 1) such as 0.25 or \"25%\"";
    let x = if let Some(s) = v.read_lock::<ImmutableString>() {
        let percent = s.trim().strip_suffix('%').map(|p| p.trim().parse::<f64>());
        match percent {
            Some(Ok(p)) => p / 100.0,
            _ => return Err(expected(ctx, "jitter_correlation", WHAT, v)),
        }
    } else {
        number(v).ok_or_else(|| expected(ctx, "jitter_correlation", WHAT, v))?
    };
    // NaN fails both comparisons.
    if (0.0..1.0).contains(&x) {
        Ok(x)
    } else {
        Err(at_call(
            ctx,
            format!("jitter_correlation: {x} is out of range (expected {WHAT})"),
        ))
    }
}
