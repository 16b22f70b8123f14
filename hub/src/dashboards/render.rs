//! Panels drawn on the server as SVG (no JavaScript, no CDN: the pages work offline in a
//! village office): numbers in Indonesian style, readable colours, a `<title>` on every mark
//! for the exact value, and the rows as a table behind every chart.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::{Map, Value};

use super::definition::{Panel, Visual};

/// Okabe–Ito: told apart by people with the common colour-vision deficiencies.
pub const PALETTE: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
];

/// One row of a panel's query, as JSON.
pub type Row = Map<String, Value>;

/// Escapes text for HTML and SVG.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A number in Indonesian style: `.` between thousands, `,` before decimals (`1.063.932`,
/// `66,7`). Whole numbers show no decimals; others at most `decimals`.
pub fn number(value: f64, decimals: usize) -> String {
    if !value.is_finite() {
        return "–".into();
    }
    let rounded = format!("{:.*}", decimals, value.abs());
    let (whole, fraction) = match rounded.split_once('.') {
        Some((w, f)) => (w.to_string(), f.trim_end_matches('0').to_string()),
        None => (rounded.clone(), String::new()),
    };
    let mut grouped = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push('.');
        }
        grouped.push(digit);
    }
    let sign = if value < 0.0 && (whole != "0" || !fraction.is_empty()) {
        "-"
    } else {
        ""
    };
    if fraction.is_empty() {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped},{fraction}")
    }
}

/// A value with its unit: `66,7 %`, `1.250 jiwa`.
pub fn with_unit(value: f64, unit: Option<&str>) -> String {
    match unit {
        Some(u) if !u.is_empty() => format!("{} {u}", number(value, 1)),
        _ => number(value, 1),
    }
}

/// A cell as text (numbers in Indonesian style).
pub fn cell_text(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "–".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.as_f64().map_or_else(|| n.to_string(), |f| number(f, 2)),
        Some(Value::Bool(b)) => if *b { "ya" } else { "tidak" }.into(),
        Some(other) => other.to_string(),
    }
}

/// A cell as a number, when it is one (or text that reads as one).
pub fn cell_number(value: Option<&Value>) -> Option<f64> {
    match value? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// The columns of `rows`, in the first row's order.
pub fn columns(rows: &[Row]) -> Vec<String> {
    rows.first()
        .map(|r| r.keys().cloned().collect())
        .unwrap_or_default()
}

/// The rows as an HTML table.
pub fn table(rows: &[Row]) -> String {
    if rows.is_empty() {
        return "<p class=\"empty\">Tidak ada data untuk pilihan ini.</p>".into();
    }
    let columns = columns(rows);
    let mut html = String::from("<div class=\"table-wrap\"><table><thead><tr>");
    for c in &columns {
        let _ = write!(html, "<th scope=\"col\">{}</th>", escape(c));
    }
    html.push_str("</tr></thead><tbody>");
    for row in rows {
        html.push_str("<tr>");
        for c in &columns {
            let value = row.get(c);
            let class = if matches!(value, Some(Value::Number(_))) {
                " class=\"num\""
            } else {
                ""
            };
            let _ = write!(html, "<td{class}>{}</td>", escape(&cell_text(value)));
        }
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table></div>");
    html
}

/// The rows as CSV (RFC 4180; numbers as the query gave them).
pub fn csv(rows: &[Row]) -> String {
    let columns = columns(rows);
    let quote = |text: &str| {
        let text = crate::results::neutralize_csv_cell(text);
        if text.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", text.replace('"', "\"\""))
        } else {
            text.to_string()
        }
    };
    let mut out = columns
        .iter()
        .map(|c| quote(c))
        .collect::<Vec<_>>()
        .join(",");
    out.push_str("\r\n");
    for row in rows {
        let line: Vec<String> = columns
            .iter()
            .map(|c| match row.get(c) {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => quote(s),
                Some(other) => quote(&other.to_string()),
            })
            .collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

/// Values by label and series, summed where several rows share both, in the order labels
/// and series first appear.
pub struct Grid {
    pub labels: Vec<String>,
    pub series: Vec<String>,
    /// `values[label][series]`.
    pub values: Vec<Vec<Option<f64>>>,
}

impl Grid {
    pub fn of(rows: &[Row], x: &str, y: &str, series: Option<&str>) -> Self {
        let mut labels: Vec<String> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        let mut sums: BTreeMap<(usize, usize), f64> = BTreeMap::new();
        for row in rows {
            let label = cell_text(row.get(x));
            let name = series.map_or_else(|| y.to_string(), |s| cell_text(row.get(s)));
            let li = labels.iter().position(|l| *l == label).unwrap_or_else(|| {
                labels.push(label);
                labels.len() - 1
            });
            let si = names.iter().position(|n| *n == name).unwrap_or_else(|| {
                names.push(name);
                names.len() - 1
            });
            if let Some(v) = cell_number(row.get(y)) {
                *sums.entry((li, si)).or_default() += v;
            }
        }
        let values = (0..labels.len())
            .map(|li| {
                (0..names.len())
                    .map(|si| sums.get(&(li, si)).copied())
                    .collect()
            })
            .collect();
        Self {
            labels,
            series: names,
            values,
        }
    }

    fn max_total(&self) -> f64 {
        self.values
            .iter()
            .map(|v| v.iter().flatten().sum::<f64>())
            .fold(0.0, f64::max)
    }

    fn max_value(&self) -> f64 {
        self.values
            .iter()
            .flatten()
            .flatten()
            .copied()
            .fold(0.0, f64::max)
    }
}

/// A readable upper bound for an axis: 1, 2, 2.5 or 5 × a power of ten.
fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 {
        return 1.0;
    }
    let power = 10f64.powf(value.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if step * power >= value {
            return step * power;
        }
    }
    10.0 * power
}

fn legend(series: &[String], y: f64) -> String {
    let mut svg = String::new();
    let mut x = 0.0;
    for (i, name) in series.iter().enumerate() {
        let _ = write!(
            svg,
            "<rect x=\"{x}\" y=\"{y}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"{}\" class=\"legend\">{}</text>",
            PALETTE[i % PALETTE.len()],
            x + 16.0,
            y + 10.5,
            escape(name)
        );
        x += 28.0 + 7.0 * name.chars().count() as f64;
    }
    svg
}

/// One panel's picture (without its table) with its numbers in `unit`, or a note when there
/// is nothing to draw.
pub fn visual(
    panel: &Panel,
    unit: Option<&str>,
    rows: &[Row],
    map: &super::map::MapContext,
) -> String {
    if rows.is_empty() {
        return "<p class=\"empty\">Tidak ada data untuk pilihan ini.</p>".into();
    }
    let x = panel.x.as_deref().unwrap_or_default();
    let y = panel.y.as_deref().unwrap_or_default();
    match panel.visual {
        Visual::Stat => stat(rows, y, unit),
        Visual::Bar => bar(
            &Grid::of(rows, x, y, panel.series.as_deref()),
            unit,
            &panel.title,
        ),
        Visual::Line => line(
            &Grid::of(rows, x, y, panel.series.as_deref()),
            unit,
            &panel.title,
        ),
        Visual::Table => table(rows),
        Visual::Map => super::map::choropleth(rows, x, y, unit, &panel.title, map),
    }
}

fn stat(rows: &[Row], y: &str, unit: Option<&str>) -> String {
    let value = cell_number(rows[0].get(y));
    let shown = value.map_or_else(|| cell_text(rows[0].get(y)), |v| with_unit(v, unit));
    format!("<p class=\"stat\">{}</p>", escape(&shown))
}

const WIDTH: f64 = 640.0;

fn bar(grid: &Grid, unit: Option<&str>, title: &str) -> String {
    let label_width = grid
        .labels
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(4, 28) as f64
        * 7.0
        + 8.0;
    let row_height = 26.0;
    let top = if grid.series.len() > 1 { 24.0 } else { 4.0 };
    let height = top + row_height * grid.labels.len() as f64 + 24.0;
    let plot = WIDTH - label_width - 90.0;
    let max = nice_ceiling(grid.max_total());
    let mut svg = format!(
        "<svg viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"{}\" class=\"chart\">",
        escape(title)
    );
    if grid.series.len() > 1 {
        svg.push_str(&legend(&grid.series, 0.0));
    }
    for (li, label) in grid.labels.iter().enumerate() {
        let y = top + li as f64 * row_height;
        let short: String = label.chars().take(28).collect();
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" class=\"label\">{}</text>",
            label_width - 6.0,
            y + 16.0,
            escape(&short)
        );
        let mut at = label_width;
        let mut total = 0.0;
        for (si, value) in grid.values[li].iter().enumerate() {
            let Some(v) = value else { continue };
            let w = (v.max(0.0) / max * plot).max(0.0);
            let name = &grid.series[si];
            let tip = if grid.series.len() > 1 {
                format!("{label} · {name}: {}", with_unit(*v, unit))
            } else {
                format!("{label}: {}", with_unit(*v, unit))
            };
            let _ = write!(
                svg,
                "<rect x=\"{at:.1}\" y=\"{}\" width=\"{w:.1}\" height=\"{}\" fill=\"{}\"><title>{}</title></rect>",
                y + 3.0,
                row_height - 8.0,
                PALETTE[si % PALETTE.len()],
                escape(&tip)
            );
            at += w;
            total += v;
        }
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" class=\"value\">{}</text>",
            at + 4.0,
            y + 16.0,
            escape(&with_unit(total, unit))
        );
    }
    let axis_y = top + row_height * grid.labels.len() as f64 + 2.0;
    let _ = write!(
        svg,
        "<line x1=\"{label_width}\" y1=\"{axis_y}\" x2=\"{}\" y2=\"{axis_y}\" class=\"axis\"/>",
        label_width + plot
    );
    for tick in 0..=4 {
        let value = max * tick as f64 / 4.0;
        let x = label_width + plot * tick as f64 / 4.0;
        let _ = write!(
            svg,
            "<text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\" class=\"tick\">{}</text>",
            axis_y + 16.0,
            escape(&number(value, 1))
        );
    }
    svg.push_str("</svg>");
    svg
}

fn line(grid: &Grid, unit: Option<&str>, title: &str) -> String {
    let (left, right, top, bottom) = (
        64.0,
        16.0,
        if grid.series.len() > 1 { 28.0 } else { 12.0 },
        40.0,
    );
    let height = 280.0;
    let plot_w = WIDTH - left - right;
    let plot_h = height - top - bottom;
    let max = nice_ceiling(grid.max_value());
    let n = grid.labels.len();
    let x_of = |i: usize| {
        if n <= 1 {
            left + plot_w / 2.0
        } else {
            left + plot_w * i as f64 / (n - 1) as f64
        }
    };
    let y_of = |v: f64| top + plot_h - (v.max(0.0) / max) * plot_h;
    let mut svg = format!(
        "<svg viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"{}\" class=\"chart\">",
        escape(title)
    );
    if grid.series.len() > 1 {
        svg.push_str(&legend(&grid.series, 0.0));
    }
    for tick in 0..=4 {
        let value = max * tick as f64 / 4.0;
        let y = y_of(value);
        let _ = write!(
            svg,
            "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" class=\"grid\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" class=\"tick\">{}</text>",
            left + plot_w,
            left - 6.0,
            y + 4.0,
            escape(&number(value, 1))
        );
    }
    let every = n.div_ceil(8).max(1);
    for (i, label) in grid.labels.iter().enumerate() {
        if i % every == 0 || i + 1 == n {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" class=\"tick\">{}</text>",
                x_of(i),
                top + plot_h + 18.0,
                escape(label)
            );
        }
    }
    if let Some(u) = unit {
        let _ = write!(
            svg,
            "<text x=\"4\" y=\"{}\" class=\"tick\">{}</text>",
            top - 2.0,
            escape(u)
        );
    }
    for (si, name) in grid.series.iter().enumerate() {
        let colour = PALETTE[si % PALETTE.len()];
        let points: Vec<(usize, f64)> = (0..n)
            .filter_map(|li| grid.values[li][si].map(|v| (li, v)))
            .collect();
        let path: Vec<String> = points
            .iter()
            .map(|(li, v)| format!("{:.1},{:.1}", x_of(*li), y_of(*v)))
            .collect();
        let _ = write!(
            svg,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2.5\"/>",
            path.join(" ")
        );
        for (li, v) in points {
            let _ = write!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"{colour}\"><title>{} · {}: {}</title></circle>",
                x_of(li),
                y_of(v),
                escape(&grid.labels[li]),
                escape(name),
                escape(&with_unit(v, unit))
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_the_indonesian_way() {
        assert_eq!(number(1_063_932.0, 1), "1.063.932");
        assert_eq!(number(66.666, 1), "66,7");
        assert_eq!(number(0.0, 1), "0");
        assert_eq!(number(-1234.5, 1), "-1.234,5");
        assert_eq!(number(999.0, 0), "999");
        assert_eq!(with_unit(12.0, Some("%")), "12 %");
    }

    #[test]
    fn rows_sharing_a_label_and_series_are_added_up() {
        let rows: Vec<Row> = serde_json::from_str(
            r#"[{"bulan":"2026-11","kategori":"jalan","n":2},{"bulan":"2026-11","kategori":"jalan","n":3},
                {"bulan":"2026-12","kategori":"sampah","n":1}]"#,
        )
        .unwrap();
        let grid = Grid::of(&rows, "bulan", "n", Some("kategori"));
        assert_eq!(grid.labels, ["2026-11", "2026-12"]);
        assert_eq!(grid.series, ["jalan", "sampah"]);
        assert_eq!(grid.values[0], [Some(5.0), None]);
        assert_eq!(grid.values[1], [None, Some(1.0)]);
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let rows: Vec<Row> =
            serde_json::from_str(r#"[{"nama":"Sukasari, Desa","n":1.5,"x":null}]"#).unwrap();
        assert_eq!(csv(&rows), "nama,n,x\r\n\"Sukasari, Desa\",1.5,\r\n");
    }
}
