//! Network conditions: `shape` (access links, and a node's CPU and memory: `limits`) and
//! `link_groups` (latency and loss between groups), with netem's jitter distributions and
//! Gilbert–Elliott loss. Every value is validated before anything is applied.

use super::ScriptState;
use super::args::{check_keys, duration, expected, probability, rate, size, targets};
use super::call::{ApiError, ApiResult, Args, Host, Prim};
use super::limits::{LIMIT_KEYS, limits_update};
use super::traces::{TRACE_KEYS, trace_keys};
use super::value::{Table, Value};
use crate::experiment::{GilbertElliott, GroupLink, JitterDist, JitterModel, ShapeUpdate};
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

pub const PRIMS: &[Prim] = &[
    Prim {
        name: "shape",
        min: 2,
        max: 2,
        expects: "a target (a Node, an array of Nodes or a group name) and a map of options",
        f: shape,
    },
    Prim {
        name: "link_groups",
        min: 3,
        max: 3,
        expects: "two group names and a map of options",
        f: link_groups,
    },
    Prim {
        name: "group_link",
        min: 2,
        max: 2,
        expects: "two group names",
        f: group_link,
    },
];

/// A map argument the primitive requires.
fn map(a: &Args, i: usize) -> ApiResult<Table> {
    a.at(i).as_map().ok_or_else(|| a.mismatch())
}

fn shape(s: &ScriptState, _: &mut dyn Host, a: &Args) -> ApiResult<Value> {
    let opts = map(a, 1)?;
    let update = shape_update(&opts)?;
    let limits = limits_update(&opts)?;
    let traces = trace_keys(s, &opts)?;
    let ids = targets(s, a.at(0))?;
    if traces.is_empty() {
        s.lab().shape(&ids, &update, &limits)?;
        return Ok(Value::Unit);
    }
    let traces = traces.load(s)?;
    let mut lab = s.lab();
    for id in ids {
        let update = traces.update(&update, &mut lab.rng);
        lab.shape(&[id], &update, &limits)?;
    }
    Ok(Value::Unit)
}

fn link_groups(s: &ScriptState, _: &mut dyn Host, a: &Args) -> ApiResult<Value> {
    let (ga, gb) = (a.string(0)?, a.string(1)?);
    let opts = map(a, 2)?;
    check_keys(&opts, GROUP_KEYS)?;
    let get = |key: &str| opts.get(key);
    let loss = get("loss").map(loss_model).transpose()?;
    let link = GroupLink {
        latency: get("latency")
            .map(|v| duration("latency", v))
            .transpose()?
            .unwrap_or(0),
        jitter: get("jitter")
            .map(|v| duration("jitter", v))
            .transpose()?
            .unwrap_or(0),
        loss: match loss {
            Some(Loss::Bernoulli(p)) => p,
            _ => 0.0,
        },
        jitter_model: jitter_model(&opts)?.unwrap_or_default(),
        burst: match loss {
            Some(Loss::Burst(ge)) => Some(ge),
            _ => None,
        },
    };
    let mut lab = s.lab();
    let ga = lab.state().group(ga)?;
    let gb = lab.state().group(gb)?;
    lab.link_groups(ga, gb, link)?;
    Ok(Value::Unit)
}

/// What the lab holds between two groups, as `link_groups` or a topology set it (both
/// directions are the same): `#{ latency, jitter, loss }` in seconds, seconds, probability.
fn group_link(s: &ScriptState, _: &mut dyn Host, a: &Args) -> ApiResult<Value> {
    let (ga, gb) = (a.string(0)?, a.string(1)?);
    let lab = s.lab();
    let ga = lab.state().group(ga)?;
    let gb = lab.state().group(gb)?;
    let link = lab.state().group_link(ga, gb);
    let mut m = Table::new();
    m.insert("latency".into(), Value::Float(units::secs(link.latency)));
    m.insert("jitter".into(), Value::Float(units::secs(link.jitter)));
    m.insert("loss".into(), Value::Float(link.loss));
    Ok(Value::Map(m))
}

fn shape_update(opts: &Table) -> ApiResult<ShapeUpdate> {
    let keys: Vec<&str> = SHAPE_KEYS
        .iter()
        .chain(LIMIT_KEYS)
        .chain(TRACE_KEYS)
        .copied()
        .collect();
    check_keys(opts, &keys)?;
    if opts.is_empty() {
        return Err(ApiError::msg(format!(
            "nothing to change: give at least one of {}",
            keys.join(", ")
        )));
    }
    let get = |key: &str| opts.get(key);
    let loss = get("loss").map(loss_model).transpose()?;
    Ok(ShapeUpdate {
        up: get("up").map(|v| rate("up", v)).transpose()?,
        down: get("down").map(|v| rate("down", v)).transpose()?,
        latency: get("latency").map(|v| duration("latency", v)).transpose()?,
        jitter: get("jitter").map(|v| duration("jitter", v)).transpose()?,
        loss: match loss {
            Some(Loss::Bernoulli(p)) => Some(p),
            _ => None,
        },
        queue: get("queue").map(|v| size("queue", v)).transpose()?,
        jitter_model: jitter_model(opts)?,
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
fn loss_model(v: &Value) -> ApiResult<Loss> {
    let Value::Map(map) = v else {
        if v.number().is_none() {
            return Err(expected(
                "loss",
                "a number between 0.0 and 1.0, or a burst model such as #{ p: 0.01, r: 0.3 }",
                v,
            ));
        }
        return probability("loss", v).map(Loss::Bernoulli);
    };
    for key in map.keys() {
        if !BURST_KEYS.contains(&key.as_str()) {
            return Err(ApiError::msg(format!(
                "loss: unknown key {key:?} of a burst model (expected one of: {})",
                BURST_KEYS.join(", ")
            )));
        }
    }
    let get = |key: &str| {
        map.get(key)
            .map(|x| probability(&format!("loss.{key}"), x))
            .transpose()
    };
    let Some(p) = get("p")? else {
        return Err(ApiError::msg(format!(
            "loss: a burst model needs p, the chance to enter the bad state (keys: {})",
            BURST_KEYS.join(", ")
        )));
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
fn jitter_model(opts: &Table) -> ApiResult<Option<JitterModel>> {
    let (dist, correlation) = (opts.get("jitter_dist"), opts.get("jitter_correlation"));
    if dist.is_none() && correlation.is_none() {
        return Ok(None);
    }
    Ok(Some(JitterModel {
        dist: dist.map(jitter_dist).transpose()?.unwrap_or_default(),
        correlation: correlation
            .map(jitter_correlation)
            .transpose()?
            .unwrap_or(0.0),
    }))
}

fn jitter_dist(v: &Value) -> ApiResult<JitterDist> {
    let names = || {
        JitterDist::NAMES
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(name) = v.as_str() else {
        let what = format!("a distribution name ({})", names());
        return Err(expected("jitter_dist", &what, v));
    };
    JitterDist::NAMES
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, dist)| *dist)
        .ok_or_else(|| {
            ApiError::msg(format!(
                "jitter_dist: {name:?} is not a distribution (expected one of: {})",
                names()
            ))
        })
}

/// A correlation in `[0, 1)`: a number such as `0.25`, or a percentage such as `"25%"`.
fn jitter_correlation(v: &Value) -> ApiResult<f64> {
    const WHAT: &str = "a correlation in [0, 1) such as 0.25 or \"25%\"";
    let x = if let Some(s) = v.as_str() {
        let percent = s.trim().strip_suffix('%').map(|p| p.trim().parse::<f64>());
        match percent {
            Some(Ok(p)) => p / 100.0,
            _ => return Err(expected("jitter_correlation", WHAT, v)),
        }
    } else {
        v.number()
            .ok_or_else(|| expected("jitter_correlation", WHAT, v))?
    };
    // NaN fails both comparisons.
    if (0.0..1.0).contains(&x) {
        Ok(x)
    } else {
        Err(ApiError::msg(format!(
            "jitter_correlation: {x} is out of range (expected {WHAT})"
        )))
    }
}
