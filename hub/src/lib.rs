//! The hub: the `simpul` binary's configuration, CLI and HTTP server.
//!
//! Owns everything that faces people and systems: the axum server (SQL, catalog, records and
//! upload endpoints, keys, health, metrics), API key authentication and roles, result
//! encoding (JSON, CSV, Arrow, Parquet), and the commands of the `simpul` CLI.
//!
//! Reaches data only through `simpul-catalog` (datasets, lake, state store, SQL sessions) and
//! `simpul-pipelines` (ingest, pipeline runs and the scheduler). Requests enter through `server::router`; results leave as
//! streamed response bodies.

pub mod api;
pub mod auth;
pub mod backup;
pub mod bootstrap;
pub mod bus;
pub mod calendar;
pub mod changes;
pub mod cli;
pub mod config;
pub mod dashboards;
pub mod federation;
pub mod flight;
pub mod geo;
pub mod health;
pub mod idempotent;
pub mod messagelog;
pub mod metrics;
pub mod modules;
pub mod opmon;
pub mod pg;
pub mod pipelines;
pub mod portal;
pub mod publish;
pub mod query;
pub mod read;
pub mod recovery;
pub mod results;
pub mod routes;
pub mod saved_queries;
pub mod schemas;
pub mod server;
pub mod sms;
pub mod telemetry;
pub mod users;
pub mod web;
pub mod webhooks;
