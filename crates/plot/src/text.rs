//! Text for plotters' bitmap backend without a system font.
//!
//! plotters 0.3 draws text through font-kit, which looks fonts up on the
//! system (fontconfig); a fresh machine or a CI container may have none.
//! [`Lettered`] wraps any backend and draws text itself with `ab_glyph`
//! from DejaVu Sans, compiled into the binary, so every chart has the same
//! labels everywhere.

use ab_glyph::{point, Font, FontRef, GlyphId, PxScale, ScaleFont};
use plotters::prelude::*;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind,
};

/// The bundled font, parsed by each [`Lettered`] (ttf-parser reads the
/// table directory up front and glyphs only when drawn).
pub(crate) fn font() -> FontRef<'static> {
    FontRef::try_from_slice(dejavu::sans::regular()).expect("DejaVu Sans is a valid TrueType font")
}

/// A backend whose text is drawn with the bundled font; everything else
/// goes to the wrapped backend unchanged.
pub struct Lettered<B> {
    inner: B,
    font: FontRef<'static>,
}

impl<B: DrawingBackend> Lettered<B> {
    /// Wraps `inner`.
    pub fn new(inner: B) -> Self {
        Lettered {
            inner,
            font: font(),
        }
    }

    /// The font scaled so that its em is `size` pixels (plotters' meaning
    /// of a font size).
    fn scale(&self, size: f64) -> PxScale {
        let em = self.font.units_per_em().unwrap_or(2048.0);
        PxScale::from(size as f32 * self.font.height_unscaled() / em)
    }

    /// Glyphs and their pen positions along the baseline, and the line's
    /// advance width.
    fn layout(&self, text: &str, scale: PxScale) -> (Vec<(GlyphId, f32)>, f32) {
        let sf = self.font.as_scaled(scale);
        let mut caret = 0.0f32;
        let mut last: Option<GlyphId> = None;
        let mut glyphs = Vec::with_capacity(text.len());
        for ch in text.chars() {
            let id = sf.glyph_id(ch);
            if let Some(prev) = last {
                caret += sf.kern(prev, id);
            }
            glyphs.push((id, caret));
            caret += sf.h_advance(id);
            last = Some(id);
        }
        (glyphs, caret)
    }

    /// Width and height (ascent − descent) in pixels of one line.
    pub fn text_size(&self, text: &str, size: f64) -> (u32, u32) {
        let scale = self.scale(size);
        let sf = self.font.as_scaled(scale);
        let (_, width) = self.layout(text, scale);
        (
            width.ceil() as u32,
            (sf.ascent() - sf.descent()).ceil() as u32,
        )
    }
}

impl<B: DrawingBackend> DrawingBackend for Lettered<B> {
    type ErrorType = B::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.inner.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.inner.present()
    }

    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.inner.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.inner.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.inner.draw_path(path, style)
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.inner.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.inner.fill_polygon(vert, style)
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        (w, h): (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.inner.blit_bitmap(pos, (w, h), src)
    }

    fn estimate_text_size<T: BackendTextStyle>(
        &self,
        text: &str,
        style: &T,
    ) -> Result<(u32, u32), DrawingErrorKind<B::ErrorType>> {
        Ok(self.text_size(text, style.size()))
    }

    fn draw_text<T: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &T,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        let color = style.color();
        if color.alpha == 0.0 || text.is_empty() {
            return Ok(());
        }
        let scale = self.scale(style.size());
        let (glyphs, width) = self.layout(text, scale);
        let sf = self.font.as_scaled(scale);
        let (ascent, height) = (sf.ascent(), sf.ascent() - sf.descent());
        // Offsets of the unrotated box's top left corner from the anchor.
        let dx = match style.anchor().h_pos {
            HPos::Left => 0.0,
            HPos::Center => -width / 2.0,
            HPos::Right => -width,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0.0,
            VPos::Center => -height / 2.0,
            VPos::Bottom => -height,
        };
        let trans = style.transform();
        let (w, h) = self.get_size();
        for (id, x) in glyphs {
            let glyph = id.with_scale_and_position(scale, point(x, ascent));
            let Some(outline) = self.font.outline_glyph(glyph) else {
                continue; // a space
            };
            let b = outline.px_bounds();
            let mut result = Ok(());
            outline.draw(|gx, gy, coverage| {
                if coverage <= 0.0 || result.is_err() {
                    return;
                }
                let lx = (b.min.x + gx as f32 + dx).round() as i32;
                let ly = (b.min.y + gy as f32 + dy).round() as i32;
                let (tx, ty) = trans.transform(lx, ly);
                let (px, py) = (pos.0 + tx, pos.1 + ty);
                if px >= 0 && py >= 0 && (px as u32) < w && (py as u32) < h {
                    let c = BackendColor {
                        alpha: color.alpha * coverage.min(1.0) as f64,
                        rgb: color.rgb,
                    };
                    result = self.inner.draw_pixel((px, py), c);
                }
            });
            result?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ink(buf: &[u8]) -> usize {
        buf.chunks(3).filter(|p| p != &[255, 255, 255]).count()
    }

    #[test]
    fn text_has_ink_and_a_size_that_grows_with_it() {
        let (w, h) = (200u32, 60u32);
        let mut buf = vec![255u8; (w * h * 3) as usize];
        {
            let root =
                Lettered::new(BitMapBackend::with_buffer(&mut buf, (w, h))).into_drawing_area();
            let style = ("sans-serif", 20).into_font().color(&BLACK);
            root.draw_text("Loss", &style, (10, 10)).unwrap();
            root.present().unwrap();
        }
        let dark = ink(&buf);
        assert!(dark > 50, "only {dark} pixels of text");
        // All ink lies inside the box the layout promised.
        let mut pixel = [0u8; 3];
        let lettered = Lettered::new(BitMapBackend::with_buffer(&mut pixel, (1, 1)));
        let (tw, th) = lettered.text_size("Loss", 20.0);
        for (i, p) in buf.chunks(3).enumerate() {
            if p != [255, 255, 255] {
                let (x, y) = ((i as u32) % w, (i as u32) / w);
                assert!((9..=11 + tw).contains(&x) && (9..=11 + th).contains(&y));
            }
        }
        assert!(lettered.text_size("Loss curve", 20.0).0 > tw);
        assert!(lettered.text_size("Loss", 40.0).1 > th);
        assert_eq!(lettered.text_size("", 20.0).0, 0);
    }
}
