//! The values primitives take and give, in no script language's types. Each binding converts
//! its own values (Rhai's `Dynamic`, Lua's) to and from these, so a primitive is written once.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::nodes::Node;
use super::procs::Proc;
use super::time::Timer;
use super::topology::Topology;

/// A map of a script: Rhai's `#{ ... }`, a Lua table with names for keys. Sorted by key, as
/// both languages iterate maps, so events come out the same from either.
pub type Table = BTreeMap<String, Value>;

#[derive(Clone)]
pub enum Value {
    Unit,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Array(Vec<Value>),
    Map(Table),
    Node(Node),
    Proc(Proc),
    Timer(Timer),
    Topology(Topology),
    Func(Func),
}

/// A function of the script (a closure, or a function's name), as its binding holds it. Only
/// that binding can call it (`Host::call`); primitives store and pass it along.
#[derive(Clone)]
pub struct Func(pub Arc<dyn Any + Send + Sync>);

impl Func {
    pub fn new<T: Any + Send + Sync>(f: T) -> Self {
        Func(Arc::new(f))
    }

    pub fn get<T: Any>(&self) -> Option<&T> {
        self.0.downcast_ref()
    }
}

impl fmt::Debug for Func {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Fn")
    }
}

impl Value {
    pub fn str(s: impl Into<String>) -> Self {
        Value::Str(s.into())
    }

    /// An integer or a float, as a float.
    pub fn number(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(x) => Some(*x),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// A map; an empty array is an empty map too, since a Lua `{}` is both.
    pub fn as_map(&self) -> Option<Table> {
        match self {
            Value::Map(m) => Some(m.clone()),
            Value::Array(a) if a.is_empty() => Some(Table::new()),
            _ => None,
        }
    }

    /// An array; an empty map is an empty array too, for the same reason.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            Value::Map(m) if m.is_empty() => Some(&[]),
            _ => None,
        }
    }

    pub fn is_unit(&self) -> bool {
        matches!(self, Value::Unit)
    }

    /// The plain words of this value's kind: "an integer", "a Node".
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Unit => "nothing (())",
            Value::Bool(_) => "a bool (true or false)",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Str(_) => "a string",
            Value::Array(_) => "an array",
            Value::Map(_) => "a map",
            Value::Node(_) => "a Node",
            Value::Proc(_) => "a Proc",
            Value::Timer(_) => "a Timer",
            Value::Topology(_) => "a Topology",
            Value::Func(_) => "a function",
        }
    }

    /// The value as an error shows it: its kind, and the value itself when short and plain
    /// (`an integer 42`, `a string "soon"`, `an array of 3 elements`, `a Node`).
    pub fn describe(&self) -> String {
        match self {
            Value::Str(s) => {
                let text: String = s.chars().take(60).collect();
                let more = if s.chars().count() > 60 { "..." } else { "" };
                format!("a string {text:?}{more}")
            }
            Value::Array(a) if a.len() == 1 => "an array of 1 element".to_string(),
            Value::Array(a) => format!("an array of {} elements", a.len()),
            Value::Map(m) if m.len() == 1 => "a map of 1 key".to_string(),
            Value::Map(m) => format!("a map of {} keys", m.len()),
            Value::Bool(b) => format!("a bool {b}"),
            Value::Int(i) => format!("an integer {i}"),
            Value::Float(_) => format!("a float {self}"),
            other => other.kind().to_string(),
        }
    }

    /// The value as JSON, for events: handles by what identifies them.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Unit => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(x) => serde_json::Number::from_f64(*x).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Array(a) => J::Array(a.iter().map(Value::to_json).collect()),
            Value::Map(m) => J::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
            other => J::String(other.to_string()),
        }
    }

    /// A JSON document as a value: objects become maps, null nothing, integers stay integers.
    pub fn from_json(value: serde_json::Value) -> Value {
        use serde_json::Value as J;
        match value {
            J::Null => Value::Unit,
            J::Bool(b) => Value::Bool(b),
            J::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            J::String(s) => Value::Str(s),
            J::Array(a) => Value::Array(a.into_iter().map(Value::from_json).collect()),
            J::Object(o) => Value::Map(
                o.into_iter()
                    .map(|(k, v)| (k, Value::from_json(v)))
                    .collect(),
            ),
        }
    }
}

/// How a value prints in `log` and `to_string`, the same from every language: floats always
/// with a decimal point (`2.0`), maps as `#{"a": 1}`, handles by what identifies them.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Unit => Ok(()),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write_float(f, *x),
            Value::Str(s) => f.write_str(s),
            Value::Array(a) => {
                f.write_str("[")?;
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write_nested(f, v)?;
                }
                f.write_str("]")
            }
            Value::Map(m) => {
                f.write_str("#{")?;
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k:?}: ")?;
                    write_nested(f, v)?;
                }
                f.write_str("}")
            }
            Value::Node(n) => write!(f, "node {} ({})", n.id.0, n.ip),
            Value::Proc(p) => write!(f, "proc {} on {}: {}", p.pid, p.node.ip, p.cmd),
            Value::Timer(t) => write!(f, "timer {}", t.id.0),
            Value::Topology(t) => f.write_str(&t.describe()),
            Value::Func(_) => f.write_str("Fn"),
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_nested(f, self)
    }
}

/// Inside an array or a map, strings are quoted, nothing is `()` and floats are Rust's
/// `{:?}` (`1e-5`), as Rhai writes them there.
fn write_nested(f: &mut fmt::Formatter<'_>, v: &Value) -> fmt::Result {
    match v {
        Value::Float(x) => write!(f, "{x:?}"),
        Value::Str(s) => write!(f, "{s:?}"),
        Value::Unit => f.write_str("()"),
        other => write!(f, "{other}"),
    }
}

/// Rhai's way with floats, kept for both languages: `2.0`, `0.25`, and the exponent form
/// beyond 1e13 or below 1e-13 (`1e14`, `1e-14`), its thresholds (f32 constants) included.
fn write_float(f: &mut fmt::Formatter<'_>, x: f64) -> fmt::Result {
    const MAX_NATURAL: f32 = 10_000_000_000_000.0;
    const MIN_NATURAL: f32 = 0.000_000_000_000_1;
    let abs = x.abs();
    if abs == 0.0 {
        f.write_str("0.0")
    } else if abs > f64::from(MAX_NATURAL) || abs < f64::from(MIN_NATURAL) {
        write!(f, "{x:e}")
    } else if x.fract() == 0.0 {
        write!(f, "{x}.0")
    } else {
        write!(f, "{x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_in_plain_words() {
        assert_eq!(Value::Int(42).describe(), "an integer 42");
        assert_eq!(Value::str("soon").describe(), "a string \"soon\"");
        assert_eq!(Value::Unit.describe(), "nothing (())");
        assert_eq!(Value::Bool(true).describe(), "a bool true");
        assert_eq!(Value::Float(2.0).describe(), "a float 2.0");
        assert_eq!(
            Value::Array(vec![Value::Unit]).describe(),
            "an array of 1 element"
        );
    }

    #[test]
    fn printing_is_the_same_for_every_language() {
        let mut m = Table::new();
        m.insert("b".into(), Value::str("x"));
        m.insert(
            "a".into(),
            Value::Array(vec![Value::Int(1), Value::Float(0.5)]),
        );
        assert_eq!(Value::Map(m).to_string(), r#"#{"a": [1, 0.5], "b": "x"}"#);
        assert_eq!(Value::Float(3.0).to_string(), "3.0");
    }

    #[test]
    fn empty_arrays_and_maps_stand_for_each_other() {
        assert_eq!(Value::Array(vec![]).as_map().map(|m| m.len()), Some(0));
        assert_eq!(Value::Map(Table::new()).as_array().map(<[_]>::len), Some(0));
        assert!(Value::Array(vec![Value::Int(1)]).as_map().is_none());
    }

    #[test]
    fn json_round_trip_keeps_integers() {
        let v = Value::from_json(serde_json::json!({"a": [1, 2.5, null, true]}));
        assert_eq!(v.to_json(), serde_json::json!({"a": [1, 2.5, null, true]}));
    }
}
