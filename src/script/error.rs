//! Script errors as users see them: `file:line:col: what went wrong`, then where it was called
//! from. Rhai nests errors raised inside functions and modules; this walks the chain down to the
//! place where the error really is.

use std::fmt;

use rhai::{EvalAltResult, NativeCallContext, Position};

use super::words;

/// The frame name that marks "this callback was scheduled here" in an error's chain: the
/// scheduling side (`api::time`) wraps a callback's error in it, and the chain walk below
/// reports the place the callback was scheduled.
pub const SCHEDULED_CALLBACK: &str = "p2plab:scheduled-callback";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Lua's debug information has lines only: col 0 is "unknown".
        if self.col == 0 {
            write!(f, "{}:{}", self.file, self.line)
        } else {
            write!(f, "{}:{}:{}", self.file, self.line, self.col)
        }
    }
}

impl Location {
    fn at(file: &str, pos: Position) -> Option<Location> {
        Some(Location {
            file: file.to_string(),
            line: pos.line()?,
            col: pos.position().unwrap_or(1),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptError {
    pub location: Option<Location>,
    pub message: String,
    /// Call sites from the innermost outwards: (where, what was called).
    pub trace: Vec<(Location, String)>,
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(at) => write!(f, "{at}: {}", self.message)?,
            None => write!(f, "{}", self.message)?,
        }
        // A recursion that ran into the call limit has dozens of frames: the innermost say
        // where it went wrong, the outermost where it began.
        let len = self.trace.len();
        let inner = TRACE_SHOWN - TRACE_OUTERMOST;
        for (i, (at, what)) in self.trace.iter().enumerate() {
            if len <= TRACE_SHOWN || i < inner || i >= len - TRACE_OUTERMOST {
                write!(f, "\n  called from {at} ({what})")?;
            } else if i == inner {
                write!(f, "\n  ... {} more calls ...", len - TRACE_SHOWN)?;
            }
        }
        Ok(())
    }
}

/// Frames of a trace printed at most, of which the last few are the outermost.
const TRACE_SHOWN: usize = 12;
const TRACE_OUTERMOST: usize = 2;

impl std::error::Error for ScriptError {}

impl ScriptError {
    pub fn new(location: Option<Location>, message: impl Into<String>) -> Self {
        ScriptError {
            location,
            message: message.into(),
            trace: Vec::new(),
        }
    }

    /// Converts a Rhai error raised while running the script whose source name is `main`.
    pub fn from_eval(err: &EvalAltResult, main: &str, known_fns: &[String]) -> Self {
        let mut source = main.to_string();
        let mut trace = Vec::new();
        let mut err = err;
        loop {
            match err {
                // A callback that failed: its frame is where it was scheduled, in `src`.
                EvalAltResult::ErrorInFunctionCall(name, src, inner, pos)
                    if name == SCHEDULED_CALLBACK =>
                {
                    // The next frame is the sleep that ran it, in the current source.
                    trace.extend(
                        Location::at(src, *pos)
                            .map(|at| (at, "scheduled by at()/every()".to_string())),
                    );
                    err = inner;
                }
                EvalAltResult::ErrorInFunctionCall(name, src, inner, pos) => {
                    let what = if name.starts_with("anon$") {
                        "callback".to_string()
                    } else {
                        format!("in {name}()")
                    };
                    trace.extend(Location::at(&source, *pos).map(|at| (at, what)));
                    if !src.is_empty() {
                        source = src.clone();
                    }
                    err = inner;
                }
                EvalAltResult::ErrorInModule(name, inner, pos) => {
                    trace.extend(Location::at(&source, *pos).map(|at| (at, "import".to_string())));
                    source = name.clone();
                    err = inner;
                }
                _ => break,
            }
        }
        trace.reverse();
        ScriptError {
            location: Location::at(&source, err.position()),
            message: leaf_message(err, known_fns),
            trace,
        }
    }
}

fn leaf_message(err: &EvalAltResult, known_fns: &[String]) -> String {
    if let Some(limit) = super::limits::explain(err) {
        return limit;
    }
    match err {
        // A handle thrown by the script would print as its Rust type.
        EvalAltResult::ErrorRuntime(msg, _) if msg.is_variant() => {
            format!("thrown: {}", words::describe(msg))
        }
        EvalAltResult::ErrorRuntime(msg, _) => msg.to_string(),
        EvalAltResult::ErrorTerminated(msg, _) => msg.to_string(),
        // Strict variables find this before the run: the same words as at run time (and Lua).
        EvalAltResult::ErrorParsing(rhai::ParseErrorType::VariableUndefined(name), _) => {
            format!("unknown variable {name}")
        }
        EvalAltResult::ErrorParsing(p, _) => format!("syntax error: {p}"),
        EvalAltResult::ErrorFunctionNotFound(sig, _) => not_found(sig, known_fns),
        EvalAltResult::ErrorDotExpr(text, _) => property_message(text, known_fns),
        EvalAltResult::ErrorIndexingType(text, _) => {
            // "Node [i64]": the indexed value's type, then the index's.
            let (what, index) = text.split_once(" [").unwrap_or((text, ""));
            let index = index.strip_suffix(']').unwrap_or(index);
            format!(
                "{} cannot be indexed with {} (only arrays, maps and strings can)",
                words::type_word(what),
                words::type_word(index)
            )
        }
        EvalAltResult::ErrorMismatchDataType(want, got, _) => match (want.as_str(), got.as_str()) {
            ("", got) => format!("a value of the wrong kind: {}", words::type_word(got)),
            (want, "") => format!("expected {}", words::type_word(want)),
            (want, got) => format!(
                "expected {}, got {}",
                words::type_word(want),
                words::type_word(got)
            ),
        },
        EvalAltResult::ErrorMismatchOutputType(want, got, _) => {
            match (want.as_str(), got.as_str()) {
                ("", got) => format!("a result of the wrong kind: {}", words::type_word(got)),
                (want, "") => format!("expected the result to be {}", words::type_word(want)),
                (want, got) => format!(
                    "expected the result to be {}, got {}",
                    words::type_word(want),
                    words::type_word(got)
                ),
            }
        }
        EvalAltResult::ErrorVariableNotFound(name, _) => format!("unknown variable {name}"),
        EvalAltResult::ErrorModuleNotFound(name, _) => format!(
            "no module {name:?}: looked for {name}.rhai next to the script and in p2plab's stdlib"
        ),
        other => {
            // Rhai appends the position, which our location already says.
            let text = other.to_string();
            match text.rfind(" (line ") {
                Some(i) => text[..i].to_string(),
                None => text,
            }
        }
    }
}

/// A call no registered function accepts: a typo (unknown name), or a known function or
/// operator given arguments of the wrong kinds, said in plain words.
fn not_found(sig: &str, known_fns: &[String]) -> String {
    let (name, args) = words::call_signature(sig);
    let got = words::list(&args);
    if name.starts_with("anon$") {
        return format!(
            "a closure was called with {}, which does not match its parameters \
             (at() and every() call theirs with no argument: write || ..., and capture values)",
            if args.is_empty() {
                "no argument".to_string()
            } else {
                got
            }
        );
    }
    if !is_identifier(&name) && !name.contains("::") {
        return format!("the operator {name} does not apply to {got}");
    }
    if let Some(expects) = words::expects(&name) {
        return format!("{name}: expected {expects}, got {got}");
    }
    if known_fns.contains(&name) {
        return format!("{name} exists, but not for {got} (see the reference)");
    }
    let mut msg = if args.is_empty() {
        format!("unknown function {name}()")
    } else {
        format!("unknown function {name}, called with {got}")
    };
    if let Some(close) = closest(&name, known_fns) {
        msg.push_str(&format!(" (did you mean {close}?)"));
    }
    msg
}

/// Rhai's "Unknown property 'x' - a getter is not registered for type 'T'" and its setter
/// twin, in plain words.
fn property_message(text: &str, known_fns: &[String]) -> String {
    let quoted: Vec<&str> = text.split('\'').skip(1).step_by(2).collect();
    if text.starts_with("Unknown property")
        && let [prop, ty] = quoted[..]
    {
        let mut msg = format!("{} has no property {prop}", words::type_word(ty));
        let getters: Vec<String> = known_fns
            .iter()
            .filter_map(|k| k.strip_prefix("get$"))
            .map(str::to_string)
            .collect();
        if let Some(close) = closest(prop, &getters) {
            msg.push_str(&format!(" (did you mean {close}?)"));
        }
        return msg;
    }
    if text.starts_with("No writable property")
        && let [prop, ty, value] = quoted[..]
    {
        return format!(
            "cannot set {prop} of {} (to {}): it has no such property, or it is read-only",
            words::type_word(ty),
            words::type_word(value)
        );
    }
    text.to_string()
}

/// The known function with the smallest edit distance (≤ 2) to `name`, if it is another name.
pub fn closest<'a>(name: &str, known: &'a [String]) -> Option<&'a str> {
    known
        .iter()
        .filter(|k| k.as_str() != name && is_identifier(k) == is_identifier(name))
        .map(|k| (edit_distance(name, k), k))
        // A name of one or two letters is a step away from too many others to guess.
        .filter(|_| name.chars().count() >= 3)
        .filter(|(d, _)| *d <= if name.chars().count() <= 4 { 1 } else { 2 })
        .min()
        .map(|(_, k)| k.as_str())
}

fn is_identifier(name: &str) -> bool {
    name.chars().all(|c| c.is_alphanumeric() || c == '_')
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// An error raised by a primitive at its call site: `shape: "fast" is not a rate ...`.
pub fn at_call(ctx: &NativeCallContext, msg: impl fmt::Display) -> Box<EvalAltResult> {
    let name = ctx.fn_name();
    EvalAltResult::ErrorRuntime(format!("{name}: {msg}").into(), ctx.call_position()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let known = vec![
            "shape".to_string(),
            "spawn".to_string(),
            "sleep".to_string(),
        ];
        assert_eq!(closest("shap", &known), Some("shape"));
        assert_eq!(closest("teleport", &known), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn calls_no_function_accepts() {
        let known: Vec<String> = ["shape", "shuffle", "sub_string", "-", "!", "get$failed"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            not_found("shuffle (i64)", &known),
            "shuffle: expected an array, got an integer"
        );
        assert_eq!(
            not_found("sub_string (&str | ImmutableString | String, f64)", &known),
            "sub_string exists, but not for a string and a float (see the reference)"
        );
        assert_eq!(
            not_found("- (&str | ImmutableString | String, i64)", &known),
            "the operator - does not apply to a string and an integer"
        );
        assert_eq!(
            not_found("shufle (array)", &known),
            "unknown function shufle, called with an array (did you mean shuffle?)"
        );
        // No operator is suggested for a name, nor anything for a single letter.
        assert_eq!(not_found("f ()", &known), "unknown function f()");
        assert_eq!(
            property_message(
                "Unknown property 'fialed' - a getter is not registered for type 'Node'",
                &known
            ),
            "a Node has no property fialed (did you mean failed?)"
        );
    }

    #[test]
    fn a_long_trace_shows_its_ends() {
        let at = |line| Location {
            file: "main.rhai".into(),
            line,
            col: 1,
        };
        let mut err = ScriptError::new(Some(at(1)), "deep");
        err.trace = (2..=41)
            .map(|line| (at(line), "in f()".to_string()))
            .collect();
        let text = err.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1 + TRACE_SHOWN + 1, "{text}");
        assert_eq!(lines[1], "  called from main.rhai:2:1 (in f())");
        assert_eq!(lines[11], "  ... 28 more calls ...");
        assert_eq!(lines[13], "  called from main.rhai:41:1 (in f())");
    }
}
