//! Native throughput of the Embedder: `cargo run --release -p embed-wasm --example bench [fp32|int8]`.
//!
//! Loads the model from $MEMSHADOW_MODEL_DIR (see scripts/model/prepare.sh)
//! and reports load time and texts/s for short texts and for 256-token texts,
//! single-threaded, at batch 1 and batch 32.

use std::time::Instant;

use embed_wasm::Embedder;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let variant = std::env::args().nth(1).unwrap_or_else(|| "fp32".into());
    let dir = std::env::var_os("MEMSHADOW_MODEL_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| std::path::PathBuf::from(h).join(".cache/memshadow/model"))
        })
        .ok_or("set MEMSHADOW_MODEL_DIR")?;
    let model = std::fs::read(dir.join(format!("model-{variant}.onnx")))?;
    let tokenizer = std::fs::read(dir.join("tokenizer.json"))?;
    let t = Instant::now();
    let files = embed_wasm::ModelFiles {
        tokenizer_json: &tokenizer,
        max_tokens: embed_wasm::DEFAULT_MAX_TOKENS,
    };
    let embedder = Embedder::load_owned(model, files)?;
    println!(
        "{variant}: load + optimise {:.2} s",
        t.elapsed().as_secs_f64()
    );

    let short: Vec<String> = (0..64)
        .map(|i| format!("memory number {i}: the user likes green tea"))
        .collect();
    let long: Vec<String> = (0..16)
        .map(|i| {
            format!(
                "{i} {}",
                "neural networks learn representations ".repeat(80)
            )
        })
        .collect();
    for (name, texts) in [("short (~12 tokens)", &short), ("long (256 tokens)", &long)] {
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        embedder.embed(&texts[..2])?; // warm-up
        for batch in [1usize, 32] {
            let t = Instant::now();
            let mut n = 0;
            while t.elapsed().as_secs_f64() < 3.0 {
                for chunk in texts.chunks(batch) {
                    embedder.embed(chunk)?;
                    n += chunk.len();
                }
            }
            println!(
                "  {name}, batch {batch}: {:.1} texts/s",
                n as f64 / t.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}
