//! MEMSHADOW edge API: every HTTP handler and scheduled job, written once
//! against the ports in [`ports`], and served by thin runtime adapters under
//! [`platform`] (Cloudflare Workers behind the `cloudflare` feature).

pub mod http;
pub mod ports;
pub mod platform;
