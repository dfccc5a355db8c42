//! Token-id parity with Python `tokenizers` on the golden strings of tests/golden/tokens.json.

mod common;

use embed_wasm::{MAX_TOKENS, Tokenizer};

#[test]
fn ids_equal_python_tokenizers() {
    let json = common::read_model_file("tokenizer.json");
    let golden = common::golden("tokens.json");
    assert_eq!(
        golden["tokenizer_json_sha256"].as_str(),
        Some(common::sha256_hex(&json).as_str()),
        "tokens.json was generated from another tokenizer.json; rerun scripts/model/golden_tokens.py"
    );
    assert_eq!(golden["truncation"].as_u64(), Some(MAX_TOKENS as u64));
    let tokenizer = Tokenizer::from_json(&json, MAX_TOKENS).expect("tokenizer.json loads");

    let cases = golden["cases"].as_array().expect("cases");
    assert!(cases.len() >= 200, "only {} golden cases", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let text = case["text"].as_str().expect("text");
        let expected: Vec<u32> = case["ids"]
            .as_array()
            .expect("ids")
            .iter()
            .map(|v| v.as_u64().expect("id") as u32)
            .collect();
        let got = tokenizer.encode(text);
        assert_eq!(got.attention_mask.len(), got.ids.len());
        assert!(got.attention_mask.iter().all(|&m| m == 1));
        if got.ids != expected {
            failures.push(format!(
                "{text:?}\n  python {expected:?}\n  rust   {:?}",
                got.ids
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} texts differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
