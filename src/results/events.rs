//! The event log: one JSON object per action or process event in `events.jsonl`, and the
//! same events as a readable timeline on the terminal. Events carry experiment time only, so a
//! script run twice with one seed writes byte-identical logs.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use serde_json::{Map, Value};

use crate::units::{self, Nanos};

/// One line of `events.jsonl`: `t`, `event`, then the fields that matter, in insertion order.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    fields: Map<String, Value>,
}

impl Event {
    pub fn new(t: Nanos, event: &str) -> Self {
        let mut fields = Map::new();
        fields.insert("t".into(), Value::from(units::secs(t)));
        fields.insert("event".into(), Value::from(event));
        Event { fields }
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(key.to_string(), value.into());
        self
    }

    /// Adds `key` only when there is a value, so events list just what was set.
    pub fn with_opt<V: Into<Value>>(self, key: &str, value: Option<V>) -> Self {
        match value {
            Some(v) => self.with(key, v),
            None => self,
        }
    }

    pub fn kind(&self) -> &str {
        self.fields["event"].as_str().unwrap_or_default()
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.get(key)
    }

    pub fn to_json(&self) -> String {
        Value::Object(self.fields.clone()).to_string()
    }

    /// `  12.500s  shape        node 3  10.0.0.4  up=128kbit latency=30ms`
    pub fn timeline_line(&self) -> String {
        let t = self.fields["t"].as_f64().unwrap_or_default();
        let mut line = format!("{t:>10.3}s  {:<11}", self.kind());
        let mut rest = Vec::new();
        for (key, value) in &self.fields {
            match key.as_str() {
                "t" | "event" => {}
                "node" => line.push_str(&format!(" node {value:<5}")),
                "ip" => line.push_str(&format!(" {:<15}", value.as_str().unwrap_or_default())),
                _ => rest.push(format!("{key}={}", human(key, value))),
            }
        }
        if !rest.is_empty() {
            line.push_str("  ");
            line.push_str(&rest.join(" "));
        }
        line.trim_end().to_string()
    }
}

/// Renders rates and durations with units, everything else as JSON (strings unquoted).
fn human(key: &str, value: &Value) -> String {
    match (key, value) {
        ("up" | "down", Value::Number(n)) => {
            units::Rate(n.as_u64().unwrap_or_default()).to_string()
        }
        ("latency" | "jitter" | "grace", Value::Number(n)) => {
            units::Duration((n.as_f64().unwrap_or_default() * 1e9).round() as Nanos).to_string()
        }
        ("queue" | "snaplen" | "max_size", Value::Number(n)) => format!("{n}B"),
        (_, Value::String(s)) if !s.contains(' ') && !s.is_empty() => s.clone(),
        _ => value.to_string(),
    }
}

/// Writes events to `events.jsonl` and, optionally, a timeline to a terminal or buffer.
pub struct EventLog {
    file: Box<dyn Write + Send>,
    timeline: Option<Box<dyn Write + Send>>,
    count: u64,
    /// Real runs write each event through at once, so a crash loses none of them.
    write_through: bool,
}

impl EventLog {
    pub fn create(path: &Path, timeline: Option<Box<dyn Write + Send>>) -> io::Result<Self> {
        Ok(EventLog {
            file: Box::new(BufWriter::new(File::create(path)?)),
            timeline,
            count: 0,
            write_through: false,
        })
    }

    /// Flushes after every event from now on (real mode).
    pub fn write_through(mut self) -> Self {
        self.write_through = true;
        self
    }

    /// A log that keeps nothing: `p2plab check` runs the script without a results folder.
    pub fn discard() -> Self {
        EventLog {
            file: Box::new(io::sink()),
            timeline: None,
            count: 0,
            write_through: false,
        }
    }

    pub fn record(&mut self, event: &Event) -> io::Result<()> {
        writeln!(self.file, "{}", event.to_json())?;
        if let Some(out) = self.timeline.as_mut() {
            writeln!(out, "{}", event.timeline_line())?;
        }
        self.count += 1;
        if self.write_through {
            self.flush()?;
        }
        Ok(())
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.file.flush()?;
        if let Some(out) = self.timeline.as_mut() {
            out.flush()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keeps_order_and_units() {
        let e = Event::new(1_500_000_000, "shape")
            .with("node", 3)
            .with("ip", "10.0.0.4")
            .with("up", 128_000u64)
            .with("latency", 0.03);
        assert_eq!(
            e.to_json(),
            r#"{"t":1.5,"event":"shape","node":3,"ip":"10.0.0.4","up":128000,"latency":0.03}"#
        );
        let line = e.timeline_line();
        assert!(line.contains("shape"), "{line}");
        assert!(line.ends_with("up=128kbit latency=30ms"), "{line}");
    }
}
