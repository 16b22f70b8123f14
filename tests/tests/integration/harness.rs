//! Starts real `simpul` processes on temporary data directories and talks to them over HTTP.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::Duration;

use tempfile::TempDir;

/// The `simpul` binary under test: `SIMPUL_BIN` when set, otherwise the workspace's own binary,
/// built once per test run with the same cargo, profile and target directory as this test binary.
///
/// `cargo test --workspace` does not build another package's binaries for an integration test,
/// and a binary left over from an earlier build would test stale code, so the harness asks cargo
/// itself. Cargo releases its build lock before it runs tests, so this nested build does not wait.
pub fn simpul_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(path) = std::env::var("SIMPUL_BIN") {
            return PathBuf::from(path);
        }
        build_simpul()
    })
    .clone()
}

fn build_simpul() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // The test binary lives in <target>/<profile>/deps/.
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("profile directory");
    let target_dir = profile_dir.parent().expect("target directory");
    let profile = match profile_dir.file_name().and_then(|name| name.to_str()) {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let mut build = Command::new(&cargo);
    // Cargo gives a running test the variables of the test's own package. Build scripts that
    // watch some of them (ring watches CARGO_MANIFEST_DIR) would see a change and rebuild half
    // the dependency tree, so the nested build gets the environment a user's shell would give it.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let set_for_the_test = name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_BIN_EXE_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_MANIFEST_LINKS",
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
                "OUT_DIR",
            ]
            .contains(&name.as_ref());
        if set_for_the_test {
            build.env_remove(name.as_ref());
        }
    }
    let status = build
        // The same packages and targets as `cargo test --workspace`, so the same features and
        // the same compiled dependencies: after that command this build only links the binary.
        .args([
            "build",
            "--quiet",
            "--workspace",
            "--bins",
            "--tests",
            "--profile",
        ])
        .arg(profile)
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir)
        .status()
        .unwrap_or_else(|error| panic!("cannot run {cargo} to build the simpul binary: {error}"));
    assert!(status.success(), "building the simpul binary failed");
    let bin = profile_dir.join(format!("simpul{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.exists(), "{} is missing after the build", bin.display());
    bin
}

/// Path of a fixture under `tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// Every mock server of the tests listens on loopback, so the hubs they start may call it
/// (`outbound.allow_hosts`); a test of the outbound guard sets its own value.
pub const LOOPBACK_HOSTS: &str = "127.0.0.1,::1,localhost";

/// A running hub with its own data directory. Killed when dropped.
pub struct Hub {
    pub dir: TempDir,
    env: Vec<(String, String)>,
    child: Option<Child>,
    pub url: String,
    /// `postgresql://127.0.0.1:PORT` of the PostgreSQL wire endpoint.
    pub pg_url: String,
    /// `http://127.0.0.1:PORT` of the Flight SQL endpoint (gRPC).
    pub flight_url: String,
    pub admin_key: String,
    pub http: reqwest::Client,
}

/// What a fresh `serve` printed on stdout.
struct Started {
    child: Child,
    url: String,
    pg_url: String,
    flight_url: String,
    admin_key: Option<String>,
}

fn start_serve(dir: &Path, extra_env: &[(&str, &str)]) -> Started {
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("serve.log"))
        .expect("log file");
    let mut command = Command::new(simpul_bin());
    command
        .args(["serve", "--data-dir"])
        .arg(dir)
        .args(["--http-listen", "127.0.0.1:0", "--pg-listen", "127.0.0.1:0"])
        .args(["--flight-listen", "127.0.0.1:0"])
        .env("SIMPUL_LOG", "warn")
        .env("SIMPUL_OUTBOUND_ALLOW_HOSTS", LOOPBACK_HOSTS)
        .env_remove("SIMPUL_CONFIG")
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(stderr);
    for (key, value) in extra_env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("spawn simpul serve");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut admin_key = None;
    let mut pg_url = String::new();
    let mut flight_url = String::new();
    loop {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default();
            panic!("simpul serve did not print its address within 60 s; its log:\n{log}");
        };
        if let Some(key) = line.strip_prefix("admin key: ") {
            admin_key = Some(key.to_string());
        }
        if let Some(url) = line.strip_prefix("postgres: ") {
            pg_url = url.to_string();
        }
        if let Some(url) = line.strip_prefix("flight: grpc://") {
            flight_url = format!("http://{url}");
        }
        if let Some(url) = line.strip_prefix("http: ") {
            return Started {
                child,
                url: url.to_string(),
                pg_url,
                flight_url,
                admin_key,
            };
        }
    }
}

impl Hub {
    /// Starts a hub on a new, empty data directory.
    pub fn start() -> Hub {
        Self::start_with_env(&[])
    }

    /// Starts a hub on a new data directory with extra `SIMPUL_*` settings.
    pub fn start_with_env(env: &[(&str, &str)]) -> Hub {
        let dir = tempfile::tempdir().expect("temp dir");
        let started = start_serve(dir.path(), env);
        let admin_key = started
            .admin_key
            .clone()
            .expect("a first start prints the admin key");
        Self::running(dir, env, started, admin_key)
    }

    /// Starts a hub on a data directory that already holds one (a restored backup), whose
    /// admin key is `admin_key`.
    pub fn start_existing(dir: TempDir, env: &[(&str, &str)], admin_key: &str) -> Hub {
        let started = start_serve(dir.path(), env);
        assert!(
            started.admin_key.is_none(),
            "a restored hub is not a first start"
        );
        Self::running(dir, env, started, admin_key.to_string())
    }

    fn running(dir: TempDir, env: &[(&str, &str)], started: Started, admin_key: String) -> Hub {
        Hub {
            dir,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            child: Some(started.child),
            url: started.url,
            pg_url: started.pg_url,
            flight_url: started.flight_url,
            admin_key,
            http: reqwest::Client::new(),
        }
    }

    /// Kills the process (like a crash) and starts a new one on the same data directory.
    /// Returns whatever admin key line the new process printed (none is expected).
    pub fn restart(&mut self) -> Option<String> {
        self.restart_with(&[])
    }

    /// Kills the process with SIGKILL and starts a new one on the same data directory, with
    /// `extra` settings on top of the hub's own for this start only.
    pub fn restart_with(&mut self, extra: &[(&str, &str)]) -> Option<String> {
        self.kill();
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(extra.iter().copied())
            .collect();
        let started = start_serve(self.dir.path(), &env);
        self.child = Some(started.child);
        self.url = started.url;
        self.pg_url = started.pg_url;
        self.flight_url = started.flight_url;
        started.admin_key
    }

    /// Asks the process to stop (SIGTERM, as systemd does) and waits up to `limit` for it.
    /// Returns whether it exited in time.
    pub fn terminate(&mut self, limit: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A `simpul` command on this hub's data directory, with the hub's settings, to run.
    pub fn cli_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(simpul_bin());
        command
            .arg("--data-dir")
            .arg(self.dir.path())
            .args(args)
            .env("SIMPUL_OUTBOUND_ALLOW_HOSTS", LOOPBACK_HOSTS)
            .envs(self.env.iter().cloned())
            .env_remove("SIMPUL_CONFIG")
            .current_dir(self.dir.path());
        command
    }

    /// Runs a `simpul` command on this hub's data directory, with the hub's settings.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_command(args).output().expect("run simpul")
    }

    /// Runs a `simpul` command that must succeed, and returns its stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let output = self.cli(args);
        assert!(
            output.status.success(),
            "simpul {args:?} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Registers `member` and its `subsystem` on the bus through the CLI, unless they are.
    pub fn register(&self, member: &str, subsystem: &str) {
        for (kind, id) in [
            ("members", format!("ID-JABAR/GOV/{member}")),
            ("subsystems", format!("ID-JABAR/GOV/{member}/{subsystem}")),
        ] {
            let output = self.cli(&["bus", kind, "add", &id, "--name", &id]);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(
                output.status.success() || stderr.contains("already registered"),
                "simpul bus {kind} add {id} failed:\n{stderr}"
            );
        }
    }

    /// Issues a key through the CLI (registering its subsystem first) and returns it.
    pub fn key(&self, member: &str, subsystem: &str, role: &str) -> String {
        self.register(member, subsystem);
        self.cli_ok(&[
            "keys",
            "create",
            "--member",
            member,
            "--subsystem",
            subsystem,
            "--role",
            role,
        ])
        .trim()
        .to_string()
    }

    /// Ingests the three synthetic residents of `penduduk_sample.csv` as `dukcapil.penduduk`,
    /// bound to the `penduduk` schema (NIK, name, address and phone are personal).
    pub fn ingest_residents(&self) {
        let file = fixture("penduduk_sample.csv");
        let report = self.cli_ok(&[
            "ingest",
            file.to_str().expect("fixture path"),
            "--dataset",
            "dukcapil.penduduk",
            "--schema",
            "penduduk",
        ]);
        assert!(report.contains("rows written:  3"), "{report}");
    }

    /// Makes `dataset`, bound to the `penduduk` schema and empty, by ingesting a header-only
    /// CSV (NIK, name, address and phone are personal).
    pub fn empty_residents(&self, dataset: &str) {
        let file = self.dir.path().join("empty_residents.csv");
        std::fs::write(
            &file,
            "nik,no_kk,nama,tempat_lahir,tanggal_lahir,jenis_kelamin,alamat,rt,rw,kode_wilayah,telepon,status_hidup\n",
        )
        .expect("write the header");
        self.cli_ok(&[
            "ingest",
            file.to_str().expect("temp path"),
            "--dataset",
            dataset,
            "--schema",
            "penduduk",
        ]);
    }

    /// `PATCH /api/v1/datasets/{dataset}` as admin; asserts it was applied.
    pub async fn patch_dataset(&self, dataset: &str, patch: &serde_json::Value) {
        let response = self
            .http
            .patch(format!("{}/api/v1/datasets/{dataset}", self.url))
            .bearer_auth(&self.admin_key)
            .json(patch)
            .send()
            .await
            .expect("send patch");
        assert_eq!(response.status(), 200, "PATCH {dataset} {patch}");
    }

    /// The `/metrics` text, scraped with the admin key.
    pub async fn metrics(&self) -> String {
        self.get(&self.admin_key, "/metrics")
            .await
            .text()
            .await
            .expect("metrics body")
    }

    /// `POST /api/v1/sql` with a key and an Accept header.
    pub async fn sql(&self, key: &str, sql: &str, accept: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/api/v1/sql", self.url))
            .bearer_auth(key)
            .header("accept", accept)
            .json(&serde_json::json!({ "sql": sql }))
            .send()
            .await
            .expect("send sql")
    }

    /// Runs SQL as admin and returns the JSON rows.
    pub async fn rows(&self, sql: &str) -> Vec<serde_json::Value> {
        let response = self.sql(&self.admin_key, sql, "application/json").await;
        let status = response.status();
        let body: serde_json::Value = response.json().await.expect("json body");
        assert_eq!(status, 200, "{sql}: {body}");
        body["rows"].as_array().cloned().unwrap_or_default()
    }

    /// A POST of a JSON body with a key.
    pub async fn post_json(
        &self,
        key: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.send_json(reqwest::Method::POST, key, path, body).await
    }

    /// A PUT of a JSON body with a key.
    pub async fn put_json(
        &self,
        key: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.send_json(reqwest::Method::PUT, key, path, body).await
    }

    async fn send_json(
        &self,
        method: reqwest::Method,
        key: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.http
            .request(method.clone(), format!("{}{path}", self.url))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("send {method} {path}: {e}"))
    }

    /// A GET with a key.
    pub async fn get(&self, key: &str, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.url))
            .bearer_auth(key)
            .send()
            .await
            .expect("send get")
    }

    /// A DELETE with a key.
    pub async fn delete(&self, key: &str, path: &str) -> reqwest::Response {
        self.http
            .delete(format!("{}{path}", self.url))
            .bearer_auth(key)
            .send()
            .await
            .expect("send delete")
    }

    /// The hub's SQLite state store, opened read-only beside it (to read what it records
    /// as it goes, such as the query log, without adding to it).
    pub async fn state_store(&self) -> sqlx::SqlitePool {
        sqlx::SqlitePool::connect(&format!(
            "sqlite://{}?mode=ro",
            self.dir.path().join("state.db").display()
        ))
        .await
        .expect("open the state store")
    }

    /// A GET as admin, answered with JSON.
    pub async fn json(&self, path: &str) -> serde_json::Value {
        self.get(&self.admin_key, path)
            .await
            .json()
            .await
            .expect("a JSON answer")
    }

    /// The lake directory of a table, to inspect files.
    pub fn table_dir(&self, namespace: &str, table: &str) -> PathBuf {
        self.dir.path().join("lake").join(namespace).join(table)
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Every file under a directory with its size, to show that nothing on disk changed.
pub fn snapshot_files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                files.push((path, size));
            }
        }
    }
    files.sort();
    files
}

/// A Parquet response: its footer's key-value metadata and its batches.
pub struct ParquetBody {
    pub footer: std::collections::BTreeMap<String, String>,
    pub batches: Vec<arrow::array::RecordBatch>,
}

/// Reads a Parquet response body with the parquet crate's own reader.
pub fn read_parquet(body: bytes::Bytes) -> ParquetBody {
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(body)
        .expect("a valid Parquet file");
    let footer = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .into_iter()
        .flatten()
        .filter_map(|kv| Some((kv.key.clone(), kv.value.clone()?)))
        .collect();
    let batches = builder
        .build()
        .expect("reader")
        .map(|b| b.expect("batch"))
        .collect();
    ParquetBody { footer, batches }
}
