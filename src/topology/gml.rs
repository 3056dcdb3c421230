//! A streaming reader of GML (Graph Modelling Language, as Shadow's network graphs are
//! written): `key value` pairs where a value is an integer, a real, a "string" or a `[ ]`
//! list of pairs, and `#` comments to the end of the line. It hands out one event at a time,
//! borrowed from the text, so a graph of millions of edges is never held as a tree.

use std::borrow::Cow;

use super::TopologyError;

/// A line and column in the text, both from 1 (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

/// A scalar value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Int(i64),
    Float(f64),
    /// With the character entities `&quot; &amp; &lt; &gt; &apos;` decoded.
    Str(Cow<'a, str>),
}

impl Value<'_> {
    /// The value as a number, if it is one.
    pub fn number(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(x) => Some(*x),
            Value::Str(_) => None,
        }
    }

    /// What the value is, for messages.
    pub fn describe(&self) -> String {
        match self {
            Value::Int(i) => format!("the integer {i}"),
            Value::Float(x) => format!("the number {x}"),
            Value::Str(s) => format!("the string {s:?}"),
        }
    }
}

/// What the reader saw next.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<'a> {
    /// `key value` with a scalar value.
    Pair {
        key: &'a str,
        value: Value<'a>,
        at: Pos,
    },
    /// `key [`: the pairs up to the matching `Close` belong to this list.
    Open { key: &'a str, at: Pos },
    /// `]`.
    Close { at: Pos },
}

/// Reads GML text event by event; `file` names the text in errors.
pub struct Reader<'a> {
    file: &'a str,
    text: &'a str,
    offset: usize,
    pos: Pos,
    /// Where each open list began, innermost last.
    open: Vec<Pos>,
}

impl<'a> Reader<'a> {
    pub fn new(file: &'a str, text: &'a str) -> Self {
        Reader {
            file,
            text,
            offset: 0,
            pos: Pos { line: 1, col: 1 },
            open: Vec::new(),
        }
    }

    /// An error at `at` in this reader's file.
    pub fn error(&self, at: Pos, msg: impl Into<String>) -> TopologyError {
        TopologyError::At {
            file: self.file.to_string(),
            line: at.line,
            col: at.col,
            msg: msg.into(),
        }
    }

    /// The next event, `None` at the end of the text (with every list closed).
    pub fn next_event(&mut self) -> Result<Option<Event<'a>>, TopologyError> {
        self.skip_blanks();
        let at = self.pos;
        let Some(c) = self.peek() else {
            if let Some(opened) = self.open.last() {
                return Err(self.error(
                    at,
                    format!(
                        "expected ']' to close the list opened at {}:{}, found the end of the file",
                        opened.line, opened.col
                    ),
                ));
            }
            return Ok(None);
        };
        if c == b']' {
            if self.open.pop().is_none() {
                return Err(self.error(at, "found ']' with no list open"));
            }
            self.bump();
            return Ok(Some(Event::Close { at }));
        }
        if !(c.is_ascii_alphabetic() || c == b'_') {
            return Err(self.error(
                at,
                format!(
                    "expected a key (a name such as node or id), found {}",
                    self.found()
                ),
            ));
        }
        let key = self.take_while(|b| b.is_ascii_alphanumeric() || b == b'_');
        self.skip_blanks();
        let vat = self.pos;
        match self.peek() {
            Some(b'[') => {
                self.bump();
                self.open.push(at);
                Ok(Some(Event::Open { key, at }))
            }
            Some(b'"') => Ok(Some(Event::Pair {
                key,
                value: Value::Str(self.string()?),
                at,
            })),
            Some(b) if b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.') => {
                let value = self.number(vat)?;
                Ok(Some(Event::Pair { key, value, at }))
            }
            _ => Err(self.error(
                vat,
                format!(
                    "expected a value for {key} (a number, a \"string\" or a [ list ]), found {}",
                    self.found()
                ),
            )),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.offset).copied()
    }

    /// Moves past one byte, keeping line and column (columns count characters, not bytes).
    fn bump(&mut self) {
        let Some(b) = self.peek() else { return };
        self.offset += 1;
        if b == b'\n' {
            self.pos.line = self.pos.line.saturating_add(1);
            self.pos.col = 1;
        } else if b & 0xC0 != 0x80 {
            self.pos.col = self.pos.col.saturating_add(1);
        }
    }

    fn take_while(&mut self, keep: impl Fn(u8) -> bool) -> &'a str {
        let start = self.offset;
        while self.peek().is_some_and(&keep) {
            self.bump();
        }
        // Only ASCII bytes are kept, so both ends are character boundaries.
        &self.text[start..self.offset]
    }

    fn skip_blanks(&mut self) {
        while let Some(b) = self.peek() {
            if b.is_ascii_whitespace() {
                self.bump();
            } else if b == b'#' {
                while self.peek().is_some_and(|b| b != b'\n') {
                    self.bump();
                }
            } else {
                break;
            }
        }
    }

    /// What is at the current position, for messages.
    fn found(&self) -> String {
        match self.text[self.offset..].chars().next() {
            None => "the end of the file".into(),
            Some(c) => format!("{c:?}"),
        }
    }

    fn string(&mut self) -> Result<Cow<'a, str>, TopologyError> {
        let at = self.pos;
        self.bump();
        let start = self.offset;
        while let Some(b) = self.peek() {
            if b == b'"' {
                let raw = &self.text[start..self.offset];
                self.bump();
                return Ok(decode_entities(raw));
            }
            self.bump();
        }
        Err(self.error(
            at,
            "expected a '\"' to end the string begun here, found the end of the file",
        ))
    }

    fn number(&mut self, at: Pos) -> Result<Value<'a>, TopologyError> {
        let token =
            self.take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.'));
        if let Ok(i) = token.parse::<i64>() {
            return Ok(Value::Int(i));
        }
        match token.parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(Value::Float(x)),
            _ => Err(self.error(
                at,
                format!("expected a number (such as 12 or 0.5), found {token:?}"),
            )),
        }
    }
}

/// GML strings escape with HTML's character entities; others are kept as written.
fn decode_entities(raw: &str) -> Cow<'_, str> {
    if !raw.contains('&') {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let entity = [
            ("&quot;", '"'),
            ("&amp;", '&'),
            ("&lt;", '<'),
            ("&gt;", '>'),
            ("&apos;", '\''),
        ]
        .into_iter()
        .find(|(name, _)| rest.starts_with(name));
        match entity {
            Some((name, c)) => {
                out.push(c);
                rest = &rest[name.len()..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(text: &str) -> Result<Vec<Event<'_>>, TopologyError> {
        let mut r = Reader::new("g.gml", text);
        let mut out = Vec::new();
        while let Some(e) = r.next_event()? {
            out.push(e);
        }
        Ok(out)
    }

    fn err(text: &str) -> String {
        events(text).unwrap_err().to_string()
    }

    #[test]
    fn nested_lists_scalars_and_comments() {
        let text = "# a graph\ngraph [\n  directed 0 # undirected\n  node [ id -3 w 2.5e1 label \"a &quot;b&quot; &amp; &x\" ]\n]\n";
        let ev = events(text).unwrap();
        let p = |line, col| Pos { line, col };
        assert_eq!(
            ev,
            vec![
                Event::Open {
                    key: "graph",
                    at: p(2, 1)
                },
                Event::Pair {
                    key: "directed",
                    value: Value::Int(0),
                    at: p(3, 3)
                },
                Event::Open {
                    key: "node",
                    at: p(4, 3)
                },
                Event::Pair {
                    key: "id",
                    value: Value::Int(-3),
                    at: p(4, 10)
                },
                Event::Pair {
                    key: "w",
                    value: Value::Float(25.0),
                    at: p(4, 16)
                },
                Event::Pair {
                    key: "label",
                    value: Value::Str("a \"b\" & &x".into()),
                    at: p(4, 24)
                },
                Event::Close { at: p(4, 57) },
                Event::Close { at: p(5, 1) },
            ]
        );
    }

    #[test]
    fn strings_may_span_lines_and_hold_brackets() {
        let ev = events("label \"x [\n] y\" id 1").unwrap();
        assert_eq!(
            ev[1],
            Event::Pair {
                key: "id",
                value: Value::Int(1),
                at: Pos { line: 2, col: 6 }
            }
        );
    }

    #[test]
    fn errors_say_line_column_and_what_was_expected() {
        assert_eq!(
            err("graph [\n  node [ id 1\n"),
            "g.gml:3:1: expected ']' to close the list opened at 2:3, found the end of the file"
        );
        assert_eq!(
            err("graph [ ] ]"),
            "g.gml:1:11: found ']' with no list open"
        );
        assert_eq!(
            err("graph [ id ]"),
            "g.gml:1:12: expected a value for id (a number, a \"string\" or a [ list ]), found ']'"
        );
        assert_eq!(
            err("graph [\n id 1x ]"),
            "g.gml:2:5: expected a number (such as 12 or 0.5), found \"1x\""
        );
        assert_eq!(
            err("label \"open"),
            "g.gml:1:7: expected a '\"' to end the string begun here, found the end of the file"
        );
        assert_eq!(
            err("é 1"),
            "g.gml:1:1: expected a key (a name such as node or id), found 'é'"
        );
    }

    #[test]
    fn columns_count_characters() {
        let ev = events("label \"ééé\" id 2").unwrap();
        assert_eq!(
            ev[1],
            Event::Pair {
                key: "id",
                value: Value::Int(2),
                at: Pos { line: 1, col: 13 }
            }
        );
    }

    /// Fuzz-style: random bytes, and every prefix of a valid graph, never panic.
    #[test]
    fn never_panics_on_any_input() {
        let valid = "graph [ directed 1 node [ id 0 label \"é\" ] edge [ source 0 target 0 latency \"1 ms\" packet_loss 0.5 ] ] # end";
        for end in 0..=valid.len() {
            if valid.is_char_boundary(end) {
                let _ = events(&valid[..end]);
            }
        }
        let alphabet: &[u8] = b"[]\"#-+.e0123456789 \nabc_&;\xc3\xa9";
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..2000 {
            let len = (state % 64) as usize;
            let mut bytes = Vec::with_capacity(len);
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                bytes.push(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            let text = String::from_utf8_lossy(&bytes);
            let _ = events(&text);
        }
    }
}
