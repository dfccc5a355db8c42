//! The Spin build of edge-api imports exactly the interfaces the README
//! names (section "Running on Spin"), and `wasm-host serve` provides every
//! one of them: a new import (a spin-sdk feature, a dependency reaching for a
//! new WASI interface) fails here until the README, and the hosts that must
//! provide it, are updated on purpose.
//!
//! Reads the release component built by
//! `cargo build -p edge-api --no-default-features --features spin --target wasm32-wasip2 --release`
//! (`MEMSHADOW_SPIN_COMPONENT` overrides the path); fails, with that
//! command, when it is missing.

use std::collections::BTreeSet;
use std::path::PathBuf;

use wasmparser::{Parser, Payload};

fn component_bytes() -> Vec<u8> {
    let path = component_path();
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the Spin component {} ({e}); build it with \
             `cargo build -p edge-api --no-default-features --features spin \
             --target wasm32-wasip2 --release`",
            path.display()
        )
    })
}

fn component_path() -> PathBuf {
    if let Some(path) = std::env::var_os("MEMSHADOW_SPIN_COMPONENT") {
        return PathBuf::from(path);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/memshadow/target")
        });
    target.join("wasm32-wasip2/release/edge_api.wasm")
}

/// The names of the component's own imports (not those of the core modules
/// or nested components inside it).
fn top_level_imports(bytes: &[u8]) -> BTreeSet<String> {
    let mut imports = BTreeSet::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.expect("the component parses") {
            Payload::Version { .. } => {}
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import = import.expect("an import entry parses");
                    imports.insert(import.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    imports
}

/// The backquoted interface names between the README's
/// `<!-- spin-imports:begin -->` and `<!-- spin-imports:end -->` markers.
fn readme_allow_list() -> BTreeSet<String> {
    let readme = include_str!("../../README.md");
    let begin = readme
        .find("<!-- spin-imports:begin -->")
        .expect("README.md has the spin-imports:begin marker");
    let end = readme[begin..]
        .find("<!-- spin-imports:end -->")
        .expect("README.md has the spin-imports:end marker")
        + begin;
    readme[begin..end]
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|name| name.contains(':') && name.contains('/'))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_component_imports_exactly_what_the_readme_names() {
    let bytes = component_bytes();
    let imports = top_level_imports(&bytes);
    assert!(
        imports.iter().any(|i| i.starts_with("spin:postgres/")),
        "not the Spin build of edge-api: {imports:?}"
    );
    let allowed = readme_allow_list();
    let unnamed: Vec<_> = imports.difference(&allowed).collect();
    let stale: Vec<_> = allowed.difference(&imports).collect();
    assert!(
        unnamed.is_empty() && stale.is_empty(),
        "imports not named in README.md: {unnamed:?}; named but no longer imported: {stale:?}"
    );
}

#[test]
fn wasm_host_provides_every_import() {
    let bytes = component_bytes();
    let engine = wasm_host::spin::server::engine().expect("engine");
    // Compiled once, then loaded from the wasm-cache like `serve` does.
    let component = wasm_host::spin::server::load_component(
        &engine,
        &component_path(),
        &wasm_host::config::default_cache_dir(),
    )
    .expect("the component compiles");
    // instantiate_pre resolves every import against the linker and names
    // the first one missing.
    wasm_host::spin::server::link(&engine, &component)
        .expect("wasm-host serve provides every import of the component");
    for import in top_level_imports(&bytes) {
        if import.starts_with("spin:") {
            assert!(
                wasm_host::spin::SPIN_INTERFACES.contains(&import.as_str()),
                "{import} is not in wasm_host::spin::SPIN_INTERFACES"
            );
        }
    }
}
