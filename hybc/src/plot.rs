//! Plots as SVG written by hand (no plotting dependency): line charts with one line and
//! legend entry per series — the loss and evaluation curves of a run, and a sweep's
//! accuracy against a categorical axis.

use std::fmt::Write as _;

use hyb_compiler::ir::train::SweepConfig;

const COLOURS: [&str; 8] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];
const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 400.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 50.0;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A line chart: `series` of (x, y) points; x ticks at the given positions with labels.
pub struct Chart {
    pub x_label: String,
    pub y_label: String,
    pub y_range: (f64, f64),
    pub y_format: fn(f64) -> String,
    pub x_ticks: Vec<(f64, String)>,
    pub series: Vec<(String, Vec<(f64, f64)>)>,
}

impl Chart {
    pub fn svg(&self) -> String {
        let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
        let xs =
            self.series.iter().flat_map(|(_, p)| p.iter().map(|(x, _)| *x)).chain(self.x_ticks.iter().map(|t| t.0));
        let (x_min, x_max) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
        let x_span = if x_max > x_min { x_max - x_min } else { 1.0 };
        let x_at = |x: f64| LEFT + plot_w * (x - x_min) / x_span;
        let (y_min, y_max) = self.y_range;
        let y_at = |y: f64| TOP + plot_h * (1.0 - ((y - y_min) / (y_max - y_min)).clamp(0.0, 1.0));
        let mut svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" font-family=\"sans-serif\" font-size=\"12\">\n\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        );
        for tick in 0..=5 {
            let y = y_min + (y_max - y_min) * tick as f64 / 5.0;
            let py = y_at(y);
            let _ =
                writeln!(svg, "<line x1=\"{LEFT}\" y1=\"{py}\" x2=\"{}\" y2=\"{py}\" stroke=\"#ddd\"/>", LEFT + plot_w);
            let _ = writeln!(
                svg,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
                LEFT - 6.0,
                py + 4.0,
                (self.y_format)(y)
            );
        }
        for (x, label) in &self.x_ticks {
            let _ = writeln!(
                svg,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                x_at(*x),
                TOP + plot_h + 18.0,
                escape(label)
            );
        }
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            LEFT + plot_w / 2.0,
            HEIGHT - 10.0,
            escape(&self.x_label)
        );
        let _ = writeln!(
            svg,
            "<text x=\"16\" y=\"{0}\" transform=\"rotate(-90 16 {0})\" text-anchor=\"middle\">{1}</text>",
            TOP + plot_h / 2.0,
            escape(&self.y_label)
        );
        for (k, (name, points)) in self.series.iter().enumerate() {
            let colour = COLOURS[k % COLOURS.len()];
            let coordinates: Vec<(f64, f64)> = points.iter().map(|(x, y)| (x_at(*x), y_at(*y))).collect();
            let line: Vec<String> = coordinates.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            let _ = writeln!(
                svg,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
                line.join(" ")
            );
            if coordinates.len() <= 40 {
                for (x, y) in &coordinates {
                    let _ = writeln!(svg, "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\" fill=\"{colour}\"/>");
                }
            }
            let legend_y = TOP + 16.0 * k as f64;
            let _ = writeln!(
                svg,
                "<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"3\" fill=\"{colour}\"/>",
                WIDTH - RIGHT + 16.0,
                legend_y + 4.0
            );
            let _ =
                writeln!(svg, "<text x=\"{}\" y=\"{}\">{}</text>", WIDTH - RIGHT + 34.0, legend_y + 9.0, escape(name));
        }
        svg.push_str("</svg>\n");
        svg
    }
}

fn percent(y: f64) -> String {
    format!("{:.0}%", 100.0 * y)
}

/// A sweep's accuracy (series, x category, accuracy), x in order of first appearance.
pub fn recall_svg(config: &SweepConfig, points: Vec<(String, String, f64)>) -> String {
    let mut categories: Vec<String> = Vec::new();
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for (name, x, accuracy) in points {
        let index = categories.iter().position(|c| *c == x).unwrap_or_else(|| {
            categories.push(x);
            categories.len() - 1
        });
        match series.iter_mut().find(|(n, _)| *n == name) {
            Some((_, line)) => line.push((index as f64, accuracy)),
            None => series.push((name, vec![(index as f64, accuracy)])),
        }
    }
    Chart {
        x_label: config.axes.last().map_or("run".into(), |a| a.name.clone()),
        y_label: "recall accuracy".into(),
        y_range: (0.0, 1.0),
        y_format: percent,
        x_ticks: categories.into_iter().enumerate().map(|(i, c)| (i as f64, c)).collect(),
        series,
    }
    .svg()
}

/// A run's curves from its `metrics.jsonl` lines: the training loss, and each eval set's
/// accuracy. Returns (loss.svg, Some(eval.svg) when there were evaluations).
pub fn run_svgs(metrics: &str) -> (String, Option<String>) {
    let mut loss = Vec::new();
    let mut evals: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let mut perplexity = false;
    for line in metrics.lines() {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let (Some(step), eval) = (value["step"].as_f64(), value["eval"].as_str()) else { continue };
        let figure = value["accuracy"].as_f64().or(value["perplexity"].as_f64());
        perplexity |= value["perplexity"].is_f64();
        match (eval, value["loss"].as_f64(), figure) {
            (Some(name), _, Some(figure)) => match evals.iter_mut().find(|(n, _)| n == name) {
                Some((_, points)) => points.push((step, figure)),
                None => evals.push((name.to_string(), vec![(step, figure)])),
            },
            (None, Some(l), _) => loss.push((step, l)),
            _ => {}
        }
    }
    let last = loss.last().map_or(1.0, |p| p.0);
    let ticks = |last: f64| (0..=4).map(|i| (last * i as f64 / 4.0, format!("{:.0}", last * i as f64 / 4.0))).collect();
    let top = loss.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-3);
    let loss_svg = Chart {
        x_label: "step".into(),
        y_label: "training loss".into(),
        y_range: (0.0, top * 1.05),
        y_format: |y| format!("{y:.2}"),
        x_ticks: ticks(last),
        series: vec![("loss".into(), loss)],
    }
    .svg();
    let highest = evals.iter().flat_map(|(_, p)| p.iter().map(|q| q.1)).fold(0.0, f64::max);
    let eval_svg = (!evals.is_empty()).then(|| {
        let (y_label, y_range, y_format): (&str, (f64, f64), fn(f64) -> String) = if perplexity {
            ("perplexity / accuracy", (0.0, highest.max(1.0) * 1.05), |y| format!("{y:.1}"))
        } else {
            ("accuracy", (0.0, 1.0), percent)
        };
        Chart {
            x_label: "step".into(),
            y_label: y_label.into(),
            y_range,
            y_format,
            x_ticks: ticks(last),
            series: evals,
        }
        .svg()
    });
    (loss_svg, eval_svg)
}

/// A chart's SVG rasterised as PNG at twice its size, labels in a system sans-serif
/// font (DejaVu Sans where installed; without any font the labels are left out).
pub fn png(svg: &str) -> Result<Vec<u8>, String> {
    let mut options = resvg::usvg::Options::default();
    let fonts = options.fontdb_mut();
    fonts.load_system_fonts();
    let families: Vec<String> =
        fonts.faces().flat_map(|face| face.families.iter().map(|(name, _)| name.clone())).collect();
    if let Some(family) = families.iter().find(|f| *f == "DejaVu Sans").or(families.first()) {
        fonts.set_sans_serif_family(family.clone());
    }
    let tree = resvg::usvg::Tree::from_str(svg, &options).map_err(|e| format!("the chart's SVG: {e}"))?;
    let size = tree.size().to_int_size();
    let mut pixmap = resvg::tiny_skia::Pixmap::new(2 * size.width(), 2 * size.height()).ok_or("an empty chart")?;
    pixmap.fill(resvg::tiny_skia::Color::WHITE);
    resvg::render(&tree, resvg::tiny_skia::Transform::from_scale(2.0, 2.0), &mut pixmap.as_mut());
    pixmap.encode_png().map_err(|e| format!("PNG encoding: {e}"))
}

/// Writes `NAME.svg` and `NAME.png` of a chart into `dir`; returns both paths.
pub fn write_chart(dir: &std::path::Path, name: &str, svg: &str) -> Result<[std::path::PathBuf; 2], String> {
    let (svg_path, png_path) = (dir.join(format!("{name}.svg")), dir.join(format!("{name}.png")));
    std::fs::write(&svg_path, svg).map_err(|e| format!("cannot write `{}`: {e}", svg_path.display()))?;
    std::fs::write(&png_path, png(svg)?).map_err(|e| format!("cannot write `{}`: {e}", png_path.display()))?;
    Ok([svg_path, png_path])
}
