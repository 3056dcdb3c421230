//! The Lua binding (Lua 5.4, vendored by `mlua`): the same primitives as Rhai's, registered
//! from `api::PRIMS`, `require` for modules next to the script or in p2plab's stdlib, strict
//! globals, the static check for unknown functions and the runaway-loop watchdog, which
//! counts Lua's instructions between two sleeps against the same limit and message.

pub mod check;
pub mod errors;
pub mod values;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use mlua::{Function, HookTriggers, Lua, LuaOptions, StdLib, Table, Value as LuaValue, VmState};

use super::api::{self, ScriptState};
use super::error::ScriptError;
use super::{Scenario, runaway_message};
use errors::{Sources, located, located_here, to_script_error};

/// Instructions between two looks of the watchdog.
const HOOK_EVERY: u32 = 1000;

/// Modules shipped in `stdlib/`, in Lua: twins of the Rhai modules of the same names, which
/// `tests/lua.rs` checks give the same events.
pub const STDLIB: &[(&str, &str)] = &[
    ("churn", include_str!("../../../stdlib/churn.lua")),
    ("conditions", include_str!("../../../stdlib/conditions.lua")),
    ("topology", include_str!("../../../stdlib/topology.lua")),
];

const LOADED_KEY: &str = "p2plab.loaded";

/// A Lua scenario, checked and ready to run.
pub struct LuaScript {
    lua: Lua,
    main: Function,
}

/// Every name a script may call: the primitives and Lua's own globals.
fn known_names() -> Vec<String> {
    let mut names: Vec<String> = api::PRIMS
        .iter()
        .flat_map(|t| t.iter().map(|p| p.name.to_string()))
        .chain(check::LUA_GLOBALS.iter().map(|s| s.to_string()))
        .chain(["string", "table", "math", "utf8"].map(String::from))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Compiles `text` as the chunk `file` after the static check; nothing runs.
fn compile(lua: &Lua, text: &str, file: &str) -> Result<Function, ScriptError> {
    check::unknown_calls(text, file, &known_names())?;
    if let Some(mut sources) = lua.app_data_mut::<Sources>() {
        sources.0.insert(file.to_string(), text.to_string());
    }
    lua.load(text)
        .set_name(format!("@{file}"))
        .into_function()
        .map_err(|e| to_script_error(&e))
}

impl LuaScript {
    /// A Lua state with the primitives bound to `state`, and the scenario compiled and checked.
    pub fn load(
        scenario: &Scenario,
        state: &Arc<ScriptState>,
        max_operations: u64,
    ) -> Result<Self, ScriptError> {
        let setup = |e: mlua::Error| ScriptError::new(None, format!("cannot set up Lua: {e}"));
        // No io, os or package: a scenario acts on the lab only through the primitives, as in
        // Rhai.
        let libs = StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::UTF8;
        let lua = Lua::new_with(libs, LuaOptions::default()).map_err(setup)?;
        lua.set_app_data(Sources::default());
        values::register(&lua, state).map_err(setup)?;
        register_require(&lua, scenario).map_err(setup)?;
        seeded_only(&lua).map_err(setup)?;
        strict_globals(&lua).map_err(setup)?;
        watchdog(&lua, state, max_operations).map_err(setup)?;
        let main = compile(&lua, &scenario.text, &scenario.name())?;
        Ok(LuaScript { lua, main })
    }

    pub fn run(&self) -> Result<(), ScriptError> {
        let result = self.main.call::<()>(()).map_err(|e| to_script_error(&e));
        self.lua.remove_global_hook();
        result
    }
}

/// `math.random` draws outside the run's seed: a scenario that used it would not replay.
fn seeded_only(lua: &Lua) -> mlua::Result<()> {
    let math: Table = lua.globals().get("math")?;
    for name in ["random", "randomseed"] {
        let f = lua.create_function(move |lua, _: mlua::MultiValue| -> mlua::Result<()> {
            Err(located(
                lua,
                None,
                format!(
                    "math.{name} is outside the run's seed (--seed): use rand(), rand_int(lo, hi) \
                     or the other rand_* primitives"
                ),
            ))
        })?;
        math.raw_set(name, f)?;
    }
    Ok(())
}

/// Reading a global nobody set is an error, as an unknown variable is in Rhai.
fn strict_globals(lua: &Lua) -> mlua::Result<()> {
    let meta = lua.create_table()?;
    let index = lua.create_function(|lua, (_, key): (LuaValue, LuaValue)| -> mlua::Result<()> {
        let key = key.to_string().unwrap_or_default();
        Err(located(lua, None, format!("unknown variable {key}")))
    })?;
    meta.raw_set("__index", index)?;
    lua.globals().set_metatable(Some(meta))
}

/// Stops a script that runs `max_operations` instructions without sleeping, or on Ctrl-C.
fn watchdog(lua: &Lua, state: &Arc<ScriptState>, max_operations: u64) -> mlua::Result<()> {
    let s = state.clone();
    let (seen_sleeps, ran) = (AtomicU64::new(0), AtomicU64::new(0));
    lua.set_global_hook(
        HookTriggers::new().every_nth_instruction(HOOK_EVERY),
        move |lua, _| {
            if crate::interrupt::requested() {
                return Err(located_here(lua, "interrupted (Ctrl-C or SIGTERM)"));
            }
            let sleeps = s.sleeps.load(Ordering::Relaxed);
            if sleeps != seen_sleeps.swap(sleeps, Ordering::Relaxed) {
                ran.store(0, Ordering::Relaxed);
            }
            let n = ran.fetch_add(u64::from(HOOK_EVERY), Ordering::Relaxed);
            if n + u64::from(HOOK_EVERY) > max_operations {
                return Err(located_here(lua, runaway_message(max_operations)));
            }
            Ok(VmState::Continue)
        },
    )
}

/// `require "name"`: a module next to the script wins, then p2plab's stdlib. Each is run once
/// per run, and its value (usually a table of functions) is shared.
fn register_require(lua: &Lua, scenario: &Scenario) -> mlua::Result<()> {
    lua.set_named_registry_value(LOADED_KEY, lua.create_table()?)?;
    let script = scenario.path.clone();
    let dir = scenario.dir();
    let require = lua.create_function(move |lua, name: String| -> mlua::Result<LuaValue> {
        let loaded: Table = lua.named_registry_value(LOADED_KEY)?;
        match loaded.raw_get::<LuaValue>(name.as_str())? {
            LuaValue::Nil => {}
            LuaValue::Boolean(false) => {
                return Err(located(
                    lua,
                    Some("require"),
                    format!("module {name:?} requires itself (an import cycle)"),
                ));
            }
            value => return Ok(value),
        }
        let (text, file) =
            find_module(&name, &script, &dir).map_err(|msg| located(lua, Some("require"), msg))?;
        // As in Rhai, a module's error is called from its import.
        let imported = |e: &mlua::Error| {
            let at = errors::caller(lua, 1, Some("require")).map(|at| (at, "import".to_string()));
            errors::called_from(e, at.into_iter().chain(errors::frames(lua, 1)).collect())
        };
        let chunk = compile(lua, &text, &file)
            .map_err(|e| imported(&mlua::Error::external(errors::Located(e))))?;
        loaded.raw_set(name.as_str(), false)?;
        let value = chunk.call::<LuaValue>(());
        let value = match value {
            Ok(LuaValue::Nil) => LuaValue::Boolean(true),
            Ok(v) => v,
            Err(e) => {
                loaded.raw_set(name.as_str(), LuaValue::Nil)?;
                return Err(imported(&e));
            }
        };
        loaded.raw_set(name.as_str(), value.clone())?;
        Ok(value)
    })?;
    lua.globals().raw_set("require", require)
}

/// The module's text and the name its errors carry.
fn find_module(name: &str, script: &Path, dir: &Path) -> Result<(String, String), String> {
    let local = dir.join(format!("{name}.lua"));
    // `scripts/churn.lua` requiring "churn" means the stdlib module, not itself.
    let is_script = local.canonicalize().ok() == script.canonicalize().ok();
    if local.is_file() && !is_script {
        let text = std::fs::read_to_string(&local)
            .map_err(|e| format!("reading {}: {e}", local.display()))?;
        return Ok((text, local.display().to_string()));
    }
    STDLIB
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, text)| (text.to_string(), format!("stdlib/{n}.lua")))
        .ok_or_else(|| {
            format!("no module {name:?}: looked for {name}.lua next to the script and in p2plab's stdlib")
        })
}
