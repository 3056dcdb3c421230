//! Drawing one line plot twice, as SVG and as PNG, with `plotters`. The PNG's text is drawn
//! with DejaVu Sans built into the binary (`font/`, Bitstream Vera license), so no system font
//! is needed; the SVG names the font family and leaves the text as text.

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
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
    /// A logarithmic y axis, for values over decades (lateness); values must be above 0.
    pub y_log: bool,
    /// The legend in the lower left corner, not the upper left; on a log axis, in an empty
    /// decade below the values (above them otherwise), so that it hides none.
    pub legend_below: bool,
}

pub struct Line {
    /// The legend's text; a plot of one line has no legend.
    pub label: String,
    pub points: Vec<Point>,
    /// The palette's colour number: the lines of one worker share theirs.
    pub color: usize,
    pub stroke: Stroke,
}

/// How a line is drawn.
#[derive(Clone, Copy, PartialEq)]
pub enum Stroke {
    Solid,
    /// Thin: a line beside its solid partner (a maximum beside its percentile).
    Thin,
    /// Black and dashed: a limit to compare the other lines with.
    Bound,
}

impl Line {
    /// A solid line in the palette's colour `color`.
    pub fn new(label: impl Into<String>, points: Vec<Point>, color: usize) -> Line {
        Line {
            label: label.into(),
            points,
            color,
            stroke: Stroke::Solid,
        }
    }
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

/// The axes' ranges of a log y axis: whole decades around the values, so at least one label
/// shows, and an empty one on the legend's side. Values at or below 0 have no place on it and
/// are left out.
fn log_ranges(plot: &Plot) -> (f64, f64, f64) {
    let points = plot.lines.iter().flat_map(|l| l.points.iter());
    let (mut x_max, mut y_min, mut y_max) = (0.0f64, f64::INFINITY, 0.0f64);
    for &(x, y) in points {
        x_max = x_max.max(x);
        if y > 0.0 {
            y_min = y_min.min(y);
            y_max = y_max.max(y);
        }
    }
    if x_max <= 0.0 {
        x_max = 1.0;
    }
    if y_max == 0.0 {
        (y_min, y_max) = (1.0, 1.0);
    }
    let low = y_min.log10().floor() as i32;
    let high = (y_max.log10().ceil() as i32).max(low + 1);
    let (low, high) = if plot.legend_below {
        (low - 1, high)
    } else {
        (low, high + 1)
    };
    (x_max, 10f64.powi(low), 10f64.powi(high))
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, plot: &Plot) -> Result<(), String> {
    let fail = |e: DrawingAreaErrorKind<DB::ErrorType>| format!("{}: {e}", plot.stem);
    root.fill(&WHITE).map_err(fail)?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(&plot.title, ("sans-serif", 26))
        .margin(16)
        // The last x label is centred on the axis' end: room for its right half.
        .margin_right(32)
        .x_label_area_size(50)
        .y_label_area_size(80);
    if plot.y_log {
        let (x_max, y_min, y_max) = log_ranges(plot);
        let chart = builder
            .build_cartesian_2d(0.0..x_max, (y_min..y_max).log_scale())
            .map_err(fail)?;
        lines(chart, plot)?;
    } else {
        let (x_max, y_min, y_max) = ranges(plot);
        let chart = builder
            .build_cartesian_2d(0.0..x_max, y_min..y_max)
            .map_err(fail)?;
        lines(chart, plot)?;
    }
    root.present().map_err(fail)
}

/// The mesh, the lines and the legend, on a linear or a log y axis.
fn lines<'a, DB, Y>(
    mut chart: ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>,
    plot: &Plot,
) -> Result<(), String>
where
    DB: DrawingBackend + 'a,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let fail = |e: DrawingAreaErrorKind<DB::ErrorType>| format!("{}: {e}", plot.stem);
    let decimal = |v: &f64| {
        // A log axis' labels are powers of ten: 0.001 reads better than 1e-3.
        let text = format!("{v:.6}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    };
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(&plot.x_label)
        .y_desc(&plot.y_label)
        .axis_desc_style(("sans-serif", 18))
        .label_style(("sans-serif", 14));
    if plot.y_log {
        mesh.y_label_formatter(&decimal);
    }
    mesh.draw().map_err(fail)?;
    for line in &plot.lines {
        let (style, color) = match line.stroke {
            Stroke::Solid => {
                let c = Palette99::pick(line.color).to_rgba();
                (c.stroke_width(2), c)
            }
            Stroke::Thin => {
                let c = Palette99::pick(line.color).to_rgba().mix(0.6);
                (c.stroke_width(1), c)
            }
            Stroke::Bound => (BLACK.stroke_width(2), BLACK.to_rgba()),
        };
        let points = line
            .points
            .iter()
            .copied()
            .filter(|&(_, y)| !plot.y_log || y > 0.0);
        let series = if line.stroke == Stroke::Bound {
            chart
                .draw_series(DashedLineSeries::new(points, 10, 6, style))
                .map_err(fail)?
        } else {
            chart
                .draw_series(LineSeries::new(points, style))
                .map_err(fail)?
        };
        if plot.lines.len() > 1 {
            series.label(&line.label).legend(move |(x, y)| {
                PathElement::new(
                    vec![(x, y), (x + 20, y)],
                    color.stroke_width(style.stroke_width),
                )
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
            .position(if plot.legend_below {
                SeriesLabelPosition::LowerLeft
            } else {
                SeriesLabelPosition::UpperLeft
            })
            .label_font(("sans-serif", 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(fail)?;
    }
    Ok(())
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
            lines: vec![Line::new("", points, 0)],
            marks: false,
            y_log: false,
            legend_below: false,
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

    #[test]
    fn a_log_axis_spans_whole_decades_of_the_positive_values() {
        // 0.02 to 3, and a decade above for the legend.
        let mut p = plot(vec![(0.0, 0.0), (5.0, 0.02), (10.0, 3.0)]);
        assert_eq!(log_ranges(&p), (10.0, 0.01, 100.0));
        p.legend_below = true;
        assert_eq!(log_ranges(&p), (10.0, 0.001, 10.0));
        // A single value, a power of ten, still gets a decade of its own.
        assert_eq!(log_ranges(&plot(vec![(2.0, 1.0)])), (2.0, 1.0, 100.0));
        assert_eq!(log_ranges(&plot(vec![(2.0, 0.0)])), (2.0, 1.0, 100.0));
    }
}
