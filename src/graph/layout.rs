//! Where group boxes go: on a circle, in the order the script made the groups (the first on
//! the left for two groups, at the top otherwise, then clockwise), far enough apart that
//! neighbours never overlap; or, when no lines join them, in rows. Pure arithmetic on the
//! boxes' sizes: the same sizes give the same places, so a script and a seed give the same
//! picture.

use std::f64::consts::PI;

/// Width and height of a box, in pixels.
pub type Size = (f64, f64);

#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Each box's centre, with the top-left box edge at `(margin, top)`.
    pub centres: Vec<(f64, f64)>,
    /// Right and bottom edge of the lowest, rightmost box plus the margin.
    pub width: f64,
    pub height: f64,
}

/// Places boxes of `sizes` on a circle with at least `gap` between neighbours, below `top`
/// and `margin` from the left.
pub fn circle(sizes: &[Size], top: f64, margin: f64, gap: f64) -> Layout {
    let n = sizes.len();
    let widest = sizes.iter().map(|s| s.0).fold(0.0, f64::max);
    let tallest = sizes.iter().map(|s| s.1).fold(0.0, f64::max);
    let radius = match n {
        0 | 1 => 0.0,
        // Neighbours are a chord apart, in any direction: a chord of the largest box's
        // diagonal and the gap keeps them apart whichever way the circle turns there.
        _ => (widest.hypot(tallest) + gap) / (2.0 * (PI / n as f64).sin()),
    };
    let start = if n == 2 { PI } else { -PI / 2.0 };
    let raw: Vec<(f64, f64)> = (0..n)
        .map(|i| {
            let angle = start + 2.0 * PI * i as f64 / n as f64;
            (radius * angle.cos(), radius * angle.sin())
        })
        .collect();
    fit(&raw, sizes, top, margin)
}

/// Places boxes of `sizes` in rows of `per_row`, left to right, `gap` apart, each row as tall
/// as its tallest box, boxes centred in their row.
pub fn rows(sizes: &[Size], per_row: usize, top: f64, margin: f64, gap: f64) -> Layout {
    let mut raw = Vec::with_capacity(sizes.len());
    let mut y = 0.0;
    for row in sizes.chunks(per_row.max(1)) {
        let tallest = row.iter().map(|s| s.1).fold(0.0, f64::max);
        let mut x = 0.0;
        for s in row {
            raw.push((x + s.0 / 2.0, y + tallest / 2.0));
            x += s.0 + gap;
        }
        y += tallest + gap;
    }
    fit(&raw, sizes, top, margin)
}

/// Moves centres `raw` so that the leftmost box edge is at `margin` and the highest at `top`.
fn fit(raw: &[(f64, f64)], sizes: &[Size], top: f64, margin: f64) -> Layout {
    let left = raw
        .iter()
        .zip(sizes)
        .map(|((x, _), s)| x - s.0 / 2.0)
        .fold(f64::INFINITY, f64::min);
    let upper = raw
        .iter()
        .zip(sizes)
        .map(|((_, y), s)| y - s.1 / 2.0)
        .fold(f64::INFINITY, f64::min);
    let centres: Vec<(f64, f64)> = raw
        .iter()
        .map(|(x, y)| (round(x - left + margin), round(y - upper + top)))
        .collect();
    let right = centres
        .iter()
        .zip(sizes)
        .map(|((x, _), s)| x + s.0 / 2.0)
        .fold(0.0, f64::max);
    let bottom = centres
        .iter()
        .zip(sizes)
        .map(|((_, y), s)| y + s.1 / 2.0)
        .fold(top, f64::max);
    Layout {
        centres,
        width: round(right + margin),
        height: round(bottom),
    }
}

/// To a tenth of a pixel: what the SVG writes, so that nothing finer can differ.
fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlap(a: ((f64, f64), Size), b: ((f64, f64), Size)) -> bool {
        let ((ax, ay), (aw, ah)) = a;
        let ((bx, by), (bw, bh)) = b;
        (ax - bx).abs() < (aw + bw) / 2.0 && (ay - by).abs() < (ah + bh) / 2.0
    }

    #[test]
    fn one_box_sits_at_the_margin() {
        let l = circle(&[(100.0, 50.0)], 40.0, 10.0, 20.0);
        assert_eq!(l.centres, [(60.0, 65.0)]);
        assert_eq!((l.width, l.height), (120.0, 90.0));
    }

    #[test]
    fn two_boxes_side_by_side_the_first_on_the_left() {
        let l = circle(&[(100.0, 50.0), (80.0, 50.0)], 0.0, 0.0, 20.0);
        let ((x0, y0), (x1, y1)) = (l.centres[0], l.centres[1]);
        assert!(x0 < x1 && (y0 - y1).abs() < 0.2, "{l:?}");
        assert!(x1 - x0 >= 100.0 + 20.0, "{l:?}");
    }

    #[test]
    fn rows_wrap_and_keep_boxes_apart() {
        let l = rows(
            &[(100.0, 50.0), (60.0, 30.0), (80.0, 40.0)],
            2,
            10.0,
            5.0,
            20.0,
        );
        assert_eq!(l.centres, [(55.0, 35.0), (155.0, 35.0), (45.0, 100.0)]);
        assert_eq!((l.width, l.height), (190.0, 120.0));
    }

    #[test]
    fn dozens_of_boxes_never_overlap_and_place_the_same_twice() {
        let sizes: Vec<Size> = (0..40)
            .map(|i| (120.0 + (i % 3) as f64 * 20.0, 70.0))
            .collect();
        let l = circle(&sizes, 50.0, 20.0, 10.0);
        assert_eq!(l, circle(&sizes, 50.0, 20.0, 10.0));
        for i in 0..sizes.len() {
            for j in i + 1..sizes.len() {
                assert!(
                    !overlap((l.centres[i], sizes[i]), (l.centres[j], sizes[j])),
                    "{i} and {j} overlap"
                );
            }
            let (x, y) = l.centres[i];
            assert!(x - sizes[i].0 / 2.0 >= 19.9 && y - sizes[i].1 / 2.0 >= 49.9);
            assert!(x + sizes[i].0 / 2.0 <= l.width && y + sizes[i].1 / 2.0 <= l.height);
        }
    }
}
