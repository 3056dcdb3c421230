//! Static checks before anything runs: every plain function call must name a primitive, a
//! built-in, a function of the script, or a variable holding a function pointer. Rhai only
//! finds unknown functions when it reaches them; this finds them in branches never taken.

use std::collections::HashSet;

use rhai::{AST, ASTNode, Engine, Expr, Stmt};

use super::error::{Location, ScriptError, closest};

/// Functions the Rhai language itself provides without registering them.
const KEYWORD_FNS: &[&str] = &[
    "print",
    "debug",
    "type_of",
    "Fn",
    "call",
    "curry",
    "eval",
    "is_def_var",
    "is_def_fn",
    "is_shared",
    "this",
];

/// The names of every function the engine knows, for checks and suggestions.
pub fn known_functions(engine: &Engine) -> Vec<String> {
    let mut names: Vec<String> = engine
        .gen_fn_signatures(true)
        .iter()
        .filter_map(|sig| sig.split('(').next())
        .map(|name| name.rsplit(' ').next().unwrap_or(name).to_string())
        .chain(KEYWORD_FNS.iter().map(|s| s.to_string()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The first call of an unknown function in `ast`, as an error at its position.
pub fn unknown_calls(ast: &AST, known: &[String], file: &str) -> Result<(), ScriptError> {
    let mut allowed: HashSet<String> = known.iter().cloned().collect();
    allowed.extend(ast.iter_functions().map(|f| f.name.to_string()));
    for f in ast.iter_functions() {
        allowed.extend(f.params.iter().map(|p| p.to_string()));
    }
    let mut calls = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        match path.last() {
            Some(
                ASTNode::Expr(Expr::FnCall(call, pos)) | ASTNode::Stmt(Stmt::FnCall(call, pos)),
            ) if call.namespace.is_empty() && call.op_token.is_none() => {
                calls.push((call.name.to_string(), *pos));
            }
            Some(ASTNode::Stmt(Stmt::Var(var, ..))) => {
                allowed.insert(var.0.name.to_string());
            }
            _ => {}
        }
        true
    });
    for (name, pos) in calls {
        let is_identifier = name.chars().all(|c| c.is_alphanumeric() || c == '_');
        if !is_identifier || allowed.contains(&name) {
            continue;
        }
        let mut message = format!("unknown function {name}()");
        if let Some(close) = closest(&name, known) {
            message.push_str(&format!(" (did you mean {close}?)"));
        }
        let location = pos.line().map(|line| Location {
            file: file.to_string(),
            line,
            col: pos.position().unwrap_or(1),
        });
        return Err(ScriptError::new(location, message));
    }
    Ok(())
}
