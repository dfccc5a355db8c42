//! Fuzzes COSE_Key decoding and validation (EC2/OKP/RSA), then signature
//! verification with whatever key comes out. Nothing may panic.
#![no_main]

use edge_api::webauthn::cose::{Alg, CredentialPublicKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let supported: Vec<i64> = Alg::ALL.iter().map(|a| a.cose_id()).collect();
    if let Ok(key) = CredentialPublicKey::from_cose_bytes(data, &supported) {
        // A garbage signature must be refused, never panic.
        assert!(key.verify(b"fuzz", data).is_err());
        let _ = key.p256_uncompressed_point();
    }
});
