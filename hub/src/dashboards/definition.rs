//! What a dashboard is: a TOML file with a title, filters and panels, each panel a saved
//! query and a visual. The built-ins ship in `examples/dashboards/`; a deployment adds its
//! own in `dashboards_dir` (a file with a built-in's name replaces it).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

/// The dashboards that ship with Simpul: `(name, TOML)`.
pub const BUILT_IN: [(&str, &str); 4] = [
    (
        "ringkasan",
        include_str!("../../../examples/dashboards/ringkasan.toml"),
    ),
    (
        "kesehatan_hub",
        include_str!("../../../examples/dashboards/kesehatan_hub.toml"),
    ),
    (
        "semar",
        include_str!("../../../examples/dashboards/semar.toml"),
    ),
    (
        "pengaduan",
        include_str!("../../../examples/dashboards/pengaduan.toml"),
    ),
];

/// One dashboard.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dashboard {
    /// The file name without `.toml`: the URL is `/dashboards/<name>`.
    #[serde(skip)]
    pub name: String,
    /// Shown as the page's heading.
    pub title: String,
    /// A paragraph under the title.
    #[serde(default)]
    pub description: String,
    /// Shown without logging in; its panels then read public datasets only.
    #[serde(default)]
    pub public: bool,
    /// Reload the page every this many seconds (0: never).
    #[serde(default)]
    pub refresh_secs: u64,
    /// A registered module that must be turned on for the dashboard to be listed
    /// (`semar`, `complaints`); another name is refused.
    #[serde(default)]
    pub requires: Option<String>,
    /// Which filters the page offers.
    #[serde(default)]
    pub filters: Filters,
    /// The panels, in order.
    #[serde(default, rename = "panel")]
    pub panels: Vec<Panel>,
}

/// The filters of a dashboard page. Each is passed to a panel's query as the parameter of
/// the same name when the query declares it: `from` and `to` (RFC 3339), `kecamatan` (a code
/// or empty), `area` (`desa`, `kelurahan` or empty) and `today` (a date).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Filters {
    /// A period, `from` and `to` dates.
    pub period: bool,
    /// The period shown when none is chosen, in days up to today.
    pub default_days: u32,
    /// One kecamatan or all.
    pub kecamatan: bool,
    /// Desa, kelurahan or both.
    pub area: bool,
}

impl Default for Filters {
    fn default() -> Self {
        Self {
            period: false,
            default_days: 30,
            kecamatan: false,
            area: false,
        }
    }
}

/// How a panel draws its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visual {
    /// One big number: column `y` of the first row.
    Stat,
    /// Horizontal bars: `x` the label, `y` the value, optional `series` for stacked parts.
    Bar,
    /// Lines over `x` (ordered as the rows come), one per `series`.
    Line,
    /// The rows as they are.
    Table,
    /// A choropleth: `x` holds kecamatan or desa codes, `y` the value; a kecamatan links to
    /// its desa.
    Map,
}

/// One panel.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Panel {
    /// The panel's heading.
    pub title: String,
    /// A line under the heading.
    #[serde(default)]
    pub description: String,
    /// The saved query that feeds it.
    pub query: String,
    /// How it is drawn.
    pub visual: Visual,
    /// The label (bar, line) or region-code (map) column.
    #[serde(default)]
    pub x: Option<String>,
    /// The value column.
    #[serde(default)]
    pub y: Option<String>,
    /// A column that splits the values into series (bar, line).
    #[serde(default)]
    pub series: Option<String>,
    /// The value's unit, shown after numbers (`%`, `menit`, `jiwa`).
    #[serde(default)]
    pub unit: Option<String>,
    /// Fixed parameters of the query, as text.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

impl Dashboard {
    /// Reads one dashboard file's text; errors name `origin`.
    pub fn parse(name: &str, origin: &str, text: &str) -> Result<Self, String> {
        let mut dashboard: Dashboard =
            toml::from_str(text).map_err(|e| format!("{origin}: {}", e.message()))?;
        dashboard.name = name.to_string();
        if !valid_name(name) {
            return Err(format!(
                "{origin}: a dashboard's file name is lowercase letters, digits and _ (it is the URL)"
            ));
        }
        if dashboard.panels.is_empty() {
            return Err(format!(
                "{origin}: a dashboard needs at least one [[panel]]"
            ));
        }
        if let Some(module) = &dashboard.requires
            && crate::modules::registry::registration(module).is_none()
        {
            let known: Vec<&str> = crate::modules::registry::REGISTRY
                .iter()
                .map(|r| r.name)
                .collect();
            return Err(format!(
                "{origin}: requires = \"{module}\" names no module; the modules are {}",
                known.join(", ")
            ));
        }
        for (i, panel) in dashboard.panels.iter().enumerate() {
            let needs: &[(&str, &Option<String>)] = match panel.visual {
                Visual::Stat => &[("y", &panel.y)],
                Visual::Bar | Visual::Line | Visual::Map => &[("x", &panel.x), ("y", &panel.y)],
                Visual::Table => &[],
            };
            for (key, value) in needs {
                if value.as_deref().is_none_or(str::is_empty) {
                    return Err(format!(
                        "{origin}: panel {} ('{}') is a {:?} and needs `{key}`, the column to draw",
                        i + 1,
                        panel.title,
                        panel.visual
                    ));
                }
            }
        }
        Ok(dashboard)
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The saved queries the dashboards show, each with the dashboards that show it. A query
/// that a dashboard shows may be changed by admins only.
pub fn queries_in_use(dir: &Path) -> BTreeMap<String, Vec<String>> {
    let mut used: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for dashboard in load(dir).0 {
        for panel in &dashboard.panels {
            let boards = used.entry(panel.query.clone()).or_default();
            if !boards.contains(&dashboard.name) {
                boards.push(dashboard.name.clone());
            }
        }
    }
    used
}

/// The built-ins, then the files of `dir` (a file named like a built-in replaces it). A
/// file that does not parse is left out and its error returned beside the others.
pub fn load(dir: &Path) -> (Vec<Dashboard>, Vec<String>) {
    let mut errors = Vec::new();
    let mut by_name: BTreeMap<String, Dashboard> = BTreeMap::new();
    for (name, text) in BUILT_IN {
        match Dashboard::parse(name, &format!("the built-in dashboard {name}"), text) {
            Ok(d) => {
                by_name.insert(name.to_string(), d);
            }
            Err(e) => errors.push(e),
        }
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut paths: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        paths.sort();
        for path in paths {
            let origin = path.display().to_string();
            let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            let parsed = std::fs::read_to_string(&path)
                .map_err(|e| format!("{origin}: cannot read: {e}"))
                .and_then(|text| Dashboard::parse(name, &origin, &text));
            match parsed {
                Ok(d) => {
                    by_name.insert(name.to_string(), d);
                }
                Err(e) => errors.push(e),
            }
        }
    }
    let order = |d: &Dashboard| {
        BUILT_IN
            .iter()
            .position(|(n, _)| *n == d.name)
            .unwrap_or(usize::MAX)
    };
    let mut dashboards: Vec<Dashboard> = by_name.into_values().collect();
    dashboards.sort_by_key(|d| (order(d), d.name.clone()));
    (dashboards, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_dashboards_parse() {
        for (name, text) in BUILT_IN {
            let dashboard = Dashboard::parse(name, name, text).unwrap_or_else(|e| panic!("{e}"));
            assert!(!dashboard.panels.is_empty(), "{name}");
        }
    }

    #[test]
    fn a_panel_without_its_columns_is_refused_with_its_place() {
        let text = "title = \"x\"\n[[panel]]\ntitle = \"Penduduk\"\nquery = \"q\"\nvisual = \"bar\"\ny = \"n\"\n";
        let error = Dashboard::parse("x", "x.toml", text).unwrap_err();
        assert!(
            error.contains("panel 1 ('Penduduk')") && error.contains("`x`"),
            "{error}"
        );
        let error = Dashboard::parse("X-1", "X-1.toml", "title = \"x\"").unwrap_err();
        assert!(error.contains("file name"), "{error}");
    }

    #[test]
    fn a_dashboard_requires_only_modules_that_exist() {
        let panel = "[[panel]]\ntitle = \"n\"\nquery = \"q\"\nvisual = \"table\"\n";
        let ok = Dashboard::parse(
            "x",
            "x.toml",
            &format!("title = \"x\"\nrequires = \"semar\"\n{panel}"),
        );
        assert_eq!(ok.unwrap().requires.as_deref(), Some("semar"));
        let error = Dashboard::parse(
            "x",
            "x.toml",
            &format!("title = \"x\"\nrequires = \"ambulans\"\n{panel}"),
        )
        .unwrap_err();
        assert!(
            error.contains("x.toml") && error.contains("ambulans"),
            "{error}"
        );
    }
}
