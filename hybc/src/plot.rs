//! Plots as SVG written by hand (no plotting dependency): line charts with one line and
//! legend entry per series — the loss and evaluation curves of a run (one chart per kind
//! of figure: loss, accuracy, perplexity), and a sweep's accuracy against a categorical
//! axis, each point the mean over seeds with its 95 % interval as an error bar. Axes carry round tick values (1, 2 or 5 × 10ᵏ apart); the right margin widens to
//! fit the longest legend entry, up to a limit past which entries are shortened with `…`.

use std::fmt::Write as _;

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

/// About how wide a character of the 12-pixel labels is.
const CHAR_WIDTH: f64 = 6.8;
/// The widest right margin a legend may take.
const RIGHT_MAX: f64 = 300.0;
/// Error bars of several series at one x: this far apart, each cap this half-wide.
const BAR_GAP: f64 = 6.0;
const BAR_HALF: f64 = 4.0;

/// Round tick values covering `[low, high]`: about `count` of them, 1, 2 or 5 × 10ᵏ
/// apart, the first at or below `low` and the last at or above `high`.
pub fn nice_ticks(low: f64, high: f64, count: usize) -> Vec<f64> {
    let span = if high > low { high - low } else { high.abs().max(1.0) };
    let rough = span / count.max(1) as f64;
    let power = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * power).find(|s| *s >= rough).unwrap_or(10.0 * power);
    let first = (low / step).floor();
    let last = (high / step).ceil().max(first + 1.0);
    (first as i64..=last as i64).map(|i| i as f64 * step).collect()
}

/// A tick label with as many decimals as the step between ticks needs.
fn tick_label(value: f64, step: f64) -> String {
    let decimals = if step >= 1.0 { 0 } else { (-step.log10()).ceil() as usize };
    format!("{value:.decimals$}")
}

/// A legend entry of at most `chars` characters (`…` where it was cut).
fn fitted(name: &str, chars: usize) -> String {
    if name.chars().count() <= chars {
        return name.to_string();
    }
    name.chars().take(chars.saturating_sub(1)).chain(std::iter::once('…')).collect()
}

/// A line chart: `series` of (x, y) points; x ticks at the given positions with labels,
/// y ticks at `y_ticks` (the axis spans them).
pub struct Chart {
    pub x_label: String,
    pub y_label: String,
    pub y_ticks: Vec<f64>,
    pub y_format: fn(f64) -> String,
    pub x_ticks: Vec<(f64, String)>,
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    /// Error bars of each series (same order): (x, low, high); none for a series without.
    pub bars: Vec<Vec<(f64, f64, f64)>>,
    /// A dashed level across the plot with its label (a recall task's chance).
    pub level: Option<(f64, String)>,
}

impl Chart {
    pub fn svg(&self) -> String {
        let longest = self.series.iter().map(|(name, _)| name.chars().count()).max().unwrap_or(0);
        let right = (40.0 + CHAR_WIDTH * longest as f64).clamp(RIGHT, RIGHT_MAX);
        let legend_chars = ((right - 40.0) / CHAR_WIDTH) as usize;
        let (plot_w, plot_h) = (WIDTH - LEFT - right, HEIGHT - TOP - BOTTOM);
        let xs =
            self.series.iter().flat_map(|(_, p)| p.iter().map(|(x, _)| *x)).chain(self.x_ticks.iter().map(|t| t.0));
        let (x_min, x_max) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
        let x_span = if x_max > x_min { x_max - x_min } else { 1.0 };
        // Error bars of several series at one x stand side by side (`dodge`): the x
        // range is inset by their half-width, so the outermost stay inside the plot.
        let dodge = |k: usize| BAR_GAP * (k as f64 - (self.series.len() as f64 - 1.0) / 2.0);
        let inset = if self.bars.iter().any(|bars| !bars.is_empty()) { dodge(0).abs() + BAR_HALF } else { 0.0 };
        let x_at = |x: f64| LEFT + inset + (plot_w - 2.0 * inset) * (x - x_min) / x_span;
        let y_min = self.y_ticks.first().copied().unwrap_or(0.0);
        let y_max = self.y_ticks.last().copied().filter(|top| *top > y_min).unwrap_or(y_min + 1.0);
        let y_at = |y: f64| TOP + plot_h * (1.0 - ((y - y_min) / (y_max - y_min)).clamp(0.0, 1.0));
        let mut svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" font-family=\"sans-serif\" font-size=\"12\">\n\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        );
        for &y in &self.y_ticks {
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
        if let Some((y, label)) = &self.level {
            let py = y_at(*y);
            let _ = writeln!(
                svg,
                "<line x1=\"{LEFT}\" y1=\"{py:.1}\" x2=\"{0}\" y2=\"{py:.1}\" stroke=\"#888\" stroke-dasharray=\"4 4\"/>\n\
                 <text x=\"{0}\" y=\"{1:.1}\" text-anchor=\"end\" fill=\"#666\">{2}</text>",
                LEFT + plot_w,
                py - 4.0,
                escape(label)
            );
        }
        for (k, (name, points)) in self.series.iter().enumerate() {
            let colour = COLOURS[k % COLOURS.len()];
            // Past the palette, the colours again with dashes: no two series look alike.
            let dash = if k >= COLOURS.len() { " stroke-dasharray=\"6 3\"" } else { "" };
            let coordinates: Vec<(f64, f64)> = points.iter().map(|(x, y)| (x_at(*x), y_at(*y))).collect();
            let line: Vec<String> = coordinates.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            let _ = writeln!(
                svg,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"{dash} points=\"{}\"/>",
                line.join(" ")
            );
            for &(x, low, high) in self.bars.get(k).map_or(&[][..], Vec::as_slice) {
                let (px, top, bottom) = (x_at(x) + dodge(k), y_at(high), y_at(low));
                let _ = writeln!(
                    svg,
                    "<path d=\"M{px:.1},{top:.1}V{bottom:.1}M{:.1},{top:.1}h{w}M{:.1},{bottom:.1}h{w}\" stroke=\"{colour}\" stroke-width=\"1.5\" fill=\"none\"/>",
                    px - BAR_HALF,
                    px - BAR_HALF,
                    w = 2.0 * BAR_HALF
                );
            }
            if coordinates.len() <= 40 {
                for (x, y) in &coordinates {
                    let _ = writeln!(svg, "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\" fill=\"{colour}\"/>");
                }
            }
            let legend_y = TOP + 16.0 * k as f64;
            let _ = writeln!(
                svg,
                "<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"{colour}\" stroke-width=\"3\"{dash}/>",
                WIDTH - right + 12.0,
                legend_y + 5.5,
                WIDTH - right + 30.0
            );
            let label = escape(&fitted(name, legend_chars));
            let _ = writeln!(svg, "<text x=\"{}\" y=\"{}\">{label}</text>", WIDTH - right + 34.0, legend_y + 9.0);
        }
        svg.push_str("</svg>\n");
        svg
    }
}

fn percent(y: f64) -> String {
    format!("{:.0}%", 100.0 * y)
}

/// One point of a sweep's chart: its line, its category on the x axis, the mean and
/// the 95 % interval (none with one seed).
pub struct Point {
    pub series: String,
    pub x: String,
    pub mean: f64,
    pub interval: Option<(f64, f64)>,
}

/// A sweep's figure against a categorical axis (categories in ascending order where
/// every one is a number — learning rates, attention periods — else in order of first
/// appearance; lines in order of first appearance), with error bars; accuracy in
/// percent on 0–100 % (with the task's `chance` as a dashed level where known), else (a
/// perplexity or a loss) over the range the means and intervals span, so differences of
/// a few tenths show.
pub fn sweep_svg(x_label: &str, y_label: &str, accuracy: bool, chance: Option<f64>, points: Vec<Point>) -> String {
    let mut categories: Vec<String> = Vec::new();
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let mut bars: Vec<Vec<(f64, f64, f64)>> = Vec::new();
    let top = points.iter().map(|p| p.interval.map_or(p.mean, |i| i.1)).fold(0.0, f64::max);
    let bottom = points.iter().map(|p| p.interval.map_or(p.mean, |i| i.0)).fold(top, f64::min);
    for point in &points {
        if !categories.contains(&point.x) {
            categories.push(point.x.clone());
        }
    }
    let numbers: Option<Vec<f64>> = categories.iter().map(|c| c.parse::<f64>().ok()).collect();
    if let Some(numbers) = numbers {
        let mut paired: Vec<(f64, String)> = numbers.into_iter().zip(categories).collect();
        paired.sort_by(|a, b| a.0.total_cmp(&b.0));
        categories = paired.into_iter().map(|(_, c)| c).collect();
    }
    for point in points {
        let index = categories.iter().position(|c| *c == point.x).expect("every category listed") as f64;
        let line = series.iter().position(|(n, _)| *n == point.series).unwrap_or_else(|| {
            series.push((point.series.clone(), Vec::new()));
            bars.push(Vec::new());
            series.len() - 1
        });
        series[line].1.push((index, point.mean));
        bars[line].extend(point.interval.map(|(low, high)| (index, low, high)));
    }
    let (y_ticks, y_format): (Vec<f64>, fn(f64) -> String) =
        if accuracy { (nice_ticks(0.0, 1.0, 5), percent) } else { (nice_ticks(bottom, top.max(1e-3), 5), loss_format) };
    Chart {
        x_label: x_label.into(),
        y_label: y_label.into(),
        y_ticks,
        y_format,
        x_ticks: categories.into_iter().enumerate().map(|(i, c)| (i as f64, c)).collect(),
        series,
        bars,
        level: chance.filter(|_| accuracy).map(|c| (c, format!("chance {:.1} %", 100.0 * c))),
    }
    .svg()
}

/// A run's curves from its `metrics.jsonl` lines, one chart per kind of figure: the
/// training loss (`loss`: `train/loss`), each eval set's accuracy (`eval`:
/// `eval/<task>/accuracy`) and perplexity (`perplexity`: `eval/<task>/perplexity`), the
/// last two only when there were such evaluations. Logs written before the keys were
/// namespaced read the same.
pub fn run_svgs(metrics: &str) -> Vec<(&'static str, String)> {
    let mut loss = Vec::new();
    let (mut accuracy, mut perplexity): (Series, Series) = (Vec::new(), Vec::new());
    for line in metrics.lines() {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let Some(step) = value["step"].as_f64() else { continue };
        loss.extend(hyb_train::run::train_loss(&value).map(|l| (step, l)));
        for (tag, figure) in hyb_train::tensorboard::scalars(&value) {
            let Some(rest) = tag.strip_prefix("eval/") else { continue };
            if let Some(name) = rest.strip_suffix("/accuracy") {
                add(&mut accuracy, name, (step, f64::from(figure)));
            }
            if let Some(name) = rest.strip_suffix("/perplexity") {
                add(&mut perplexity, name, (step, f64::from(figure)));
            }
        }
    }
    let last = loss.last().map_or(1.0, |p| p.0);
    let x_ticks: Vec<(f64, String)> =
        nice_ticks(0.0, last, 5).into_iter().filter(|x| *x <= last * 1.0001).map(|x| (x, tick_label(x, 1.0))).collect();
    let chart = |y_label: &str, series: Series, y_ticks: Vec<f64>, y_format: fn(f64) -> String| {
        let x_ticks = x_ticks.clone();
        let bars = Vec::new();
        Chart { x_label: "step".into(), y_label: y_label.into(), y_ticks, y_format, x_ticks, series, bars, level: None }
            .svg()
    };
    let top = |series: &Series| series.iter().flat_map(|(_, p)| p.iter().map(|q| q.1)).fold(0.0, f64::max);
    let mut charts = Vec::new();
    let loss_top = loss.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-3);
    let loss_ticks = nice_ticks(0.0, loss_top, 5);
    charts.push(("loss", chart("training loss", vec![("loss".into(), loss)], loss_ticks, loss_format)));
    if !accuracy.is_empty() {
        charts.push(("eval", chart("accuracy", accuracy, nice_ticks(0.0, 1.0, 5), percent)));
    }
    if !perplexity.is_empty() {
        let ticks = nice_ticks(0.0, top(&perplexity).max(1.0), 5);
        charts.push(("perplexity", chart("perplexity", perplexity, ticks, loss_format)));
    }
    charts
}

/// Named lines of (x, y) points.
type Series = Vec<(String, Vec<(f64, f64)>)>;

/// Adds `point` to the line `name` of `series`, making it on first use.
fn add(series: &mut Series, name: &str, point: (f64, f64)) {
    match series.iter_mut().find(|(n, _)| n == name) {
        Some((_, points)) => points.push(point),
        None => series.push((name.to_string(), vec![point])),
    }
}

/// A loss or perplexity tick: no more decimals than a round value needs.
fn loss_format(y: f64) -> String {
    let text = format!("{y:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Six series' error bars at the axis's last value stay left of the legend (they
    /// reached into it, `families.hyb`'s chart), and the first's right of the y axis.
    #[test]
    fn error_bars_stay_inside_the_plot() {
        let series: Vec<(String, Vec<(f64, f64)>)> =
            (0..6).map(|k| (format!("mixer{k}"), vec![(0.0, 0.2), (1.0, 0.8)])).collect();
        let bars = (0..6).map(|_| vec![(0.0, 0.1, 0.3), (1.0, 0.7, 0.9)]).collect();
        let chart = Chart {
            x_label: "attn_every".into(),
            y_label: "accuracy".into(),
            y_ticks: vec![0.0, 0.5, 1.0],
            y_format: percent,
            x_ticks: vec![(0.0, "2".into()), (1.0, "4".into())],
            series,
            bars,
            level: None,
        };
        let svg = chart.svg();
        let right = (40.0 + CHAR_WIDTH * 6.0).clamp(RIGHT, RIGHT_MAX);
        let (plot_left, plot_right) = (LEFT, WIDTH - right);
        let bar_edges: Vec<(f64, f64)> = svg
            .lines()
            .filter(|line| line.starts_with("<path d=\"M"))
            .map(|line| {
                let x: f64 = line["<path d=\"M".len()..].split(',').next().expect("x").parse().expect("a number");
                (x - BAR_HALF, x + BAR_HALF)
            })
            .collect();
        assert_eq!(bar_edges.len(), 12, "{svg}");
        for (low, high) in bar_edges {
            assert!(
                low >= plot_left && high <= plot_right,
                "a bar from {low} to {high} outside {plot_left}–{plot_right}"
            );
        }
    }

    /// Twelve series (a six-mixer grid's search chart) look pairwise different: past
    /// the palette's eight colours the lines are dashed.
    #[test]
    fn more_series_than_colours_stay_distinct() {
        let points = (0..12)
            .flat_map(|k| {
                ["1e-3", "3e-3"].map(|x| Point { series: format!("cell{k}"), x: x.into(), mean: 0.5, interval: None })
            })
            .collect();
        let svg = sweep_svg("learning rate", "held-out", true, Some(0.125), points);
        assert!(svg.contains("stroke-dasharray=\"4 4\"") && svg.contains(">chance 12.5 %</text>"), "{svg}");
        let styles: Vec<&str> = svg
            .lines()
            .filter(|line| line.starts_with("<polyline"))
            .map(|line| line.split(" points=").next().expect("a style"))
            .collect();
        assert_eq!(styles.len(), 12, "{svg}");
        let distinct: std::collections::HashSet<&&str> = styles.iter().collect();
        assert_eq!(distinct.len(), 12, "{styles:?}");
    }

    /// Numeric categories stand in ascending order whatever order the points come in;
    /// names in order of first appearance.
    #[test]
    fn numeric_categories_ascend() {
        let point = |series: &str, x: &str| Point { series: series.into(), x: x.into(), mean: 0.5, interval: None };
        let order = |svg: &str, labels: &[&str]| {
            let at: Vec<usize> = labels.iter().map(|l| svg.find(&format!(">{l}</text>")).expect("a tick")).collect();
            at.windows(2).all(|w| w[0] < w[1])
        };
        let rates =
            sweep_svg("lr", "acc", true, None, vec![point("b", "1e-3"), point("a", "3.16e-4"), point("a", "1e-3")]);
        assert!(order(&rates, &["3.16e-4", "1e-3"]), "{rates}");
        let names = sweep_svg("mixer", "acc", true, None, vec![point("a", "gla"), point("a", "gdn")]);
        assert!(order(&names, &["gla", "gdn"]), "{names}");
    }

    /// A perplexity chart's axis spans the figures (5.5–7.6), not 0 up: the lowest tick
    /// at or below the lowest figure and above 0.
    #[test]
    fn a_perplexity_axis_spans_its_figures() {
        let point = |series: &str, mean: f64| Point {
            series: series.into(),
            x: "4".into(),
            mean,
            interval: Some((mean - 0.1, mean + 0.1)),
        };
        let svg =
            sweep_svg("attn_every", "perplexity", false, Some(0.5), vec![point("gdn", 5.57), point("retnet", 7.61)]);
        assert!(!svg.contains("chance"), "no chance on a perplexity axis: {svg}");
        let labels: Vec<f64> = svg
            .lines()
            .filter(|line| line.contains("text-anchor=\"end\""))
            .filter_map(|line| line.split('>').nth(1)?.split('<').next()?.parse().ok())
            .collect();
        let lowest = labels.iter().copied().fold(f64::INFINITY, f64::min);
        assert!(lowest > 0.0 && lowest <= 5.47, "ticks {labels:?}");
    }
}
