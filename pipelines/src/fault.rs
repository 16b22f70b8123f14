//! Crash points, for the tests that prove runs land exactly once: with
//! `SIMPUL_FAULT_POINT=<name>` in its environment, the process aborts at that point, as if
//! the machine lost power there. Never set in a deployment.

/// The variable that names the point to crash at.
pub const FAULT_POINT_VAR: &str = "SIMPUL_FAULT_POINT";

/// Aborts the process if `SIMPUL_FAULT_POINT` names this point.
pub(crate) fn point(name: &str) {
    if std::env::var(FAULT_POINT_VAR).is_ok_and(|wanted| wanted == name) {
        eprintln!("{FAULT_POINT_VAR}={name}: aborting here, as asked");
        std::process::abort();
    }
}
