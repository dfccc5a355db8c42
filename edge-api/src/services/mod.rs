//! Use cases, written against the ports: authentication, embedding,
//! memories and the scheduled job.

pub mod auth;
pub mod embedding;
pub mod memories;
pub mod scheduled;
