//! Each chart decodes as a PNG of the promised size, shows each series in
//! its colour, and rejects input it cannot draw with an error naming the
//! chart. The PNGs are also left in Cargo's test scratch directory to look
//! at.

use tapir_plot::{
    color, contour, image_grid, line_chart, Colormap, Contour, Error, Image, Panel, Series,
};

/// Width, height and RGB pixels of a PNG.
fn decode(png_bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let dec = png::Decoder::new(png_bytes);
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0u8; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

fn count(rgb: &[u8], c: plotters::style::RGBColor) -> usize {
    rgb.chunks(3).filter(|p| p == &[c.0, c.1, c.2]).count()
}

fn keep(name: &str, bytes: &[u8]) {
    std::fs::write(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name),
        bytes,
    )
    .unwrap();
}

#[test]
fn line_chart_draws_every_series_in_its_colour() {
    let loss = Series::new(
        "train",
        (1..=10).map(|e| (e as f64, 2.0 / e as f64)).collect(),
    );
    let tr = Series::new(
        "train",
        (1..=10)
            .map(|e| (e as f64, 0.9 + 0.009 * e as f64))
            .collect(),
    );
    let te = Series::new(
        "test",
        (1..=10)
            .map(|e| (e as f64, 0.88 + 0.008 * e as f64))
            .collect(),
    );
    let panels = [
        Panel::new("loss")
            .x_label("epoch")
            .y_label("cross-entropy")
            .log_y()
            .series(loss),
        Panel::new("accuracy")
            .x_label("epoch")
            .series(tr)
            .series(te),
    ];
    let png = line_chart(&panels, (900, 360)).unwrap();
    keep("line_chart.png", &png);
    let (w, h, rgb) = decode(&png);
    assert_eq!((w, h), (900, 360));
    // "train" is the first label (blue) in both panels, "test" the second.
    assert!(count(&rgb, color(0)) > 300, "train line missing");
    assert!(count(&rgb, color(1)) > 150, "test line missing");
    assert_eq!(count(&rgb, color(2)), 0, "only two labels");
    // Text was drawn: anti-aliased grey pixels exist.
    assert!(rgb
        .chunks(3)
        .any(|p| p[0] == p[1] && p[1] == p[2] && p[0] > 40 && p[0] < 200));
}

#[test]
fn line_chart_skips_points_it_cannot_draw_and_rejects_empty_panels() {
    let odd = Series::new(
        "odd",
        vec![(0.0, 0.0), (1.0, f64::NAN), (2.0, 1.0), (3.0, 10.0)],
    );
    let png = line_chart(&[Panel::new("log").log_y().series(odd)], (300, 200)).unwrap();
    assert_eq!(decode(&png).0, 300);
    let nothing = Series::new("nan", vec![(0.0, f64::NAN)]);
    match line_chart(&[Panel::new("empty panel").series(nothing)], (300, 200)) {
        Err(e @ Error::Input { .. }) => assert!(e.to_string().contains("empty panel"), "{e}"),
        other => panic!("expected an input error, got {other:?}"),
    }
    assert!(line_chart(&[], (300, 200)).is_err());
    let one = Series::new("a", vec![(0.0, 1.0), (1.0, 2.0)]);
    assert!(line_chart(&[Panel::new("tiny").series(one)], (10, 10)).is_err());
}

#[test]
fn contour_shows_the_paths_over_the_bands() {
    let f = |x: f64, y: f64| (1.0 - x).powi(2) + 100.0 * (y - x * x).powi(2);
    let path = |label: &str, n: usize| {
        Series::new(
            label,
            (0..=n)
                .map(|k| {
                    let t = k as f64 / n as f64;
                    (-1.5 + 2.5 * t, 2.0 - t)
                })
                .collect(),
        )
    };
    let c = Contour {
        title: "Rosenbrock".into(),
        f: &f,
        x: -2.0..2.0,
        y: -1.0..3.0,
        paths: vec![
            path("gd", 20),
            path("adam", 40),
            Series::new(
                "diverged",
                vec![(0.0, 0.0), (1e300, -1e300), (f64::INFINITY, 0.0)],
            ),
        ],
        mark: Some((1.0, 1.0)),
    };
    let png = contour(&c, (640, 480)).unwrap();
    keep("contour.png", &png);
    let (w, h, rgb) = decode(&png);
    assert_eq!((w, h), (640, 480));
    // The last path drawn covers the others; its colour and the legend's
    // swatches of the others are there.
    assert!(count(&rgb, color(1)) > 100);
    assert!(count(&rgb, color(0)) > 30);
    // Many band colours: the function's range is drawn, not one flat fill.
    let mut distinct: Vec<[u8; 3]> = rgb.chunks(3).map(|p| [p[0], p[1], p[2]]).collect();
    distinct.sort();
    distinct.dedup();
    assert!(distinct.len() > 30, "{} colours", distinct.len());
    let bad = Contour { x: 1.0..1.0, ..c };
    assert!(matches!(
        contour(&bad, (640, 480)),
        Err(Error::Input { .. })
    ));
}

#[test]
fn image_grid_scales_each_image_to_its_range() {
    let ramp: Vec<f32> = (0..28 * 28).map(|k| (k % 28) as f32).collect();
    let images = [
        Image {
            title: "input".into(),
            width: 28,
            height: 28,
            values: ramp.clone(),
            colormap: Colormap::Gray,
        },
        Image {
            title: "saliency".into(),
            width: 28,
            height: 28,
            values: ramp,
            colormap: Colormap::Heat,
        },
    ];
    let png = image_grid(&images, 2, 140).unwrap();
    keep("image_grid.png", &png);
    let (w, h, rgb) = decode(&png);
    assert_eq!((w, h), (280, 166));
    // The heat map runs from black to white; the gray ramp's black end
    // and a mid heat colour (column 13 of 27) are drawn.
    let heat_top = Colormap::Heat.at(1.0);
    assert_eq!((heat_top.0, heat_top.1, heat_top.2), (255, 255, 255));
    assert!(count(&rgb, Colormap::Gray.at(0.0)) > 100);
    assert!(count(&rgb, Colormap::Heat.at(13.0 / 27.0)) > 50);
    let wrong = Image {
        title: "short".into(),
        width: 28,
        height: 28,
        values: vec![0.0; 10],
        colormap: Colormap::Gray,
    };
    let e = image_grid(&[wrong], 1, 140).unwrap_err();
    assert!(
        e.to_string().contains("short") && e.to_string().contains("10 values"),
        "{e}"
    );
}

#[test]
fn ticks_read_like_numbers() {
    use tapir_plot::tick;
    assert_eq!(tick(1.0), "1");
    assert_eq!(tick(0.30000000004), "0.3");
    assert_eq!(tick(97.5), "97.5");
    assert_eq!(tick(-2.5), "-2.5");
    assert_eq!(tick(0.0125), "0.0125");
    assert_eq!(tick(12345.0), "12345");
    assert_eq!(tick(2.5e-5), "2.5e-5");
    assert_eq!(tick(0.0), "0");
    assert_eq!(tick(10f64.powf(6.0)), "1e6");
    assert_eq!(tick(9.999999999e-7), "1e-6");
}

#[test]
fn paths_are_cut_at_the_window() {
    use tapir_plot::clip_path;
    let (x, y) = (0.0..1.0, 0.0..1.0);
    // In, out through the right edge, back in through the top, out of
    // sight, and a last segment wholly outside.
    let pts = [
        (0.5, 0.5),
        (1.5, 0.5),
        (0.5, 1.5),
        (0.5, 0.8),
        (0.2, 0.8),
        (5.0, 5.0),
        (6.0, 6.0),
    ];
    let pieces = clip_path(&pts, &x, &y);
    assert_eq!(pieces.len(), 2, "{pieces:?}");
    assert_eq!(pieces[0], vec![(0.5, 0.5), (1.0, 0.5)]);
    let p = &pieces[1];
    assert_eq!(p.first(), Some(&(0.5, 1.0)));
    assert_eq!(&p[1..3], &[(0.5, 0.8), (0.2, 0.8)]);
    // (0.2, 0.8) → (5, 5) leaves through the top edge at y = 1.
    let last = p[3];
    assert!((last.1 - 1.0).abs() < 1e-12 && (last.0 - (0.2 + 4.8 * 0.2 / 4.2)).abs() < 1e-12);
    assert!(clip_path(&[(2.0, 2.0), (3.0, 3.0)], &x, &y).is_empty());
}
