//! Logs: human-readable on a terminal, JSON for collectors. Always on stderr, so that stdout
//! carries only what scripts read (`http: …`, `admin key: …`, query output).

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Libraries whose own logs are only interesting when something is wrong.
const QUIET_LIBRARIES: &str = "buoyant_kernel=warn,deltalake_core=warn,deltalake_core::operations::merge=error,deltalake=warn,datafusion=warn,sqlx=warn";

/// Installs the global subscriber. `SIMPUL_LOG` (a tracing filter) overrides `level`.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_env("SIMPUL_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},{QUIET_LIBRARIES}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
