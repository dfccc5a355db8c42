//! Runtime adapters: implementations of the ports for one runtime each.
//! Only code under this module may name workers-rs, spin-sdk or tokio types.

#[cfg(feature = "cloudflare")]
pub mod cloudflare;
#[cfg(feature = "native")]
pub mod migrate;
#[cfg(feature = "native")]
pub mod native;
#[cfg(any(feature = "postgres", feature = "native", feature = "cloudflare"))]
pub mod postgres;
#[cfg(feature = "spin")]
pub mod spin;
#[cfg(test)]
mod spin_manifest;
#[cfg(any(feature = "spin", test))]
pub mod sql_text;
#[cfg(any(feature = "postgres", feature = "spin", test))]
pub mod sqlstate;
