//! Checks that `spin.toml` declares, and hands to the component, a Spin
//! variable for every setting the core reads (and the Spin adapter's own),
//! so a setting added to config.rs cannot silently be unsettable on Spin.
//! A unit test of the ordinary build: it needs no Spin feature or target.

use std::cell::RefCell;

use crate::backup_config;
use crate::config::tests::TEST_JWKS;
use crate::config::{Config, JWT_PUBLIC_KEYS};

const MANIFEST: &str = include_str!("../../../spin.toml");

/// The Spin adapter's own variables (platform/spin/mod.rs), spelled out
/// here because that module only builds with the `spin` feature; the S3
/// backup store's come from [`crate::s3::config::VARIABLES`].
const ADAPTER_VARIABLES: &[&str] = &["MEMSHADOW_DATABASE_URL", "MEMSHADOW_SCHEDULED_SECRET"];

/// Every name `Config::from_lookup` asks for when the configuration is
/// valid and backups are on (then it reads every variable: with backups
/// off it stops before their retention and webhook settings).
fn core_variables() -> Vec<String> {
    let asked = RefCell::new(Vec::new());
    let mut given = backup_config::tests::valid_keys();
    given.push((JWT_PUBLIC_KEYS.to_string(), TEST_JWKS.to_string()));
    let cfg = Config::from_lookup(|name| {
        asked.borrow_mut().push(name.to_string());
        given
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    })
    .expect("the defaults, the test JWKS and backup keys form a valid configuration");
    assert!(cfg.backup.is_some(), "backups should be on");
    asked.into_inner()
}

/// The text of one `[section]` of the manifest, up to the next header.
fn section(name: &str) -> &'static str {
    let header = format!("[{name}]\n");
    let start = MANIFEST
        .find(&header)
        .unwrap_or_else(|| panic!("spin.toml has no {header}"))
        + header.len();
    let rest = &MANIFEST[start..];
    let end = rest.find("\n[").map_or(rest.len(), |i| i + 1);
    &rest[..end]
}

fn declares(section: &str, line_prefix: &str) -> bool {
    section.lines().any(|line| line.starts_with(line_prefix))
}

#[test]
fn every_setting_is_a_spin_variable_handed_to_the_component() {
    let app = section("variables");
    let component = section("component.memshadow-api.variables");
    let mut names = core_variables();
    assert!(names.len() > 20, "the parser read only {names:?}");
    names.extend(ADAPTER_VARIABLES.iter().map(|n| n.to_string()));
    names.extend(crate::s3::config::VARIABLES.iter().map(|n| n.to_string()));
    for name in names {
        let var = name.to_ascii_lowercase();
        assert!(
            declares(app, &format!("{var} = {{")),
            "spin.toml [variables] lacks {var} (for {name})"
        );
        assert!(
            declares(component, &format!("{var} = \"{{{{ {var} }}}}\"")),
            "spin.toml [component.memshadow-api.variables] does not map {var}"
        );
    }
}

#[test]
fn the_s3_backup_store_has_an_outbound_grant() {
    // Spin refuses outbound HTTP to any origin not granted; the S3 store's
    // origin comes from its own network-grant variable, like the pool's.
    let app = section("variables");
    let component = section("component.memshadow-api");
    assert!(declares(app, "memshadow_outbound_backup_s3 = {"));
    assert!(
        component.contains("\"{{ memshadow_outbound_backup_s3 }}\""),
        "allowed_outbound_hosts grants memshadow_outbound_backup_s3"
    );
}
