//! Lua errors as users see them, in the words and places of the Rhai binding's: a primitive's
//! error at its call (`file:line:col: shape: ...`), Lua's own errors at the line Lua names.
//! Lua's debug information has lines only; the column is where the primitive's name stands
//! in that line, when it stands there once. The trace below a message is Rhai's too: the
//! functions on the way, the sleep that ran a callback and where the callback was scheduled.

use std::collections::HashMap;
use std::fmt;

use mlua::Lua;

use crate::script::error::{Location, ScriptError};

/// The text of every chunk loaded, by the name Lua gives it, to find columns in.
#[derive(Default)]
pub struct Sources(pub HashMap<String, String>);

/// An error with its place, raised from Rust into Lua and found again when the script ends.
#[derive(Debug, Clone)]
pub struct Located(pub ScriptError);

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Located {}

/// Where the Lua code `level` frames up is (1: the caller of a Rust function, 0: the code a
/// hook interrupted): its chunk and line, and the column of `name`.
pub fn caller(lua: &Lua, level: usize, name: Option<&str>) -> Option<Location> {
    let (file, line) = lua.inspect_stack(level, |d| {
        let file = d.source().short_src.map(|s| s.to_string());
        (file, d.current_line())
    })?;
    let (file, line) = (file?, line?);
    let col = name
        .and_then(|name| {
            let sources = lua.app_data_ref::<Sources>()?;
            let text = sources.0.get(&file)?.lines().nth(line - 1)?;
            column_of(text, name)
        })
        .unwrap_or(0);
    Some(Location { file, line, col })
}

/// The Lua functions between a Rust function and the Rust code that called into Lua (the
/// run, a sleep running a callback, `require`), innermost first: where each was called from,
/// and its name. `level` 1 is the function that called the Rust function.
pub fn frames(lua: &Lua, level: usize) -> Vec<(Location, String)> {
    let mut out = Vec::new();
    for level in level.. {
        let frame = lua.inspect_stack(level, |d| {
            (d.source().what, d.names().name.map(|n| n.to_string()))
        });
        // A chunk's own code ("main") or Rust ("C") ends the stretch of Lua.
        let Some(("Lua", name)) = frame else { break };
        let Some(at) = caller(lua, level + 1, name.as_deref()) else {
            break;
        };
        let what = match name {
            Some(n) => format!("in {n}()"),
            None => "callback".to_string(),
        };
        out.push((at, what));
    }
    out
}

/// An error at the caller's place; `name: ` before the message when a primitive raised it.
pub fn located(lua: &Lua, name: Option<&str>, msg: impl fmt::Display) -> mlua::Error {
    let message = match name {
        Some(n) => format!("{n}: {msg}"),
        None => msg.to_string(),
    };
    let mut e = ScriptError::new(caller(lua, 1, name), message);
    e.trace = frames(lua, 1);
    mlua::Error::external(Located(e))
}

/// `err`, which came up from Lua code that Rust called, with the frames `more` outside it.
pub fn called_from(err: &mlua::Error, more: Vec<(Location, String)>) -> mlua::Error {
    let mut e = to_script_error(err);
    e.trace.extend(more);
    mlua::Error::external(Located(e))
}

/// An error at the code a hook interrupted.
pub fn located_here(lua: &Lua, msg: impl fmt::Display) -> mlua::Error {
    mlua::Error::external(Located(ScriptError::new(
        caller(lua, 0, None),
        msg.to_string(),
    )))
}

/// The 1-based column of `name` as a whole word in `line`, if it appears there exactly once.
pub fn column_of(line: &str, name: &str) -> Option<usize> {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let mut found = None;
    for (i, _) in line.match_indices(name) {
        let before = line[..i].chars().next_back();
        let after = line[i + name.len()..].chars().next();
        if before.is_some_and(is_word) || after.is_some_and(is_word) {
            continue;
        }
        if found.is_some() {
            return None;
        }
        found = Some(line[..i].chars().count() + 1);
    }
    found
}

/// `file:line: rest`, as Lua starts its own messages, split into a place and the rest.
fn split_place(text: &str) -> (Option<Location>, String) {
    let parse = || {
        let (file, rest) = text.split_once(':')?;
        let (line, rest) = rest.split_once(':')?;
        let line = line.trim().parse().ok()?;
        Some((
            Location {
                file: file.to_string(),
                line,
                col: 0,
            },
            rest.trim_start().to_string(),
        ))
    };
    match parse() {
        Some((at, rest)) => (Some(at), rest),
        None => (None, text.to_string()),
    }
}

/// The error a Lua script ended with, as p2plab reports it.
pub fn to_script_error(err: &mlua::Error) -> ScriptError {
    if let Some(Located(e)) = err.downcast_ref::<Located>() {
        return e.clone();
    }
    match err {
        mlua::Error::CallbackError { cause, .. } => to_script_error(cause),
        mlua::Error::SyntaxError { message, .. } => {
            let (at, rest) = split_place(message);
            ScriptError::new(at, format!("syntax error: {rest}"))
        }
        mlua::Error::RuntimeError(message) => {
            let first = message.lines().next().unwrap_or_default();
            let (at, rest) = split_place(first);
            ScriptError::new(at, rest)
        }
        mlua::Error::MemoryError(m) => ScriptError::new(None, format!("out of memory: {m}")),
        other => ScriptError::new(None, other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_found_once_has_a_column() {
        assert_eq!(column_of("shape(n, { up = \"fast\" })", "shape"), Some(1));
        assert_eq!(column_of("  local n = alloc_ip(1)", "alloc_ip"), Some(13));
        assert_eq!(column_of("reshape(n); shape(n)", "shape"), Some(13));
        assert_eq!(column_of("shape(a); shape(b)", "shape"), None);
        assert_eq!(column_of("print(1)", "shape"), None);
    }

    #[test]
    fn lua_places_are_split_from_messages() {
        let (at, rest) = split_place("main.lua:3: unexpected symbol near ';'");
        assert_eq!(at.map(|a| a.line), Some(3));
        assert_eq!(rest, "unexpected symbol near ';'");
        assert_eq!(split_place("no place").1, "no place");
    }
}
