//! HTTP handlers: each turns a parsed request into a service call and a
//! response. They see only the core's types and ports, never a runtime's.

pub mod admin;
pub mod auth;
pub mod health;
pub mod memory;
pub mod openapi;
pub mod webauthn;
