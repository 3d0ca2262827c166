//! The preview grid and the model plot: sizes, content in every cell, graph structure, formats.

use gpucnn::graph::Model;
use gpucnn::model::{XceptionConfig, xception_mini};
use gpucnn::plot::PlotError;
use gpucnn::plot::grid::{GRID_CELL, cell_origin, grid_size, render_grid, write_grid_png};
use gpucnn::plot::model::{render_png, to_dot, to_svg, write_plot};

/// `n` images of `h`×`w`, image i a solid dark colour with a light diagonal.
fn images(n: usize, h: usize, w: usize) -> Vec<(Vec<f32>, String)> {
    (0..n)
        .map(|i| {
            let mut px = vec![0f32; h * w * 3];
            for y in 0..h {
                for x in 0..w {
                    let o = (y * w + x) * 3;
                    let v = if x == y { 250.0 } else { 20.0 * i as f32 };
                    px[o..o + 3].copy_from_slice(&[v, 40.0, 200.0 - v / 2.0]);
                }
            }
            (px, format!("Label {i}"))
        })
        .collect()
}

fn non_white_in(img: &image::RgbImage, x0: u32, y0: u32, side: u32) -> usize {
    non_white_rect(img, x0, y0, side, side)
}

fn non_white_rect(img: &image::RgbImage, x0: u32, y0: u32, w: u32, h: u32) -> usize {
    let mut n = 0;
    for y in y0..y0 + h {
        for x in x0..x0 + w {
            if img.get_pixel(x, y).0 != [255, 255, 255] {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn grid_png_has_the_stated_size_and_an_image_in_every_cell() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grid.png");
    let (w, h) = write_grid_png(&path, &images(9, 18, 12), 18, 12).unwrap();
    assert_eq!((w, h), grid_size(GRID_CELL));
    let img = image::open(&path).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (w, h));
    for i in 0..9 {
        let (x, y) = cell_origin(i, GRID_CELL);
        let n = non_white_in(&img, x, y, GRID_CELL);
        // A 12-wide image fills 2/3 of the square's width.
        assert!(
            n > (GRID_CELL * GRID_CELL / 2) as usize,
            "cell {i}: {n} pixels"
        );
        // The title band above the image holds text.
        let title = non_white_rect(&img, x, y - 22, GRID_CELL, 22);
        assert!(title > 50, "cell {i} has no title: {title}");
    }
    // The diagonal of image 0 is light: its top-left pixel is (250, 40, 75).
    let (x, y) = cell_origin(0, GRID_CELL);
    let left = x + (GRID_CELL - GRID_CELL * 12 / 18) / 2;
    assert_eq!(img.get_pixel(left, y).0, [250, 40, 75]);
}

#[test]
fn fewer_than_nine_images_leave_the_other_cells_white() {
    let cell = 30;
    let (buf, w, h) = render_grid(&images(4, 5, 5), 5, 5, cell);
    assert_eq!((w, h), grid_size(cell));
    let img = image::RgbImage::from_raw(w, h, buf).unwrap();
    for i in 0..9 {
        let (x, y) = cell_origin(i, cell);
        let n = non_white_in(&img, x, y, cell);
        if i < 4 {
            assert_eq!(n, (cell * cell) as usize, "cell {i}");
        } else {
            assert_eq!(n, 0, "cell {i}");
        }
    }
    // No images at all is a white canvas.
    let (empty, _, _) = render_grid(&[], 5, 5, cell);
    assert!(empty.iter().all(|&b| b == 255));
}

#[test]
fn a_wrong_image_size_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.png");
    let mut imgs = images(2, 4, 4);
    imgs[1].0.pop();
    let err = write_grid_png(&path, &imgs, 4, 4).unwrap_err();
    assert!(
        matches!(err, PlotError::ImageSize { index: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("bad.png"), "{err}");
    assert!(!path.exists());
}

fn model() -> Model {
    xception_mini(&XceptionConfig::default()).unwrap()
}

#[test]
fn dot_has_one_node_per_layer_and_one_edge_per_input() {
    let m = model();
    let dot = to_dot(&m);
    assert!(dot.starts_with("digraph model {") && dot.trim_end().ends_with('}'));
    let nodes = dot.lines().filter(|l| l.contains("[label=")).count();
    assert_eq!(nodes, m.layers.len());
    let edges: Vec<&str> = dot.lines().filter(|l| l.contains(" -> ")).collect();
    let inputs: usize = m.layers.iter().map(|l| l.inputs.len()).sum();
    assert_eq!(edges.len(), inputs);
    // The residual additions have two inputs each.
    let add = m.layers.iter().position(|l| l.name == "add").unwrap();
    let into_add = edges
        .iter()
        .filter(|e| e.trim().ends_with(&format!("-> n{add};")))
        .count();
    assert_eq!(into_add, 2);
    for l in &m.layers {
        let label = format!("{} ({})\\n{}", l.name, l.kind.type_name(), l.output);
        assert!(dot.contains(&label), "missing {label}");
    }
}

/// Checks that every element is closed in order; returns the number of elements.
fn balanced(xml: &str) -> usize {
    let mut stack: Vec<String> = Vec::new();
    let mut count = 0;
    let mut rest = xml;
    while let Some(start) = rest.find('<') {
        let end = rest[start..].find('>').expect("unterminated tag") + start;
        let tag = &rest[start + 1..end];
        assert!(!tag.contains('<'), "'<' inside a tag: {tag}");
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(
                stack.pop().as_deref(),
                Some(name.trim()),
                "mismatched </{name}>"
            );
        } else if !tag.ends_with('/') {
            stack.push(tag.split_whitespace().next().unwrap().to_string());
            count += 1;
        } else {
            count += 1;
        }
        let text = &rest[..start];
        assert!(!text.contains('>'), "unescaped '>' in text: {text}");
        rest = &rest[end + 1..];
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
    count
}

#[test]
fn svg_is_balanced_and_names_every_layer() {
    let m = model();
    let svg = to_svg(&m);
    assert!(svg.starts_with("<svg"));
    let elements = balanced(&svg);
    // At least a group, box and two texts per layer and a line per edge.
    assert!(elements > 4 * m.layers.len());
    assert_eq!(
        svg.matches("<polyline").count(),
        m.layers.iter().map(|l| l.inputs.len()).sum::<usize>()
    );
    for l in &m.layers {
        assert!(
            svg.contains(&format!("<title>{}</title>", l.name)),
            "{}",
            l.name
        );
        assert!(svg.contains(&format!("{} ({})", l.name, l.kind.type_name())));
    }
    // The residual convolutions sit beside the main chain, not on it.
    let first_x = |name: &str| {
        let at = svg.find(&format!("<title>{name}</title>")).unwrap();
        let x = &svg[at..];
        let x = &x[x.find("x=\"").unwrap() + 3..];
        x[..x.find('"').unwrap()].parse::<i32>().unwrap()
    };
    assert!(first_x("conv2d_1") > first_x("activation_1"));
    assert_eq!(first_x("add"), first_x("activation_1"));
}

#[test]
fn svg_escapes_markup_in_names() {
    let mut m = model();
    m.layers[0].name = "in<&>\"'".into();
    let svg = to_svg(&m);
    balanced(&svg);
    assert!(svg.contains("in&lt;&amp;&gt;&quot;&apos;"));
}

#[test]
fn png_svg_and_dot_are_written_by_extension() {
    let m = model();
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("model.PNG");
    write_plot(&png, &m).unwrap();
    let img = image::open(&png).unwrap().to_rgb8();
    let (_, w, h) = render_png(&m);
    assert_eq!(img.dimensions(), (w, h));
    // Taller than wide (a vertical chain), with boxes, lines and text.
    assert!(h > w, "{w}×{h}");
    let dark = img.pixels().filter(|p| p.0 == [51, 51, 51]).count();
    let text = img.pixels().filter(|p| p.0 == [30, 30, 30]).count();
    assert!(
        dark > 1000 && text > 1000,
        "{dark} line, {text} text pixels"
    );

    let svg = dir.path().join("model.svg");
    write_plot(&svg, &m).unwrap();
    assert_eq!(std::fs::read_to_string(&svg).unwrap(), to_svg(&m));
    let dot = dir.path().join("model.dot");
    write_plot(&dot, &m).unwrap();
    assert_eq!(std::fs::read_to_string(&dot).unwrap(), to_dot(&m));
}

#[test]
fn an_unknown_extension_is_an_error_naming_the_path_and_the_formats() {
    let m = model();
    let dir = tempfile::tempdir().unwrap();
    for name in ["model.jpg", "model"] {
        let path = dir.path().join(name);
        let err = write_plot(&path, &m).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, PlotError::UnsupportedExtension { .. }));
        assert!(
            msg.contains(name) && msg.contains(".png, .svg or .dot"),
            "{msg}"
        );
        assert!(!path.exists());
    }
}

#[test]
fn grid_titles_keep_their_case_commas_and_accents() {
    // The old built-in font drew every title lowercased, a comma as a tick and any accented
    // letter as the same hollow box: these three pairs drew identical pixels.
    let titled = |title: &str| {
        let mut imgs = images(1, 4, 4);
        imgs[0].1 = title.to_string();
        render_grid(&imgs, 4, 4, 60).0
    };
    assert_ne!(titled("Cat"), titled("cat"));
    assert_ne!(titled("Chats, tigrés"), titled("chats, tigres"));
    assert_ne!(titled("Ünïcode"), titled("ünïcode"));
    assert_ne!(titled("Ünïcode"), titled("Unicode"));
}
