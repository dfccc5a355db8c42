//! WebAuthn verification core: checks registration (attestation) and
//! authentication (assertion) responses, with no I/O and no clock.
//!
//! The HTTP ceremonies (issuing and storing challenges, looking up stored
//! credentials, persisting the new sign count) live elsewhere and call
//! [`verify_registration`] and [`verify_authentication`]. Each verification
//! step is its own function in the submodules and fails with its own
//! [`WebauthnError`] variant, whose [`WebauthnError::code`] is stable.
//! `edge-api/WEBAUTHN.md` documents the steps, the policy choices and the
//! error-code table.
//!
//! No WebAuthn library is used: CBOR via `ciborium`, COSE keys via `coset`,
//! signatures via RustCrypto (`p256`, `ed25519-dalek`, `rsa`), certificates via
//! `x509-cert`. Everything is pure Rust and builds for `wasm32-unknown-unknown`.

// Parsers of untrusted bytes never panic; security code never unwraps.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod assertion;
pub mod attestation;
pub mod authenticator_data;
pub mod client_data;
pub mod cose;
pub mod errors;
pub mod registration;
pub mod response;

#[cfg(test)]
pub(crate) mod test_vectors;

pub use assertion::{
    AuthenticationInput, AuthenticationOutcome, StoredCredential, verify_authentication,
};
pub use attestation::{AttestationFormat, AttestationType};
pub use cose::{Alg, CoseAlgId};
pub use errors::WebauthnError;
pub use registration::{RegisteredCredential, RegistrationInput, verify_registration};
pub use response::{AuthenticationResponseJson, Base64UrlBytes, RegistrationResponseJson};

/// The relying party's verification policy, shared by both ceremonies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Require the UV flag (biometric / PIN). Default `true`: memories are
    /// sensitive and passkeys verify the user anyway.
    pub require_user_verification: bool,
    /// Accept `crossOrigin: true` (the RP embedded in a third-party iframe).
    /// Default `false`.
    pub allow_cross_origin: bool,
    /// When cross-origin is allowed, the accepted `topOrigin` values; empty
    /// accepts any top-level origin.
    pub allowed_top_origins: Vec<String>,
    /// COSE algorithm ids accepted for credential keys, a subset of what
    /// [`Alg`] implements (others are refused as `unsupported_algorithm`).
    pub supported_algs: Vec<CoseAlgId>,
    /// Unix seconds at which attestation certificates must be valid; `None`
    /// (the default) skips the validity-period check. Attestation is never
    /// trusted for provenance here, so expiry carries little meaning; callers
    /// that want it pass their clock's "now".
    pub certificate_time: Option<i64>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            require_user_verification: true,
            allow_cross_origin: false,
            allowed_top_origins: Vec::new(),
            supported_algs: Alg::ALL.iter().map(|a| a.cose_id()).collect(),
            certificate_time: None,
        }
    }
}

impl Policy {
    fn cross_origin(&self) -> client_data::CrossOriginPolicy<'_> {
        client_data::CrossOriginPolicy {
            allow_cross_origin: self.allow_cross_origin,
            allowed_top_origins: &self.allowed_top_origins,
        }
    }
}
