//! The network as a graph, like `keras.utils.plot_model(model, show_shapes=True)`: one box per
//! layer labelled `name (Type)` over its output shape, an arrow from each input to the layer.
//!
//! Three formats: Graphviz DOT ([`to_dot`], for `dot -Tpng` and friends), a self-contained SVG
//! ([`to_svg`]) and a PNG ([`render_png`]) with the text in the embedded font of [`super::text`]. [`write_plot`]
//! picks the format from the file's extension.
//!
//! The SVG and PNG share one layout: a layer's row is its depth (the longest path from an
//! input), so the layers of a chain stack vertically and parallel branches (the residual 1×1
//! convolutions of the Xception blocks) sit side by side in the next column. An arrow leaves the
//! bottom of its source, runs down its column to halfway above the target's row, across, and
//! into the target's top. A skip connection from the first column to a layer several rows
//! further down in the same column would cross the boxes in between; the models of this crate
//! have none.

use std::fmt::Write as _;
use std::path::Path;

use super::raster::fill_rect;
use super::text::{Align, Text, draw_text, size, text_width};
use super::{PlotError, write_png};
use crate::atomic::write_atomic;
use crate::graph::Model;

/// The extensions [`write_plot`] understands, for messages.
pub const SUPPORTED_EXTENSIONS: &str = ".png, .svg or .dot";

/// The two label lines of layer `i`: `name (Type)` and its output shape.
fn labels(model: &Model, i: usize) -> (String, String) {
    let l = &model.layers[i];
    (
        format!("{} ({})", l.name, l.kind.type_name()),
        l.output.to_string(),
    )
}

/// Graphviz DOT source of `model`: one box node per layer labelled `name (Type)` and the output
/// shape, one edge per layer input, top to bottom.
pub fn to_dot(model: &Model) -> String {
    let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut s = String::from("digraph model {\n");
    s.push_str("  graph [rankdir=TB];\n");
    s.push_str("  node [shape=box, style=\"rounded,filled\", fillcolor=\"#eef4fb\", fontname=\"Helvetica\"];\n");
    for i in 0..model.layers.len() {
        let (a, b) = labels(model, i);
        let _ = writeln!(s, "  n{i} [label=\"{}\\n{}\"];", esc(&a), esc(&b));
    }
    for (i, l) in model.layers.iter().enumerate() {
        for &j in &l.inputs {
            let _ = writeln!(s, "  n{j} -> n{i};");
        }
    }
    s.push_str("}\n");
    s
}

/// A box in pixels.
#[derive(Debug, Clone, Copy)]
struct Rect {
    x: i32,
    y: i32,
    w: i32,
    h: i32,
}

/// Spacing of a layout, in pixels.
struct Spacing {
    box_w: i32,
    box_h: i32,
    col_gap: i32,
    row_gap: i32,
    margin: i32,
}

/// The boxes of every layer and the canvas size.
struct Layout {
    boxes: Vec<Rect>,
    width: i32,
    height: i32,
    row_gap: i32,
}

fn layout(model: &Model, sp: &Spacing) -> Layout {
    let n = model.layers.len();
    let mut depth = vec![0usize; n];
    for (i, l) in model.layers.iter().enumerate() {
        // Inputs precede their consumers (the model is in topological order); a dangling index
        // is ignored rather than trusted.
        depth[i] = l
            .inputs
            .iter()
            .filter(|&&j| j < i)
            .map(|&j| depth[j] + 1)
            .max()
            .unwrap_or(0);
    }
    let rows = depth.iter().max().map_or(0, |d| d + 1);
    let mut used = vec![0usize; rows];
    let mut cols = 1;
    let mut boxes = Vec::with_capacity(n);
    for &d in &depth {
        let c = used[d];
        used[d] += 1;
        cols = cols.max(c + 1);
        boxes.push(Rect {
            x: sp.margin + c as i32 * (sp.box_w + sp.col_gap),
            y: sp.margin + d as i32 * (sp.box_h + sp.row_gap),
            w: sp.box_w,
            h: sp.box_h,
        });
    }
    let cols = cols as i32;
    let rows = rows.max(1) as i32;
    Layout {
        boxes,
        width: 2 * sp.margin + cols * sp.box_w + (cols - 1) * sp.col_gap,
        height: 2 * sp.margin + rows * sp.box_h + (rows - 1) * sp.row_gap,
        row_gap: sp.row_gap,
    }
}

impl Layout {
    /// The polyline of the edge from layer `from` to layer `to`, ending at the target's top.
    fn route(&self, from: usize, to: usize) -> Vec<(i32, i32)> {
        let (s, t) = (self.boxes[from], self.boxes[to]);
        let (sx, sy) = (s.x + s.w / 2, s.y + s.h);
        let (tx, ty) = (t.x + t.w / 2, t.y);
        if sx == tx {
            vec![(sx, sy), (tx, ty)]
        } else {
            let mid = ty - self.row_gap / 2;
            vec![(sx, sy), (sx, mid), (tx, mid), (tx, ty)]
        }
    }

    fn edges<'a>(&'a self, model: &'a Model) -> impl Iterator<Item = Vec<(i32, i32)>> + 'a {
        model.layers.iter().enumerate().flat_map(move |(i, l)| {
            l.inputs
                .iter()
                .filter(move |&&j| j < i)
                .map(move |&j| self.route(j, i))
        })
    }
}

/// Text escaped for XML character data and attribute values.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// A self-contained SVG of `model`: layers as boxes laid out by depth (parallel branches side
/// by side), labelled `name (Type)` over the output shape, with arrows from inputs.
pub fn to_svg(model: &Model) -> String {
    const FONT: i32 = 14;
    // Monospace advance is about 0.6 em.
    let char_w = FONT as f32 * 0.6;
    let longest = (0..model.layers.len())
        .map(|i| {
            let (a, b) = labels(model, i);
            a.chars().count().max(b.chars().count())
        })
        .max()
        .unwrap_or(0);
    let sp = Spacing {
        box_w: (longest as f32 * char_w).ceil() as i32 + 28,
        box_h: 2 * FONT + 26,
        col_gap: 40,
        row_gap: 34,
        margin: 20,
    };
    let lay = layout(model, &sp);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"DejaVu Sans Mono, Menlo, Consolas, monospace\" font-size=\"{FONT}\">",
        w = lay.width,
        h = lay.height
    );
    s.push_str("<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"8\" markerHeight=\"8\" orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#333333\"/></marker></defs>\n");
    let _ = writeln!(
        s,
        "<rect x=\"0\" y=\"0\" width=\"{}\" height=\"{}\" fill=\"#ffffff\"/>",
        lay.width, lay.height
    );
    for pts in lay.edges(model) {
        let p: Vec<String> = pts.iter().map(|(x, y)| format!("{x},{y}")).collect();
        let _ = writeln!(
            s,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"#333333\" stroke-width=\"1.5\" marker-end=\"url(#arrow)\"/>",
            p.join(" ")
        );
    }
    for (i, r) in lay.boxes.iter().enumerate() {
        let (a, b) = labels(model, i);
        let cx = r.x + r.w / 2;
        let _ = writeln!(
            s,
            "<g><title>{}</title><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"6\" fill=\"#eef4fb\" stroke=\"#333333\"/><text x=\"{cx}\" y=\"{}\" text-anchor=\"middle\">{}</text><text x=\"{cx}\" y=\"{}\" text-anchor=\"middle\" fill=\"#444444\">{}</text></g>",
            xml_escape(&model.layers[i].name),
            r.x,
            r.y,
            r.w,
            r.h,
            r.y + 10 + FONT,
            xml_escape(&a),
            r.y + 16 + 2 * FONT,
            xml_escape(&b)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Font size of the PNG's labels.
const PNG_PX: f32 = size::BODY;
/// The PNG's spacing unit in pixels.
const UNIT: i32 = 2;
const BOX_FILL: [u8; 3] = [238, 244, 251];
const LINE: [u8; 3] = [51, 51, 51];

/// Draws `model` as an RGB8 image (row-major, 3 bytes per pixel) with the same layout and labels
/// as [`to_svg`]; returns the buffer, its width and height.
pub fn render_png(model: &Model) -> (Vec<u8>, u32, u32) {
    let s = UNIT;
    let longest = (0..model.layers.len())
        .map(|i| {
            let (a, b) = labels(model, i);
            text_width(&a, PNG_PX).max(text_width(&b, PNG_PX))
        })
        .max()
        .unwrap_or(0);
    let line_h = PNG_PX as i32 + 2 * s;
    let sp = Spacing {
        box_w: longest + 12 * s,
        box_h: 2 * line_h + 6 * s,
        col_gap: 20 * s,
        row_gap: 17 * s,
        margin: 10 * s,
    };
    let lay = layout(model, &sp);
    let (w, h) = (lay.width.max(1) as u32, lay.height.max(1) as u32);
    let size = (w, h);
    let mut buf = vec![255u8; w as usize * h as usize * 3];
    draw_edges(&mut buf, size, &lay, model);
    for (i, r) in lay.boxes.iter().enumerate() {
        fill_rect(&mut buf, size, r.x, r.y, r.w, r.h, LINE);
        fill_rect(&mut buf, size, r.x + 1, r.y + 1, r.w - 2, r.h - 2, BOX_FILL);
        let (a, b) = labels(model, i);
        let (cx, top) = (r.x + r.w / 2, r.y + 3 * s);
        draw_text(
            &mut buf,
            size,
            &Text::new(cx, top, a, PNG_PX, Align::Center),
        );
        let shape = Text::new(cx, top + line_h, b, PNG_PX, Align::Center);
        draw_text(&mut buf, size, &shape);
    }
    (buf, w, h)
}

/// The arrows of `lay`: axis-aligned segments two pixels wide, and a head on the target's top.
fn draw_edges(buf: &mut [u8], size: (u32, u32), lay: &Layout, model: &Model) {
    for pts in lay.edges(model) {
        for seg in pts.windows(2) {
            let ((x0, y0), (x1, y1)) = (seg[0], seg[1]);
            let (xa, xb) = (x0.min(x1), x0.max(x1));
            let (ya, yb) = (y0.min(y1), y0.max(y1));
            fill_rect(buf, size, xa - 1, ya - 1, xb - xa + 2, yb - ya + 2, LINE);
        }
        if let Some(&(tx, ty)) = pts.last() {
            // A downward arrow head with its tip on the target's top edge.
            for k in 0..5 * UNIT {
                let half = k * 3 / 5;
                fill_rect(buf, size, tx - half - 1, ty - 1 - k, 2 * half + 2, 1, LINE);
            }
        }
    }
}

/// Writes the plot of `model` to `path` atomically, in the format its extension names: `.png`,
/// `.svg` or `.dot` (case-insensitive); any other is [`PlotError::UnsupportedExtension`].
pub fn write_plot(path: impl AsRef<Path>, model: &Model) -> Result<(), PlotError> {
    let path = path.as_ref();
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("png") => {
            let (rgb, w, h) = render_png(model);
            write_png(path, &rgb, w, h)
        }
        Some("svg") => Ok(write_atomic(path, to_svg(model).as_bytes())?),
        Some("dot") => Ok(write_atomic(path, to_dot(model).as_bytes())?),
        _ => Err(PlotError::UnsupportedExtension {
            path: path.to_path_buf(),
            supported: SUPPORTED_EXTENSIONS,
        }),
    }
}
