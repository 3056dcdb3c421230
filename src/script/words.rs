//! Plain words for what scripts handle: "an integer", "a string", "a Node" instead of Rust's
//! and Rhai's type names (`i64`, `&str | ImmutableString | String`,
//! `p2plab::script::api::nodes::Node`), for the errors of a call with arguments of the wrong
//! kinds. Nothing here touches the lab.

use rhai::Dynamic;

/// What `name` takes, if it is a primitive: its `expects`, for a call none of its forms
/// accepts.
pub fn expects(name: &str) -> Option<&'static str> {
    super::api::PRIMS
        .iter()
        .flat_map(|t| t.iter())
        .find(|p| p.name == name)
        .map(|p| p.expects)
}

/// A type, named by Rust (`i64`, `alloc::string::String`, `p2plab::...::Node`) or by Rhai
/// (`&str | ImmutableString | String`, `array`, `()`), in plain words: "an integer".
pub fn type_word(name: &str) -> String {
    let name = name.trim().trim_start_matches("&mut ").trim();
    let name = name.strip_prefix("rhai::").unwrap_or(name);
    let word = match name {
        "i64" | "i32" | "INT" | "u32" | "u64" | "usize" | "int" => "an integer",
        "f64" | "f32" | "FLOAT" | "float" => "a float",
        "bool" => "a bool (true or false)",
        "char" => "a character",
        "()" => "nothing (())",
        "array" | "Array" => "an array",
        "map" | "Map" => "a map",
        "Fn" | "FnPtr" => "a function",
        "blob" | "Blob" => "a blob",
        "timestamp" | "Instant" => "a timestamp",
        "range" | "range=" => "a range",
        "string" | "String" | "&str" | "str" | "ImmutableString" => "a string",
        _ if name.contains("ImmutableString") || name.ends_with("string::String") => "a string",
        _ if name.contains("Vec<") => "an array",
        _ if name.contains("BTreeMap<") => "a map",
        _ if name.contains("FnPtr") => "a function",
        _ if name.contains("Range") => "a range",
        _ => {
            // A handle (Node, Proc, Timer, Topology), perhaps by its whole Rust path.
            let base = name.split('<').next().unwrap_or(name);
            let base = base.rsplit("::").next().unwrap_or(base);
            return with_article(base);
        }
    };
    word.to_string()
}

/// The plain words of a value's kind: "an integer", "a Node".
pub fn kind(v: &Dynamic) -> String {
    type_word(v.type_name())
}

/// A value as an error shows it: its kind, and the value itself when short and plain
/// (`an integer 42`, `a string "soon"`, `an array of 3 elements`, `a Node`).
pub fn describe(v: &Dynamic) -> String {
    if v.is_unit() {
        return "nothing (())".to_string();
    }
    if let Some(s) = v.read_lock::<rhai::ImmutableString>() {
        let text: String = s.chars().take(60).collect();
        let more = if s.chars().count() > 60 { "..." } else { "" };
        return format!("a string {:?}{more}", text);
    }
    if let Some(a) = v.read_lock::<rhai::Array>() {
        return match a.len() {
            1 => "an array of 1 element".to_string(),
            n => format!("an array of {n} elements"),
        };
    }
    if let Some(m) = v.read_lock::<rhai::Map>() {
        return match m.len() {
            1 => "a map of 1 key".to_string(),
            n => format!("a map of {n} keys"),
        };
    }
    if v.is_int() || v.is_float() || v.is_bool() || v.is_char() {
        let word = kind(v);
        let word = word.split(" (").next().unwrap_or(&word).to_string();
        return format!("{word} {v}");
    }
    kind(v)
}

/// Kinds listed in prose: "an integer and a string", "no argument".
pub fn list(words: &[String]) -> String {
    match words {
        [] => "no argument".to_string(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The argument types of a Rhai call signature (`"shape (i64, &str | ImmutableString |
/// String)"`) in plain words, and the function's name.
pub fn call_signature(sig: &str) -> (String, Vec<String>) {
    let (name, args) = match sig.find(" (") {
        Some(i) => (&sig[..i], &sig[i + 2..]),
        None => (sig, ""),
    };
    let args = args.strip_suffix(')').unwrap_or(args).trim();
    let words = if args.is_empty() {
        Vec::new()
    } else {
        args.split(", ").map(type_word).collect()
    };
    (name.trim().to_string(), words)
}

fn with_article(noun: &str) -> String {
    let vowel = noun
        .chars()
        .next()
        .is_some_and(|c| "aeiouAEIOU".contains(c));
    format!("{} {noun}", if vowel { "an" } else { "a" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_and_rhai_names_in_plain_words() {
        assert_eq!(type_word("i64"), "an integer");
        assert_eq!(type_word("f64"), "a float");
        assert_eq!(type_word("&str | ImmutableString | String"), "a string");
        assert_eq!(type_word("alloc::string::String"), "a string");
        assert_eq!(type_word("rhai::Array"), "an array");
        assert_eq!(type_word("rhai::Map"), "a map");
        assert_eq!(
            type_word("alloc::vec::Vec<rhai::types::dynamic::Dynamic>"),
            "an array"
        );
        assert_eq!(type_word("()"), "nothing (())");
        assert_eq!(type_word("p2plab::script::api::nodes::Node"), "a Node");
        assert_eq!(type_word("Proc"), "a Proc");
        assert_eq!(type_word("&mut Timer"), "a Timer");
    }

    #[test]
    fn values_and_signatures() {
        assert_eq!(describe(&Dynamic::from(42_i64)), "an integer 42");
        assert_eq!(describe(&Dynamic::from("soon")), "a string \"soon\"");
        assert_eq!(describe(&Dynamic::UNIT), "nothing (())");
        assert_eq!(describe(&Dynamic::from(true)), "a bool true");
        let (name, args) = call_signature("shape (i64, &str | ImmutableString | String)");
        assert_eq!(name, "shape");
        assert_eq!(list(&args), "an integer and a string");
        let (name, args) = call_signature("now ()");
        assert_eq!(
            (name.as_str(), list(&args).as_str()),
            ("now", "no argument")
        );
        let (_, args) = call_signature("foo (array, map, (), Node)");
        assert_eq!(list(&args), "an array, a map, nothing (()) and a Node");
    }
}
