//! Use cases, written against the ports: accounts, tokens, passkeys, risk,
//! authentication, embedding, memories, the scheduled job and backups
//! (export, retention, outcome webhook).

pub mod accounts;
pub mod auth;
pub mod backup;
pub mod backup_retention;
pub mod backup_webhook;
pub mod embed_pipeline;
pub mod embed_queue;
pub mod embedding;
pub mod memories;
pub mod passkeys;
pub mod risk;
pub mod scheduled;
pub mod tokens;
