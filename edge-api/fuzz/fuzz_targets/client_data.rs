//! Fuzzes clientDataJSON parsing and every clientData check; the first byte
//! picks the ceremony and the cross-origin policy. Nothing may panic.
#![no_main]

use edge_api::webauthn::client_data::{
    CeremonyType, ClientDataExpectations, CrossOriginPolicy, verify_client_data,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, json)) = data.split_first() else {
        return;
    };
    let origins = ["https://fuzz.example".to_owned()];
    let tops = if mode & 4 != 0 {
        vec!["https://top.example".to_owned()]
    } else {
        Vec::new()
    };
    let expected = ClientDataExpectations {
        ceremony: if mode & 1 != 0 {
            CeremonyType::Get
        } else {
            CeremonyType::Create
        },
        challenge: &[0, 1, 2, 3],
        allowed_origins: &origins,
        cross_origin: CrossOriginPolicy {
            allow_cross_origin: mode & 2 != 0,
            allowed_top_origins: &tops,
        },
    };
    let _ = verify_client_data(json, &expected);
});
