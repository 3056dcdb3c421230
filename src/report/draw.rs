//! Drawing one line plot twice, as SVG and as PNG, with `plotters`. The PNG's text is drawn
//! with DejaVu Sans built into the binary (`font/`, Bitstream Vera license), so no system font
//! is needed; the SVG names the font family and leaves the text as text.

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::series::Point;

/// The size of every plot, in pixels.
const SIZE: (u32, u32) = (960, 540);

const FONT: &[u8] = include_bytes!("font/DejaVuSans.ttf");

/// One plot: a title, two labelled axes and its lines.
pub struct Plot {
    /// The file name without extension: `<stem>.svg`, `<stem>.png`.
    pub stem: String,
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub lines: Vec<Line>,
    /// Mark each point too: for sparse series (metrics), where a line alone hides the samples.
    pub marks: bool,
}

pub struct Line {
    /// The legend's text; a plot of one line has no legend.
    pub label: String,
    pub points: Vec<Point>,
}

/// Writes `<stem>.svg` and `<stem>.png` into `dir`.
pub fn write(plot: &Plot, dir: &Path) -> Result<(), String> {
    if !*FONT_REGISTERED.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok()
    }) {
        return Err("the built-in font does not load".into());
    }
    let svg = dir.join(format!("{}.svg", plot.stem));
    draw(SVGBackend::new(&svg, SIZE).into_drawing_area(), plot)?;
    let png = dir.join(format!("{}.png", plot.stem));
    draw(BitMapBackend::new(&png, SIZE).into_drawing_area(), plot)
}

static FONT_REGISTERED: OnceLock<bool> = OnceLock::new();

/// The axes' ranges: x from 0 (the experiment's start), y from 0 unless values go below.
fn ranges(plot: &Plot) -> (f64, f64, f64) {
    let points = plot.lines.iter().flat_map(|l| l.points.iter());
    let (mut x_max, mut y_min, mut y_max) = (0.0f64, 0.0f64, 0.0f64);
    for &(x, y) in points {
        x_max = x_max.max(x);
        y_min = y_min.min(y);
        y_max = y_max.max(y);
    }
    // An axis needs a width: a single instant, or values that are all zero, get one.
    if x_max <= 0.0 {
        x_max = 1.0;
    }
    let pad = (y_max - y_min) / 20.0;
    if pad == 0.0 {
        // Every value is zero (the range includes 0 either way).
        return (x_max, 0.0, 1.0);
    }
    (
        x_max,
        if y_min < 0.0 { y_min - pad } else { 0.0 },
        y_max + pad,
    )
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, plot: &Plot) -> Result<(), String> {
    let fail = |e: DrawingAreaErrorKind<DB::ErrorType>| format!("{}: {e}", plot.stem);
    root.fill(&WHITE).map_err(fail)?;
    let (x_max, y_min, y_max) = ranges(plot);
    let mut chart = ChartBuilder::on(&root)
        .caption(&plot.title, ("sans-serif", 26))
        .margin(16)
        // The last x label is centred on the axis' end: room for its right half.
        .margin_right(32)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..x_max, y_min..y_max)
        .map_err(fail)?;
    chart
        .configure_mesh()
        .x_desc(&plot.x_label)
        .y_desc(&plot.y_label)
        .axis_desc_style(("sans-serif", 18))
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(fail)?;
    for (i, line) in plot.lines.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let series = chart
            .draw_series(LineSeries::new(
                line.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(fail)?;
        if plot.lines.len() > 1 {
            series.label(&line.label).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        }
        if plot.marks {
            chart
                .draw_series(
                    line.points
                        .iter()
                        .map(|&p| Circle::new(p, 3, color.filled())),
                )
                .map_err(fail)?;
        }
    }
    if plot.lines.len() > 1 {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font(("sans-serif", 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(fail)?;
    }
    root.present().map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plot(points: Vec<Point>) -> Plot {
        Plot {
            stem: "p".into(),
            title: "t".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            lines: vec![Line {
                label: String::new(),
                points,
            }],
            marks: false,
        }
    }

    #[test]
    fn axes_start_at_zero_and_have_room() {
        assert_eq!(
            ranges(&plot(vec![(0.0, 0.0), (10.0, 100.0)])),
            (10.0, 0.0, 105.0)
        );
        assert_eq!(ranges(&plot(vec![])), (1.0, 0.0, 1.0));
        assert_eq!(ranges(&plot(vec![(1.0, -20.0)])), (1.0, -21.0, 1.0));
    }
}
