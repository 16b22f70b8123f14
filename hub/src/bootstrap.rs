//! What `serve` does before it listens: open the catalog, issue the first admin key, and
//! load the reference and demo data that ship with the binary.

use std::path::Path;
use std::sync::Arc;

use simpul_catalog::{
    Catalog, Classification, Contract, DatasetId, Role, SchemaBinding, WriteMode,
};
use simpul_connectors::file::{FileFormat, open_bytes};
use simpul_pipelines::{DatasetDefaults, IngestOptions, SchemaChoice};

use crate::auth::{FIRST_ADMIN_ID, NewKey, issue_key};
use crate::config::Config;

const WILAYAH_CSV: &[u8] = include_bytes!("../reference/wilayah_3214.csv");
const DEMO_UPAH_MINIMUM_CSV: &[u8] =
    include_bytes!("../reference/demo_upah_minimum_kabupatenkota.csv");

/// The actor name recorded for what the hub does by itself.
const SYSTEM_ACTOR: &str = "simpul";

/// Opens the lake and the state store named by the configuration (creating the data
/// directory for local lakes) and registers the shipped schemas that are not there yet.
pub async fn open_catalog(config: &Config) -> Result<Arc<Catalog>, String> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("cannot create data_dir {}: {e}", config.data_dir.display()))?;
    let lake_url = config.effective_lake_url()?;
    if let Some(path) = url::Url::parse(&lake_url)
        .ok()
        .filter(|u| u.scheme() == "file")
        .and_then(|u| u.to_file_path().ok())
    {
        std::fs::create_dir_all(&path)
            .map_err(|e| format!("cannot create the lake directory {}: {e}", path.display()))?;
    }
    let options = config.lake.storage_options.clone().into_iter().collect();
    let migrations = crate::modules::registry::migrations();
    let catalog = Catalog::open_with(
        &lake_url,
        options,
        &config.effective_state_url()?,
        &migrations,
    )
    .await
    .map_err(|e| e.to_string())?;
    catalog
        .state
        .register_shipped_schemas()
        .await
        .map_err(|e| e.to_string())?;
    Ok(catalog)
}

/// What the first start produced.
#[derive(Debug, Default)]
pub struct FirstStart {
    /// The admin key, on the very first start only.
    pub admin_key: Option<String>,
}

/// Registers the schemas of `schemas_dir`, issues the first admin key and loads shipped data
/// that is missing. Safe on every start.
pub async fn prepare(catalog: &Arc<Catalog>, config: &Config) -> Result<FirstStart, String> {
    if !config.schemas_dir.is_empty() {
        for (file, outcome) in
            crate::schemas::register_dir(catalog, Path::new(&config.schemas_dir), SYSTEM_ACTOR)
                .await?
        {
            tracing::info!(schema = %file.name, version = %file.version, ?outcome, "schema from schemas_dir");
        }
    }
    let admin_key = first_admin_key(catalog, config).await?;
    load_reference_wilayah(catalog, config).await?;
    load_reference_luas(catalog, config).await?;
    if config.demo_data {
        load_demo(catalog).await?;
    }
    crate::saved_queries::load_dir(
        catalog,
        &config.query.session_settings(),
        &config.effective_queries_dir(),
    )
    .await;
    Ok(FirstStart { admin_key })
}

/// The hub's own member and subsystem, which the first admin key belongs to.
const HUB_MEMBER: (&str, &str) = ("SIMPUL", "Simpul, hub data Kabupaten Purwakarta");
const ADMIN_SUBSYSTEM: (&str, &str) = ("ADMIN", "Administrasi hub");

async fn first_admin_key(
    catalog: &Arc<Catalog>,
    config: &Config,
) -> Result<Option<String>, String> {
    let existing = catalog
        .state
        .client(FIRST_ADMIN_ID)
        .await
        .map_err(|e| e.to_string())?;
    if existing.is_some() {
        return Ok(None);
    }
    crate::bus::ensure_registered(
        &catalog.state,
        &config.bus_identity()?,
        HUB_MEMBER,
        ADMIN_SUBSYSTEM,
        SYSTEM_ACTOR,
    )
    .await
    .map_err(|e| e.to_string())?;
    let request = NewKey {
        id: Some(FIRST_ADMIN_ID.to_string()),
        member: HUB_MEMBER.0.into(),
        subsystem: ADMIN_SUBSYSTEM.0.into(),
        role: Role::Admin,
        description: "first admin key, issued at first start".into(),
    };
    let (_, key) = issue_key(&catalog.state, &request, SYSTEM_ACTOR)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Some(key))
}

/// The dataset `id` when it does not exist yet (shipped data is loaded once).
async fn missing(catalog: &Arc<Catalog>, id: &str) -> Result<Option<DatasetId>, String> {
    let id: DatasetId = id
        .parse()
        .map_err(|e: simpul_catalog::InvalidDatasetId| e.to_string())?;
    let exists = catalog
        .state
        .dataset(&id)
        .await
        .map_err(|e| e.to_string())?
        .is_some();
    Ok((!exists).then_some(id))
}

async fn load_reference_wilayah(catalog: &Arc<Catalog>, config: &Config) -> Result<(), String> {
    let Some(id) = missing(catalog, "ref.wilayah").await? else {
        return Ok(());
    };
    let options = IngestOptions {
        dataset: id,
        // Overwrite, so a start interrupted after the commit cannot load the rows twice.
        mode: WriteMode::Overwrite,
        defaults: DatasetDefaults {
            title: "Wilayah Kabupaten Purwakarta (Kepmendagri 2025)".into(),
            description: "Kabupaten, 17 kecamatan dan 192 desa/kelurahan Purwakarta dengan kode Kemendagri \
                          dan titik tengah. The regency's region reference: every regional record keys on these codes."
                .into(),
            owner: config.default_owner.clone(),
            classification: Classification::Public,
            tags: vec!["referensi".into(), "wilayah".into(), "kemendagri".into()],
            contract: Contract::Freeze,
        },
        schema: SchemaChoice::Canonical(SchemaBinding {
            name: "wilayah".into(),
            major: 1,
        }),
        actor: SYSTEM_ACTOR.into(),
        source: "wilayah_3214.csv (shipped with simpul)".into(),
        upsert_keys: Vec::new(),
        run: None,
    };
    load_embedded(catalog, "wilayah_3214.csv", WILAYAH_CSV, options).await
}

/// `ref.luas_wilayah`: the area of every kecamatan and desa, computed from the shipped
/// boundaries (`geo::Desa::area_km2`). The boundaries are simplified, so the areas are
/// estimates: the 17 kecamatan add up to about 993 km², some 2% above the 971.72 km² BPS
/// publishes for the regency.
async fn load_reference_luas(catalog: &Arc<Catalog>, config: &Config) -> Result<(), String> {
    let Some(id) = missing(catalog, "ref.luas_wilayah").await? else {
        return Ok(());
    };
    let mut csv = String::from("kode,nama,level,luas_km2\n");
    for (level, boundaries) in [
        ("kecamatan", crate::geo::Boundaries::kecamatan()),
        ("desa_kelurahan", crate::geo::Boundaries::purwakarta()),
    ] {
        for area in boundaries.all() {
            csv.push_str(&format!(
                "{},\"{}\",{level},{:.2}\n",
                area.kode,
                area.nama.replace('"', "\"\""),
                area.area_km2()
            ));
        }
    }
    let options = IngestOptions {
        dataset: id,
        mode: WriteMode::Overwrite,
        defaults: DatasetDefaults {
            title: "Luas kecamatan dan desa/kelurahan Purwakarta (perkiraan)".into(),
            description: "Luas tiap kecamatan dan desa/kelurahan dalam km², dihitung dari batas wilayah yang \
                          disederhanakan (cahyadsn/wilayah_boundaries): perkiraan, sekitar 2% di atas angka BPS. \
                          Area of every kecamatan and desa, estimated from the simplified boundaries."
                .into(),
            owner: config.default_owner.clone(),
            classification: Classification::Public,
            tags: vec!["referensi".into(), "wilayah".into(), "luas".into()],
            contract: Contract::Freeze,
        },
        schema: SchemaChoice::Infer,
        actor: SYSTEM_ACTOR.into(),
        source: "computed from kecamatan_3214.geojson and desa_3214.geojson (shipped with simpul)".into(),
        upsert_keys: Vec::new(),
        run: None,
    };
    load_embedded(catalog, "luas_wilayah.csv", csv.into_bytes(), options).await
}

/// The demo's saved query, the same file as `examples/queries/`.
const DEMO_QUERY_TOML: &str = include_str!("../../examples/queries/upah_minimum_kabupaten.toml");

async fn load_demo(catalog: &Arc<Catalog>) -> Result<(), String> {
    const DEMO_LOADED: &str = "demo_loaded";
    if catalog
        .state
        .setting(DEMO_LOADED)
        .await
        .map_err(|e| e.to_string())?
        .is_some()
    {
        return Ok(());
    }
    let id: DatasetId = "stats.upah_minimum"
        .parse()
        .map_err(|e: simpul_catalog::InvalidDatasetId| e.to_string())?;
    let options = IngestOptions {
        dataset: id,
        mode: WriteMode::Overwrite,
        defaults: DatasetDefaults {
            title: "Upah minimum kabupaten/kota Jawa Barat 2017–2023 (demo)".into(),
            description: "Demo data from Open Data Jabar (Disnakertrans): the minimum wage of each kabupaten/kota \
                          of Jawa Barat, in rupiah per month."
                .into(),
            owner: "DISNAKERTRANS".into(),
            classification: Classification::Public,
            tags: vec!["demo".into(), "open-data-jabar".into(), "ekonomi".into()],
            contract: Contract::Freeze,
        },
        schema: SchemaChoice::Infer,
        actor: SYSTEM_ACTOR.into(),
        source: "upah_minimum_kabupatenkota.csv (demo, shipped with simpul)".into(),
        upsert_keys: Vec::new(),
        run: None,
    };
    load_embedded(
        catalog,
        "upah_minimum_kabupatenkota.csv",
        DEMO_UPAH_MINIMUM_CSV,
        options,
    )
    .await?;
    let query: simpul_catalog::QueryDefinition = toml::from_str(DEMO_QUERY_TOML)
        .map_err(|e| format!("the demo saved query: {}", e.message()))?;
    catalog
        .state
        .save_query(&query, "demo, shipped with simpul", SYSTEM_ACTOR)
        .await
        .map_err(|e| e.to_string())?;
    catalog
        .state
        .set_setting_once(DEMO_LOADED, &simpul_catalog::timestamp(chrono::Utc::now()))
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

async fn load_embedded(
    catalog: &Arc<Catalog>,
    name: &str,
    data: impl Into<bytes::Bytes>,
    options: IngestOptions,
) -> Result<(), String> {
    let dataset = options.dataset.clone();
    let reader = open_bytes(
        name,
        data.into(),
        &FileFormat::from_name("csv").unwrap_or(FileFormat::Ndjson),
    )
    .map_err(|e| e.to_string())?;
    let report = simpul_pipelines::ingest(catalog, reader, options)
        .await
        .map_err(|e| format!("loading {dataset} failed: {e}"))?;
    tracing::info!(%dataset, rows = report.rows_written, rejected = report.rows_rejected, "loaded shipped data");
    Ok(())
}
