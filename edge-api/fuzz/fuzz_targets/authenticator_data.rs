//! Fuzzes the authenticator-data parser, the flag checks and the COSE key
//! found in attested credential data. Nothing may panic.
#![no_main]

use edge_api::webauthn::authenticator_data::{
    check_backup_flags, check_rp_id_hash, check_user_present, check_user_verified,
    parse_authenticator_data,
};
use edge_api::webauthn::cose::{Alg, CredentialPublicKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(auth_data) = parse_authenticator_data(data) else {
        return;
    };
    let _ = check_rp_id_hash(&auth_data, "localhost");
    let _ = check_user_present(&auth_data);
    let _ = check_user_verified(&auth_data, true);
    let _ = check_backup_flags(&auth_data);
    if let Some(credential) = &auth_data.attested_credential {
        assert!(credential.credential_id.len() <= 1023);
        let supported: Vec<i64> = Alg::ALL.iter().map(|a| a.cose_id()).collect();
        let _ = CredentialPublicKey::from_cbor_value(credential.public_key.clone(), &supported);
    }
});
