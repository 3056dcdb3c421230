//! The Rhai binding: every primitive and property of `api` registered with the engine, values
//! converted between `Dynamic` and `api::Value`, errors placed at the call, and the script's
//! closures run for the primitives that call back (`Host`).

// Rhai marks its raw-function and context-store API "volatile" through `deprecated`.
#![allow(deprecated)]

use std::any::TypeId;
use std::sync::Arc;

use rhai::{
    Dynamic, Engine, EvalAltResult, FnPtr, ImmutableString, NativeCallContext,
    NativeCallContextStore,
};

use super::api::call::{ApiError, CallKind, Host, Prim, Prop, invoke};
use super::api::value::{Func, Table, Value};
use super::api::{self, ScriptState};
use super::error::{SCHEDULED_CALLBACK, at_call};
use crate::script::api::nodes::Node;
use crate::script::api::procs::Proc;
use crate::script::api::time::Timer;
use crate::script::api::topology::Topology;

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// Rhai's standard library functions a primitive replaces. Rhai prefers exactly typed
/// functions over `Dynamic` parameters, so these also get typed forms: `sleep(2)` must not
/// block the thread, `log(2.5)` must record, not compute a logarithm, `parse_json(text)`
/// must say where the text is not JSON.
const SHADOWED: &[&str] = &["sleep", "log", "parse_json"];

/// A closure of the script and the context it was made in. A closure made inside a module
/// function only resolves against that module's functions, so it must run with the module's
/// function library, not the library of whoever happens to be sleeping when it falls due.
struct RhaiFn {
    f: FnPtr,
    origin: Arc<NativeCallContextStore>,
}

/// Registers every primitive and property with `engine`, bound to `state`.
pub fn register(engine: &mut Engine, state: &Arc<ScriptState>) {
    engine
        .register_type_with_name::<Node>("Node")
        .register_type_with_name::<Proc>("Proc")
        .register_type_with_name::<Timer>("Timer")
        .register_type_with_name::<Topology>("Topology");
    register_display::<Node>(engine, Value::Node);
    register_display::<Proc>(engine, Value::Proc);
    register_display::<Timer>(engine, Value::Timer);
    register_display::<Topology>(engine, Value::Topology);
    engine
        .register_fn("==", |a: &mut Node, b: Node| a.id == b.id)
        .register_fn("!=", |a: &mut Node, b: Node| a.id != b.id);
    for prim in api::PRIMS.iter().flat_map(|table| table.iter()) {
        register_prim(engine, state, prim);
    }
    register_pick(engine, state);
    register_props::<Node>(engine, state, api::nodes::PROPS, Value::Node);
    register_props::<Proc>(engine, state, api::procs::PROPS, Value::Proc);
    register_props::<Timer>(engine, state, api::time::PROPS, Value::Timer);
    register_props::<Topology>(engine, state, api::topology::PROPS, Value::Topology);
}

fn register_display<T: Clone + Send + Sync + 'static>(engine: &mut Engine, wrap: fn(T) -> Value) {
    engine
        .register_fn("to_string", move |t: &mut T| wrap(t.clone()).to_string())
        .register_fn("to_debug", move |t: &mut T| wrap(t.clone()).to_string());
}

fn register_prim(engine: &mut Engine, state: &Arc<ScriptState>, prim: &'static Prim) {
    for arity in prim.min..=prim.max {
        let s = state.clone();
        engine.register_raw_fn(
            prim.name,
            vec![TypeId::of::<Dynamic>(); arity],
            move |ctx: NativeCallContext, args: &mut [&mut Dynamic]| {
                let values = args.iter().map(|a| to_value(&ctx, a)).collect();
                call(&ctx, &s, prim, values)
            },
        );
    }
    if SHADOWED.contains(&prim.name) {
        let s = state.clone();
        engine.register_fn(prim.name, move |ctx: NativeCallContext, x: i64| {
            call(&ctx, &s, prim, vec![Value::Int(x)])
        });
        let s = state.clone();
        engine.register_fn(prim.name, move |ctx: NativeCallContext, x: f64| {
            call(&ctx, &s, prim, vec![Value::Float(x)])
        });
        let s = state.clone();
        engine.register_fn(
            prim.name,
            move |ctx: NativeCallContext, x: ImmutableString| {
                call(&ctx, &s, prim, vec![Value::str(x.as_str())])
            },
        );
    }
}

/// `pick(array)` on the array itself, by reference: converting it to a `Value` on every call
/// would copy a swarm's array each time (a churn loop over 10k nodes went from 0.7 s to 56 s).
/// Registered pure (Rhai's default), so it is not measured after the call (vendor/README.md).
/// Anything but an array goes to the primitive, which says what it takes.
fn register_pick(engine: &mut Engine, state: &Arc<ScriptState>) {
    let s = state.clone();
    engine.register_fn(
        "pick",
        move |ctx: NativeCallContext, items: &mut rhai::Array| -> RhaiResult<Dynamic> {
            let i = api::rand::pick_index(&s, items.len()).map_err(|e| to_rhai(&ctx, e))?;
            Ok(items[i].clone())
        },
    );
}

fn call(
    ctx: &NativeCallContext,
    state: &ScriptState,
    prim: &Prim,
    values: Vec<Value>,
) -> RhaiResult<Dynamic> {
    let mut host = RhaiHost { ctx };
    invoke(prim, state, &mut host, values)
        .map(from_value)
        .map_err(|e| to_rhai(ctx, e))
}

fn register_props<T: Clone + Send + Sync + 'static>(
    engine: &mut Engine,
    state: &Arc<ScriptState>,
    props: &'static [Prop],
    wrap: fn(T) -> Value,
) {
    for prop in props {
        let s = state.clone();
        engine.register_get(
            prop.name,
            move |ctx: NativeCallContext, t: &mut T| -> RhaiResult<Dynamic> {
                (prop.get)(&s, &wrap(t.clone()))
                    .map(from_value)
                    .map_err(|e| to_rhai(&ctx, e))
            },
        );
    }
}

/// A primitive's error as Rhai's: at the call, or the script's own error unchanged.
fn to_rhai(ctx: &NativeCallContext, err: ApiError) -> Box<EvalAltResult> {
    match err {
        ApiError::Msg(m) => at_call(ctx, m),
        ApiError::Script(inner) => match inner.downcast::<Box<EvalAltResult>>() {
            Ok(e) => *e,
            Err(_) => at_call(ctx, "an error from another script language"),
        },
    }
}

struct RhaiHost<'a, 'b> {
    ctx: &'a NativeCallContext<'b>,
}

impl Host for RhaiHost<'_, '_> {
    fn call(&mut self, f: &Func, kind: CallKind) -> Result<Value, ApiError> {
        let Some(rf) = f.get::<RhaiFn>() else {
            return Err(ApiError::msg("a function from another script language"));
        };
        let result = match kind {
            CallKind::Direct => rf.f.call_within_context::<Dynamic>(self.ctx, ()),
            CallKind::Scheduled => {
                let mut store = self.ctx.store_data();
                store.global.lib = rf.origin.global.lib.clone();
                store.global.source = rf.origin.global.source.clone();
                rf.f.call_within_context::<Dynamic>(&store.create_context(self.ctx.engine()), ())
                    .map_err(|err| {
                        // Say where the callback was scheduled, not only which sleep ran it.
                        let source = rf.origin.global.source.clone().unwrap_or_default();
                        EvalAltResult::ErrorInFunctionCall(
                            SCHEDULED_CALLBACK.into(),
                            source.to_string(),
                            err,
                            rf.origin.pos,
                        )
                        .into()
                    })
            }
        };
        match result {
            Ok(v) => Ok(to_value(self.ctx, &v)),
            Err(e) => Err(ApiError::Script(Box::new(e))),
        }
    }
}

/// A Rhai value as a primitive sees it.
pub fn to_value(ctx: &NativeCallContext, v: &Dynamic) -> Value {
    if v.is_unit() {
        return Value::Unit;
    }
    if let Ok(b) = v.as_bool() {
        return Value::Bool(b);
    }
    if let Ok(i) = v.as_int() {
        return Value::Int(i);
    }
    if let Ok(x) = v.as_float() {
        return Value::Float(x);
    }
    if let Some(s) = v.read_lock::<ImmutableString>() {
        return Value::Str(s.to_string());
    }
    if let Some(a) = v.read_lock::<rhai::Array>() {
        return Value::Array(a.iter().map(|x| to_value(ctx, x)).collect());
    }
    if let Some(m) = v.read_lock::<rhai::Map>() {
        let table: Table = m
            .iter()
            .map(|(k, x)| (k.to_string(), to_value(ctx, x)))
            .collect();
        return Value::Map(table);
    }
    if let Some(n) = v.read_lock::<Node>() {
        return Value::Node(n.clone());
    }
    if let Some(p) = v.read_lock::<Proc>() {
        return Value::Proc(p.clone());
    }
    if let Some(t) = v.read_lock::<Timer>() {
        return Value::Timer(t.clone());
    }
    if let Some(t) = v.read_lock::<Topology>() {
        return Value::Topology(t.clone());
    }
    if let Some(f) = v.read_lock::<FnPtr>() {
        return Value::Func(Func::new(RhaiFn {
            f: f.clone(),
            origin: Arc::new(ctx.store_data()),
        }));
    }
    if let Ok(c) = v.as_char() {
        return Value::Str(c.to_string());
    }
    Value::Str(v.to_string())
}

/// A primitive's result as a Rhai value.
pub fn from_value(v: Value) -> Dynamic {
    match v {
        Value::Unit => Dynamic::UNIT,
        Value::Bool(b) => b.into(),
        Value::Int(i) => i.into(),
        Value::Float(x) => x.into(),
        Value::Str(s) => s.into(),
        Value::Array(a) => Dynamic::from_array(a.into_iter().map(from_value).collect()),
        Value::Map(m) => Dynamic::from_map(
            m.into_iter()
                .map(|(k, v)| (k.into(), from_value(v)))
                .collect(),
        ),
        Value::Node(n) => Dynamic::from(n),
        Value::Proc(p) => Dynamic::from(p),
        Value::Timer(t) => Dynamic::from(t),
        Value::Topology(t) => Dynamic::from(t),
        Value::Func(f) => match f.get::<RhaiFn>() {
            Some(rf) => Dynamic::from(rf.f.clone()),
            None => Dynamic::UNIT,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `log` and `str` write a float as Rhai's `${x}` does, whichever language called them.
    #[test]
    fn floats_print_as_rhai_prints_them() {
        let mut xs = vec![
            0.0,
            -0.0,
            1.0,
            -2.0,
            0.1,
            0.3,
            2.5,
            1.0 / 3.0,
            0.1 + 0.2,
            1e12,
            1e13,
            1.5e13,
            9_999_999_827_968.0,
            9_999_999_827_969.0,
            1e14,
            1e-13,
            9.99e-14,
            1e-14,
            1e300,
            -1e300,
            123_456.789,
            f64::MAX,
            f64::MIN_POSITIVE,
            f64::INFINITY,
            f64::NAN,
        ];
        let mut x = 1.234_567_890_123e-17;
        while x < 1e18 {
            xs.push(x);
            xs.push(-x * 7.0);
            x *= 3.7;
        }
        for x in xs {
            assert_eq!(
                Value::Float(x).to_string(),
                Dynamic::from_float(x).to_string(),
                "{x:?}"
            );
            let nested = vec![Dynamic::from_float(x), Dynamic::from("a"), Dynamic::UNIT];
            let mut map = rhai::Map::new();
            map.insert("k".into(), Dynamic::from_float(x));
            assert_eq!(
                Value::Array(vec![Value::Float(x), Value::str("a"), Value::Unit]).to_string(),
                Dynamic::from_array(nested).to_string(),
                "[{x:?}]"
            );
            let ours = Value::Map([("k".to_string(), Value::Float(x))].into_iter().collect());
            assert_eq!(
                ours.to_string(),
                Dynamic::from_map(map).to_string(),
                "#{{{x:?}}}"
            );
        }
    }
}
