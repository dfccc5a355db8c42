//! Data access: all SQL text lives here, once.

pub mod memories;
