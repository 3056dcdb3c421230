//! A latency matrix as a CSV file, read into an undirected `Graph`:
//!
//! ```text
//! from,paris,tokyo,nyc
//! paris,1,120,40
//! tokyo,120,2ms,90
//! nyc,40,90,
//! ```
//!
//! The header names the vertices (its first cell is ignored); then one row per vertex, in any
//! order, starting with its name. Each cell is the one-way latency between the row's vertex
//! and the column's: a bare number is milliseconds, or a duration with its unit ("20ms",
//! "1.5 ms"). An empty cell is no edge (paths then go through other vertices); the diagonal is
//! the latency within a vertex (empty or 0: none). Where the two cells of a pair differ, the
//! pair gets the larger: no pair is faster than it was measured in either direction. Blank
//! lines and lines starting with `#` are skipped.

use std::collections::HashMap;

use super::graph::{Graph, Link, Vertex};
use super::{TopologyError, spelling};
use crate::units::{self, Nanos};

/// Reads a latency matrix; `file` names it in errors.
pub fn read(file: &str, text: &str) -> Result<Graph, TopologyError> {
    let at = |line: usize, col: usize, msg: String| TopologyError::At {
        file: file.to_string(),
        line: u32::try_from(line).unwrap_or(u32::MAX),
        col: u32::try_from(col).unwrap_or(u32::MAX),
        msg,
    };
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    let Some((hline, header)) = lines.next() else {
        return Err(at(
            1,
            1,
            "expected a header row of vertex names, found an empty file".into(),
        ));
    };
    let mut graph = Graph::new(false);
    for (col, name) in cells(header).skip(1) {
        if name.is_empty() {
            return Err(at(
                hline,
                col,
                "expected a vertex name, found an empty cell".into(),
            ));
        }
        graph
            .add_vertex(Vertex::named(name))
            .map_err(|e| at(hline, col, e.to_string()))?;
    }
    let n = graph.vertices().len();
    if n == 0 {
        return Err(at(
            hline,
            1,
            "expected vertex names after the first cell of the header".into(),
        ));
    }
    // matrix[row * n + column], in ns.
    let mut matrix: Vec<Option<Nanos>> = vec![None; n * n];
    let mut rows: HashMap<u32, usize> = HashMap::new();
    for (line, text) in lines {
        let mut row = cells(text);
        let Some((col, name)) = row.next() else {
            continue;
        };
        let r = graph.find(name).map_err(|e| at(line, col, e.to_string()))?;
        if let Some(first) = rows.insert(r, line) {
            return Err(at(
                line,
                col,
                format!("a second row for {name:?} (the first is on line {first})"),
            ));
        }
        let mut count = 0;
        for (c, (col, cell)) in row.enumerate() {
            if c >= n {
                return Err(at(
                    line,
                    col,
                    format!("expected {n} values after the name, found more"),
                ));
            }
            count += 1;
            if cell.is_empty() {
                continue;
            }
            let value = latency(cell).map_err(|e| at(line, col, e.to_string()))?;
            matrix[r as usize * n + c] = Some(value);
        }
        if count < n {
            return Err(at(
                line,
                text.len() + 1,
                format!("expected {n} values after the name, found {count}"),
            ));
        }
    }
    if let Some(v) = (0..n as u32).find(|v| !rows.contains_key(v)) {
        return Err(at(
            hline,
            1,
            format!(
                "no row for {:?}, which the header names",
                graph.vertex(v).name
            ),
        ));
    }
    for a in 0..n {
        for b in a..n {
            let latency = match (matrix[a * n + b], matrix[b * n + a]) {
                (Some(x), Some(y)) => x.max(y),
                (Some(x), None) | (None, Some(x)) => x,
                (None, None) => continue,
            };
            if a == b && latency == 0 {
                continue;
            }
            let link = Link {
                latency,
                ..Link::ZERO
            };
            graph.add_edge(a as u32, b as u32, link);
        }
    }
    Ok(graph)
}

/// The cells of a line with the column each starts at (trimmed, quotes removed).
fn cells(line: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut col = 1;
    line.split(',').map(move |cell| {
        let start = col;
        col += cell.chars().count() + 1;
        let t = cell.trim();
        let t = t
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .unwrap_or(t)
            .trim();
        (start, t)
    })
}

/// A cell: milliseconds as a bare number, or a duration with a unit.
fn latency(cell: &str) -> Result<Nanos, units::UnitError> {
    match cell.parse::<f64>() {
        Ok(ms) => units::duration_from_secs(ms / 1e3),
        Err(_) => spelling::duration(cell),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Routing;
    use crate::units::MS;

    #[test]
    fn a_matrix_with_units_gaps_and_asymmetry() {
        let text = "# one-way latencies\nfrom,paris,tokyo,nyc\n\npa,x\n";
        assert!(read("m.csv", text).is_err());
        let text = "from,paris,tokyo,nyc\nnyc,40,90,\ntokyo,120,2ms,\nparis,1,110,\"40\"\n";
        let g = read("m.csv", text).unwrap();
        assert!(g.is_complete(), "one cell of each pair is enough");
        let p = |a, b| g.path(a, b, Routing::Shortest).unwrap().latency;
        assert_eq!(p(0, 1), 120 * MS, "the larger of 110 and 120");
        assert_eq!(p(1, 2), 90 * MS);
        assert_eq!(p(0, 0), MS);
        assert_eq!(p(1, 1), 2 * MS);
        assert_eq!(p(2, 2), 0);
        assert_eq!(p(0, 2), 40 * MS);
    }

    #[test]
    fn gaps_are_filled_by_shortest_paths() {
        let text = "x,a,b,c\na,0,10,\nb,10,0,5.5\nc,,5.5,0\n";
        let g = read("m.csv", text).unwrap();
        assert!(!g.is_complete());
        assert_eq!(g.path(0, 2, Routing::Shortest).unwrap().latency, 15_500_000);
    }

    /// Fuzz-style: every prefix of a matrix, and random text, never panic.
    #[test]
    fn never_panics_on_any_input() {
        let valid = "from,a,b,\"c\"\na,0,1ms,\nb,1,,2\n# note\nc,,2,0\n";
        for end in 0..=valid.len() {
            let _ = read("m.csv", &valid[..end]);
        }
        let alphabet: &[u8] = b",\n\"#abc012.ms -";
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            let mut text = String::new();
            for _ in 0..(state % 48) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push(alphabet[(state % alphabet.len() as u64) as usize] as char);
            }
            let _ = read("m.csv", &text);
        }
    }

    #[test]
    fn errors_point_at_the_cell() {
        let err = |t: &str| read("m.csv", t).unwrap_err().to_string();
        assert_eq!(
            err("x,a,b\na,0,fast\nb,1,0\n"),
            "m.csv:2:5: \"fast\" is not a duration (try \"30ms\", \"2s\" or a number of seconds)"
        );
        assert_eq!(
            err("x,a,b\na,0,1\nc,1,0\n"),
            "m.csv:3:1: no vertex named \"c\" (the graph has 2 vertices: \"a\", \"b\")"
        );
        assert_eq!(
            err("x,a,b\na,0\n"),
            "m.csv:2:4: expected 2 values after the name, found 1"
        );
        assert_eq!(
            err("x,a,b\na,0,1,2\n"),
            "m.csv:2:7: expected 2 values after the name, found more"
        );
        assert_eq!(
            err("x,a,b\na,0,1\n"),
            "m.csv:1:1: no row for \"b\", which the header names"
        );
        assert_eq!(
            err("x,a,b\na,0,1\na,0,1\n"),
            "m.csv:3:1: a second row for \"a\" (the first is on line 2)"
        );
        assert_eq!(err("x,a,a\n"), "m.csv:1:5: two vertices are named \"a\"");
        assert_eq!(
            err(""),
            "m.csv:1:1: expected a header row of vertex names, found an empty file"
        );
        assert_eq!(err("x,a\na,-1\n").split(": ").next(), Some("m.csv:2:3"));
    }
}
