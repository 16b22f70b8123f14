//! Workspace integration tests. They live in one test binary, `tests/integration/`, and run
//! the real `simpul` binary against real files, HTTP on loopback and real clients.
