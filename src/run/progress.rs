//! The run on the terminal while it goes: a one-line status bar above which the timeline
//! scrolls (stdout is a terminal), or a plain status line every few seconds of experiment time
//! among the timeline (a pipe or a file). The text comes from `status_line`, free of I/O; only
//! `Progress` and `LogLines` touch the terminal.

use std::io::{self, Write};
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::controller::{Pulse, Watch};
use crate::units::{Nanos, SEC, secs};

/// Plain status lines come once per 10 s of experiment time.
pub const PLAIN_EVERY: Nanos = 10 * SEC;

/// `[  30.0 s] 120 nodes (3 failed), 118 procs, 1.2 GB moved (38.0 Mbit/s), lateness p99
/// 0.05 ms max 0.20 ms`. Bytes moved are those delivered to nodes; the rate is over the time
/// since `prev` (since the start without one).
pub fn status_line(p: &Pulse, prev: Option<&Pulse>) -> String {
    let (t0, b0) = prev.map_or((0, 0), |q| (q.now, q.totals.recv_bytes));
    let moved = p.totals.recv_bytes;
    let rate = match p.now.saturating_sub(t0) {
        0 => 0.0,
        dt => moved.saturating_sub(b0) as f64 * 8.0 / secs(dt),
    };
    format!(
        "[{:>6.1} s] {} nodes ({} failed), {} procs, {} moved ({}), lateness p99 {} max {}",
        secs(p.now),
        p.nodes,
        p.failed,
        p.procs_running,
        bytes(moved),
        bit_rate(rate),
        millis(p.late_p99_ns),
        millis(p.late_max_ns),
    )
}

/// A byte count with a decimal unit: `512 B`, `1.5 kB`, `340 kB`, `1.2 GB`.
pub fn bytes(n: u64) -> String {
    scaled(n as f64, "B", &["kB", "MB", "GB", "TB", "PB"])
}

/// A rate in bits per second: `0 bit/s`, `950 bit/s`, `38.0 Mbit/s`.
pub fn bit_rate(bits_per_sec: f64) -> String {
    scaled(
        bits_per_sec,
        "bit/s",
        &["kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"],
    )
}

/// Nanoseconds as milliseconds with two decimals: `0.05 ms`.
pub fn millis(ns: u64) -> String {
    format!("{:.2} ms", ns as f64 / 1e6)
}

/// `v` in the largest unit of 1000s it reaches: one decimal below 100 of it, none above.
fn scaled(v: f64, base: &str, units: &[&str]) -> String {
    if !v.is_finite() || v < 1000.0 {
        return format!("{:.0} {base}", v.max(0.0));
    }
    let mut v = v;
    let mut unit = base;
    for u in units {
        if v < 1000.0 {
            break;
        }
        v /= 1000.0;
        unit = u;
    }
    if v < 99.95 {
        format!("{v:.1} {unit}")
    } else {
        format!("{v:.0} {unit}")
    }
}

/// Picks the pulses that begin a new period of `every` (10 s, 20 s, ...) and words them,
/// with the rate over the period.
#[derive(Debug)]
pub struct Periodic {
    every: Nanos,
    last: Option<Pulse>,
}

impl Periodic {
    pub fn new(every: Nanos) -> Self {
        Periodic {
            every: every.max(1),
            last: None,
        }
    }

    /// The status line when `p` is the first pulse of a new period.
    pub fn offer(&mut self, p: &Pulse) -> Option<String> {
        let since = self.last.map_or(0, |q| q.now / self.every);
        if p.now / self.every <= since {
            return None;
        }
        let line = status_line(p, self.last.as_ref());
        self.last = Some(*p);
        Some(line)
    }
}

/// The bar on the terminal, if one is shown, so that log lines (stderr, the same terminal)
/// can take it away while they are written.
static SHOWN: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Standard error for log lines: a bar on the terminal is cleared while a line is written,
/// then drawn again below it, instead of being cut by it.
pub struct LogLines;

impl Write for LogLines {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let shown = SHOWN.lock().ok().and_then(|bar| bar.clone());
        match shown {
            Some(bar) => bar.suspend(|| io::stderr().write(buf)),
            None => io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// The live display of one real run on stdout.
pub enum Progress {
    /// A terminal: the bar redrawn with every pulse, the timeline printed above it.
    Bar(ProgressBar),
    /// A pipe or a file: a status line every `PLAIN_EVERY` among the timeline.
    Plain,
}

impl Progress {
    /// A bar when stdout is a terminal, plain lines otherwise.
    pub fn on_stdout() -> Progress {
        use std::io::IsTerminal;
        if !io::stdout().is_terminal() {
            return Progress::Plain;
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout());
        // Cut to the terminal's width: a wrapped bar would leave copies of itself behind.
        if let Ok(style) = ProgressStyle::with_template("{spinner} {wide_msg}") {
            bar.set_style(style);
        }
        bar.set_message("starting the lab");
        // The spinner turns while the script is busy between pulses.
        bar.enable_steady_tick(std::time::Duration::from_millis(250));
        if let Ok(mut shown) = SHOWN.lock() {
            *shown = Some(bar.clone());
        }
        Progress::Bar(bar)
    }

    /// Where the timeline goes: through the bar, which stays at the bottom, or stdout.
    pub fn timeline(&self) -> Box<dyn Write + Send> {
        match self {
            Progress::Bar(bar) => Box::new(AboveBar {
                bar: bar.clone(),
                pending: Vec::new(),
            }),
            Progress::Plain => Box::new(io::stdout()),
        }
    }

    /// What the lab calls with every pulse.
    pub fn watch(&self) -> Watch {
        match self {
            Progress::Bar(bar) => {
                let bar = bar.clone();
                let mut last: Option<Pulse> = None;
                Box::new(move |p| {
                    bar.set_message(status_line(p, last.as_ref()));
                    last = Some(*p);
                })
            }
            Progress::Plain => {
                let mut lines = Periodic::new(PLAIN_EVERY);
                Box::new(move |p| {
                    if let Some(line) = lines.offer(p) {
                        // A closed stdout must not stop the run.
                        let _ = writeln!(io::stdout(), "{line}");
                    }
                })
            }
        }
    }

    /// Removes the bar, before the end summary or an error is printed.
    pub fn finish(&self) {
        if let Progress::Bar(bar) = self {
            if let Ok(mut shown) = SHOWN.lock() {
                *shown = None;
            }
            bar.finish_and_clear();
        }
    }
}

/// The timeline written above the bar, a whole line at a time.
struct AboveBar {
    bar: ProgressBar,
    pending: Vec<u8>,
}

impl Write for AboveBar {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        for line in complete_lines(&mut self.pending) {
            self.bar.println(line);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for AboveBar {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            self.bar.println(String::from_utf8_lossy(&self.pending));
        }
    }
}

/// Takes the complete lines out of `pending` (without their newline), leaving the rest.
fn complete_lines(pending: &mut Vec<u8>) -> Vec<String> {
    let Some(end) = pending.iter().rposition(|&b| b == b'\n') else {
        return Vec::new();
    };
    let rest = pending.split_off(end + 1);
    let done = std::mem::replace(pending, rest);
    done[..end]
        .split(|&b| b == b'\n')
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::NodeCounters;

    fn pulse(now: Nanos, recv_bytes: u64) -> Pulse {
        Pulse {
            now,
            nodes: 120,
            failed: 3,
            procs_running: 118,
            totals: NodeCounters {
                recv_bytes,
                ..NodeCounters::default()
            },
            late_p99_ns: 50_000,
            late_max_ns: 1_234_567,
        }
    }

    #[test]
    fn status_line_words_a_pulse() {
        let prev = pulse(20 * SEC, 1_152_500_000);
        let now = pulse(30 * SEC, 1_200_000_000);
        assert_eq!(
            status_line(&now, Some(&prev)),
            "[  30.0 s] 120 nodes (3 failed), 118 procs, 1.2 GB moved (38.0 Mbit/s), \
             lateness p99 0.05 ms max 1.23 ms"
        );
    }

    #[test]
    fn the_first_rate_is_since_the_start() {
        let p = pulse(SEC, 125_000);
        assert!(status_line(&p, None).contains("125 kB moved (1.0 Mbit/s)"));
        let zero = pulse(0, 0);
        assert!(status_line(&zero, None).contains("0 B moved (0 bit/s)"));
        // A pulse no later than the previous one has no rate, not a division by zero.
        assert!(status_line(&p, Some(&p)).contains("(0 bit/s)"));
    }

    #[test]
    fn byte_and_rate_units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1000), "1.0 kB");
        assert_eq!(bytes(1500), "1.5 kB");
        assert_eq!(bytes(340_000), "340 kB");
        assert_eq!(bytes(99_960), "100 kB");
        assert_eq!(bytes(1_234_000_000), "1.2 GB");
        assert_eq!(bytes(u64::MAX), "18447 PB");
        assert_eq!(bit_rate(950.0), "950 bit/s");
        assert_eq!(bit_rate(38e6), "38.0 Mbit/s");
        assert_eq!(bit_rate(2.5e9), "2.5 Gbit/s");
        assert_eq!(bit_rate(f64::NAN), "0 bit/s");
        assert_eq!(millis(0), "0.00 ms");
        assert_eq!(millis(120_000_000), "120.00 ms");
    }

    #[test]
    fn periodic_lines_begin_each_period() {
        let mut lines = Periodic::new(10 * SEC);
        let at = |s: f64| pulse((s * 1e9) as Nanos, (s * 1000.0) as u64);
        assert_eq!(lines.offer(&at(1.0)), None);
        assert_eq!(lines.offer(&at(9.999)), None);
        let first = lines.offer(&at(10.002)).expect("a line at 10 s");
        assert!(first.starts_with("[  10.0 s]"), "{first}");
        assert_eq!(lines.offer(&at(11.0)), None);
        assert_eq!(lines.offer(&at(19.9)), None);
        // The rate is over the period: 10 kB in 10 s.
        let second = lines.offer(&at(20.002)).expect("a line at 20 s");
        assert!(second.contains("(8.0 kbit/s)"), "{second}");
        // A late pulse that skips a period still gets one line.
        assert!(lines.offer(&at(41.0)).is_some());
        assert_eq!(lines.offer(&at(42.0)), None);
    }

    #[test]
    fn the_timeline_goes_above_the_bar_by_whole_lines() {
        let mut pending = b"one\ntw".to_vec();
        assert_eq!(complete_lines(&mut pending), ["one"]);
        assert_eq!(pending, b"tw");
        pending.extend_from_slice(b"o\nthree\n\nfour");
        assert_eq!(complete_lines(&mut pending), ["two", "three", ""]);
        assert_eq!(pending, b"four");
        assert!(complete_lines(&mut pending).is_empty());
        assert_eq!(pending, b"four");
    }
}
