//! The experiment clock in scripts: `now`, `sleep`, `wait_until`, and `at`/`every` callbacks,
//! which run in time order on the script thread while the script sleeps or waits (cooperative,
//! never concurrent).

// Rhai marks its context-store API "volatile" through `deprecated`; callbacks need it.
#![allow(deprecated)]

use std::sync::Arc;
use std::sync::atomic::Ordering;

use rhai::{
    Dynamic, Engine, EvalAltResult, FnPtr, ImmutableString, NativeCallContext,
    NativeCallContextStore,
};

use super::{CallbackGuard, RhaiResult, ScriptState, duration, lab_err};
use crate::script::error::{SCHEDULED_CALLBACK, at_call};
use crate::script::limits::MAX_CALLBACKS;
use crate::script::timers::TimerId;
use crate::units::{self, Nanos};

/// A scheduled callback and the context it was scheduled from. A closure made inside a module
/// function only resolves against that module's functions, so it must run with the module's
/// function library, not the library of whoever happens to be sleeping when it falls due.
#[derive(Clone)]
pub struct Callback {
    f: FnPtr,
    origin: Arc<NativeCallContextStore>,
}

impl Callback {
    fn new(ctx: &NativeCallContext, f: FnPtr) -> Self {
        Callback {
            f,
            origin: Arc::new(ctx.store_data()),
        }
    }

    fn call(&self, ctx: &NativeCallContext) -> RhaiResult<()> {
        let mut store = ctx.store_data();
        store.global.lib = self.origin.global.lib.clone();
        store.global.source = self.origin.global.source.clone();
        self.f
            .call_within_context::<Dynamic>(&store.create_context(ctx.engine()), ())
            .map(drop)
            .map_err(|err| {
                // Say where the callback was scheduled, not only which sleep ran it.
                let source = self.origin.global.source.clone().unwrap_or_default();
                EvalAltResult::ErrorInFunctionCall(
                    SCHEDULED_CALLBACK.into(),
                    source.to_string(),
                    err,
                    self.origin.pos,
                )
                .into()
            })
    }
}

/// How often `wait_until` evaluates its condition, in experiment time.
const POLL: Nanos = 100_000_000;

/// A script's handle on an `at`/`every` callback, to cancel it.
#[derive(Debug, Clone)]
pub struct Timer {
    pub id: TimerId,
}

pub fn register(engine: &mut Engine, state: &Arc<ScriptState>) {
    let s = state.clone();
    engine.register_fn("now", move || units::secs(s.lab().now()));

    // Rhai's standard library has a `sleep(int|float)` that blocks the thread; typed
    // registrations replace it (a `Dynamic` parameter would only be a fallback).
    let s = state.clone();
    engine.register_fn("sleep", move |ctx: NativeCallContext, d: i64| {
        sleep(&ctx, &s, &Dynamic::from(d))
    });
    let s = state.clone();
    engine.register_fn("sleep", move |ctx: NativeCallContext, d: f64| {
        sleep(&ctx, &s, &Dynamic::from(d))
    });
    let s = state.clone();
    engine.register_fn(
        "sleep",
        move |ctx: NativeCallContext, d: ImmutableString| sleep(&ctx, &s, &Dynamic::from(d)),
    );

    let s = state.clone();
    engine.register_fn(
        "wait_until",
        move |ctx: NativeCallContext, cond: FnPtr, timeout: Dynamic| {
            wait_until(&ctx, &s, &cond, &timeout)
        },
    );
    engine.register_fn(
        "wait_until",
        |ctx: NativeCallContext, cond: Dynamic, _: Dynamic| -> RhaiResult<bool> {
            Err(super::expected(
                &ctx,
                "",
                "a condition as a closure, like || node.rx_bytes > 1000",
                &cond,
            ))
        },
    );

    engine
        .register_type_with_name::<Timer>("Timer")
        .register_fn("to_string", |t: &mut Timer| format!("timer {}", t.id.0));
    let s = state.clone();
    engine.register_fn("cancel", move |t: &mut Timer| s.timers().cancel(t.id));
    let s = state.clone();
    engine.register_get("pending", move |t: &mut Timer| s.timers().is_pending(t.id));

    let s = state.clone();
    engine.register_fn(
        "at",
        move |ctx: NativeCallContext, t: Dynamic, f: FnPtr| -> RhaiResult<Timer> {
            let due = duration(&ctx, "", &t)?;
            let now = s.lab().now();
            if due < now {
                return Err(at_call(
                    &ctx,
                    format!(
                        "time {} is in the past (now is {}); at() takes an experiment time, \
                         use at(now() + delay, ...) for a delay",
                        units::Duration(due),
                        units::Duration(now)
                    ),
                ));
            }
            schedule(&ctx, &s, due, None, f)
        },
    );
    let s = state.clone();
    engine.register_fn(
        "every",
        move |ctx: NativeCallContext, period: Dynamic, f: FnPtr| -> RhaiResult<Timer> {
            let period = duration(&ctx, "", &period)?;
            if period == 0 {
                return Err(at_call(&ctx, "expected a period greater than zero"));
            }
            let first = s.lab().now().saturating_add(period);
            schedule(&ctx, &s, first, Some(period), f)
        },
    );
}

/// Schedules `f`, unless `MAX_CALLBACKS` are pending already.
fn schedule(
    ctx: &NativeCallContext,
    s: &ScriptState,
    due: Nanos,
    period: Option<Nanos>,
    f: FnPtr,
) -> RhaiResult<Timer> {
    let mut timers = s.timers();
    if timers.pending() >= MAX_CALLBACKS {
        return Err(at_call(
            ctx,
            format!(
                "{MAX_CALLBACKS} callbacks are already pending, the limit (max_callbacks): \
                 at()/every() in a loop that never sleeps? (a fixed limit; cancel() timers \
                 that are no longer needed)"
            ),
        ));
    }
    let id = timers.schedule(due, period, Callback::new(ctx, f));
    Ok(Timer { id })
}

/// Advances the experiment by `d`, running the callbacks that fall due on the way.
fn sleep(ctx: &NativeCallContext, s: &ScriptState, d: &Dynamic) -> RhaiResult<()> {
    let d = duration(ctx, "", d)?;
    if in_callback(s) {
        return Err(at_call(
            ctx,
            "cannot sleep inside an at()/every() callback: callbacks run while the script \
             sleeps; schedule later work with at(now() + delay, || ...)",
        ));
    }
    let target = s.lab().now().saturating_add(d);
    if let Some(horizon) = s.horizon
        && target > horizon
    {
        return Err(past_horizon(ctx, horizon));
    }
    s.sleeps.fetch_add(1, Ordering::Relaxed);
    run_callbacks_until(ctx, s, target)?;
    advance(ctx, s, target)
}

/// Evaluates `cond` every `POLL` of experiment time, letting time pass in between like
/// `sleep`, until it is true (returns true) or `timeout` has passed (false). In a dry-run the
/// clock jumps from one evaluation to the next, so only callbacks can make it true there.
fn wait_until(
    ctx: &NativeCallContext,
    s: &ScriptState,
    cond: &FnPtr,
    timeout: &Dynamic,
) -> RhaiResult<bool> {
    let timeout = duration(ctx, "timeout", timeout)?;
    if in_callback(s) {
        return Err(at_call(
            ctx,
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
        return Err(past_horizon(ctx, horizon));
    }
    loop {
        let value = cond.call_within_context::<Dynamic>(ctx, ())?;
        match value.as_bool() {
            Ok(true) => return Ok(true),
            Ok(false) => {}
            Err(_) => {
                return Err(at_call(
                    ctx,
                    format!(
                        "the condition returned {}, expected true or false",
                        crate::script::words::describe(&value)
                    ),
                ));
            }
        }
        let now = s.lab().now();
        if now >= deadline {
            return Ok(false);
        }
        let next = now.saturating_add(POLL).min(deadline);
        s.sleeps.fetch_add(1, Ordering::Relaxed);
        run_callbacks_until(ctx, s, next)?;
        advance(ctx, s, next)?;
    }
}

fn past_horizon(ctx: &NativeCallContext, horizon: Nanos) -> Box<EvalAltResult> {
    at_call(
        ctx,
        format!(
            "the dry-run reached its horizon of {} of experiment time: does the script end?",
            units::Duration(horizon)
        ),
    )
}

pub fn in_callback(s: &ScriptState) -> bool {
    s.callback_depth.load(Ordering::SeqCst) > 0
}

/// A short step of experiment time that runs due callbacks, for primitives that wait on the
/// outside world (`Proc.wait`).
pub fn step(ctx: &NativeCallContext, s: &ScriptState, d: Nanos) -> RhaiResult<()> {
    let target = s.lab().now().saturating_add(d);
    s.sleeps.fetch_add(1, Ordering::Relaxed);
    run_callbacks_until(ctx, s, target)?;
    advance(ctx, s, target)
}

fn advance(ctx: &NativeCallContext, state: &ScriptState, t: Nanos) -> RhaiResult<()> {
    state.lab().advance_to(t).map_err(|e| lab_err(ctx, e))?;
    Ok(())
}

/// Runs every callback due up to `until`, each at its own time, in order. The lab is not
/// locked while a callback runs, since callbacks call primitives.
fn run_callbacks_until(
    ctx: &NativeCallContext,
    state: &ScriptState,
    until: Nanos,
) -> RhaiResult<()> {
    loop {
        let next = state.timers().pop_due(until);
        let Some((due, _, callback)) = next else {
            return Ok(());
        };
        advance(ctx, state, due)?;
        let _guard = CallbackGuard::enter(state);
        callback.call(ctx)?;
    }
}
