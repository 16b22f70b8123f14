//! One TOML file, every key with a default, every key overridable by a `SIMPUL_*` variable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The hub's effective configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the lake, the SQLite state store and temporary files live.
    pub data_dir: PathBuf,
    /// The lake's root URL; `file://<data_dir>/lake` when empty. `s3://bucket/prefix` for S3.
    pub lake_url: String,
    /// The state store; `sqlite://<data_dir>/state.db` when empty. `postgres://…` for PostgreSQL.
    pub state_url: String,
    /// `text` for people, `json` for log collectors.
    pub log_format: LogFormat,
    /// A tracing filter: `info`, `simpul_hub=debug,info`, …
    pub log_level: String,
    /// Load the demo dataset on first start.
    pub demo_data: bool,
    /// Member code that owns datasets ingested without an explicit owner.
    pub default_owner: String,
    /// A folder of `*.schema.json` files registered at start (new versions of the shipped
    /// schemas, or the deployment's own). Empty: none.
    pub schemas_dir: String,
    /// The folder of pipeline files (`*.toml`, one pipeline each); `<data_dir>/pipelines` when
    /// empty.
    pub pipelines_dir: String,
    /// The folder of saved query files (`*.toml`, one query each), loaded at start;
    /// `<data_dir>/queries` when empty.
    pub queries_dir: String,
    /// The folder of the deployment's own dashboards (`*.toml`), read at each page;
    /// `<data_dir>/dashboards` when empty. A file named like a built-in replaces it.
    pub dashboards_dir: String,
    /// The pipeline scheduler inside `serve`.
    pub scheduler: SchedulerConfig,
    /// The HTTP server.
    pub http: HttpConfig,
    /// Reading input files (uploads, `simpul ingest`, pipelines).
    pub ingest: IngestConfig,
    /// Requests to addresses that data or members chose (webhooks, API sources).
    pub outbound: OutboundConfig,
    /// SQL and records queries.
    pub query: QueryConfig,
    /// The PostgreSQL wire protocol endpoint.
    pub pg: PgConfig,
    /// The Arrow Flight SQL endpoint.
    pub flight: FlightConfig,
    /// Object store options for the lake.
    pub lake: LakeConfig,
    /// Where this hub sits in the interoperability bus.
    pub bus: BusConfig,
    /// SEMAR, the emergency ambulance module.
    pub semar: SemarConfig,
    /// The working-day calendar of every deadline.
    pub calendar: CalendarConfig,
    /// The public portal.
    pub portal: PortalConfig,
    /// PLIPMAS and La Pewarta, the complaints module.
    pub complaints: ComplaintsConfig,
    /// How long operational records are kept.
    pub retention: RetentionConfig,
}

/// How long operational records are kept. The message log is not among them: it is a
/// public record of exchanges between agencies, kept whole (see the README, Operations).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Days the SQL query log keeps a query; 0 keeps every one.
    pub query_log_days: u64,
    /// Days op-monitoring keeps a request; 0 keeps every one.
    pub opmon_days: u64,
    /// Days the audit log keeps an action; 0 (the default) keeps every one.
    pub audit_days: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            query_log_days: 730,
            opmon_days: 365,
            audit_days: 0,
        }
    }
}

/// Complaints and information requests.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ComplaintsConfig {
    /// Serve `/api/v1/complaints` and `/open311/v2`.
    pub enabled: bool,
    /// La Pewarta's routing rules (TOML); empty: the shipped demo rules.
    pub routing_file: String,
    /// The member of the Regent's office, which sees every case unmasked.
    pub regent_member: String,
    /// The shared secret of the SMS gateway's webhook; empty turns it off.
    pub sms_secret: String,
    /// An SMS gateway that takes `POST {"to", "text"}`; empty: messages are only logged.
    pub sms_gateway_url: String,
    /// A bearer token for the SMS gateway.
    pub sms_gateway_token: String,
    /// The member that owns the `complaints.*` datasets.
    pub owner: String,
    /// How often changed cases, events and messages are written to the `complaints.*`
    /// datasets.
    pub export_interval_secs: u64,
    /// The largest evidence attachment accepted, bytes.
    pub attachment_max_bytes: u64,
    /// The attachment types accepted, comma-separated; each is also checked against the
    /// file's first bytes.
    pub attachment_types: String,
    /// A virus scanner run on every attachment with the file on standard input, such as
    /// `clamdscan --no-summary -`: exit 0 is clean, 1 is infected, anything else a failure.
    /// Empty: attachments are kept as `not_scanned`.
    pub attachment_scan_command: String,
    /// How long one scan may take before the upload is refused as a scanner failure.
    pub attachment_scan_timeout_secs: u64,
}

impl Default for ComplaintsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            routing_file: String::new(),
            regent_member: "BUPATI".into(),
            sms_secret: String::new(),
            sms_gateway_url: String::new(),
            sms_gateway_token: String::new(),
            owner: "DISKOMINFO".into(),
            export_interval_secs: 30,
            attachment_max_bytes: 10 * 1024 * 1024,
            attachment_types: "image/jpeg,image/png,image/webp,application/pdf".into(),
            attachment_scan_command: String::new(),
            attachment_scan_timeout_secs: 60,
        }
    }
}

/// The public portal's settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PortalConfig {
    /// The public dataset of public services (schema `layanan_publik`) that Saluyu lists.
    pub services_dataset: String,
}

impl Default for PortalConfig {
    fn default() -> Self {
        Self {
            services_dataset: "pelayanan.layanan_publik".into(),
        }
    }
}

/// Working days: weekends and the shipped national holidays, plus these.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CalendarConfig {
    /// Regional holidays and other days off: `"2026-10-20 Hari Jadi Purwakarta"`.
    pub extra_holidays: Vec<String>,
}

/// SEMAR settings: travel estimates, where its reference data comes from, SMS and export.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SemarConfig {
    /// Serve `/api/v1/semar` and run the dispatcher.
    pub enabled: bool,
    /// Road distance ÷ straight-line distance, for the default travel estimate.
    pub road_factor: f64,
    /// Average ambulance speed for the default travel estimate, km/h.
    pub speed_kmh: f64,
    /// An OSRM server (`http://osrm:5000`); when set, its `table` service ranks the nearest
    /// units by road. Empty: straight-line distance × road factor ÷ speed.
    pub osrm_url: String,
    /// How many units, nearest in a straight line, are sent to OSRM.
    pub osrm_candidates: usize,
    /// How long one OSRM request may take before the straight-line estimate is used.
    pub osrm_timeout_ms: u64,
    /// The response-time target, seconds (10 minutes in Purwakarta).
    pub response_target_secs: u64,
    /// The dataset of health facilities (schema `fasilitas_kesehatan`).
    pub facilities_dataset: String,
    /// The population dataset (schema `penduduk`) that registrations are checked against,
    /// when it exists.
    pub population_dataset: String,
    /// The member that owns the `semar.*` datasets.
    pub owner: String,
    /// How often changed records are written to the `semar.*` datasets.
    pub export_interval_secs: u64,
    /// The shared secret that signs SMS gateway webhooks; empty turns `/sms/inbound` off.
    pub sms_secret: String,
    /// An SMS gateway that takes `POST {"to", "text"}`; empty: replies are only logged.
    pub sms_gateway_url: String,
    /// A bearer token for the SMS gateway.
    pub sms_gateway_token: String,
}

impl Default for SemarConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            road_factor: 1.4,
            speed_kmh: 40.0,
            osrm_url: String::new(),
            osrm_candidates: 8,
            osrm_timeout_ms: 1500,
            response_target_secs: 600,
            facilities_dataset: "kesehatan.fasilitas_kesehatan".into(),
            population_dataset: "kependudukan.penduduk".into(),
            owner: "DINKES".into(),
            export_interval_secs: 15,
            sms_secret: String::new(),
            sms_gateway_url: String::new(),
            sms_gateway_token: String::new(),
        }
    }
}

/// The hub's bus identity: members are `INSTANCE/MEMBER_CLASS/MEMBER`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusConfig {
    /// The X-Road instance this hub belongs to.
    pub instance: String,
    /// The class of this hub's members.
    pub member_class: String,
    /// Most rows one group commit lands; publishes that queue while a commit runs join the
    /// next group up to this size.
    pub group_commit_max_rows: u64,
    /// Attempts of a webhook delivery before it goes to dead-letter.
    pub webhook_max_attempts: u32,
    /// Wait before a delivery's first retry; each retry doubles it, up to an hour.
    pub webhook_backoff_secs: u64,
    /// How long a webhook target may take to answer one delivery.
    pub webhook_timeout_secs: u64,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            instance: "ID-JABAR".into(),
            member_class: "GOV".into(),
            group_commit_max_rows: 50_000,
            webhook_max_attempts: 8,
            webhook_backoff_secs: 2,
            webhook_timeout_secs: 10,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// HTTP server settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: String,
    /// Largest accepted request body, in bytes (uploads included).
    pub body_limit_bytes: u64,
    /// Mark session cookies `Secure` (sent over HTTPS only; browsers also send them to
    /// `http://localhost`). Turn off only for a trial over plain HTTP on a LAN.
    pub secure_cookies: bool,
    /// Addresses of reverse proxies in front of the hub, comma-separated: for requests from
    /// them the client's address is taken from `X-Forwarded-For` (login limits per address).
    pub trusted_proxies: String,
}

/// Which internal hosts outbound requests may reach.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboundConfig {
    /// Host names or addresses, comma-separated (`simpus.dinkes.local, 10.20.0.5,
    /// *.opd.purwakartakab.go.id`), that webhooks and API sources may reach although they
    /// are loopback, private or link-local. Empty: public addresses only.
    pub allow_hosts: String,
}

/// Limits on reading input files.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Memory (address space) the process that reads one spreadsheet may use, in MiB.
    pub spreadsheet_memory_mib: u64,
    /// CPU time the process that reads one spreadsheet may use, in seconds.
    pub spreadsheet_cpu_secs: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            spreadsheet_memory_mib: 2048,
            spreadsheet_cpu_secs: 120,
        }
    }
}

/// Query limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryConfig {
    /// A query that runs longer is stopped.
    pub timeout_secs: u64,
    /// At most this many rows are returned; the response says when it cut the result.
    pub row_limit: u64,
    /// Rows per Arrow batch while a query runs.
    pub batch_size: usize,
    /// Memory one query may hold, in MiB; sorts, joins and aggregations spill to disk beyond
    /// it. 0: unbounded.
    pub memory_limit_mb: u64,
    /// Queries that run at once, over every protocol.
    pub max_concurrent: usize,
    /// Queries that may wait for a free slot; more get 503 (HTTP) or SQLSTATE 53300.
    pub max_queued: usize,
    /// A waiting query gives up after this long.
    pub queue_timeout_secs: u64,
    /// Saved query results kept in memory, in MiB; 0 turns the cache off.
    pub cache_mb: u64,
    /// Group by one text column (such as `kode_kecamatan`) through its Parquet dictionary
    /// views, not its bytes. Off runs DataFusion's own grouping, for comparison.
    pub view_keyed_grouping: bool,
}

impl QueryConfig {
    /// Session settings for SQL and records queries.
    pub fn session_settings(&self) -> simpul_catalog::SessionSettings {
        simpul_catalog::SessionSettings {
            batch_size: self.batch_size,
            memory_limit_bytes: (self.memory_limit_mb > 0)
                .then(|| usize::try_from(self.memory_limit_mb * 1024 * 1024).unwrap_or(usize::MAX)),
            view_keyed_grouping: self.view_keyed_grouping,
            ..simpul_catalog::SessionSettings::default()
        }
    }
}

/// PostgreSQL wire protocol settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PgConfig {
    /// Address to listen on; port 0 picks a free port; empty turns the endpoint off.
    pub listen: String,
    /// A PEM certificate chain; with `tls_key`, connections may (and off loopback must) use TLS.
    pub tls_cert: String,
    /// The PEM private key of `tls_cert`.
    pub tls_key: String,
}

/// Arrow Flight SQL settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlightConfig {
    /// Address to listen on (loopback only: keys travel as bearer tokens without TLS); port
    /// 0 picks a free port; empty turns the endpoint off.
    pub listen: String,
}

impl Default for FlightConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:50051".into(),
        }
    }
}

impl Default for PgConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:5433".into(),
            tls_cert: String::new(),
            tls_key: String::new(),
        }
    }
}

/// Pipeline scheduler settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerConfig {
    /// Run pipelines on their schedules while `serve` runs.
    pub enabled: bool,
    /// Each schedule time is delayed by a fixed amount below this, per pipeline.
    pub jitter_secs: u64,
    /// The pipeline folder is read again at least this often.
    pub tick_secs: u64,
    /// At shut-down, runs under way get this long to finish their commit.
    pub shutdown_grace_secs: u64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            jitter_secs: 0,
            tick_secs: 30,
            shutdown_grace_secs: 300,
        }
    }
}

/// Lake storage settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LakeConfig {
    /// object_store options, for example `aws_endpoint`, `aws_access_key_id`,
    /// `aws_secret_access_key`, `aws_region`, `aws_allow_http` for MinIO.
    pub storage_options: BTreeMap<String, String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./simpul-data"),
            lake_url: String::new(),
            state_url: String::new(),
            log_format: LogFormat::Text,
            log_level: "info".into(),
            demo_data: true,
            default_owner: "DISKOMINFO".into(),
            schemas_dir: String::new(),
            pipelines_dir: String::new(),
            queries_dir: String::new(),
            dashboards_dir: String::new(),
            scheduler: SchedulerConfig::default(),
            http: HttpConfig::default(),
            ingest: IngestConfig::default(),
            outbound: OutboundConfig::default(),
            query: QueryConfig::default(),
            pg: PgConfig::default(),
            flight: FlightConfig::default(),
            lake: LakeConfig::default(),
            bus: BusConfig::default(),
            semar: SemarConfig::default(),
            calendar: CalendarConfig::default(),
            portal: PortalConfig::default(),
            complaints: ComplaintsConfig::default(),
            retention: RetentionConfig::default(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            body_limit_bytes: 256 * 1024 * 1024,
            secure_cookies: true,
            trusted_proxies: String::new(),
        }
    }
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            timeout_secs: 60,
            row_limit: 1_000_000,
            batch_size: 8192,
            memory_limit_mb: 2048,
            max_concurrent: 8,
            max_queued: 64,
            queue_timeout_secs: 30,
            cache_mb: 256,
            view_keyed_grouping: true,
        }
    }
}

/// Prefix of environment variables that override configuration keys.
const ENV_PREFIX: &str = "SIMPUL_";
/// Variables `SIMPUL_LAKE_STORAGE_OPTIONS_<NAME>` set `lake.storage_options.<name>`.
const STORAGE_OPTION_PREFIX: &str = "SIMPUL_LAKE_STORAGE_OPTIONS_";

impl Config {
    /// Loads defaults, then the file (if any), then `SIMPUL_*` variables from `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, String> {
        let mut merged = toml::Value::try_from(Config::default()).map_err(|e| e.to_string())?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
            let overlay: toml::Value = toml::from_str(&text)
                .map_err(|e| format!("config file {} is not valid TOML: {e}", path.display()))?;
            merge(&mut merged, overlay);
        }
        let env: BTreeMap<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        apply_env(&mut merged, &env)?;
        let config: Config = merged.try_into().map_err(|e: toml::de::Error| match file {
            Some(path) => format!("config file {}: {}", path.display(), e.message()),
            None => format!("configuration: {}", e.message()),
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if self.query.row_limit == 0 {
            return Err("query.row_limit must be at least 1".into());
        }
        if self.query.timeout_secs == 0 {
            return Err("query.timeout_secs must be at least 1".into());
        }
        if self.query.batch_size == 0 {
            return Err("query.batch_size must be at least 1".into());
        }
        if self.query.max_concurrent == 0 {
            return Err("query.max_concurrent must be at least 1".into());
        }
        if self.pg.tls_cert.is_empty() != self.pg.tls_key.is_empty() {
            return Err("pg.tls_cert and pg.tls_key go together: set both or neither".into());
        }
        if self.scheduler.tick_secs == 0 {
            return Err("scheduler.tick_secs must be at least 1".into());
        }
        self.bus_identity()?;
        let semar = &self.semar;
        if !(semar.road_factor >= 1.0 && semar.road_factor <= 5.0) {
            return Err("semar.road_factor must be between 1 and 5".into());
        }
        if !(semar.speed_kmh > 0.0 && semar.speed_kmh <= 200.0) {
            return Err("semar.speed_kmh must be above 0 and at most 200".into());
        }
        if semar.export_interval_secs == 0 || semar.export_interval_secs > 60 {
            return Err(
                "semar.export_interval_secs must be 1 to 60: analysts see SEMAR's records within a minute"
                    .into(),
            );
        }
        if semar.osrm_candidates == 0 {
            return Err("semar.osrm_candidates must be at least 1".into());
        }
        crate::calendar::Calendar::new(&self.calendar.extra_holidays)?;
        for (key, value) in [
            ("semar.facilities_dataset", &semar.facilities_dataset),
            ("semar.population_dataset", &semar.population_dataset),
        ] {
            value
                .parse::<simpul_catalog::DatasetId>()
                .map_err(|e| format!("{key}: {e}"))?;
        }
        Ok(())
    }

    /// The hub's bus identity, checked.
    pub fn bus_identity(&self) -> Result<simpul_catalog::BusIdentity, String> {
        simpul_catalog::BusIdentity::new(&self.bus.instance, &self.bus.member_class)
            .map_err(|e| e.to_string())
    }

    /// The lake URL, derived from `data_dir` when not set.
    pub fn effective_lake_url(&self) -> Result<String, String> {
        if !self.lake_url.is_empty() {
            return Ok(self.lake_url.clone());
        }
        let lake = absolute(&self.data_dir)?.join("lake");
        url::Url::from_directory_path(&lake)
            .map(|u| u.to_string())
            .map_err(|_| format!("cannot turn {} into a file URL", lake.display()))
    }

    /// The folder of pipeline files, derived from `data_dir` when not set.
    pub fn effective_pipelines_dir(&self) -> PathBuf {
        if self.pipelines_dir.is_empty() {
            self.data_dir.join("pipelines")
        } else {
            PathBuf::from(&self.pipelines_dir)
        }
    }

    /// The saved query folder: `queries_dir`, or `<data_dir>/queries`.
    pub fn effective_queries_dir(&self) -> PathBuf {
        if self.queries_dir.is_empty() {
            self.data_dir.join("queries")
        } else {
            PathBuf::from(&self.queries_dir)
        }
    }

    /// The dashboards folder: `dashboards_dir`, or `<data_dir>/dashboards`.
    pub fn effective_dashboards_dir(&self) -> PathBuf {
        if self.dashboards_dir.is_empty() {
            self.data_dir.join("dashboards")
        } else {
            PathBuf::from(&self.dashboards_dir)
        }
    }

    /// The state store URL, derived from `data_dir` when not set.
    pub fn effective_state_url(&self) -> Result<String, String> {
        if !self.state_url.is_empty() {
            return Ok(self.state_url.clone());
        }
        let db = absolute(&self.data_dir)?.join("state.db");
        Ok(format!("sqlite://{}?mode=rwc", db.display()))
    }

    /// The configuration as TOML, with derived URLs filled in and secrets hidden.
    pub fn to_display_toml(&self) -> Result<String, String> {
        let mut shown = self.clone();
        shown.lake_url = self.effective_lake_url()?;
        shown.state_url = simpul_catalog::redact_url(&self.effective_state_url()?);
        for (key, value) in shown.lake.storage_options.iter_mut() {
            if key.contains("secret") || key.contains("token") || key.contains("password") {
                *value = "***".into();
            }
        }
        for secret in [
            &mut shown.semar.sms_secret,
            &mut shown.semar.sms_gateway_token,
            &mut shown.complaints.sms_secret,
            &mut shown.complaints.sms_gateway_token,
        ] {
            if !secret.is_empty() {
                *secret = "***".into();
            }
        }
        toml::to_string_pretty(&shown).map_err(|e| e.to_string())
    }
}

fn absolute(path: &Path) -> Result<PathBuf, String> {
    std::path::absolute(path).map_err(|e| format!("cannot resolve {}: {e}", path.display()))
}

fn merge(base: &mut toml::Value, overlay: toml::Value) {
    match (base, overlay) {
        (toml::Value::Table(base), toml::Value::Table(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, overlay) => *base = overlay,
    }
}

/// Every scalar key `a.b_c` can be set by `SIMPUL_A_B_C`, parsed as the key's own type.
fn apply_env(value: &mut toml::Value, env: &BTreeMap<String, String>) -> Result<(), String> {
    let mut leaves = Vec::new();
    collect_leaves(value, &mut Vec::new(), &mut leaves);
    for path in leaves {
        let var = format!("{ENV_PREFIX}{}", path.join("_").to_uppercase());
        let Some(raw) = env.get(&var) else { continue };
        let Some(slot) = leaf_mut(value, &path) else {
            continue;
        };
        *slot = parse_like(slot, raw).map_err(|e| format!("{var}: {e}"))?;
    }
    for (var, raw) in env {
        if let Some(name) = var.strip_prefix(STORAGE_OPTION_PREFIX) {
            let options = value
                .get_mut("lake")
                .and_then(|l| l.get_mut("storage_options"))
                .and_then(|o| o.as_table_mut());
            if let Some(options) = options {
                options.insert(name.to_lowercase(), toml::Value::String(raw.clone()));
            }
        }
    }
    Ok(())
}

fn collect_leaves(value: &toml::Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match value {
        toml::Value::Table(table) => {
            for (key, child) in table {
                if key == "storage_options" {
                    continue;
                }
                path.push(key.clone());
                collect_leaves(child, path, out);
                path.pop();
            }
        }
        _ => out.push(path.clone()),
    }
}

fn leaf_mut<'a>(value: &'a mut toml::Value, path: &[String]) -> Option<&'a mut toml::Value> {
    path.iter()
        .try_fold(value, |v, key| v.get_mut(key.as_str()))
}

fn parse_like(current: &toml::Value, raw: &str) -> Result<toml::Value, String> {
    match current {
        toml::Value::Integer(_) => raw
            .trim()
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| format!("expected a whole number, got '{raw}'")),
        toml::Value::Boolean(_) => match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(toml::Value::Boolean(true)),
            "false" | "0" | "no" => Ok(toml::Value::Boolean(false)),
            _ => Err(format!("expected true or false, got '{raw}'")),
        },
        toml::Value::Float(_) => raw
            .trim()
            .parse::<f64>()
            .map(toml::Value::Float)
            .map_err(|_| format!("expected a number, got '{raw}'")),
        _ => Ok(toml::Value::String(raw.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_need_no_file() {
        let config = Config::load(None, Vec::new()).unwrap();
        assert_eq!(config.http.listen, "127.0.0.1:8080");
        assert!(
            config
                .effective_lake_url()
                .unwrap()
                .ends_with("/simpul-data/lake/")
        );
        assert!(
            config
                .effective_state_url()
                .unwrap()
                .starts_with("sqlite://")
        );
        // Inside the data directory, so a checkout's `pipelines/` crate is never read.
        assert_eq!(
            config.effective_pipelines_dir(),
            PathBuf::from("./simpul-data/pipelines")
        );
        assert!(config.scheduler.enabled && config.scheduler.jitter_secs == 0);
    }

    #[test]
    fn file_then_environment_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("simpul.toml");
        std::fs::write(
            &path,
            "data_dir = \"/srv/simpul\"\n[query]\nrow_limit = 10\n",
        )
        .unwrap();
        let config = Config::load(
            Some(&path),
            env(&[
                ("SIMPUL_QUERY_ROW_LIMIT", "20"),
                ("SIMPUL_HTTP_LISTEN", "0.0.0.0:9000"),
                ("SIMPUL_DEMO_DATA", "false"),
                (
                    "SIMPUL_LAKE_STORAGE_OPTIONS_AWS_ENDPOINT",
                    "http://127.0.0.1:9000",
                ),
                ("OTHER", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/srv/simpul"));
        assert_eq!(config.query.row_limit, 20);
        assert_eq!(config.http.listen, "0.0.0.0:9000");
        assert!(!config.demo_data);
        assert_eq!(
            config.lake.storage_options["aws_endpoint"],
            "http://127.0.0.1:9000"
        );
        assert_eq!(
            config.effective_lake_url().unwrap(),
            "file:///srv/simpul/lake/"
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("simpul.toml");
        std::fs::write(&path, "[http]\nlisten_addr = \"x\"\n").unwrap();
        let err = Config::load(Some(&path), Vec::new()).unwrap_err();
        assert!(err.contains("listen_addr"), "{err}");
        let err = Config::load(None, env(&[("SIMPUL_QUERY_ROW_LIMIT", "many")])).unwrap_err();
        assert_eq!(
            err,
            "SIMPUL_QUERY_ROW_LIMIT: expected a whole number, got 'many'"
        );
    }

    #[test]
    fn display_hides_secrets() {
        let mut config = Config {
            state_url: "postgres://u:pw@db/simpul".into(),
            ..Config::default()
        };
        config
            .lake
            .storage_options
            .insert("aws_secret_access_key".into(), "s3cr3t".into());
        config.semar.sms_secret = "semar-hmac".into();
        config.semar.sms_gateway_token = "semar-token".into();
        config.complaints.sms_secret = "pewarta-hmac".into();
        config.complaints.sms_gateway_token = "pewarta-token".into();
        let shown = config.to_display_toml().unwrap();
        assert!(
            !shown.contains("s3cr3t") && !shown.contains(":pw@"),
            "{shown}"
        );
        for secret in ["semar-hmac", "semar-token", "pewarta-hmac", "pewarta-token"] {
            assert!(!shown.contains(secret), "{secret} shown:\n{shown}");
        }
    }
}
