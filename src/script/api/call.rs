//! How a binding calls a primitive: the table entry (`Prim`, `Prop`), the arguments (`Args`,
//! with the plain-words error for a call of the wrong kinds), what a primitive may ask of the
//! language (`Host`: run a function of the script) and the error it returns (`ApiError`).

use std::any::Any;
use std::fmt;

use super::ScriptState;
use super::value::{Func, Table, Value};

/// What a primitive failed with: a message (the binding adds the call's position and the
/// primitive's name), or an error of the script itself, raised in a function the primitive
/// ran, which the binding takes back unchanged so that its own position survives.
pub enum ApiError {
    Msg(String),
    Script(Box<dyn Any + Send + Sync>),
}

impl ApiError {
    pub fn msg(m: impl fmt::Display) -> Self {
        ApiError::Msg(m.to_string())
    }
}

impl From<crate::controller::LabError> for ApiError {
    fn from(e: crate::controller::LabError) -> Self {
        ApiError::Msg(e.to_string())
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Msg(m) => f.write_str(m),
            ApiError::Script(_) => f.write_str("an error of the script"),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Why a primitive runs a function of the script: its errors are reported differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// An `at`/`every` callback falling due: errors say where it was scheduled.
    Scheduled,
    /// A condition or a function the primitive evaluates for its own answer.
    Direct,
}

/// What a primitive asks of the language it was called from.
pub trait Host {
    fn call(&mut self, f: &Func, kind: CallKind) -> ApiResult<Value>;
}

/// One primitive: its name, how many arguments it takes, what they are in words (for a call
/// of the wrong kinds), and its one implementation.
pub struct Prim {
    pub name: &'static str,
    pub min: usize,
    pub max: usize,
    pub expects: &'static str,
    pub f: fn(&ScriptState, &mut dyn Host, &Args) -> ApiResult<Value>,
}

/// A property of a handle (`node.ip`, `p.running`), read from the lab when asked.
pub struct Prop {
    pub name: &'static str,
    pub get: fn(&ScriptState, &Value) -> ApiResult<Value>,
}

/// The arguments of one call, as the binding converted them.
pub struct Args {
    pub prim: &'static str,
    expects: &'static str,
    values: Vec<Value>,
}

impl Args {
    pub fn new(prim: &Prim, values: Vec<Value>) -> Self {
        Args {
            prim: prim.name,
            expects: prim.expects,
            values,
        }
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<&Value> {
        self.values.get(i)
    }

    /// Argument `i`, which the arity check guarantees.
    pub fn at(&self, i: usize) -> &Value {
        self.values.get(i).unwrap_or(&Value::Unit)
    }

    /// The error for a call whose arguments are not what the primitive takes.
    pub fn mismatch(&self) -> ApiError {
        let got: Vec<&'static str> = self.values.iter().map(Value::kind).collect();
        ApiError::Msg(format!("expected {}, got {}", self.expects, list(&got)))
    }

    pub fn int(&self, i: usize) -> ApiResult<i64> {
        self.at(i).as_int().ok_or_else(|| self.mismatch())
    }

    pub fn string(&self, i: usize) -> ApiResult<&str> {
        self.at(i).as_str().ok_or_else(|| self.mismatch())
    }

    pub fn func(&self, i: usize) -> ApiResult<&Func> {
        match self.at(i) {
            Value::Func(f) => Ok(f),
            _ => Err(self.mismatch()),
        }
    }

    /// An optional map of options: absent is empty.
    pub fn opts(&self, i: usize) -> ApiResult<Table> {
        match self.get(i) {
            None => Ok(Table::new()),
            Some(v) => v.as_map().ok_or_else(|| self.mismatch()),
        }
    }
}

/// Kinds listed in prose: "an integer and a string", "no argument".
pub fn list(words: &[&str]) -> String {
    match words {
        [] => "no argument".to_string(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Runs `prim` with `values`, after checking how many there are.
pub fn invoke(
    prim: &Prim,
    state: &ScriptState,
    host: &mut dyn Host,
    values: Vec<Value>,
) -> ApiResult<Value> {
    let args = Args::new(prim, values);
    if args.len() < prim.min || args.len() > prim.max {
        return Err(args.mismatch());
    }
    (prim.f)(state, host, &args)
}
