//! SVG bar charts of a [`Results`] document, drawn with plotters' SVG backend.
//!
//! Files (stable names, so that BENCHMARKS.md and the README can link them):
//! - `summary.svg`: every target, as iocport's ratio to what the target needs (1 is the target;
//!   longer bars are better), green when met, red when missed.
//! - `SUITE.svg`: throughput, one panel per case (its first rate metric), one bar per system.
//! - `SUITE-p99.svg`: 99th-percentile latency, one panel per case that has a p99 metric.
//!
//! Bars are horizontal, so system names read as plain labels; each panel has its own axis, scaled
//! to a readable unit, and every bar carries its value. Text is written as SVG `<text>` elements in
//! the `sans-serif` family: plotters' SVG backend needs no font library (its `ttf` feature, which
//! pulls in font-kit and fontconfig, is off), and the viewer picks the font.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::results::{Results, Verdict};
use super::{higher_is_better, show_value, unit_for, IOCPORT, IOCPORT_EPOLL};

/// What a chart shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChartKind {
    /// Every target's ratio.
    Summary,
    /// One suite's rates.
    Throughput,
    /// One suite's p99 latencies.
    P99,
}

/// A chart written by [`write_all`].
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ChartFile {
    /// The file name, e.g. `echo-p99.svg`.
    pub file: String,
    /// The suite it shows (`None` for the summary).
    pub suite: Option<String>,
    /// What it shows.
    pub kind: ChartKind,
    /// A one-line description (the image's alt text).
    pub title: String,
}

/// One panel: a case, its metric, and one bar per system.
struct Panel {
    title: String,
    metric: String,
    bars: Vec<(String, f64)>,
}

const WIDTH: u32 = 900;
const TITLE_H: u32 = 40;
const BAR_H: u32 = 26;
/// A panel's height besides its bars: caption, x axis and its description, margins.
const PANEL_EXTRA: u32 = 86;
const FONT: &str = "sans-serif";

const IOCPORT_COLOR: RGBColor = RGBColor(31, 119, 180);
/// iocport variants (`iocport-ring`, `iocport-reaper`, the submission modes): the same hue,
/// lighter.
const VARIANT_COLOR: RGBColor = RGBColor(120, 176, 222);
/// iocport on its other backend (`iocport-epoll`): a blue-green of its own, so that the two
/// backends tell apart at a glance among the variants.
const EPOLL_COLOR: RGBColor = RGBColor(23, 190, 207);
const PEER_COLORS: [RGBColor; 6] = [
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];
const MET_COLOR: RGBColor = RGBColor(44, 160, 44);
const MISSED_COLOR: RGBColor = RGBColor(214, 39, 40);

/// Writes every chart of `results` into `dir` and returns them, the summary first.
pub(crate) fn write_all(dir: &Path, results: &Results) -> Result<Vec<ChartFile>, String> {
    let mut files = Vec::new();
    let verdicts: Vec<(&str, &Verdict)> = results
        .runs
        .iter()
        .flat_map(|r| r.targets.iter().map(move |t| (r.suite.as_str(), t)))
        .filter(|(_, v)| v.ratio.is_some())
        .collect();
    if !verdicts.is_empty() {
        let file = ChartFile {
            file: "summary.svg".into(),
            suite: None,
            kind: ChartKind::Summary,
            title: "iocport against its targets (1 = the target; longer is better)".into(),
        };
        summary(&dir.join(&file.file), &file.title, &verdicts)?;
        files.push(file);
    }
    for run in &results.runs {
        let suite = run.suite.as_str();
        for kind in [ChartKind::Throughput, ChartKind::P99] {
            let panels = panels(results, suite, kind);
            if panels.is_empty() {
                continue;
            }
            let (file, title) = match kind {
                ChartKind::Throughput => (
                    format!("{suite}.svg"),
                    format!("{suite}: throughput (higher is better)"),
                ),
                _ => (
                    format!("{suite}-p99.svg"),
                    format!("{suite}: 99th-percentile latency (lower is better)"),
                ),
            };
            let systems = results.systems(suite);
            bars(&dir.join(&file), &title, &panels, &systems)?;
            files.push(ChartFile {
                file,
                suite: Some(suite.to_owned()),
                kind,
                title,
            });
        }
    }
    Ok(files)
}

/// The panels of `suite`'s chart of `kind`: per case, its first metric of that kind.
fn panels(results: &Results, suite: &str, kind: ChartKind) -> Vec<Panel> {
    let wanted = |metric: &str| match kind {
        ChartKind::Throughput => higher_is_better(metric),
        _ => metric.contains("p99"),
    };
    let systems = results.systems(suite);
    let mut out: Vec<Panel> = Vec::new();
    for r in results.suite_records(suite) {
        if !wanted(&r.metric) || out.iter().any(|p| p.title == r.case) {
            continue;
        }
        let bars = systems
            .iter()
            .filter_map(|s| {
                results
                    .suite_records(suite)
                    .find(|x| x.case == r.case && x.metric == r.metric && &x.system == s)
                    .map(|x| (s.clone(), x.value))
            })
            .collect();
        out.push(Panel {
            title: r.case.clone(),
            metric: r.metric.clone(),
            bars,
        });
    }
    out
}

/// The colour of `system`, given every system of the chart in order.
fn color(system: &str, systems: &[String]) -> RGBColor {
    if system == IOCPORT {
        return IOCPORT_COLOR;
    }
    if system == IOCPORT_EPOLL {
        return EPOLL_COLOR;
    }
    if system.starts_with("iocport") {
        return VARIANT_COLOR;
    }
    let peer = systems
        .iter()
        .filter(|s| !s.starts_with("iocport"))
        .position(|s| s == system)
        .unwrap_or(0);
    PEER_COLORS[peer % PEER_COLORS.len()]
}

/// What a metric counts, for an axis: `requests per second (k/s)`.
fn axis_desc(metric: &str, unit: &str) -> String {
    let what = match metric {
        "iops" => "reads per second",
        "bytes_per_s" => "copy throughput",
        m if m.ends_with("_per_s") => match m.trim_end_matches("_per_s") {
            "req" | "requests" => "requests per second",
            "packets" => "packets per second",
            "ops" => "operations per second",
            _ => "per second",
        },
        m if m.contains("p99") => "99th-percentile latency",
        _ => "time",
    };
    format!("{what} ({unit})")
}

/// A label width in pixels that fits `labels` at `size` px (an estimate: the viewer's font decides).
fn label_width(labels: impl Iterator<Item = usize>, size: u32, min: u32, max: u32) -> u32 {
    let longest = labels.max().unwrap_or(0) as u32;
    (longest * size * 6 / 10 + 16).clamp(min, max)
}

fn err(e: impl std::fmt::Display) -> String {
    format!("chart: {e}")
}

/// A chart of `panels` stacked vertically under `title`.
fn bars(path: &Path, title: &str, panels: &[Panel], systems: &[String]) -> Result<(), String> {
    let heights: Vec<u32> = panels
        .iter()
        .map(|p| PANEL_EXTRA + BAR_H * p.bars.len().max(1) as u32)
        .collect();
    let total = TITLE_H + heights.iter().sum::<u32>();
    let label_w = label_width(systems.iter().map(String::len), 13, 110, 260);
    let root = SVGBackend::new(path, (WIDTH, total)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut rest = root.titled(title, (FONT, 20)).map_err(err)?;
    for (panel, h) in panels.iter().zip(heights) {
        let (area, below) = rest.split_vertically(h);
        rest = below;
        panel_chart(&root, &area, panel, systems, label_w)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

/// One panel: horizontal bars, system names on the left, values at the bars' ends.
fn panel_chart(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    panel: &Panel,
    systems: &[String],
    label_w: u32,
) -> Result<(), String> {
    let max = panel.bars.iter().map(|b| b.1).fold(0.0, f64::max);
    let (div, unit) = unit_for(&panel.metric, max);
    // Room at the right for the value labels.
    let xmax = if max > 0.0 { max / div * 1.3 } else { 1.0 };
    let n = panel.bars.len();
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, (FONT, 15))
        .margin_left(8)
        .margin_right(16)
        .margin_top(4)
        .margin_bottom(6)
        .x_label_area_size(42)
        .y_label_area_size(label_w)
        .build_cartesian_2d(0.0..xmax, 0.0..n as f64)
        .map_err(err)?;
    let fmt = |x: &f64| {
        if xmax >= 10.0 {
            format!("{x:.0}")
        } else {
            format!("{x:.1}")
        }
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_labels(6)
        .x_label_formatter(&fmt)
        .x_desc(axis_desc(&panel.metric, unit))
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 13))
        .light_line_style(WHITE)
        .draw()
        .map_err(err)?;
    let value_style =
        TextStyle::from((FONT, 12).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    let name_style =
        TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
    for (i, (system, value)) in panel.bars.iter().enumerate() {
        // The first system (iocport) on top.
        let y = (n - 1 - i) as f64;
        let mut bar = Rectangle::new(
            [(0.0, y + 0.15), (value / div, y + 0.85)],
            color(system, systems).filled(),
        );
        bar.set_margin(0, 0, 0, 0);
        chart.draw_series(std::iter::once(bar)).map_err(err)?;
        chart
            .draw_series(std::iter::once(
                EmptyElement::at((value / div, y + 0.5))
                    + Text::new(
                        show_value(&panel.metric, *value),
                        (4, 0),
                        value_style.clone(),
                    ),
            ))
            .map_err(err)?;
        // The name, in the label area left of the axis (backend coordinates: `root` is unshifted).
        let (px, py) = chart.backend_coord(&(0.0, y + 0.5));
        root.draw_text(system, &name_style, (px - 8, py))
            .map_err(err)?;
    }
    Ok(())
}

/// The summary chart: one bar per target, iocport's ratio to what it needs.
fn summary(path: &Path, title: &str, verdicts: &[(&str, &Verdict)]) -> Result<(), String> {
    let labels: Vec<String> = verdicts
        .iter()
        .map(|(suite, v)| {
            // ">= 0.9x best of (fio-io_uring, fio-psync): fio-psync" -> ">= 0.9x best: fio-psync"
            let goal = match v.goal.split_once("): ") {
                Some((head, best)) => {
                    format!(
                        "{} best: {best}",
                        head.split(" best of").next().unwrap_or(head)
                    )
                }
                None => v.goal.clone(),
            };
            format!("{suite}: {} {goal}", v.case)
        })
        .collect();
    let n = verdicts.len();
    let height = TITLE_H + PANEL_EXTRA + BAR_H * n as u32;
    let label_w = label_width(labels.iter().map(String::len), 13, 200, 470);
    let ratios: Vec<f64> = verdicts
        .iter()
        .map(|(_, v)| v.ratio.unwrap_or(0.0))
        .collect();
    let xmax = ratios.iter().copied().fold(1.0, f64::max).min(10.0) * 1.25;
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let area = root.titled(title, (FONT, 20)).map_err(err)?;
    let mut chart = ChartBuilder::on(&area)
        .margin_left(8)
        .margin_right(16)
        .margin_top(8)
        .margin_bottom(6)
        .x_label_area_size(42)
        .y_label_area_size(label_w)
        .build_cartesian_2d(0.0..xmax, 0.0..n as f64)
        .map_err(err)?;
    let fmt = |x: &f64| format!("{x:.1}");
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_labels(8)
        .x_label_formatter(&fmt)
        .x_desc("iocport / target (rates), target / iocport (times)")
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 13))
        .light_line_style(WHITE)
        .draw()
        .map_err(err)?;
    let value_style =
        TextStyle::from((FONT, 12).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    let name_style =
        TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
    // The target line, under the bars and their labels.
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(1.0, 0.0), (1.0, n as f64)],
            BLACK.stroke_width(2),
        )))
        .map_err(err)?;
    for (i, ((_, v), label)) in verdicts.iter().zip(&labels).enumerate() {
        let y = (n - 1 - i) as f64;
        let ratio = ratios[i];
        let shown = ratio.min(xmax);
        let fill = if v.met() == Some(true) {
            MET_COLOR
        } else {
            MISSED_COLOR
        };
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(0.0, y + 0.15), (shown, y + 0.85)],
                fill.filled(),
            )))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(
                EmptyElement::at((shown, y + 0.5))
                    + Text::new(
                        format!("{ratio:.2}x {}", v.result),
                        (4, 0),
                        value_style.clone(),
                    ),
            ))
            .map_err(err)?;
        let (px, py) = chart.backend_coord(&(0.0, y + 0.5));
        root.draw_text(label, &name_style, (px - 8, py))
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::results::tests::{rec, run};
    use super::*;

    #[test]
    fn writes_svg_charts_with_the_system_names() {
        let dir = std::env::temp_dir().join(format!("iocport-chart-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut echo = run("echo", "d");
        echo.targets.push(Verdict {
            case: "echo_conn128".into(),
            metric: "req_per_s".into(),
            goal: ">= 1x tokio".into(),
            iocport: Some(138_100.0),
            needed: Some(138_300.0),
            ratio: Some(138_100.0 / 138_300.0),
            result: "MISSED by 0%".into(),
            per_round: None,
        });
        let results = Results {
            runs: vec![echo, run("nop", "d")],
            records: vec![
                rec("echo", "echo_conn128", IOCPORT, "req_per_s", 138_100.0),
                rec("echo", "echo_conn128", "tokio", "req_per_s", 138_300.0),
                rec("echo", "echo_conn128", IOCPORT_EPOLL, "req_per_s", 97_400.0),
                rec(
                    "echo",
                    "echo_conn128",
                    "thread-per-conn",
                    "req_per_s",
                    78_800.0,
                ),
                rec("echo", "echo_conn128", IOCPORT, "rtt_p99_ns", 3_495_000.0),
                rec("echo", "echo_conn128", "tokio", "rtt_p99_ns", 3_696_000.0),
                rec("nop", "nop_batch32", IOCPORT, "ops_per_s", 6.46e6),
                rec("nop", "nop_batch32", "io-uring", "ops_per_s", 12.92e6),
            ],
        };
        let files = write_all(&dir, &results).unwrap();
        let names: Vec<_> = files.iter().map(|f| f.file.as_str()).collect();
        assert_eq!(
            names,
            ["summary.svg", "echo.svg", "echo-p99.svg", "nop.svg"]
        );
        let echo_svg = std::fs::read_to_string(dir.join("echo.svg")).unwrap();
        assert!(echo_svg.starts_with("<svg"), "{}", &echo_svg[..80]);
        for name in [
            IOCPORT,
            IOCPORT_EPOLL,
            "97.4 k/s",
            "tokio",
            "thread-per-conn",
            "echo_conn128",
            "138.1 k/s",
        ] {
            assert!(echo_svg.contains(name), "echo.svg lacks {name}");
        }
        assert!(echo_svg.contains("requests per second (k/s)"));
        let p99 = std::fs::read_to_string(dir.join("echo-p99.svg")).unwrap();
        assert!(p99.contains("3495.0 us") && !p99.contains("thread-per-conn"));
        let summary = std::fs::read_to_string(dir.join("summary.svg")).unwrap();
        assert!(
            summary.contains("echo: echo_conn128 &gt;= 1x tokio")
                || summary.contains("echo: echo_conn128 >= 1x tokio"),
            "{summary}"
        );
        assert!(summary.contains("MISSED by 0%"));
        let nop = std::fs::read_to_string(dir.join("nop.svg")).unwrap();
        assert!(nop.contains("io-uring") && nop.contains("12.92 M/s"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
