//! Drawing primitives on an RGB8 buffer (row-major, 3 bytes per pixel) of a given `(width,
//! height)`: pixels, filled and outlined rectangles, thick straight lines. Everything is clipped
//! to the buffer, so a caller may draw partly off the canvas.

/// Sets pixel (x, y) to `color` if it lies on the canvas.
pub fn put(buf: &mut [u8], size: (u32, u32), x: i32, y: i32, color: [u8; 3]) {
    if x >= 0 && y >= 0 && (x as u32) < size.0 && (y as u32) < size.1 {
        let o = (y as usize * size.0 as usize + x as usize) * 3;
        buf[o..o + 3].copy_from_slice(&color);
    }
}

/// Fills a `w`×`h` rectangle at (x, y) with `color`, clipped to the canvas.
pub fn fill_rect(buf: &mut [u8], size: (u32, u32), x: i32, y: i32, w: i32, h: i32, color: [u8; 3]) {
    let (bw, bh) = (size.0 as i32, size.1 as i32);
    for yy in y.max(0)..(y + h).min(bh) {
        for xx in x.max(0)..(x + w).min(bw) {
            let o = (yy as usize * bw as usize + xx as usize) * 3;
            buf[o..o + 3].copy_from_slice(&color);
        }
    }
}

/// Outlines a `w`×`h` rectangle at (x, y) one pixel wide.
pub fn stroke_rect(
    buf: &mut [u8],
    size: (u32, u32),
    x: i32,
    y: i32,
    w: i32,
    h: i32,
    color: [u8; 3],
) {
    fill_rect(buf, size, x, y, w, 1, color);
    fill_rect(buf, size, x, y + h - 1, w, 1, color);
    fill_rect(buf, size, x, y, 1, h, color);
    fill_rect(buf, size, x + w - 1, y, 1, h, color);
}

/// A straight line `width` pixels thick from `a` to `b` (pixel coordinates).
pub fn line(
    buf: &mut [u8],
    size: (u32, u32),
    a: (f64, f64),
    b: (f64, f64),
    width: i32,
    color: [u8; 3],
) {
    let len = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
    let steps = (len * 2.0).ceil().max(1.0) as usize;
    let lo = -(width - 1) / 2;
    let hi = width / 2;
    for s in 0..=steps {
        let t = s as f64 / steps as f64;
        let x = (a.0 + (b.0 - a.0) * t).round() as i32;
        let y = (a.1 + (b.1 - a.1) * t).round() as i32;
        for dy in lo..=hi {
            for dx in lo..=hi {
                put(buf, size, x + dx, y + dy, color);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHITE: [u8; 3] = [255, 255, 255];
    const INK: [u8; 3] = [31, 119, 180];

    #[test]
    fn lines_and_rects_clip_at_the_edges() {
        let size = (10, 10);
        let mut buf = vec![255u8; 300];
        line(&mut buf, size, (-5.0, -5.0), (20.0, 20.0), 3, INK);
        stroke_rect(&mut buf, size, -3, -3, 30, 30, [90, 90, 90]);
        fill_rect(&mut buf, size, 8, -4, 10, 6, INK);
        // The diagonal passes through (5, 5).
        assert_eq!(&buf[(5 * 10 + 5) * 3..(5 * 10 + 5) * 3 + 3], &INK);
        assert_eq!(&buf[(9 * 10) * 3..(9 * 10) * 3 + 3], &WHITE);
        assert_eq!(&buf[9 * 3..9 * 3 + 3], &INK);
    }
}
