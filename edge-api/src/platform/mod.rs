//! Runtime adapters. Only code under this module may name workers-rs or
//! spin-sdk types.

#[cfg(feature = "cloudflare")]
pub mod cloudflare;
