//! Plots as SVG written by hand (no plotting dependency): a line chart of accuracy
//! against a categorical x axis, one line and legend entry per series.

use std::fmt::Write as _;

use hyb_compiler::sema::sweep::SweepConfig;

const COLOURS: [&str; 8] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Accuracy (0–100 %) of each series at each x, x in order of first appearance.
pub fn recall_svg(config: &SweepConfig, points: Vec<(String, String, f64)>) -> String {
    let (width, height, left, right, top, bottom) = (640.0, 400.0, 60.0, 160.0, 30.0, 50.0);
    let mut xs: Vec<String> = Vec::new();
    let mut series: Vec<String> = Vec::new();
    for (s, x, _) in &points {
        if !xs.contains(x) {
            xs.push(x.clone());
        }
        if !series.contains(s) {
            series.push(s.clone());
        }
    }
    let plot_w = width - left - right;
    let plot_h = height - top - bottom;
    let x_at = |i: usize| left + if xs.len() > 1 { plot_w * i as f64 / (xs.len() - 1) as f64 } else { plot_w / 2.0 };
    let y_at = |accuracy: f64| top + plot_h * (1.0 - accuracy.clamp(0.0, 1.0));
    let x_name = config.axes.last().map_or("run", |a| a.name.as_str());
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    for tick in 0..=5 {
        let y = y_at(tick as f64 / 5.0);
        let _ = writeln!(svg, "<line x1=\"{left}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#ddd\"/>", left + plot_w);
        let _ = writeln!(svg, "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}%</text>", left - 6.0, y + 4.0, tick * 20);
    }
    for (i, x) in xs.iter().enumerate() {
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            x_at(i),
            top + plot_h + 18.0,
            escape(x)
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
        left + plot_w / 2.0,
        height - 10.0,
        escape(x_name)
    );
    let _ = writeln!(
        svg,
        "<text x=\"14\" y=\"{}\" transform=\"rotate(-90 14 {0})\" text-anchor=\"middle\">recall accuracy</text>",
        top + plot_h / 2.0
    );
    for (k, name) in series.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let coordinates: Vec<String> = xs
            .iter()
            .enumerate()
            .filter_map(|(i, x)| {
                points
                    .iter()
                    .find(|(s, px, _)| s == name && px == x)
                    .map(|(_, _, a)| format!("{},{}", x_at(i), y_at(*a)))
            })
            .collect();
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
            coordinates.join(" ")
        );
        for point in &coordinates {
            let (x, y) = point.split_once(',').expect("x,y");
            let _ = writeln!(svg, "<circle cx=\"{x}\" cy=\"{y}\" r=\"3\" fill=\"{colour}\"/>");
        }
        let legend_y = top + 16.0 * k as f64;
        let _ = writeln!(
            svg,
            "<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"3\" fill=\"{colour}\"/>",
            width - right + 16.0,
            legend_y + 4.0
        );
        let _ = writeln!(svg, "<text x=\"{}\" y=\"{}\">{}</text>", width - right + 34.0, legend_y + 9.0, escape(name));
    }
    svg.push_str("</svg>\n");
    svg
}
