//! The chart: one SVG drawn from the bench's own JSON lines (`--json`), one
//! panel per backend, per workload toast's time over each of its baselines.
//!
//! Three bars per workload, each a ratio where lower is better and 1 is
//! parity: toast ÷ the inline baseline (plain serde of the whole document and
//! the raw driver), toast ÷ the claim check written by hand (the asides of
//! `write_1k` and `read_1k`, the baselines of `scale` and `big_doc`), and for
//! the `scale` rows the growth of toast's cost per external from 1,000 to
//! the largest document. Lines mark parity and the targets.

use plotters::prelude::*;
use serde_json::Value;

use crate::{err, R};

/// The by-hand target of BENCH.md, drawn as a dashed line.
const BY_HAND_TARGET: f64 = 1.10;

/// The scale target of BENCH.md (cost per external, 100k ÷ 1k), drawn over
/// each growth bar.
const SCALE_TARGET: f64 = 1.20;

const WIDTH: u32 = 1200;
const PANEL_HEIGHT: u32 = 280;
const TITLE_HEIGHT: u32 = 84;
const TARGET_RED: RGBColor = RGBColor(0xd6, 0x27, 0x28);
/// The scale target's line: darker than its bars, so that it shows over them.
const SCALE_BROWN: RGBColor = RGBColor(0x8c, 0x4a, 0x00);
const GREY_TEXT: RGBColor = RGBColor(0x55, 0x55, 0x55);

/// The three series, in the order of their bars.
const SERIES: [(&str, RGBColor); 3] = [
    ("toast ÷ inline baseline", RGBColor(0x9e, 0x9e, 0x9e)),
    (
        "toast ÷ the claim check by hand",
        RGBColor(0x1f, 0x77, 0xb4),
    ),
    (
        "scale: cost per external, 100k ÷ 1k",
        RGBColor(0xff, 0x7f, 0x0e),
    ),
];

/// One workload of one backend, as the chart reads it from a JSON line.
struct Bar {
    bench: String,
    /// The ratios of [`SERIES`], each where the row has it.
    ratios: [Option<f64>; 3],
    skipped: bool,
}

fn number(v: &Value, field: &str) -> Option<f64> {
    v.get(field)
        .and_then(Value::as_f64)
        .filter(|x| x.is_finite())
}

/// A JSON line of the bench as a [`Bar`] of its backend.
fn bar_of(v: &Value) -> Option<(String, Bar)> {
    let backend = v.get("backend")?.as_str()?.to_owned();
    let bench = v.get("bench")?.as_str()?.to_owned();
    let ratio = number(v, "ratio");
    // The rows whose baseline is a claim check by hand: `scale` (as toast
    // writes it) and `big_doc` (ids in place of content ids).
    let by_hand_baseline = bench.starts_with("scale_") || bench == "big_doc";
    // Toast's time beside the asides, where they ran in a loop of their own.
    let aside_toast = number(v, "aside_toast_us").or_else(|| number(v, "toast_us"));
    let by_hand = if by_hand_baseline {
        ratio
    } else {
        number(v, "claim_check_us")
            .filter(|us| *us > 0.0)
            .and_then(|us| Some(aside_toast? / us))
    };
    let inline = if by_hand_baseline { None } else { ratio };
    let growth = number(v, "ratio_100k_to_1k");
    Some((
        backend,
        Bar {
            bench,
            ratios: [inline, by_hand, growth],
            skipped: v.get("skipped").is_some(),
        },
    ))
}

/// The backends in their order of appearance, each with its workloads.
fn panels(json_lines: &str) -> R<Vec<(String, Vec<Bar>)>> {
    let mut out: Vec<(String, Vec<Bar>)> = Vec::new();
    for (i, line) in json_lines.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value =
            serde_json::from_str(line).map_err(|e| format!("JSON line {}: {e}", i + 1))?;
        let Some((backend, bar)) = bar_of(&v) else {
            return Err(format!("JSON line {}: no backend or bench", i + 1));
        };
        match out.iter_mut().find(|(b, _)| *b == backend) {
            Some((_, bars)) => bars.push(bar),
            None => out.push((backend, vec![bar])),
        }
    }
    if out.is_empty() {
        return Err("no rows to draw".into());
    }
    Ok(out)
}

/// Draws the chart of `json_lines` (the bench's `--json` output) into the
/// SVG file `path`.
pub(crate) fn draw(json_lines: &str, path: &std::path::Path, source: &str) -> R<()> {
    let panels = panels(json_lines)?;
    let rows = u32::try_from(panels.len()).map_err(err)?;
    let height = TITLE_HEIGHT + rows * PANEL_HEIGHT;
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (head, body) = root.split_vertically(TITLE_HEIGHT);
    head.draw(&Text::new(
        "serde-toast: toast's time ÷ its baselines, per backend and workload (lower is better, 1 = parity)",
        (20, 12),
        ("sans-serif", 20).into_font(),
    ))
    .map_err(err)?;
    head.draw(&Text::new(
        format!(
            "from {source}; scale_*: toast ÷ by hand on the largest document, \
             and how its cost per external grew"
        ),
        (20, 38),
        ("sans-serif", 13).into_font().color(&GREY_TEXT),
    ))
    .map_err(err)?;
    legend(&head)?;
    let areas = body.split_evenly((panels.len(), 1));
    for ((backend, bars), area) in panels.iter().zip(&areas) {
        draw_panel(area, backend, bars)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

/// The key under the title: each series' colour, then the two target lines.
fn legend<DB: DrawingBackend>(head: &DrawingArea<DB, plotters::coord::Shift>) -> R<()>
where
    DB::ErrorType: 'static,
{
    let font = ("sans-serif", 13).into_font();
    let y = 66;
    let mut x = 20;
    for (name, color) in SERIES {
        head.draw(&Rectangle::new(
            [(x, y - 6), (x + 12, y + 6)],
            color.filled(),
        ))
        .map_err(err)?;
        head.draw(&Text::new(name, (x + 18, y - 7), font.clone()))
            .map_err(err)?;
        x += 30 + i32::try_from(name.chars().count()).map_err(err)? * 7;
    }
    let targets = [
        (format!("by-hand target {BY_HAND_TARGET:.2}"), TARGET_RED),
        (format!("scale target {SCALE_TARGET:.2}"), SCALE_BROWN),
    ];
    for (name, color) in targets {
        head.draw(&plotters::element::DashedPathElement::new(
            vec![(x, y), (x + 28, y)],
            6,
            4,
            color.stroke_width(2),
        ))
        .map_err(err)?;
        head.draw(&Text::new(name.clone(), (x + 34, y - 7), font.clone()))
            .map_err(err)?;
        x += 50 + i32::try_from(name.chars().count()).map_err(err)? * 7;
    }
    Ok(())
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    backend: &str,
    bars: &[Bar],
) -> R<()>
where
    DB::ErrorType: 'static,
{
    let n = bars.len();
    let highest = bars
        .iter()
        .flat_map(|b| b.ratios.iter().flatten().copied())
        .fold(1.5_f64, f64::max);
    let top = (highest * 1.2 * 4.0).ceil() / 4.0;
    let mut chart = ChartBuilder::on(area)
        .caption(backend, ("sans-serif", 17).into_font())
        .margin_left(10)
        .margin_right(20)
        .margin_bottom(6)
        .x_label_area_size(28)
        .y_label_area_size(48)
        .build_cartesian_2d(0.0..n as f64, 0.0..top)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("toast ÷")
        .y_labels(6)
        .y_label_formatter(&|y| format!("{y:.1}"))
        .light_line_style(RGBColor(0xee, 0xee, 0xee))
        .draw()
        .map_err(err)?;
    // Each group's bench under its centre, placed in the panel's pixels.
    let (left, up) = area.get_base_pixel();
    for (i, bar) in bars.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
        area.draw(&Text::new(
            bar.bench.clone(),
            (x - left, y - up + 6),
            ("sans-serif", 13).into_font().into_text_style(area).pos(
                plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Center,
                    plotters::style::text_anchor::VPos::Top,
                ),
            ),
        ))
        .map_err(err)?;
    }
    let width = 0.8 / SERIES.len() as f64;
    for (s, (_, color)) in SERIES.iter().enumerate() {
        let offset = 0.1 + width * s as f64;
        let rects = bars.iter().enumerate().filter_map(|(i, b)| {
            let v = b.ratios[s]?;
            let x = i as f64 + offset;
            Some(Rectangle::new(
                [(x, 0.0), (x + width * 0.92, v)],
                color.filled(),
            ))
        });
        chart.draw_series(rects).map_err(err)?;
        let values = bars.iter().enumerate().filter_map(|(i, b)| {
            let v = b.ratios[s]?;
            let x = i as f64 + offset + width * 0.46;
            Some(Text::new(
                format!("{v:.2}"),
                (x, v),
                ("sans-serif", 11).into_font().into_text_style(area).pos(
                    plotters::style::text_anchor::Pos::new(
                        plotters::style::text_anchor::HPos::Center,
                        plotters::style::text_anchor::VPos::Bottom,
                    ),
                ),
            ))
        });
        chart.draw_series(values).map_err(err)?;
    }
    let skipped = bars
        .iter()
        .enumerate()
        .filter(|(_, b)| b.skipped)
        .map(|(i, _)| {
            Text::new(
                "skipped",
                (i as f64 + 0.3, top * 0.5),
                ("sans-serif", 12)
                    .into_font()
                    .color(&RGBColor(0x99, 0x99, 0x99)),
            )
        });
    chart.draw_series(skipped).map_err(err)?;
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(0.0, 1.0), (n as f64, 1.0)],
            BLACK.stroke_width(1),
        )))
        .map_err(err)?;
    chart
        .draw_series(std::iter::once(plotters::element::DashedPathElement::new(
            vec![(0.0, BY_HAND_TARGET), (n as f64, BY_HAND_TARGET)],
            6,
            4,
            TARGET_RED.stroke_width(1),
        )))
        .map_err(err)?;
    // The scale target over each growth bar.
    let growth_targets = bars
        .iter()
        .enumerate()
        .filter(|(_, b)| b.ratios[2].is_some())
        .map(|(i, _)| {
            let x = i as f64 + 0.1 + width * 2.0;
            plotters::element::DashedPathElement::new(
                vec![(x, SCALE_TARGET), (x + width * 0.92, SCALE_TARGET)],
                5,
                3,
                SCALE_BROWN.stroke_width(2),
            )
        });
    chart.draw_series(growth_targets).map_err(err)?;
    Ok(())
}
