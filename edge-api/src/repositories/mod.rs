//! Data access: all SQL text lives here, once.

pub mod backups;
pub mod challenges;
pub mod credentials;
pub mod memories;
pub mod refresh_tokens;
pub mod rows;
pub mod telemetry;
pub mod users;
