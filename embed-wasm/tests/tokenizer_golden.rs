//! Token-id parity with Python `tokenizers` on the golden strings of tests/golden/tokens.json.

mod common;

use common::TestModel;
use embed_wasm::Tokenizer;

#[test]
fn minilm_ids_equal_python_tokenizers() {
    ids_equal_python_tokenizers(common::MINILM);
}

/// MPNet wraps in <s> … </s> and matches `<unk>` after lower-casing.
#[test]
fn mpnet_ids_equal_python_tokenizers() {
    ids_equal_python_tokenizers(common::MPNET);
}

fn ids_equal_python_tokenizers(model: TestModel) {
    let json = model.read("tokenizer.json");
    assert_eq!(
        common::sha256_hex(&json),
        model.manifest_sha256("tokenizer.json")
    );
    let golden = common::golden(model.golden_tokens);
    assert_eq!(
        golden["tokenizer_json_sha256"].as_str(),
        Some(common::sha256_hex(&json).as_str()),
        "tokens.json was generated from another tokenizer.json; rerun scripts/model/golden_tokens.py"
    );
    assert_eq!(golden["truncation"].as_u64(), Some(model.max_tokens as u64));
    let tokenizer = Tokenizer::from_json(&json, model.max_tokens).expect("tokenizer.json loads");

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
