//! Data access: all SQL text lives here, once.

pub mod access_stats;
pub mod backups;
pub mod challenges;
pub mod credentials;
pub mod embedding_jobs;
// Its SQL fragment macros (columns, filters) serve retrieval.rs too.
#[macro_use]
pub mod memories;
pub mod pending;
pub mod refresh_tokens;
pub mod retrieval;
pub mod rows;
pub mod telemetry;
pub mod users;
