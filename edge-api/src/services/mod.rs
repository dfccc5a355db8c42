//! Use cases, written against the ports: accounts, tokens, passkeys, risk,
//! authentication, embedding, memories and the scheduled job.

pub mod accounts;
pub mod auth;
pub mod embed_pipeline;
pub mod embed_queue;
pub mod embedding;
pub mod memories;
pub mod passkeys;
pub mod risk;
pub mod scheduled;
pub mod tokens;
