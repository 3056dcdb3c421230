//! The static check of a Lua chunk before it runs, as the Rhai binding's: a call of a global
//! function that is neither a primitive, nor Lua's own, nor declared in the chunk is an error
//! (`unknown function shap() (did you mean shape?)`), even in a branch never taken.

use std::collections::HashSet;

use crate::script::error::{Location, ScriptError, closest};

/// Lua's own globals a scenario may call, and `require`.
pub const LUA_GLOBALS: &[&str] = &[
    "assert",
    "error",
    "getmetatable",
    "ipairs",
    "next",
    "pairs",
    "pcall",
    "print",
    "rawequal",
    "rawget",
    "rawlen",
    "rawset",
    "require",
    "select",
    "setmetatable",
    "tonumber",
    "tostring",
    "type",
    "xpcall",
];

const KEYWORDS: &[&str] = &[
    "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if", "in",
    "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while",
];

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Str,
    Sym(char),
    /// `==`, `~=`, `<=`, `>=`, `..`, `::` and the like: never an assignment.
    Op,
    Other,
}

/// Lua's tokens with their line and column, without comments and string contents.
fn tokens(text: &str) -> Vec<(Tok, usize, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let (mut i, mut line, mut col) = (0, 1, 1);
    let mut out = Vec::new();
    let advance = |i: &mut usize, line: &mut usize, col: &mut usize, n: usize| {
        for _ in 0..n {
            if *i < chars.len() {
                if chars[*i] == '\n' {
                    *line += 1;
                    *col = 1;
                } else {
                    *col += 1;
                }
                *i += 1;
            }
        }
    };
    // A long bracket `[==[` at `i`: its level, if it is one.
    let long_open = |i: usize| -> Option<usize> {
        if chars.get(i) != Some(&'[') {
            return None;
        }
        let mut j = i + 1;
        while chars.get(j) == Some(&'=') {
            j += 1;
        }
        (chars.get(j) == Some(&'[')).then_some(j - i - 1)
    };
    let long_len = |i: usize, level: usize| -> usize {
        let close: String = std::iter::once(']')
            .chain(std::iter::repeat_n('=', level))
            .chain(std::iter::once(']'))
            .collect();
        let rest: String = chars[i..].iter().collect();
        match rest.find(&close) {
            Some(k) => rest[..k].chars().count() + close.len(),
            None => chars.len() - i,
        }
    };
    while i < chars.len() {
        let c = chars[i];
        let (tl, tc) = (line, col);
        if c.is_whitespace() {
            advance(&mut i, &mut line, &mut col, 1);
        } else if c == '-' && chars.get(i + 1) == Some(&'-') {
            let n = match long_open(i + 2) {
                Some(level) => 2 + long_len(i + 2, level),
                None => chars[i..].iter().take_while(|&&c| c != '\n').count(),
            };
            advance(&mut i, &mut line, &mut col, n);
        } else if let Some(level) = long_open(i) {
            let n = long_len(i, level);
            advance(&mut i, &mut line, &mut col, n);
            out.push((Tok::Str, tl, tc));
        } else if c == '"' || c == '\'' {
            let mut n = 1;
            while i + n < chars.len() && chars[i + n] != c && chars[i + n] != '\n' {
                n += if chars[i + n] == '\\' { 2 } else { 1 };
            }
            advance(&mut i, &mut line, &mut col, n + 1);
            out.push((Tok::Str, tl, tc));
        } else if c.is_alphabetic() || c == '_' {
            let name: String = chars[i..]
                .iter()
                .take_while(|c| c.is_alphanumeric() || **c == '_')
                .collect();
            advance(&mut i, &mut line, &mut col, name.chars().count());
            out.push((Tok::Name(name), tl, tc));
        } else if c.is_ascii_digit() {
            let n = chars[i..]
                .iter()
                .take_while(|c| c.is_alphanumeric() || **c == '.' || **c == '_')
                .count();
            advance(&mut i, &mut line, &mut col, n);
            out.push((Tok::Other, tl, tc));
        } else {
            let next = chars.get(i + 1).copied();
            let two = matches!(
                (c, next),
                ('=', Some('='))
                    | ('~', Some('='))
                    | ('<', Some('='))
                    | ('>', Some('='))
                    | ('.', Some('.'))
                    | (':', Some(':'))
            );
            advance(&mut i, &mut line, &mut col, if two { 2 } else { 1 });
            out.push((if two { Tok::Op } else { Tok::Sym(c) }, tl, tc));
        }
    }
    out
}

/// Names the chunk declares anywhere: locals, functions, parameters, loop variables and
/// assigned globals. Lenient on purpose: a table key `up = ...` counts too.
fn declared(toks: &[(Tok, usize, usize)]) -> HashSet<String> {
    let mut names = HashSet::new();
    let mut in_params = false;
    for (k, (tok, _, _)) in toks.iter().enumerate() {
        let prev = k.checked_sub(1).map(|p| &toks[p].0);
        let next = toks.get(k + 1).map(|t| &t.0);
        if let Tok::Name(n) = tok {
            let after_decl =
                matches!(prev, Some(Tok::Name(p)) if p == "local" || p == "function" || p == "for");
            let listed = matches!(prev, Some(Tok::Sym(','))) && !in_params;
            if in_params || after_decl || listed || next == Some(&Tok::Sym('=')) {
                names.insert(n.clone());
            }
        }
        match tok {
            Tok::Sym('(')
                if matches!(prev, Some(Tok::Name(p)) if p == "function")
                    || matches!(toks.get(k.wrapping_sub(2)).map(|t| &t.0), Some(Tok::Name(p)) if p == "function") =>
            {
                in_params = true;
            }
            Tok::Sym(')') => in_params = false,
            _ => {}
        }
    }
    names
}

/// The first call of an unknown global function in `text`, as an error at its place.
pub fn unknown_calls(text: &str, file: &str, known: &[String]) -> Result<(), ScriptError> {
    let toks = tokens(text);
    let declared = declared(&toks);
    for (k, (tok, line, col)) in toks.iter().enumerate() {
        let Tok::Name(name) = tok else { continue };
        if KEYWORDS.contains(&name.as_str()) || declared.contains(name) {
            continue;
        }
        let prev = k.checked_sub(1).map(|p| &toks[p].0);
        if matches!(prev, Some(Tok::Sym('.')) | Some(Tok::Sym(':')))
            || matches!(prev, Some(Tok::Name(p)) if p == "function")
        {
            continue;
        }
        let called = matches!(
            toks.get(k + 1).map(|t| &t.0),
            Some(Tok::Sym('(')) | Some(Tok::Sym('{')) | Some(Tok::Str)
        );
        if !called || known.iter().any(|n| n == name) {
            continue;
        }
        let mut msg = format!("unknown function {name}()");
        if let Some(close) = closest(name, known) {
            msg.push_str(&format!(" (did you mean {close}?)"));
        }
        let at = Location {
            file: file.to_string(),
            line: *line,
            col: *col,
        };
        return Err(ScriptError::new(Some(at), msg));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Vec<String> {
        ["shape", "alloc_ip", "print", "require"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn check(text: &str) -> Result<(), String> {
        unknown_calls(text, "main.lua", &known()).map_err(|e| e.to_string())
    }

    #[test]
    fn unknown_calls_are_found_in_branches_never_taken() {
        assert_eq!(
            check("local n = alloc_ip(1)\nif false then shap(n, {}) end\n"),
            Err("main.lua:2:15: unknown function shap() (did you mean shape?)".into())
        );
        assert_eq!(
            check("teleport(n)"),
            Err("main.lua:1:1: unknown function teleport()".into())
        );
    }

    #[test]
    fn declared_names_methods_strings_and_comments_pass() {
        let text = r#"
local function helper(a, b) return a end
function global_fn(x) end
local t = { f = function() end }
helper(1, 2); global_fn(3); t.f(); t:f()
-- nothere(1)
print("nothere(2)")
local s = [[ nothere(3) ]]
local churn = require "churn"
churn.run({})
for i, v in ipairs({}) do end
"#;
        let mut k = known();
        k.push("ipairs".into());
        assert_eq!(
            unknown_calls(text, "main.lua", &k).map_err(|e| e.to_string()),
            Ok(())
        );
    }
}
