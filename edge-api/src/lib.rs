//! MEMSHADOW edge API: every HTTP handler and scheduled job, written once
//! against the ports in [`ports`], and served by thin runtime adapters under
//! [`platform`] (Cloudflare Workers behind the `cloudflare` feature, native
//! tokio for tests and tools behind `native`).
//!
//! Adapters call [`app::handle`] and [`app::run_scheduled`] with a
//! [`app::Platform`] of ports and a [`config::Config`].

pub mod admin_config;
pub mod app;
pub mod backup_config;
pub mod concurrent;
pub mod config;
pub mod console;
pub mod embedding_config;
pub mod errors;
pub mod handlers;
pub mod http;
pub mod json;
pub mod jwt_keys;
pub mod limits;
pub mod platform;
pub mod ports;
pub mod repositories;
pub mod router;
pub mod s3;
pub mod services;
pub mod webauthn;
