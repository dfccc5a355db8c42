//! Data access: all SQL text lives here, once.

pub mod challenges;
pub mod credentials;
// Its SQL fragment macros (columns, filters) serve retrieval.rs too.
#[macro_use]
pub mod memories;
pub mod refresh_tokens;
pub mod retrieval;
pub mod rows;
pub mod telemetry;
pub mod users;
