//! The patrolsync server: receives batched check-ins over QUIC, stores each exactly once, and
//! serves admins. `Server::bind` starts everything from one typed [`Config`]; `main.rs` is a thin
//! command-line layer over this library.
//!
//! This file only declares the modules and re-exports what binaries and tests use; README.md's
//! code map says what each module does.

pub mod admin;
pub mod blobs;
mod budget;
pub mod calendar;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod enroll;
pub mod escalation;
#[cfg(feature = "test-util")]
pub mod faults;
pub mod grid_import;
pub mod health;
pub mod ingest;
pub mod metrics;
pub mod pki;
pub mod public;
mod pull;
pub mod registry_import;
pub mod report;
pub mod routing;
pub mod seed;
mod server;
pub mod store;
pub mod templates;
#[cfg(feature = "test-util")]
pub mod testkit;
mod transport;

pub use clock::now_ms;
pub use config::Config;
pub use server::{ServeError, Server, open_sql_store, open_store};
