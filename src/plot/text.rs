//! Text for every picture, drawn with a real font: DejaVu Sans, embedded in the binary
//! (`assets/fonts/DejaVuSans.ttf`, license beside it), rasterised by `ab_glyph` with
//! anti-aliasing and kerning. Class names keep their case, punctuation and accents
//! ("Chats, tigrés", "Ünïcode"); a character the font lacks draws as its hollow `.notdef` box.
//!
//! No system font is read, so a picture is the same on every machine.

use std::sync::LazyLock;

use ab_glyph::{Font, FontRef, GlyphId, PxScale, ScaleFont, point};

/// The embedded font file.
static FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// The parsed font, shared by every drawing.
static FONT: LazyLock<FontRef<'static>> = LazyLock::new(|| {
    FontRef::try_from_slice(FONT_BYTES).expect("the embedded DejaVu Sans is a valid font")
});

/// The colour of all text (dark grey).
pub const TEXT_COLOR: [u8; 3] = [30, 30, 30];

/// Font sizes in pixels (a line's height, ascent to descent), shared by the pictures so that
/// they read alike.
pub mod size {
    /// Small labels: confusion-matrix columns and counts in narrow cells.
    pub const SMALL: f32 = 12.0;
    /// Axis numbers, legends, class names, box labels.
    pub const BODY: f32 = 18.0;
    /// Axis titles.
    pub const LABEL: f32 = 20.0;
    /// A panel's or a picture's title.
    pub const TITLE: f32 = 26.0;
}

/// Horizontal anchoring of a [`Text`] at its x.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// x is the left edge.
    Left,
    /// x is the centre.
    Center,
    /// x is the right edge.
    Right,
}

/// A line of text to draw.
#[derive(Debug, Clone)]
pub struct Text {
    /// Anchor x in pixels (see `align`).
    pub x: i32,
    /// Top of the line in pixels; the glyphs fit between `y` and `y + px`.
    pub y: i32,
    /// The string, drawn on one line.
    pub text: String,
    /// The line's height in pixels (see [`size`]).
    pub px: f32,
    /// Horizontal anchoring.
    pub align: Align,
}

impl Text {
    /// A [`TEXT_COLOR`] line with its top at `y`.
    pub fn new(x: i32, y: i32, text: impl Into<String>, px: f32, align: Align) -> Self {
        Self {
            x,
            y,
            text: text.into(),
            px,
            align,
        }
    }

    /// Width in pixels as drawn.
    pub fn width(&self) -> i32 {
        text_width(&self.text, self.px)
    }
}

/// The glyphs of `text` at `px`, each with its pen x from the start of the line (kerned).
fn layout(text: &str, px: f32) -> (Vec<(GlyphId, f32)>, f32) {
    let font = FONT.as_scaled(PxScale::from(px));
    let mut caret = 0.0;
    let mut prev: Option<GlyphId> = None;
    let mut glyphs = Vec::with_capacity(text.len());
    for c in text.chars() {
        let id = font.glyph_id(c);
        if let Some(p) = prev {
            caret += font.kern(p, id);
        }
        glyphs.push((id, caret));
        caret += font.h_advance(id);
        prev = Some(id);
    }
    (glyphs, caret)
}

/// Width in pixels of `text` drawn at `px` (the sum of its kerned advances, rounded up).
pub fn text_width(text: &str, px: f32) -> i32 {
    layout(text, px).1.ceil() as i32
}

/// Whether the embedded font has a glyph of its own for `c` (else `c` draws as a box).
pub fn has_glyph(c: char) -> bool {
    FONT.glyph_id(c).0 != 0
}

/// The longest prefix of `text` that fits in `max_width` pixels at `px`, with `…` appended when
/// it had to be cut.
pub fn fit_width(text: &str, px: f32, max_width: i32) -> String {
    if text_width(text, px) <= max_width {
        return text.to_string();
    }
    let mut cut: String = text.to_string();
    while cut.pop().is_some() {
        let candidate = format!("{}…", cut.trim_end());
        if text_width(&candidate, px) <= max_width {
            return candidate;
        }
    }
    String::new()
}

/// Draws `t` into an RGB8 buffer (row-major, 3 bytes per pixel) of `size` in [`TEXT_COLOR`],
/// blending each pixel by the glyph's coverage, clipped to the buffer.
pub fn draw_text(buf: &mut [u8], size: (u32, u32), t: &Text) {
    draw_text_colored(buf, size, t, TEXT_COLOR);
}

/// [`draw_text`] in `color`.
pub fn draw_text_colored(buf: &mut [u8], size: (u32, u32), t: &Text, color: [u8; 3]) {
    let (w, h) = (size.0 as i32, size.1 as i32);
    let (glyphs, width) = layout(&t.text, t.px);
    let x0 = t.x as f32
        - match t.align {
            Align::Left => 0.0,
            Align::Center => width / 2.0,
            Align::Right => width,
        };
    let scale = PxScale::from(t.px);
    let baseline = t.y as f32 + FONT.as_scaled(scale).ascent();
    for (id, dx) in glyphs {
        let glyph = id.with_scale_and_position(scale, point(x0 + dx, baseline));
        let Some(outline) = FONT.outline_glyph(glyph) else {
            continue; // a space
        };
        let bounds = outline.px_bounds();
        outline.draw(|gx, gy, coverage| {
            let x = bounds.min.x as i32 + gx as i32;
            let y = bounds.min.y as i32 + gy as i32;
            if !(0..w).contains(&x) || !(0..h).contains(&y) {
                return;
            }
            let o = (y as usize * w as usize + x as usize) * 3;
            let a = coverage.clamp(0.0, 1.0);
            for (dst, &fg) in buf[o..o + 3].iter_mut().zip(&color) {
                let bg = *dst as f32;
                *dst = (bg + (fg as f32 - bg) * a).round() as u8;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `text` drawn at 20 px on a white 200×30 canvas.
    fn render(text: &str) -> Vec<u8> {
        let size = (200, 30);
        let mut buf = vec![255u8; 200 * 30 * 3];
        draw_text(&mut buf, size, &Text::new(2, 2, text, 20.0, Align::Left));
        buf
    }

    fn ink(buf: &[u8]) -> usize {
        buf.chunks(3).filter(|p| p != &[255, 255, 255]).count()
    }

    #[test]
    fn case_commas_and_accents_are_drawn_as_written() {
        // The old bitmap font lowercased everything and drew accented letters as boxes.
        assert_ne!(render("Cat"), render("cat"));
        assert_ne!(render("Ü"), render("ü"));
        assert_ne!(render("é"), render("e"));
        assert_ne!(render("Chats, tigrés"), render("chats  tigres"));
        for text in ["Chats, tigrés", "Ünïcode", ","] {
            assert!(ink(&render(text)) > 0, "{text} drew nothing");
            assert!(text.chars().all(has_glyph), "{text}");
        }
        // Full-coverage pixels are exactly the text colour.
        assert!(render("Cat").chunks(3).any(|p| p == TEXT_COLOR));
        // Wider text for wider strings; right alignment puts the ink left of x.
        let w = text_width("Cat", 20.0);
        assert!(w > 20 && text_width("Chats, tigrés", 20.0) > text_width("Chats", 20.0));
        let mut right = vec![255u8; 200 * 30 * 3];
        let t = Text::new(198, 2, "Cat", 20.0, Align::Right);
        draw_text(&mut right, (200, 30), &t);
        let columns: Vec<i32> = right
            .chunks(3)
            .enumerate()
            .filter(|(_, p)| p != &[255, 255, 255])
            .map(|(i, _)| (i % 200) as i32)
            .collect();
        assert!(!columns.is_empty() && columns.iter().all(|&x| (198 - w - 1..=198).contains(&x)));
    }

    #[test]
    fn text_clips_at_every_edge_and_cuts_to_a_width() {
        let size = (20, 10);
        let mut buf = vec![255u8; 20 * 10 * 3];
        for (x, y, align) in [
            (-10, -5, Align::Left),
            (19, 8, Align::Center),
            (0, 0, Align::Right),
        ] {
            draw_text(
                &mut buf,
                size,
                &Text::new(x, y, "accuracy 0.95", 26.0, align),
            );
        }
        assert!(ink(&buf) > 0);
        let cut = fit_width("a very long class name", 18.0, 80);
        assert!(cut.ends_with('…') && text_width(&cut, 18.0) <= 80, "{cut}");
        assert_eq!(fit_width("Cats", 18.0, 80), "Cats");
    }
}
