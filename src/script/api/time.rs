//! The experiment clock in scripts: `now`, `sleep`, `wait_until`, and `at`/`every` callbacks,
//! which run in time order on the script thread while the script sleeps or waits (cooperative,
//! never concurrent).

use std::sync::atomic::Ordering;

use super::args::duration;
use super::call::{ApiError, ApiResult, Args, CallKind, Host, Prim, Prop};
use super::value::{Func, Value};
use super::{CallbackGuard, ScriptState};
use crate::script::limits::MAX_CALLBACKS;
use crate::script::timers::TimerId;
use crate::units::{self, Nanos};

/// How often `wait_until` evaluates its condition, in experiment time.
const POLL: Nanos = 100_000_000;

/// A script's handle on an `at`/`every` callback, to cancel it.
#[derive(Debug, Clone)]
pub struct Timer {
    pub id: TimerId,
}

pub const PRIMS: &[Prim] = &[
    Prim {
        name: "now",
        min: 0,
        max: 0,
        expects: "no argument",
        f: |s, _, _| Ok(Value::Float(units::secs(s.lab().now()))),
    },
    Prim {
        name: "sleep",
        min: 1,
        max: 1,
        expects: "a duration (\"30ms\", \"2s\" or seconds)",
        f: sleep,
    },
    Prim {
        name: "wait_until",
        min: 2,
        max: 2,
        expects: "a condition (a closure such as || node.rx_bytes > 1000) and a timeout (a duration)",
        f: wait_until,
    },
    Prim {
        name: "at",
        min: 2,
        max: 2,
        expects: "a time (a duration since the start) and a function (a closure such as || fail_node(p), or a function's name)",
        f: at,
    },
    Prim {
        name: "every",
        min: 2,
        max: 2,
        expects: "a period (a duration) and a function (a closure such as || fail_node(p), or a function's name)",
        f: every,
    },
    Prim {
        name: "cancel",
        min: 1,
        max: 1,
        expects: "a Timer, as in t.cancel()",
        f: |s, _, a| match a.at(0) {
            Value::Timer(t) => Ok(Value::Bool(s.timers().cancel(t.id))),
            _ => Err(a.mismatch()),
        },
    },
];

pub const PROPS: &[Prop] = &[Prop {
    name: "pending",
    get: |s, v| match v {
        Value::Timer(t) => Ok(Value::Bool(s.timers().is_pending(t.id))),
        _ => unreachable!("a Timer property is only bound to Timers"),
    },
}];

fn callback(a: &Args, i: usize) -> ApiResult<Func> {
    match a.at(i) {
        Value::Func(f) => Ok(f.clone()),
        _ => Err(a.mismatch()),
    }
}

fn at(s: &ScriptState, _: &mut dyn Host, a: &Args) -> ApiResult<Value> {
    let due = duration("", a.at(0))?;
    let f = callback(a, 1)?;
    // A time computed from now() in this step is never in the past, even when the real
    // clock moved on while the step ran (a tiny session draw in the churn model, say): it is
    // due at once. Before the step began it is a mistake, most often a delay given as a time.
    if due < s.step_began.load(Ordering::SeqCst) {
        let now = s.lab().now();
        return Err(ApiError::msg(format!(
            "time {} is in the past (now is {}); at() takes an experiment time, \
             use at(now() + delay, ...) for a delay",
            units::Duration(due),
            units::Duration(now)
        )));
    }
    schedule(s, due, None, f)
}

fn every(s: &ScriptState, _: &mut dyn Host, a: &Args) -> ApiResult<Value> {
    let period = duration("", a.at(0))?;
    let f = callback(a, 1)?;
    if period == 0 {
        return Err(ApiError::msg("expected a period greater than zero"));
    }
    let first = s.lab().now().saturating_add(period);
    schedule(s, first, Some(period), f)
}

/// Schedules `f`, unless `MAX_CALLBACKS` are pending already.
fn schedule(s: &ScriptState, due: Nanos, period: Option<Nanos>, f: Func) -> ApiResult<Value> {
    let mut timers = s.timers();
    if timers.pending() >= MAX_CALLBACKS {
        return Err(ApiError::msg(format!(
            "{MAX_CALLBACKS} callbacks are already pending, the limit (max_callbacks): \
             at()/every() in a loop that never sleeps? (a fixed limit; cancel() timers \
             that are no longer needed)"
        )));
    }
    let id = timers.schedule(due, period, f);
    Ok(Value::Timer(Timer { id }))
}

/// Advances the experiment by `d`, running the callbacks that fall due on the way.
fn sleep(s: &ScriptState, host: &mut dyn Host, a: &Args) -> ApiResult<Value> {
    let d = duration("", a.at(0))?;
    if in_callback(s) {
        return Err(ApiError::msg(
            "cannot sleep inside an at()/every() callback: callbacks run while the script \
             sleeps; schedule later work with at(now() + delay, || ...)",
        ));
    }
    let target = s.lab().now().saturating_add(d);
    if let Some(horizon) = s.horizon
        && target > horizon
    {
        return Err(past_horizon(horizon));
    }
    s.sleeps.fetch_add(1, Ordering::Relaxed);
    run_callbacks_until(host, s, target)?;
    advance(s, target)?;
    Ok(Value::Unit)
}

/// Evaluates `cond` every `POLL` of experiment time, letting time pass in between like
/// `sleep`, until it is true (returns true) or `timeout` has passed (false). In a dry-run the
/// clock jumps from one evaluation to the next, so only callbacks can make it true there.
fn wait_until(s: &ScriptState, host: &mut dyn Host, a: &Args) -> ApiResult<Value> {
    let cond = match a.at(0) {
        Value::Func(f) => f.clone(),
        other => {
            return Err(super::args::expected(
                "",
                "a condition as a closure, like || node.rx_bytes > 1000",
                other,
            ));
        }
    };
    let timeout = duration("timeout", a.at(1))?;
    if in_callback(s) {
        return Err(ApiError::msg(
            "cannot wait inside an at()/every() callback: callbacks run while the script \
             sleeps or waits; check the condition in the callback itself, or schedule a \
             later check with at(now() + delay, || ...)",
        ));
    }
    let deadline = s.lab().now().saturating_add(timeout);
    // As for `sleep`: a dry-run condition is often never true, so the whole timeout counts.
    if let Some(horizon) = s.horizon
        && deadline > horizon
    {
        return Err(past_horizon(horizon));
    }
    loop {
        match host.call(&cond, CallKind::Direct)? {
            Value::Bool(true) => return Ok(Value::Bool(true)),
            Value::Bool(false) => {}
            other => {
                return Err(ApiError::msg(format!(
                    "the condition returned {}, expected true or false",
                    other.describe()
                )));
            }
        }
        let now = s.lab().now();
        if now >= deadline {
            return Ok(Value::Bool(false));
        }
        let next = now.saturating_add(POLL).min(deadline);
        s.sleeps.fetch_add(1, Ordering::Relaxed);
        run_callbacks_until(host, s, next)?;
        advance(s, next)?;
    }
}

fn past_horizon(horizon: Nanos) -> ApiError {
    ApiError::msg(format!(
        "the dry-run reached its horizon of {} of experiment time: does the script end?",
        units::Duration(horizon)
    ))
}

pub fn in_callback(s: &ScriptState) -> bool {
    s.callback_depth.load(Ordering::SeqCst) > 0
}

/// A short step of experiment time that runs due callbacks, for primitives that wait on the
/// outside world (`Proc.wait`).
pub fn step(host: &mut dyn Host, s: &ScriptState, d: Nanos) -> ApiResult<()> {
    let target = s.lab().now().saturating_add(d);
    s.sleeps.fetch_add(1, Ordering::Relaxed);
    run_callbacks_until(host, s, target)?;
    advance(s, target)
}

fn advance(state: &ScriptState, t: Nanos) -> ApiResult<()> {
    state.lab().advance_to(t)?;
    state.step_began.fetch_max(t, Ordering::SeqCst);
    Ok(())
}

/// Runs every callback due up to `until`, each at its own time, in order. The lab is not
/// locked while a callback runs, since callbacks call primitives.
fn run_callbacks_until(host: &mut dyn Host, state: &ScriptState, until: Nanos) -> ApiResult<()> {
    loop {
        let next = state.timers().pop_due(until);
        let Some((due, _, callback)) = next else {
            return Ok(());
        };
        advance(state, due)?;
        let _guard = CallbackGuard::enter(state);
        host.call(&callback, CallKind::Scheduled)?;
    }
}
