//! The cost-growth plot: a self-contained SVG (no scripts, no downloads)
//! with throughput and p99 against subscribers per room and against rooms,
//! one line per server, log-scaled x axes.

use std::fmt::Write;

use serde_json::Value;

const WIDTH: f64 = 460.0;
const HEIGHT: f64 = 300.0;
const MARGIN: f64 = 60.0;
const SERIES: [(&str, &str); 2] = [("roomcast", "#1f77b4"), ("socket.io", "#ff7f0e")];

type Points = Vec<(f64, f64)>;

/// Points of one series: x from `x_key`, y from `pointer`, only where
/// `fixed_key` has the fixed value of that series.
fn series(result: &Value, target: &str, x_key: &str, fixed_key: &str, fixed: &Value, pointer: &str) -> Points {
    let mut points: Points = result["growth"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| &p[fixed_key] == fixed)
        .filter_map(|p| Some((p[x_key].as_f64()?, p[target].pointer(pointer)?.as_f64()?)))
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    points
}

fn panel(
    svg: &mut String,
    origin: (f64, f64),
    title: &str,
    x_label: &str,
    y_label: &str,
    lines: &[(&str, &str, Points)],
) {
    let (ox, oy) = origin;
    let all: Vec<(f64, f64)> = lines.iter().flat_map(|(_, _, p)| p.iter().copied()).collect();
    let x_max = all.iter().map(|p| p.0).fold(1.0, f64::max).max(10.0);
    let y_step = nice_step(all.iter().map(|p| p.1).fold(0.0, f64::max) / 4.0);
    let y_max = y_step * 4.0_f64.max((all.iter().map(|p| p.1).fold(0.0, f64::max) / y_step).ceil());
    let plot_w = WIDTH - MARGIN - 20.0;
    let plot_h = HEIGHT - MARGIN - 40.0;
    let x_of = |x: f64| ox + MARGIN + x.max(1.0).log10() / x_max.log10() * plot_w;
    let y_of = |y: f64| oy + 40.0 + plot_h - y / y_max * plot_h;
    let _ =
        write!(svg, r#"<text x="{}" y="{}" font-size="14" font-weight="bold">{title}</text>"#, ox + MARGIN, oy + 24.0);
    let _ = write!(
        svg,
        r##"<rect x="{}" y="{}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#888"/>"##,
        ox + MARGIN,
        oy + 40.0
    );
    let mut decade = 1.0;
    while decade <= x_max * 1.0001 {
        let x = x_of(decade);
        let _ =
            write!(svg, r##"<line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="#ddd"/>"##, oy + 40.0, oy + 40.0 + plot_h);
        let _ = write!(
            svg,
            r#"<text x="{x}" y="{}" font-size="11" text-anchor="middle">{decade}</text>"#,
            oy + 54.0 + plot_h
        );
        decade *= 10.0;
    }
    for i in 0..=(y_max / y_step).round() as usize {
        let value = y_step * i as f64;
        let y = y_of(value);
        let _ = write!(
            svg,
            r##"<line x1="{}" y1="{y}" x2="{}" y2="{y}" stroke="#eee"/>"##,
            ox + MARGIN,
            ox + MARGIN + plot_w
        );
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" font-size="11" text-anchor="end">{}</text>"#,
            ox + MARGIN - 4.0,
            y + 4.0,
            short(value)
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" font-size="12" text-anchor="middle">{x_label}</text>"#,
        ox + MARGIN + plot_w / 2.0,
        oy + HEIGHT - 4.0
    );
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" font-size="12" text-anchor="middle" transform="rotate(-90 {} {})">{y_label}</text>"#,
        ox + 14.0,
        oy + 40.0 + plot_h / 2.0,
        ox + 14.0,
        oy + 40.0 + plot_h / 2.0
    );
    for (index, (name, color, points)) in lines.iter().enumerate() {
        let path: Vec<String> = points.iter().map(|(x, y)| format!("{:.1},{:.1}", x_of(*x), y_of(*y))).collect();
        let _ = write!(svg, r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#, path.join(" "));
        for (x, y) in points {
            let _ = write!(svg, r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#, x_of(*x), y_of(*y));
        }
        let ly = oy + 56.0 + 16.0 * index as f64;
        let lx = ox + MARGIN + plot_w - 90.0;
        let _ = write!(svg, r#"<rect x="{lx}" y="{}" width="12" height="3" fill="{color}"/>"#, ly - 4.0);
        let _ = write!(svg, r#"<text x="{}" y="{ly}" font-size="11">{name}</text>"#, lx + 16.0);
    }
}

/// 1, 2 or 5 times a power of ten, at least `raw`: grid lines people can read.
fn nice_step(raw: f64) -> f64 {
    let raw = raw.max(1e-6);
    let decade = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * decade).find(|step| *step >= raw).unwrap_or(10.0 * decade)
}

fn short(value: f64) -> String {
    if value >= 1_000.0 {
        format!("{}k", value / 1000.0)
    } else if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

pub fn growth_svg(result: &Value) -> String {
    let scale = &result["scale"];
    let rooms_fixed = scale["growth_rooms_fixed"].clone();
    let subs_fixed = scale["growth_subs_fixed"].clone();
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif">"#,
        WIDTH * 2.0,
        HEIGHT * 2.0 + 30.0
    );
    let _ = write!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = write!(
        svg,
        r#"<text x="10" y="18" font-size="13">roomcast vs socket.io peer, cost growth (closed loop), {} on {} CPUs</text>"#,
        result["stamp"].as_str().unwrap_or(""),
        result["machine"]["cpus"]
    );
    let panels = [
        (
            "subs_per_room",
            "rooms",
            &rooms_fixed,
            "/figures/delivered_frames_per_s",
            format!("throughput, {rooms_fixed} rooms"),
            "subscribers per room",
            "frames/s",
        ),
        (
            "subs_per_room",
            "rooms",
            &rooms_fixed,
            "/figures/latency/p99_ms",
            format!("p99 latency, {rooms_fixed} rooms"),
            "subscribers per room",
            "ms",
        ),
        (
            "rooms",
            "subs_per_room",
            &subs_fixed,
            "/figures/delivered_frames_per_s",
            format!("throughput, {subs_fixed} subscribers per room"),
            "rooms",
            "frames/s",
        ),
        (
            "rooms",
            "subs_per_room",
            &subs_fixed,
            "/figures/latency/p99_ms",
            format!("p99 latency, {subs_fixed} subscribers per room"),
            "rooms",
            "ms",
        ),
    ];
    for (i, (x_key, fixed_key, fixed, pointer, title, x_label, y_label)) in panels.into_iter().enumerate() {
        let lines: Vec<(&str, &str, Points)> = SERIES
            .iter()
            .map(|(name, color)| (*name, *color, series(result, name, x_key, fixed_key, fixed, pointer)))
            .collect();
        let origin = ((i % 2) as f64 * WIDTH, 30.0 + (i / 2) as f64 * HEIGHT);
        panel(&mut svg, origin, &title, x_label, y_label, &lines);
    }
    svg.push_str("</svg>\n");
    svg
}
