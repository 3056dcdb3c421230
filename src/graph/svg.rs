//! A `Picture` as an SVG document, written by hand: boxes, lines and text, with the text
//! left as text in the font family the report's plots name (DejaVu Sans, then any sans-serif),
//! so the file needs nothing beside it. Text widths come from DejaVu Sans's advance widths,
//! so boxes fit their words. Numbers are written to a tenth of a pixel: the same picture
//! gives the same bytes.

use std::fmt::Write;

use super::layout::{self, Size};
use super::picture::{LinkLine, Picture};
use crate::units::Nanos;

/// At most this many links between groups are labelled with their words; more are coloured
/// by latency, with a legend (a topology of a few dozen groups has hundreds of pairs).
pub const LABELLED_LINKS: usize = 8;

const FONT: &str = "DejaVu Sans, Verdana, sans-serif";
const NAME_PX: f64 = 15.0;
const LINE_PX: f64 = 12.0;
const LINE_HEIGHT: f64 = 16.0;
const PAD: f64 = 10.0;
const MARGIN: f64 = 24.0;
/// Below the title and subtitle.
const TOP: f64 = 74.0;

/// Latency classes of unlabelled links, from the shortest to the longest.
const PALETTE: [&str; 5] = ["#1a9850", "#91cf60", "#e6c229", "#fc8d59", "#d73027"];

/// DejaVu Sans's advance widths of the printable ASCII characters (space to `~`), in 1/2048
/// of the font size, read from `src/report/font/DejaVuSans.ttf`'s `hmtx` table.
const ADVANCE: [u16; 95] = [
    651, 821, 942, 1716, 1303, 1946, 1597, 563, 799, 799, 1024, 1716, 651, 739, 651, 690, 1303,
    1303, 1303, 1303, 1303, 1303, 1303, 1303, 1303, 1303, 690, 690, 1716, 1716, 1716, 1087, 2048,
    1401, 1405, 1430, 1577, 1294, 1178, 1587, 1540, 604, 604, 1343, 1141, 1767, 1532, 1612, 1235,
    1612, 1423, 1300, 1251, 1499, 1401, 2025, 1403, 1251, 1403, 799, 690, 799, 1716, 1024, 1024,
    1255, 1300, 1126, 1300, 1260, 721, 1300, 1298, 569, 569, 1186, 569, 1995, 1298, 1253, 1300,
    1300, 842, 1067, 803, 1298, 1212, 1675, 1212, 1212, 1075, 1303, 690, 1303, 1716,
];

/// How wide `text` is at `px` pixels in DejaVu Sans; characters beyond ASCII (`±`, `–`)
/// count as wide as a plus sign, about their width.
pub fn text_width(text: &str, px: f64) -> f64 {
    let units: u32 = text
        .chars()
        .map(|c| match (c as u32).checked_sub(32) {
            Some(i) if (i as usize) < ADVANCE.len() => ADVANCE[i as usize] as u32,
            _ => 1716,
        })
        .sum();
    units as f64 * px / 2048.0
}

/// The names are bold: a tenth wider.
fn name_width(name: &str) -> f64 {
    text_width(name, NAME_PX) * 1.1
}

fn box_size(name: &str, lines: &[String]) -> Size {
    let widest = lines
        .iter()
        .map(|l| text_width(l, LINE_PX))
        .fold(name_width(name), f64::max);
    (
        (widest + 2.0 * PAD).ceil(),
        2.0 * PAD + NAME_PX + 4.0 + LINE_HEIGHT * lines.len() as f64,
    )
}

pub fn render(picture: &Picture) -> String {
    let sizes: Vec<Size> = picture
        .groups
        .iter()
        .map(|g| box_size(&g.name, &g.lines))
        .collect();
    let labelled = picture.links.len() <= LABELLED_LINKS;
    let gap = if labelled {
        // A link's words sit between its two boxes.
        picture
            .links
            .iter()
            .map(|l| text_width(&l.label, LINE_PX) + 2.0 * PAD)
            .fold(40.0, f64::max)
    } else {
        16.0
    };
    let place = if picture.links.is_empty() {
        // Nothing to join: the boxes read best side by side, a few to a row.
        let per_row = (sizes.len() as f64).sqrt().ceil().max(3.0) as usize;
        layout::rows(&sizes, per_row, TOP, MARGIN, 24.0)
    } else {
        layout::circle(&sizes, TOP, MARGIN, gap)
    };
    let legend = if labelled {
        Vec::new()
    } else {
        legend(&picture.links)
    };
    let notes = notes(picture);
    let legend_top = place.height + 24.0;
    let legend_lines = legend.len() + notes.len();
    let height = legend_top + legend_lines as f64 * LINE_HEIGHT + MARGIN;
    let width = [
        place.width,
        text_width(&picture.title, 18.0) * 1.1 + 2.0 * MARGIN,
        text_width(&picture.subtitle, LINE_PX) + 2.0 * MARGIN,
    ]
    .into_iter()
    .chain(
        legend
            .iter()
            .map(|(_, words)| text_width(words, LINE_PX) + 40.0 + 2.0 * MARGIN),
    )
    .chain(notes.iter().map(|n| text_width(n, LINE_PX) + 2.0 * MARGIN))
    .fold(0.0, f64::max)
    .ceil();
    // A title wider than the boxes: the boxes move to the middle.
    let shift = ((width - place.width) / 2.0).floor();
    let centres: Vec<(f64, f64)> = place.centres.iter().map(|&(x, y)| (x + shift, y)).collect();

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="{FONT}">"#,
        w = n(width),
        h = n(height),
    );
    let _ = writeln!(
        svg,
        r##"<rect width="100%" height="100%" fill="#ffffff"/>"##
    );
    text(
        &mut svg,
        MARGIN,
        30.0,
        18.0,
        "bold",
        "#000000",
        &picture.title,
    );
    text(
        &mut svg,
        MARGIN,
        50.0,
        LINE_PX,
        "normal",
        "#444444",
        &picture.subtitle,
    );
    let classes = Classes::of(&picture.links);
    for (i, link) in picture.links.iter().enumerate() {
        let (colour, width) = match labelled {
            true => ("#555555", 2.0),
            false => (PALETTE[classes.class(link.latency)], 1.5),
        };
        line(
            &mut svg,
            centres[link.a],
            centres[link.b],
            colour,
            width,
            link,
            picture,
        );
        if labelled {
            let a = exit(centres[link.a], sizes[link.a], centres[link.b]);
            let b = exit(centres[link.b], sizes[link.b], centres[link.a]);
            let at = label_point(a, b, link, picture.groups.len(), i);
            label(&mut svg, at, &link.label);
        }
    }
    for ((group, &(x, y)), &(w, h)) in picture.groups.iter().zip(&centres).zip(&sizes) {
        let (left, upper) = (x - w / 2.0, y - h / 2.0);
        let _ = writeln!(svg, "<g>");
        let _ = writeln!(svg, "<title>{}</title>", escape(&group.name));
        let _ = writeln!(
            svg,
            r##"<rect x="{}" y="{}" width="{}" height="{}" rx="6" fill="#eef3fb" stroke="#3b6db3" stroke-width="1.5"/>"##,
            n(left),
            n(upper),
            n(w),
            n(h)
        );
        let name_y = upper + PAD + NAME_PX - 2.0;
        text(
            &mut svg,
            left + PAD,
            name_y,
            NAME_PX,
            "bold",
            "#000000",
            &group.name,
        );
        for (k, words) in group.lines.iter().enumerate() {
            let y = name_y + 4.0 + LINE_HEIGHT * (k + 1) as f64;
            text(&mut svg, left + PAD, y, LINE_PX, "normal", "#222222", words);
        }
        let _ = writeln!(svg, "</g>");
    }
    let mut y = legend_top;
    for (colour, words) in &legend {
        let _ = writeln!(
            svg,
            r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{colour}" stroke-width="3"/>"#,
            n(MARGIN),
            n(y - 4.0),
            n(MARGIN + 30.0),
            n(y - 4.0)
        );
        text(
            &mut svg,
            MARGIN + 40.0,
            y,
            LINE_PX,
            "normal",
            "#222222",
            words,
        );
        y += LINE_HEIGHT;
    }
    for note in &notes {
        text(&mut svg, MARGIN, y, LINE_PX, "normal", "#444444", note);
        y += LINE_HEIGHT;
    }
    svg.push_str("</svg>\n");
    svg
}

/// What the picture needs said in words below it.
fn notes(picture: &Picture) -> Vec<String> {
    let mut notes = Vec::new();
    if picture.links.is_empty() && picture.groups.len() > 1 {
        notes.push(
            "no group links: between groups, packets take only their nodes' access-link latencies"
                .to_string(),
        );
    }
    if picture.links.iter().any(|l| l.lossy) {
        notes.push("dashed: a group link with loss".to_string());
    }
    if !picture.links.is_empty() && picture.links.len() > LABELLED_LINKS {
        notes.push(format!(
            "{} group links, coloured by one-way latency (hover over a line for its values)",
            picture.links.len()
        ));
    }
    notes
}

/// Links of more than `LABELLED_LINKS` are coloured by latency: classes of one round width
/// (1, 2, 2.5 or 5 times a power of ten), at most five, from a multiple of it below the
/// shortest to the longest.
struct Classes {
    start: Nanos,
    step: Nanos,
    count: usize,
}

impl Classes {
    fn of(links: &[LinkLine]) -> Classes {
        let min = links.iter().map(|l| l.latency).min().unwrap_or(0);
        let max = links.iter().map(|l| l.latency).max().unwrap_or(0);
        // A quarter of the range, rounded up, covers it in four classes or five (when the
        // start rounds down by almost a class).
        let step = round_up((max - min).div_ceil(4).max(1));
        let start = min / step * step;
        Classes {
            start,
            step,
            count: ((max - start) / step + 1) as usize,
        }
    }

    fn class(&self, latency: Nanos) -> usize {
        (((latency.max(self.start) - self.start) / self.step) as usize).min(self.count - 1)
    }

    /// The latencies of class `k`: `[from, to)`.
    fn bounds(&self, k: usize) -> (Nanos, Nanos) {
        let from = self.start + self.step * k as Nanos;
        (from, from + self.step)
    }
}

/// The smallest of 1, 2, 2.5 and 5 times a power of ten that is at least `v`.
fn round_up(v: Nanos) -> Nanos {
    let mut power: Nanos = 1;
    loop {
        for m in [10, 20, 25, 50] {
            if power * m / 10 >= v {
                return power * m / 10;
            }
        }
        power *= 10;
    }
}

/// One legend row per latency class some link is in.
fn legend(links: &[LinkLine]) -> Vec<(&'static str, String)> {
    let classes = Classes::of(links);
    (0..classes.count)
        .filter(|&k| links.iter().any(|l| classes.class(l.latency) == k))
        .map(|k| {
            let (from, to) = classes.bounds(k);
            let words = format!(
                "group link {} to {}",
                super::labels::duration(from),
                super::labels::duration(to)
            );
            (PALETTE[k], words)
        })
        .collect()
}

/// Where the line from the centre `from` of a box of `size` towards `to` leaves the box.
fn exit(from: (f64, f64), size: Size, to: (f64, f64)) -> (f64, f64) {
    let (dx, dy) = (to.0 - from.0, to.1 - from.1);
    let scale = [(size.0 / 2.0, dx), (size.1 / 2.0, dy)]
        .into_iter()
        .filter(|&(_, d)| d != 0.0)
        .map(|(half, d)| half / d.abs())
        .fold(1.0, f64::min);
    (from.0 + dx * scale, from.1 + dy * scale)
}

/// Where a link's words go, between the two points where it leaves its boxes: halfway for
/// neighbours on the circle; for links across it (whose
/// middles may meet, as the diagonals of four groups do) a third or two thirds of the way.
fn label_point(
    a: (f64, f64),
    b: (f64, f64),
    link: &LinkLine,
    groups: usize,
    index: usize,
) -> (f64, f64) {
    let apart = link.b - link.a;
    let t = if apart == 1 || apart + 1 == groups {
        0.5
    } else if index.is_multiple_of(2) {
        0.35
    } else {
        0.65
    };
    (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t)
}

fn line(
    svg: &mut String,
    a: (f64, f64),
    b: (f64, f64),
    colour: &str,
    width: f64,
    link: &LinkLine,
    picture: &Picture,
) {
    let dash = if link.lossy {
        r#" stroke-dasharray="6 4""#
    } else {
        ""
    };
    let _ = writeln!(
        svg,
        r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{colour}" stroke-width="{}"{dash}><title>{} – {}: {}</title></line>"#,
        n(a.0),
        n(a.1),
        n(b.0),
        n(b.1),
        n(width),
        escape(&picture.groups[link.a].name),
        escape(&picture.groups[link.b].name),
        escape(&link.label)
    );
}

/// A link's words on a white patch, centred on `at`.
fn label(svg: &mut String, at: (f64, f64), words: &str) {
    let w = text_width(words, LINE_PX) + 8.0;
    let _ = writeln!(
        svg,
        r##"<rect x="{}" y="{}" width="{}" height="18" rx="3" fill="#ffffff" stroke="#999999" stroke-width="0.5"/>"##,
        n(at.0 - w / 2.0),
        n(at.1 - 9.0),
        n(w)
    );
    text(
        svg,
        at.0 - w / 2.0 + 4.0,
        at.1 + 4.0,
        LINE_PX,
        "normal",
        "#000000",
        words,
    );
}

fn text(svg: &mut String, x: f64, y: f64, px: f64, weight: &str, colour: &str, words: &str) {
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" font-size="{}" font-weight="{weight}" fill="{colour}">{}</text>"#,
        n(x),
        n(y),
        n(px),
        escape(words)
    );
}

/// A coordinate to a tenth of a pixel, without a trailing `.0`.
fn n(v: f64) -> String {
    let s = format!("{v:.1}");
    s.strip_suffix(".0").map_or(s.clone(), str::to_string)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::picture::GroupBox;

    fn picture(groups: usize, linked: bool) -> Picture {
        Picture {
            title: "t.rhai: 3 nodes in 3 groups".into(),
            subtitle: "dry-run".into(),
            groups: (0..groups)
                .map(|i| GroupBox {
                    name: format!("g{i} <&>"),
                    lines: vec!["1 node".into(), "128 kbit/s up, 2 mbit/s down".into()],
                })
                .collect(),
            links: if linked {
                (0..groups)
                    .flat_map(|a| (a + 1..groups).map(move |b| (a, b)))
                    .map(|(a, b)| LinkLine {
                        a,
                        b,
                        latency: (a * 10 + b) as Nanos * 1_000_000,
                        lossy: a == 0,
                        label: format!("{} ms", a * 10 + b),
                    })
                    .collect()
            } else {
                Vec::new()
            },
            nodes: groups,
        }
    }

    #[test]
    fn text_widths_follow_the_font() {
        assert_eq!(text_width("", 12.0), 0.0);
        assert!((text_width("0", 2048.0) - 1303.0).abs() < 1e-9);
        assert!(text_width("mm", 12.0) > text_width("ii", 12.0));
        assert!((text_width("±", 2048.0) - 1716.0).abs() < 1e-9);
    }

    #[test]
    fn few_links_are_labelled_many_are_coloured() {
        let few = render(&picture(3, true));
        assert!(
            few.contains(">1 ms</text>") && few.contains(">12 ms</text>"),
            "{few}"
        );
        assert!(!few.contains("coloured by"));
        assert!(few.contains("dashed: a group link with loss"));
        let many = render(&picture(12, true));
        assert!(!many.contains(">1 ms</text>"));
        assert!(many.contains("66 group links, coloured by one-way latency"));
        // Latencies of 1 ms to 111 ms: classes of 50 ms.
        assert!(many.contains("group link 0 to 50 ms"), "{many}");
        assert!(many.contains("group link 100 ms to 150 ms"), "{many}");
        for colour in &PALETTE[..3] {
            assert!(many.contains(colour), "{colour}");
        }
    }

    #[test]
    fn names_are_escaped_and_drawing_is_deterministic() {
        let svg = render(&picture(2, false));
        assert!(svg.contains(">g0 &lt;&amp;&gt;</text>"));
        assert!(svg.contains("no group links"));
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>\n"));
        assert_eq!(svg, render(&picture(2, false)));
    }

    #[test]
    fn latency_classes_are_round_and_cover_the_range() {
        let ms = 1_000_000;
        let links = |latencies: &[Nanos]| -> Vec<LinkLine> {
            latencies
                .iter()
                .map(|&l| LinkLine {
                    a: 0,
                    b: 1,
                    latency: l * ms,
                    lossy: false,
                    label: String::new(),
                })
                .collect()
        };
        let world = Classes::of(&links(&[8, 45, 200]));
        assert_eq!((world.start, world.step, world.count), (0, 50 * ms, 5));
        assert_eq!(world.class(8 * ms), 0);
        assert_eq!(world.class(200 * ms), 4);
        assert_eq!(world.bounds(1), (50 * ms, 100 * ms));
        let near = Classes::of(&links(&[31, 39]));
        assert_eq!((near.start, near.step, near.count), (30 * ms, 2 * ms, 5));
        let one = Classes::of(&links(&[30, 30]));
        assert_eq!((one.count, one.class(30 * ms)), (1, 0));
        assert_eq!(round_up(7), 10);
        assert_eq!(round_up(21), 25);
        assert_eq!(round_up(26), 50);
    }
}
