use std::io::Write;
use std::time::Duration;

use simpul_pipelines::{ScheduleSettings, run_schedule};

use crate::bootstrap;
use crate::config::Config;
use crate::server::{self, AppState};

/// Options of `simpul serve`.
#[derive(Debug, clap::Args)]
pub(super) struct ServeArgs {
    /// HTTP address to listen on, e.g. 127.0.0.1:8080; port 0 picks a free port.
    #[arg(long)]
    http_listen: Option<String>,
    /// PostgreSQL wire protocol address, e.g. 127.0.0.1:5433; port 0 picks a free port; an
    /// empty value turns the endpoint off.
    #[arg(long)]
    pg_listen: Option<String>,
    /// Arrow Flight SQL address, e.g. 127.0.0.1:50051; port 0 picks a free port; an empty
    /// value turns the endpoint off.
    #[arg(long)]
    flight_listen: Option<String>,
}

pub(super) async fn run(mut config: Config, args: ServeArgs) -> Result<(), String> {
    if let Some(listen) = args.http_listen {
        config.http.listen = listen;
    }
    if let Some(listen) = args.pg_listen {
        config.pg.listen = listen;
    }
    if let Some(listen) = args.flight_listen {
        config.flight.listen = listen;
    }
    let metrics = crate::metrics::install()?;
    let catalog = bootstrap::open_catalog(&config).await?;
    let first_start = bootstrap::prepare(&catalog, &config).await?;
    let (listener, address) = server::bind(&config.http.listen).await?;
    let pg = if config.pg.listen.is_empty() {
        None
    } else {
        Some(crate::pg::bind(&config.pg).await?)
    };
    let flight = if config.flight.listen.is_empty() {
        None
    } else {
        let (listener, address) = server::bind(&config.flight.listen)
            .await
            .map_err(|e| format!("Flight SQL endpoint: {e}"))?;
        if !address.ip().is_loopback() {
            return Err(format!(
                "the Flight SQL endpoint listens on {address}, which is not loopback: API keys \
                 would cross the network in clear. Listen on 127.0.0.1, behind a TLS proxy"
            ));
        }
        Some((listener, address))
    };

    let lake_root = catalog.lake.root().to_string();
    let app = AppState::new(catalog, config, metrics)
        .await
        .map_err(|e| e.to_string())?;
    for module in &app.modules {
        module.clone().prepare(app.config.demo_data).await?;
    }
    crate::dashboards::register_queries(&app.catalog).await?;
    // Requests a crash interrupted end before new ones are taken: each retry then gets the
    // first answer or applies afresh.
    let settled = crate::recovery::settle_orphaned_keys(&app)
        .await
        .map_err(|e| format!("recovering interrupted requests failed: {e}"))?;
    let repaired = crate::recovery::repair_catalog(&app)
        .await
        .map_err(|e| format!("bringing the catalog up to the lake failed: {e}"))?;
    if repaired > 0 {
        eprintln!("brought {repaired} datasets' versions and counts in the catalog up to the lake");
    }
    if settled.answered + settled.released > 0 {
        eprintln!(
            "recovered {} interrupted requests: {} had landed and keep their answers, {} had not and may be retried",
            settled.answered + settled.released,
            settled.answered,
            settled.released
        );
    }

    // These lines are an interface: scripts, systemd units and tests read them.
    let mut out = std::io::stdout().lock();
    if let Some(key) = &first_start.admin_key {
        let _ = writeln!(out, "admin key: {key}");
    }
    if let Some((_, pg_address, _)) = &pg {
        let _ = writeln!(out, "postgres: postgresql://{pg_address}");
    }
    if let Some((_, flight_address)) = &flight {
        let _ = writeln!(out, "flight: grpc://{flight_address}");
    }
    let _ = writeln!(out, "http: http://{address}");
    let _ = writeln!(out, "dashboards: http://{address}/dashboards");
    let key_hint = first_start.admin_key.as_deref().unwrap_or("<your key>");
    let _ = writeln!(
        out,
        "try: curl -H 'Authorization: Bearer {key_hint}' -d \"{{\\\"sql\\\": \\\"select nama from ref.wilayah where level = 'kecamatan' order by kode\\\"}}\" http://{address}/api/v1/sql"
    );
    if let Some((_, pg_address, _)) = &pg {
        let _ = writeln!(
            out,
            "try: psql \"postgresql://admin:{key_hint}@{pg_address}/simpul\" -c \"select nama from ref.wilayah where level = 'kecamatan' order by kode\""
        );
    }
    let _ = writeln!(
        out,
        "accounts: people log in at http://{address}/login and to PostgreSQL with a user account: simpul users add --help"
    );
    if first_start.admin_key.is_some() {
        let _ = writeln!(out, "note: the admin key is shown only once; keep it safe");
    }
    let _ = out.flush();
    drop(out);

    tracing::info!(%address, lake = %lake_root, "simpul is ready");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let webhooks = tokio::spawn(crate::webhooks::run(app.clone()));
    let logins = tokio::spawn(prune_logins(app.clone()));
    let recovery = tokio::spawn(crate::recovery::run(app.clone()));
    let retention = tokio::spawn(prune_operational(app.clone()));
    let modules: Vec<_> = app
        .modules
        .iter()
        .map(|module| module.clone().start())
        .collect();
    let scheduler = app.config.scheduler.enabled.then(|| {
        let settings = ScheduleSettings {
            dir: app.config.effective_pipelines_dir(),
            jitter: Duration::from_secs(app.config.scheduler.jitter_secs),
            tick: Duration::from_secs(app.config.scheduler.tick_secs),
        };
        tokio::spawn(run_schedule(
            app.runner.clone(),
            settings,
            |name| std::env::var(name).ok(),
            stopped.clone(),
        ))
    });
    let pg_server = pg.map(|(listener, _, tls)| {
        let mut pg_stopped = stopped.clone();
        tokio::spawn(crate::pg::serve(listener, tls, app.clone(), async move {
            let _ = pg_stopped.changed().await;
        }))
    });
    let flight_server = flight.map(|(listener, _)| {
        let mut flight_stopped = stopped.clone();
        tokio::spawn(crate::flight::serve(listener, app.clone(), async move {
            let _ = flight_stopped.changed().await;
        }))
    });
    let mut http_stopped = stopped;
    let served = server::serve(listener, app.clone(), async move {
        let _ = http_stopped.changed().await;
    });
    let signal = async {
        server::shutdown_signal().await;
        let _ = stop.send(true);
    };
    let (served, ()) = tokio::join!(served, signal);
    if let Some(scheduler) = scheduler {
        let _ = scheduler.await;
    }
    if let Some(pg_server) = pg_server {
        let _ = pg_server.await;
    }
    if let Some(flight_server) = flight_server
        && let Ok(Err(e)) = flight_server.await
    {
        tracing::error!(error = %e, "Flight SQL");
    }
    // Webhook attempts in flight are leased: a delivery cut short is attempted again after
    // the next start.
    webhooks.abort();
    logins.abort();
    recovery.abort();
    retention.abort();
    for (task, module) in modules.into_iter().zip(&app.modules) {
        task.abort();
        // What changed since the last export (SEMAR's positions of the last second too)
        // goes out now.
        if let Err(e) = module.export().await {
            tracing::warn!(module = module.name(), error = %e, "the final export failed; it runs at the next start");
        }
    }
    let grace = Duration::from_secs(app.config.scheduler.shutdown_grace_secs);
    let unfinished = app.runner.drain(grace).await;
    if unfinished > 0 {
        tracing::warn!(
            unfinished,
            "pipeline runs still running at the end of the grace period were stopped; they committed nothing and run again next time"
        );
    }
    served.map_err(|e| format!("the HTTP server stopped: {e}"))
}

/// Removes query-log, op-monitoring and audit rows past their retention (`[retention]`), a
/// minute after start and then daily.
async fn prune_operational(app: AppState) {
    let cutoff = |days: u64| {
        (days > 0).then(|| chrono::Utc::now() - chrono::Duration::days(days.min(365_000) as i64))
    };
    tokio::time::sleep(Duration::from_secs(60)).await;
    loop {
        let retention = &app.config.retention;
        match app
            .catalog
            .state
            .prune_operational(
                cutoff(retention.query_log_days),
                cutoff(retention.opmon_days),
                cutoff(retention.audit_days),
            )
            .await
        {
            Ok(pruned) => tracing::info!(
                query_log = pruned.query_log,
                opmon = pruned.opmon,
                audit = pruned.audit,
                "removed operational records past their retention"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "removing operational records past their retention failed")
            }
        }
        tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
    }
}

/// Forgets login counts whose window has passed, every ten minutes.
async fn prune_logins(app: AppState) {
    loop {
        tokio::time::sleep(Duration::from_secs(600)).await;
        if let Err(e) = app.logins.prune(&app.catalog.state).await {
            tracing::warn!(error = %e, "pruning the login counts failed");
        }
    }
}
