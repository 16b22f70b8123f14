//! Choropleths of Purwakarta, from the shipped kecamatan and desa boundaries: a legend of
//! five equal classes, the value on hover (`<title>`), and each kecamatan a link to its desa.

use std::collections::HashMap;
use std::fmt::Write;

use super::render::{Row, cell_number, cell_text, escape, number, with_unit};
use crate::geo::{Boundaries, Desa, kecamatan_of};

/// Light to dark: ColorBrewer's 5-class Blues.
const CLASSES: [&str; 5] = ["#eff3ff", "#bdd7e7", "#6baed6", "#3182bd", "#08519c"];
const NO_DATA: &str = "#e5e5e5";

/// What a map needs from its page.
pub struct MapContext {
    /// The page's URL with its filters, ending in `kecamatan=`: a kecamatan's code completes
    /// it (the drill-down to its desa).
    pub drill_href: String,
}

const WIDTH: f64 = 640.0;

/// The map of `rows`: `x` holds kecamatan (`32.14.01`) or desa (`32.14.01.2001`) codes.
pub fn choropleth(
    rows: &[Row],
    x: &str,
    y: &str,
    unit: Option<&str>,
    title: &str,
    context: &MapContext,
) -> String {
    let mut values: HashMap<String, f64> = HashMap::new();
    for row in rows {
        let kode = cell_text(row.get(x));
        if let Some(v) = cell_number(row.get(y)) {
            *values.entry(kode).or_default() += v;
        }
    }
    let desa_level = values.keys().any(|k| k.len() > 8);
    let features: Vec<&Desa> = if desa_level {
        let kecamatan: Vec<&str> = values.keys().map(|k| kecamatan_of(k)).collect();
        Boundaries::purwakarta()
            .all()
            .iter()
            .filter(|d| kecamatan.contains(&d.kecamatan()))
            .collect()
    } else {
        Boundaries::kecamatan().all().iter().collect()
    };
    if features.is_empty() {
        return "<p class=\"empty\">Kolom kode wilayah panel ini bukan kode kecamatan atau desa Purwakarta.</p>".into();
    }
    let (min_lng, min_lat, max_lng, max_lat) = features.iter().map(|f| f.bbox()).fold(
        (
            f64::INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
        ),
        |a, b| (a.0.min(b.0), a.1.min(b.1), a.2.max(b.2), a.3.max(b.3)),
    );
    // Equirectangular at the map's middle latitude: true to shape at this size.
    let stretch = ((min_lat + max_lat) / 2.0).to_radians().cos();
    let span_x = ((max_lng - min_lng) * stretch).max(1e-9);
    let span_y = (max_lat - min_lat).max(1e-9);
    let scale = (WIDTH - 8.0) / span_x;
    let map_height = span_y * scale + 8.0;
    let project = |(lng, lat): (f64, f64)| {
        (
            4.0 + (lng - min_lng) * stretch * scale,
            4.0 + (max_lat - lat) * scale,
        )
    };
    let shown: Vec<f64> = features
        .iter()
        .filter_map(|f| values.get(&f.kode).copied())
        .collect();
    let low = shown.iter().copied().fold(f64::INFINITY, f64::min);
    let high = shown.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    // One class when every value is the same (or none is shown).
    let spread = high > low;
    let class_of = |v: f64| {
        if !spread {
            return CLASSES.len() - 1;
        }
        (((v - low) / (high - low) * CLASSES.len() as f64) as usize).min(CLASSES.len() - 1)
    };
    let legend_height = 28.0;
    let mut svg = format!(
        "<svg viewBox=\"0 0 {WIDTH} {:.0}\" role=\"img\" aria-label=\"{}\" class=\"chart map\">",
        map_height + legend_height,
        escape(title)
    );
    for feature in &features {
        let mut d = String::new();
        for ring in feature.rings() {
            for (i, point) in ring.iter().enumerate() {
                let (px, py) = project(*point);
                let _ = write!(d, "{}{px:.1},{py:.1}", if i == 0 { "M" } else { "L" });
            }
            d.push('Z');
        }
        let value = values.get(&feature.kode).copied();
        let fill = value.map_or(NO_DATA, |v| CLASSES[class_of(v)]);
        let tip = match value {
            Some(v) => format!("{}: {}", feature.nama, with_unit(v, unit)),
            None => format!("{}: tidak ada data", feature.nama),
        };
        let path = format!(
            "<path d=\"{d}\" fill=\"{fill}\" stroke=\"#ffffff\" stroke-width=\"1\" data-kode=\"{}\"><title>{}</title></path>",
            escape(&feature.kode),
            escape(&tip)
        );
        if desa_level {
            svg.push_str(&path);
        } else {
            let _ = write!(
                svg,
                "<a href=\"{}{}\" aria-label=\"{}\">{path}</a>",
                escape(&context.drill_href),
                escape(&feature.kode),
                escape(&format!("{}: lihat desa", feature.nama))
            );
        }
    }
    let top = map_height + 6.0;
    let mut at = 0.0;
    if high.is_finite() {
        let step = if spread {
            (high - low) / CLASSES.len() as f64
        } else {
            0.0
        };
        let classes: &[&str] = if spread {
            &CLASSES
        } else {
            &CLASSES[CLASSES.len() - 1..]
        };
        // Counts (residents, regions) get whole-number bounds when the classes are wide
        // enough for them.
        let whole = values.values().all(|v| v.fract() == 0.0);
        let decimals = if whole && (!spread || step >= 1.0) {
            0
        } else {
            1
        };
        for (i, colour) in classes.iter().enumerate() {
            let (from, to) = (low + step * i as f64, low + step * (i + 1) as f64);
            let label = if spread {
                format!("{}–{}", number(from, decimals), number(to, decimals))
            } else {
                number(low, decimals)
            };
            let _ = write!(
                svg,
                "<rect x=\"{at}\" y=\"{top}\" width=\"14\" height=\"14\" fill=\"{colour}\" stroke=\"#999\"/><text x=\"{}\" y=\"{}\" class=\"legend\">{}</text>",
                at + 18.0,
                top + 11.5,
                escape(&label)
            );
            at += 28.0 + 7.0 * label.chars().count() as f64;
        }
    }
    let _ = write!(
        svg,
        "<rect x=\"{at}\" y=\"{top}\" width=\"14\" height=\"14\" fill=\"{NO_DATA}\" stroke=\"#999\"/><text x=\"{}\" y=\"{}\" class=\"legend\">tidak ada data</text></svg>",
        at + 18.0,
        top + 11.5
    );
    svg
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn map(values: &[(&str, Value)]) -> String {
        let rows: Vec<Row> = values
            .iter()
            .map(|(kode, n)| {
                let mut row = Row::new();
                row.insert("kode".into(), json!(kode));
                row.insert("n".into(), n.clone());
                row
            })
            .collect();
        let context = MapContext {
            drill_href: "/dashboards/x?kecamatan=".into(),
        };
        choropleth(&rows, "kode", "n", Some("jiwa"), "Penduduk", &context)
    }

    #[test]
    fn counts_get_whole_bounds_and_a_missing_value_reads_as_no_data() {
        let svg = map(&[
            ("32.14.01", json!(506)),
            ("32.14.02", json!(1598)),
            ("32.14.03", Value::Null),
        ]);
        assert!(svg.contains(">506–724<"), "whole-number classes: {svg}");
        assert!(!svg.contains("506,0"), "{svg}");
        assert!(svg.contains("<title>Purwakarta: 506 jiwa</title>"));
        assert!(svg.contains("<title>Jatiluhur: tidak ada data</title>"));
        assert!(svg.contains("href=\"/dashboards/x?kecamatan=32.14.02\""));
    }

    #[test]
    fn narrow_or_fractional_classes_keep_a_decimal() {
        let svg = map(&[("32.14.01", json!(1.5)), ("32.14.02", json!(3.5))]);
        assert!(svg.contains(">1,5–1,9<"), "{svg}");
        let svg = map(&[("32.14.01", json!(5)), ("32.14.02", json!(7))]);
        assert!(svg.contains(">5–5,4<"), "{svg}");
    }
}
