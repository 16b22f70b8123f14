use std::io::Write;

use crate::bootstrap;
use crate::config::Config;
use crate::server::{self, AppState};

/// Options of `simpul serve`.
#[derive(Debug, clap::Args)]
pub(super) struct ServeArgs {
    /// HTTP address to listen on, e.g. 127.0.0.1:8080; port 0 picks a free port.
    #[arg(long)]
    http_listen: Option<String>,
}

pub(super) async fn run(mut config: Config, args: ServeArgs) -> Result<(), String> {
    if let Some(listen) = args.http_listen {
        config.http.listen = listen;
    }
    let metrics = crate::metrics::install()?;
    let catalog = bootstrap::open_catalog(&config).await?;
    let first_start = bootstrap::prepare(&catalog, &config).await?;
    let (listener, address) = server::bind(&config.http.listen).await?;

    // These lines are an interface: scripts, systemd units and tests read them.
    let mut out = std::io::stdout().lock();
    if let Some(key) = &first_start.admin_key {
        let _ = writeln!(out, "admin key: {key}");
    }
    let _ = writeln!(out, "http: http://{address}");
    let key_hint = first_start.admin_key.as_deref().unwrap_or("<your key>");
    let _ = writeln!(
        out,
        "try: curl -H 'Authorization: Bearer {key_hint}' -d \"{{\\\"sql\\\": \\\"select nama from ref.wilayah where level = 'kecamatan' order by kode\\\"}}\" http://{address}/api/v1/sql"
    );
    if first_start.admin_key.is_some() {
        let _ = writeln!(out, "note: the admin key is shown only once; keep it safe");
    }
    let _ = out.flush();
    drop(out);

    tracing::info!(%address, lake = %catalog.lake.root(), "simpul is ready");
    server::serve(listener, AppState::new(catalog, config, metrics))
        .await
        .map_err(|e| format!("the HTTP server stopped: {e}"))
}
