//! Charts for Tapir's examples, as PNG bytes: learning curves
//! ([`line_chart`]), optimizer paths over a function's contours
//! ([`contour`]) and grids of images and heatmaps ([`image_grid`]).
//!
//! Built on plotters' bitmap backend with text drawn from a font compiled
//! into the binary ([`text::Lettered`]), so a chart looks the same on a
//! machine without fonts. Each function returns the encoded PNG; write it
//! with `tapir::nn::write_atomic` so a crash never leaves half a file.
//!
//! ```
//! use tapir_plot::{line_chart, Panel, Series};
//! let loss = Series::new("train", vec![(1.0, 0.9), (2.0, 0.4), (3.0, 0.2)]);
//! let png = line_chart(&[Panel::new("loss").x_label("epoch").series(loss)], (640, 400)).unwrap();
//! assert_eq!(&png[1..4], b"PNG");
//! ```

pub mod text;

use std::ops::Range;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters_backend::text_anchor::{HPos, Pos, VPos};

pub use text::Lettered;

/// What went wrong drawing a chart.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input cannot be drawn (no points, a zero size, wrong lengths).
    #[error("plot {chart}: {message}")]
    Input {
        /// The chart's title.
        chart: String,
        /// What is wrong with it.
        message: String,
    },
    /// plotters or the PNG encoder failed.
    #[error("plot {chart}: drawing failed: {message}")]
    Draw {
        /// The chart's title.
        chart: String,
        /// The drawing library's message.
        message: String,
    },
}

/// The result of drawing a chart.
pub type Result<T> = std::result::Result<T, Error>;

fn draw_err(chart: &str) -> impl Fn(&dyn std::fmt::Display) -> Error + '_ {
    move |e| Error::Draw {
        chart: chart.to_string(),
        message: e.to_string(),
    }
}

fn input_err(chart: &str, message: impl Into<String>) -> Error {
    Error::Input {
        chart: chart.to_string(),
        message: message.into(),
    }
}

/// One named line: (x, y) points in order. Non-finite points are skipped.
#[derive(Clone, Debug)]
pub struct Series {
    /// The legend entry; series with the same label share a colour across
    /// the panels of one chart.
    pub label: String,
    /// The points, drawn in order.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A series named `label`.
    pub fn new(label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series {
            label: label.into(),
            points,
        }
    }

    fn finite(&self, log_y: bool) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.points
            .iter()
            .copied()
            .filter(move |&(x, y)| x.is_finite() && y.is_finite() && (!log_y || y > 0.0))
    }
}

/// One set of axes of a [`line_chart`].
#[derive(Clone, Debug, Default)]
pub struct Panel {
    /// Drawn above the axes.
    pub title: String,
    /// Under the x axis.
    pub x_label: String,
    /// Beside the y axis.
    pub y_label: String,
    /// A logarithmic y axis (points with y ≤ 0 are skipped).
    pub log_y: bool,
    /// The lines.
    pub series: Vec<Series>,
}

impl Panel {
    /// An empty panel titled `title`.
    pub fn new(title: impl Into<String>) -> Self {
        Panel {
            title: title.into(),
            ..Panel::default()
        }
    }

    /// Sets the x axis label.
    pub fn x_label(mut self, label: impl Into<String>) -> Self {
        self.x_label = label.into();
        self
    }

    /// Sets the y axis label.
    pub fn y_label(mut self, label: impl Into<String>) -> Self {
        self.y_label = label.into();
        self
    }

    /// Makes the y axis logarithmic.
    pub fn log_y(mut self) -> Self {
        self.log_y = true;
        self
    }

    /// Adds a line.
    pub fn series(mut self, s: Series) -> Self {
        self.series.push(s);
        self
    }
}

/// The colour of the `i`-th distinct label: fourteen well-separated hues, then
/// plotters' 99-colour palette.
pub fn color(i: usize) -> RGBColor {
    const HUES: [(u8, u8, u8); 14] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (90, 90, 90),
        (188, 189, 34),
        (23, 190, 207),
        (0, 0, 0),
        (255, 0, 255),
        (0, 0, 128),
        (128, 0, 0),
    ];
    match HUES.get(i) {
        Some(&(r, g, b)) => RGBColor(r, g, b),
        None => {
            let c = Palette99::pick(i).to_rgba();
            RGBColor(c.0, c.1, c.2)
        }
    }
}

/// Labels in first-seen order, each with its colour.
fn label_colors<'a>(series: impl Iterator<Item = &'a Series>) -> Vec<(String, RGBColor)> {
    let mut seen: Vec<(String, RGBColor)> = Vec::new();
    for s in series {
        if !seen.iter().any(|(l, _)| *l == s.label) {
            let c = color(seen.len());
            seen.push((s.label.clone(), c));
        }
    }
    seen
}

/// The padded range of `values`, never empty.
fn span(values: impl Iterator<Item = f64>, pad: f64) -> Option<Range<f64>> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        return None;
    }
    let d = if hi > lo {
        (hi - lo) * pad
    } else {
        lo.abs().max(1.0) * 0.1
    };
    Some(lo - d..hi + d)
}

/// A width for the legend strip: the longest label plus the colour swatch.
fn legend_width(entries: &[(String, RGBColor)]) -> u32 {
    let mut pixel = [0u8; 3];
    let probe = Lettered::new(BitMapBackend::with_buffer(&mut pixel, (1, 1)));
    let longest = entries
        .iter()
        .map(|(l, _)| probe.text_size(l, 15.0).0)
        .max()
        .unwrap_or(0);
    longest + 48
}

/// Draws the legend entries top-down in `area`.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(String, RGBColor)],
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    for (i, (label, c)) in entries.iter().enumerate() {
        let y = 40 + 22 * i as i32;
        area.draw(&PathElement::new(
            vec![(6, y), (30, y)],
            ShapeStyle::from(c).stroke_width(3),
        ))?;
        let style = ("sans-serif", 15).into_font().color(&BLACK);
        area.draw(&Text::new(label.clone(), (36, y - 8), style))?;
    }
    Ok(())
}

/// A tick label: four significant digits without trailing zeros
/// (1 not 1.0, 0.3 not 0.30000000004), exponent form outside 1e-3..1e5.
pub fn tick(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return if v == 0.0 { "0".into() } else { v.to_string() };
    }
    let mag = v.abs().log10().floor() as i32;
    if !(-3..5).contains(&mag) {
        let e = format!("{v:.2e}");
        let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
        let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
        return format!("{mantissa}e{exp}");
    }
    let s = format!("{:.*}", (3 - mag).max(0) as usize, v);
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A round step near `raw`: 1, 2 or 5 times a power of ten.
fn nice_step(raw: f64) -> f64 {
    let p = 10f64.powf(raw.log10().floor());
    let f = raw / p;
    p * if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    }
}

/// Labelled and light grid positions over `r` (in log10 units when `log`):
/// round multiples of a step for a linear axis; 1, 2 and 5 times powers of
/// ten (light: 1..9 times) for a log axis.
fn grid(r: &Range<f64>, log: bool) -> (Vec<f64>, Vec<f64>) {
    let inside = |v: &f64| r.contains(v);
    if log {
        let decades = r.start.floor() as i32..=r.end.ceil() as i32;
        let at = |ms: &[f64]| -> Vec<f64> {
            decades
                .clone()
                .flat_map(|k| ms.iter().map(move |m| (m * 10f64.powi(k)).log10()))
                .filter(inside)
                .collect()
        };
        let all = at(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
        let span = r.end - r.start;
        if span > 4.0 {
            // Many decades: label every k-th power of ten, light lines at
            // the other powers.
            let every = (span / 8.0).ceil().max(1.0) as i32;
            let powers = |keep: &dyn Fn(i32) -> bool| -> Vec<f64> {
                decades
                    .clone()
                    .filter(|&k| keep(k))
                    .map(f64::from)
                    .filter(inside)
                    .collect()
            };
            return (powers(&|k| k.rem_euclid(every) == 0), powers(&|_| true));
        }
        let bold = at(&[1.0, 2.0, 5.0]);
        return if bold.len() >= 3 {
            (bold, all)
        } else {
            (all, Vec::new())
        };
    }
    let step = nice_step((r.end - r.start) / 8.0);
    let multiples = |step: f64| -> Vec<f64> {
        let first = (r.start / step).ceil() as i64;
        let last = (r.end / step).floor() as i64;
        (first..=last)
            .map(|k| k as f64 * step)
            .filter(inside)
            .collect()
    };
    (multiples(step), multiples(step / 2.0))
}

/// A linear f64 axis whose grid lines sit where [`grid`] puts them.
struct Axis {
    range: Range<f64>,
    bold: Vec<f64>,
    light: Vec<f64>,
}

impl Axis {
    fn new(range: Range<f64>, log: bool) -> Self {
        let (bold, light) = grid(&range, log);
        Axis { range, bold, light }
    }
}

impl Ranged for Axis {
    type FormatOption = plotters::coord::ranged1d::DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, (lo, hi): (i32, i32)) -> i32 {
        let t = (v - self.range.start) / (self.range.end - self.range.start);
        (lo as f64 + t * (hi - lo) as f64).round() as i32
    }

    fn key_points<H: plotters::coord::ranged1d::KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.light.clone()
        } else {
            self.bold.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

/// One panel's axes, mesh and lines on `area`; `y` is in log10 units for
/// a log panel, its ticks labelled with the values.
fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
    colors: &[(String, RGBColor)],
    x: Range<f64>,
    y: Range<f64>,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let log = panel.log_y;
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(Axis::new(x, false), Axis::new(y, log))?;
    let y_fmt = |v: &f64| tick(if log { 10f64.powf(*v) } else { *v });
    chart
        .configure_mesh()
        .x_desc(panel.x_label.as_str())
        .y_desc(panel.y_label.as_str())
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&y_fmt)
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 15))
        .light_line_style(RGBColor(238, 238, 238))
        .draw()?;
    for s in &panel.series {
        let c = colors
            .iter()
            .find(|(l, _)| *l == s.label)
            .map_or(BLACK, |&(_, c)| c);
        let pts: Vec<(f64, f64)> = s
            .finite(log)
            .map(|(x, y)| (x, if log { y.log10() } else { y }))
            .collect();
        chart.draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))?;
        if pts.len() <= 40 {
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))?;
        }
    }
    Ok(())
}

/// Line charts side by side, one per panel, with one legend for all of
/// them when any panel has more than one line. Returns the PNG.
pub fn line_chart(panels: &[Panel], (w, h): (u32, u32)) -> Result<Vec<u8>> {
    let name = panels
        .iter()
        .map(|p| p.title.as_str())
        .collect::<Vec<_>>()
        .join(" / ");
    if panels.is_empty() || w < 64 || h < 64 {
        return Err(input_err(
            &name,
            "needs at least one panel and 64×64 pixels",
        ));
    }
    let colors = label_colors(panels.iter().flat_map(|p| p.series.iter()));
    let mut ranges = Vec::with_capacity(panels.len());
    for p in panels {
        let pts = || p.series.iter().flat_map(|s| s.finite(p.log_y));
        let (Some(x), Some(y)) = (
            span(pts().map(|q| q.0), 0.02),
            span(pts().map(|q| if p.log_y { q.1.log10() } else { q.1 }), 0.05),
        ) else {
            return Err(input_err(&p.title, "has no finite points to draw"));
        };
        ranges.push((x, y));
    }
    let mut buf = vec![255u8; w as usize * h as usize * 3];
    {
        let root = Lettered::new(BitMapBackend::with_buffer(&mut buf, (w, h))).into_drawing_area();
        let multi = panels.iter().any(|p| p.series.len() > 1);
        let legend = if multi {
            legend_width(&colors).min(w / 3)
        } else {
            0
        };
        let (plots, side) = root.split_horizontally(w - legend);
        if multi {
            draw_legend(&side, &colors).map_err(|e| draw_err(&name)(&e))?;
        }
        for ((area, p), (x, y)) in plots
            .split_evenly((1, panels.len()))
            .iter()
            .zip(panels)
            .zip(ranges)
        {
            draw_panel(area, p, &colors, x, y).map_err(|e| draw_err(&p.title)(&e))?;
        }
        root.present().map_err(|e| draw_err(&name)(&e))?;
    }
    encode_png(&buf, w, h).map_err(|e| draw_err(&name)(&e))
}

/// A 2-D function with optimizer paths drawn over its contours.
pub struct Contour<'a> {
    /// Drawn above the plot.
    pub title: String,
    /// The function.
    pub f: &'a dyn Fn(f64, f64) -> f64,
    /// The x window.
    pub x: Range<f64>,
    /// The y window.
    pub y: Range<f64>,
    /// One path per optimizer, from its start.
    pub paths: Vec<Series>,
    /// Marked with a white star (the function's minimum).
    pub mark: Option<(f64, f64)>,
}

/// Filled contour bands of `c.f` (log-spaced above the window's minimum,
/// so both the valley floor and the walls show), the paths on top with
/// their starts circled, and a legend on the right. Returns the PNG.
pub fn contour(c: &Contour<'_>, (w, h): (u32, u32)) -> Result<Vec<u8>> {
    if !(c.x.start < c.x.end && c.y.start < c.y.end) || w < 64 || h < 64 {
        return Err(input_err(
            &c.title,
            "needs a non-empty window and 64×64 pixels",
        ));
    }
    let colors = label_colors(c.paths.iter());
    let mut buf = vec![255u8; w as usize * h as usize * 3];
    let err = draw_err(&c.title);
    {
        let root = Lettered::new(BitMapBackend::with_buffer(&mut buf, (w, h))).into_drawing_area();
        let legend = legend_width(&colors).min(w / 3);
        let (plot, side) = root.split_horizontally(w - legend);
        draw_legend(&side, &colors).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&plot)
            .caption(&c.title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(50)
            .build_cartesian_2d(c.x.clone(), c.y.clone())
            .map_err(|e| err(&e))?;
        let (px, py) = chart.plotting_area().get_pixel_range();
        let (nx, ny) = (
            ((px.end - px.start) / 2).max(8) as usize,
            ((py.end - py.start) / 2).max(8) as usize,
        );
        let (dx, dy) = (
            (c.x.end - c.x.start) / nx as f64,
            (c.y.end - c.y.start) / ny as f64,
        );
        let grid: Vec<f64> = (0..ny)
            .flat_map(|j| (0..nx).map(move |i| (i, j)))
            .map(|(i, j)| {
                (c.f)(
                    c.x.start + (i as f64 + 0.5) * dx,
                    c.y.start + (j as f64 + 0.5) * dy,
                )
            })
            .collect();
        let lo = grid
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .fold(f64::INFINITY, f64::min);
        let z: Vec<f64> = grid.iter().map(|&v| (1.0 + v - lo).ln()).collect();
        let hi = z
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max)
            .max(1e-12);
        const BANDS: f64 = 16.0;
        let band = |k: usize| {
            let v = z[k];
            if v.is_finite() {
                ((v / hi * BANDS) as usize).min(BANDS as usize - 1)
            } else {
                BANDS as usize - 1
            }
        };
        let cells = (0..nx * ny).map(|k| {
            let (i, j) = (k % nx, k / nx);
            let b = band(k);
            let edge = (i > 0 && band(k - 1) != b) || (j > 0 && band(k - nx) != b);
            let t = b as f64 / (BANDS - 1.0);
            let col = if edge { shade(t, 0.75) } else { shade(t, 1.0) };
            let (x0, y0) = (c.x.start + i as f64 * dx, c.y.start + j as f64 * dy);
            Rectangle::new([(x0, y0), (x0 + dx, y0 + dy)], col.filled())
        });
        chart.draw_series(cells).map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .disable_mesh()
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(|e| err(&e))?;
        for s in &c.paths {
            let col = colors
                .iter()
                .find(|(l, _)| *l == s.label)
                .map_or(BLACK, |&(_, c)| c);
            let pts: Vec<(f64, f64)> = s.finite(false).collect();
            // plotters does not clip lines to the plotting area: a path
            // that leaves the window would be drawn over the axes.
            for piece in clip_path(&pts, &c.x, &c.y) {
                chart
                    .draw_series(LineSeries::new(piece, col.stroke_width(2)))
                    .map_err(|e| err(&e))?;
            }
            if let Some(&p) = pts
                .first()
                .filter(|p| c.x.contains(&p.0) && c.y.contains(&p.1))
            {
                chart
                    .draw_series([Circle::new(p, 5, BLACK.stroke_width(2))])
                    .map_err(|e| err(&e))?;
            }
        }
        if let Some(m) = c.mark {
            let style = ("sans-serif", 26)
                .into_font()
                .color(&WHITE)
                .pos(Pos::new(HPos::Center, VPos::Center));
            chart
                .draw_series([Text::new("★", m, style)])
                .map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    encode_png(&buf, w, h).map_err(|e| err(&e))
}

/// The segment from `a` to `b` cut to the window (Liang–Barsky), if any
/// of it lies inside.
fn clip_segment(
    a: (f64, f64),
    b: (f64, f64),
    x: &Range<f64>,
    y: &Range<f64>,
) -> Option<((f64, f64), (f64, f64))> {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [
        (-dx, a.0 - x.start),
        (dx, x.end - a.0),
        (-dy, a.1 - y.start),
        (dy, y.end - a.1),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let t = q / p;
            if p < 0.0 {
                t0 = t0.max(t);
            } else {
                t1 = t1.min(t);
            }
        }
    }
    (t0 <= t1).then(|| {
        let at = |t: f64| (a.0 + t * dx, a.1 + t * dy);
        (at(t0), at(t1))
    })
}

/// The parts of a polyline inside the window, each a polyline of its own.
pub fn clip_path(pts: &[(f64, f64)], x: &Range<f64>, y: &Range<f64>) -> Vec<Vec<(f64, f64)>> {
    let mut pieces: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut open = false;
    for w in pts.windows(2) {
        match clip_segment(w[0], w[1], x, y) {
            // A segment that only touches a corner leaves no piece.
            Some((p, q)) if p == q && !(open && p == w[0]) => open = false,
            Some((p, q)) => {
                let continues = open && p == w[0];
                if !continues {
                    pieces.push(vec![p]);
                }
                if let Some(last) = pieces.last_mut() {
                    last.push(q);
                }
                open = q == w[1];
            }
            None => open = false,
        }
    }
    pieces
}

/// A light-to-dark blue-green-yellow ramp (t = 0 lowest), scaled by `k`.
fn shade(t: f64, k: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 4] = [
        (38.0, 60.0, 130.0),
        (40.0, 140.0, 140.0),
        (120.0, 200.0, 100.0),
        (250.0, 235.0, 150.0),
    ];
    let s = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let i = (s as usize).min(STOPS.len() - 2);
    let f = s - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |p: f64, q: f64| ((p + (q - p) * f) * k).round().clamp(0.0, 255.0) as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// How an [`Image`]'s values become colours (after scaling each image to
/// its own minimum and maximum).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Colormap {
    /// Black (lowest) to white (highest).
    Gray,
    /// Black through red and orange to pale yellow: saliency heatmaps.
    Heat,
}

impl Colormap {
    /// The colour of `t` in [0, 1].
    pub fn at(self, t: f64) -> RGBColor {
        let t = if t.is_finite() {
            t.clamp(0.0, 1.0)
        } else {
            0.0
        };
        match self {
            Colormap::Gray => {
                let v = (t * 255.0).round() as u8;
                RGBColor(v, v, v)
            }
            Colormap::Heat => {
                let ch = |lo: f64| ((t - lo) / (1.0 / 3.0)).clamp(0.0, 1.0);
                let u = |v: f64| (v * 255.0).round() as u8;
                RGBColor(u(ch(0.0)), u(ch(1.0 / 3.0)), u(ch(2.0 / 3.0)))
            }
        }
    }
}

/// A row-major image for [`image_grid`].
#[derive(Clone, Debug)]
pub struct Image {
    /// Drawn above the image.
    pub title: String,
    /// Pixels per row.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// `width × height` values, row by row.
    pub values: Vec<f32>,
    /// How values become colours.
    pub colormap: Colormap,
}

/// Images in a grid of `cols` columns, each scaled to fit a `cell`-pixel
/// square under its title. Returns the PNG.
pub fn image_grid(images: &[Image], cols: usize, cell: u32) -> Result<Vec<u8>> {
    let name = images.first().map_or("image grid", |i| i.title.as_str());
    if images.is_empty() || cols == 0 || cell < 16 {
        return Err(input_err(
            name,
            "needs images, a column and a cell of 16 pixels",
        ));
    }
    for im in images {
        if im.width == 0 || im.height == 0 || im.values.len() != im.width * im.height {
            return Err(input_err(
                &im.title,
                format!(
                    "{} values for a {}×{} image",
                    im.values.len(),
                    im.width,
                    im.height
                ),
            ));
        }
    }
    let rows = images.len().div_ceil(cols);
    let title_h = 26u32;
    let (w, h) = (cols as u32 * cell, rows as u32 * (cell + title_h));
    let mut buf = vec![255u8; w as usize * h as usize * 3];
    let err = draw_err(name);
    {
        let root = Lettered::new(BitMapBackend::with_buffer(&mut buf, (w, h))).into_drawing_area();
        let areas = root.split_evenly((rows, cols));
        for (area, im) in areas.iter().zip(images) {
            let style = ("sans-serif", 15)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Top));
            area.draw(&Text::new(im.title.clone(), (cell as i32 / 2, 5), style))
                .map_err(|e| err(&e))?;
            let px = ((cell - 8) as usize / im.width.max(im.height)).max(1) as i32;
            let (ox, oy) = (
                (cell as i32 - px * im.width as i32) / 2,
                title_h as i32 + (cell as i32 - px * im.height as i32) / 2,
            );
            let (lo, hi) = im
                .values
                .iter()
                .filter(|v| v.is_finite())
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                    (lo.min(v), hi.max(v))
                });
            let range = if hi > lo { (hi - lo) as f64 } else { 1.0 };
            for (k, &v) in im.values.iter().enumerate() {
                let (i, j) = ((k % im.width) as i32, (k / im.width) as i32);
                let col = im.colormap.at((v - lo) as f64 / range);
                let (x0, y0) = (ox + i * px, oy + j * px);
                area.draw(&Rectangle::new(
                    [(x0, y0), (x0 + px, y0 + px)],
                    col.filled(),
                ))
                .map_err(|e| err(&e))?;
            }
        }
        root.present().map_err(|e| err(&e))?;
    }
    encode_png(&buf, w, h).map_err(|e| err(&e))
}

/// 8-bit RGB pixels (`w × h × 3` bytes, row by row) as a PNG file's bytes.
pub fn encode_png(rgb: &[u8], w: u32, h: u32) -> std::result::Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header()?;
        writer.write_image_data(rgb)?;
    }
    Ok(out)
}
