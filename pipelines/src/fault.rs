//! Crash points, for the tests that prove every write path ends whole after a crash: with
//! `SIMPUL_FAULT_POINT=<name>` in its environment, a debug build aborts at that point, as if
//! the machine lost power there. Release builds compile the points out, so a deployment
//! never reads the variable.

/// The variable that names the point to crash at.
pub const FAULT_POINT_VAR: &str = "SIMPUL_FAULT_POINT";

/// Aborts the process if `SIMPUL_FAULT_POINT` names this point (debug builds only).
#[inline]
pub fn point(name: &str) {
    #[cfg(debug_assertions)]
    if std::env::var(FAULT_POINT_VAR).is_ok_and(|wanted| wanted == name) {
        eprintln!("{FAULT_POINT_VAR}={name}: aborting here, as asked");
        std::process::abort();
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}
