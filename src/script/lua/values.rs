//! Lua's values as primitives see them and back: tables become arrays (a sequence 1..n) or
//! maps (names for keys), handles are userdata whose fields are the handle's properties and
//! whose methods are the primitives (`p:wait()` is `wait(p)`), functions are `Func`s.

use std::sync::Arc;

use mlua::{
    AnyUserData, Function, Lua, MetaMethod, MultiValue, Table as LuaTable, UserData,
    UserDataMethods, Value as LuaValue,
};

use super::errors::{Located, called_from, caller, frames, located};
use crate::script::api::call::{ApiError, CallKind, Host, Prim, Prop, invoke};
use crate::script::api::value::{Func, Table, Value};
use crate::script::api::{self, ScriptState};
use crate::script::error::{Location, ScriptError};

/// Tables nested deeper than this are refused (a table that contains itself would not end).
const MAX_DEPTH: usize = 64;

/// Where the primitives are kept for handles' methods, whatever the script does to globals.
const PRIMS_KEY: &str = "p2plab.prims";

/// A script's function, to be called back by a primitive, and the call that handed it over
/// (where a scheduled callback was scheduled).
pub struct LuaFn {
    pub function: Function,
    origin: Option<Location>,
    /// It has named parameters, which a callback is never given.
    takes_params: bool,
}

/// A handle (Node, Proc, Timer, Topology) in Lua.
#[derive(Clone)]
pub struct Handle(pub Value);

fn state(lua: &Lua) -> Arc<ScriptState> {
    lua.app_data_ref::<Arc<ScriptState>>()
        .map(|s| s.clone())
        .expect("the Lua binding sets its state before running anything")
}

fn props_of(v: &Value) -> &'static [Prop] {
    match v {
        Value::Node(_) => api::nodes::PROPS,
        Value::Proc(_) => api::procs::PROPS,
        Value::Timer(_) => api::time::PROPS,
        Value::Topology(_) => api::topology::PROPS,
        _ => &[],
    }
}

impl UserData for Handle {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_meta_method(MetaMethod::Index, |lua, this, key: String| {
            if let Some(prop) = props_of(&this.0).iter().find(|p| p.name == key) {
                return match (prop.get)(&state(lua), &this.0) {
                    Ok(v) => to_lua(lua, v),
                    Err(e) => Err(api_err(lua, &key, e)),
                };
            }
            let prims: LuaTable = lua.named_registry_value(PRIMS_KEY)?;
            match prims.raw_get::<LuaValue>(key.as_str())? {
                LuaValue::Nil => {
                    let names: Vec<String> = props_of(&this.0)
                        .iter()
                        .map(|p| p.name.to_string())
                        .collect();
                    let mut msg = format!("{} has no property {key}", this.0.kind());
                    if let Some(close) = crate::script::error::closest(&key, &names) {
                        msg.push_str(&format!(" (did you mean {close}?)"));
                    }
                    Err(located(lua, None, msg))
                }
                f => Ok(f),
            }
        });
        methods.add_meta_method(MetaMethod::ToString, |_, this, ()| Ok(this.0.to_string()));
        methods.add_meta_function(MetaMethod::Eq, |_, (a, b): (AnyUserData, AnyUserData)| {
            let (a, b) = (a.borrow::<Handle>()?, b.borrow::<Handle>()?);
            Ok(match (&a.0, &b.0) {
                (Value::Node(x), Value::Node(y)) => x.id == y.id,
                (Value::Proc(x), Value::Proc(y)) => x.id == y.id,
                (Value::Timer(x), Value::Timer(y)) => x.id == y.id,
                _ => false,
            })
        });
    }
}

/// Registers every primitive as a global function.
pub fn register(lua: &Lua, state: &Arc<ScriptState>) -> mlua::Result<()> {
    lua.set_app_data(state.clone());
    let prims = lua.create_table()?;
    for prim in api::PRIMS.iter().flat_map(|table| table.iter()) {
        let f = prim_function(lua, prim)?;
        prims.raw_set(prim.name, f.clone())?;
        lua.globals().raw_set(prim.name, f)?;
    }
    lua.set_named_registry_value(PRIMS_KEY, prims)
}

fn prim_function(lua: &Lua, prim: &'static Prim) -> mlua::Result<Function> {
    lua.create_function(move |lua, args: MultiValue| {
        let values = args
            .iter()
            .map(|v| from_lua(lua, v, Some(prim.name)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|m| located(lua, Some(prim.name), m))?;
        let mut host = LuaHost {
            lua,
            prim: prim.name,
        };
        match invoke(prim, &state(lua), &mut host, values) {
            Ok(v) => to_lua(lua, v),
            Err(e) => Err(api_err(lua, prim.name, e)),
        }
    })
}

fn api_err(lua: &Lua, name: &str, e: ApiError) -> mlua::Error {
    match e {
        ApiError::Msg(m) => located(lua, Some(name), m),
        // A callback's error: the functions around this call are outside it.
        ApiError::Script(inner) => match inner.downcast::<mlua::Error>() {
            Ok(e) => called_from(&e, frames(lua, 1)),
            Err(_) => located(lua, Some(name), "an error from another script language"),
        },
    }
}

/// Calls a script's functions back for the primitive `prim`.
struct LuaHost<'a> {
    lua: &'a Lua,
    prim: &'static str,
}

impl Host for LuaHost<'_> {
    fn call(&mut self, f: &Func, kind: CallKind) -> Result<Value, ApiError> {
        let Some(LuaFn {
            function,
            origin,
            takes_params,
        }) = f.get::<LuaFn>()
        else {
            return Err(ApiError::msg("a function from another script language"));
        };
        let scheduled = match (kind, origin) {
            (CallKind::Scheduled, Some(at)) => {
                Some((at.clone(), "scheduled by at()/every()".to_string()))
            }
            _ => None,
        };
        // Lua would call `function(p)` with p = nil, and the error would come later and
        // elsewhere; Rhai refuses a closure with parameters here, and so does this.
        if *takes_params {
            let mut e = ScriptError::new(
                caller(self.lua, 1, Some(self.prim)),
                "a closure was called with no argument, which does not match its parameters \
                 (at() and every() call theirs with no argument: write function() ... end, \
                 and capture values)",
            );
            e.trace.extend(scheduled);
            return Err(ApiError::Script(Box::new(mlua::Error::external(Located(
                e,
            )))));
        }
        match function.call::<LuaValue>(()) {
            Ok(v) => from_lua(self.lua, &v, None).map_err(ApiError::Msg),
            Err(e) => {
                // As in Rhai: the callback ran from this call, and was scheduled there.
                let mut more: Vec<_> = caller(self.lua, 1, Some(self.prim))
                    .map(|at| (at, "callback".to_string()))
                    .into_iter()
                    .collect();
                more.extend(scheduled);
                Err(ApiError::Script(Box::new(called_from(&e, more))))
            }
        }
    }
}

/// A Lua value as the primitive `prim` sees it (`None`: a value a callback returned); a table
/// neither a sequence nor a map is refused.
pub fn from_lua(lua: &Lua, v: &LuaValue, prim: Option<&str>) -> Result<Value, String> {
    value(lua, v, prim, 0)
}

fn value(lua: &Lua, v: &LuaValue, prim: Option<&str>, depth: usize) -> Result<Value, String> {
    Ok(match v {
        LuaValue::Nil => Value::Unit,
        LuaValue::Boolean(b) => Value::Bool(*b),
        LuaValue::Integer(i) => Value::Int(*i),
        LuaValue::Number(x) => Value::Float(*x),
        LuaValue::String(s) => Value::Str(s.to_string_lossy()),
        LuaValue::Table(t) => table(lua, t, prim, depth)?,
        LuaValue::Function(f) => {
            let info = f.info();
            Value::Func(Func::new(LuaFn {
                function: f.clone(),
                origin: prim.and_then(|name| caller(lua, 1, Some(name))),
                takes_params: info.num_params > 0 && !info.is_vararg,
            }))
        }
        LuaValue::UserData(u) => match u.borrow::<Handle>() {
            Ok(h) => h.0.clone(),
            Err(_) => return Err("a userdata that is not a p2plab handle".to_string()),
        },
        other => {
            return Err(format!(
                "a Lua {} (not a value p2plab takes)",
                other.type_name()
            ));
        }
    })
}

fn table(lua: &Lua, t: &LuaTable, prim: Option<&str>, depth: usize) -> Result<Value, String> {
    if depth >= MAX_DEPTH {
        return Err(format!(
            "a table nested more than {MAX_DEPTH} deep (does it contain itself?)"
        ));
    }
    let len = t.raw_len();
    let mut items = Vec::with_capacity(len);
    let mut map = Table::new();
    for pair in t.clone().pairs::<LuaValue, LuaValue>() {
        let (k, v) = pair.map_err(|e| e.to_string())?;
        let v = value(lua, &v, prim, depth + 1)?;
        match k {
            LuaValue::Integer(i) if i >= 1 && (i as usize) <= len => items.push((i, v)),
            LuaValue::String(s) => {
                map.insert(s.to_string_lossy(), v);
            }
            other => {
                return Err(format!(
                    "a table with a key of kind {} (tables are lists 1..n or maps with names)",
                    other.type_name()
                ));
            }
        }
    }
    match (items.is_empty(), map.is_empty()) {
        (_, true) => {
            items.sort_by_key(|(i, _)| *i);
            Ok(Value::Array(items.into_iter().map(|(_, v)| v).collect()))
        }
        (true, false) => Ok(Value::Map(map)),
        (false, false) => Err(
            "a table with both list items and named keys (tables are lists 1..n or maps)"
                .to_string(),
        ),
    }
}

/// A primitive's result as a Lua value.
pub fn to_lua(lua: &Lua, v: Value) -> mlua::Result<LuaValue> {
    Ok(match v {
        Value::Unit => LuaValue::Nil,
        Value::Bool(b) => LuaValue::Boolean(b),
        Value::Int(i) => LuaValue::Integer(i),
        Value::Float(x) => LuaValue::Number(x),
        Value::Str(s) => LuaValue::String(lua.create_string(&s)?),
        Value::Array(a) => {
            let t = lua.create_table_with_capacity(a.len(), 0)?;
            for (i, item) in a.into_iter().enumerate() {
                t.raw_set(i + 1, to_lua(lua, item)?)?;
            }
            LuaValue::Table(t)
        }
        Value::Map(m) => {
            let t = lua.create_table_with_capacity(0, m.len())?;
            for (k, item) in m {
                t.raw_set(k, to_lua(lua, item)?)?;
            }
            LuaValue::Table(t)
        }
        Value::Func(f) => match f.get::<LuaFn>() {
            Some(LuaFn { function, .. }) => LuaValue::Function(function.clone()),
            None => LuaValue::Nil,
        },
        handle => LuaValue::UserData(lua.create_userdata(Handle(handle))?),
    })
}
