//! Simpul's integration tests: one binary, real processes, real HTTP, real files.

mod harness;

mod abuse;
mod access_matrix;
mod architecture;
mod auth;
mod bad_input;
mod browser;
mod bus;
mod complaints;
mod concurrency;
mod crash;
mod dashboards;
mod exchange;
mod federation;
mod flight_sql;
mod hostile_files;
mod ingest_and_sql;
mod limits;
mod pgwire;
mod pipeline_runs;
mod pipelines;
mod portal;
mod postgres_state;
mod read_only;
mod records;
mod saved_queries;
mod schemas;
mod semar;
mod sql_governance;
mod time_travel;
mod users;
mod webhooks;
