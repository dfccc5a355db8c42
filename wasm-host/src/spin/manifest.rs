//! What `wasm-host serve` reads from `spin.toml`, the way `spin up` would:
//! the application variables (defaults, required), the one component's
//! variable mappings, `allowed_outbound_hosts` and `key_value_stores`, with
//! `{{ variable }}` templates expanded. Values come, highest first, from
//! `--variable name=value` flags, `SPIN_VARIABLE_<NAME>` environment
//! variables, a dotenv file, then the manifest's defaults.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

#[derive(Deserialize)]
struct RawManifest {
    #[serde(default)]
    variables: BTreeMap<String, RawVariable>,
    component: BTreeMap<String, RawComponent>,
}

#[derive(Deserialize)]
struct RawVariable {
    default: Option<String>,
    #[serde(default)]
    required: bool,
}

#[derive(Deserialize)]
struct RawComponent {
    source: PathBuf,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    key_value_stores: Vec<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
}

/// The resolved component: everything the host needs per request.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub name: String,
    /// The component file, relative to the manifest's directory.
    pub source: PathBuf,
    /// `scheme://host:port` entries, templates expanded.
    pub allowed_outbound_hosts: Vec<String>,
    pub key_value_stores: Vec<String>,
    /// Component variable name → value, templates expanded.
    pub variables: BTreeMap<String, String>,
}

/// Where application-variable values come from.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    /// `--variable name=value`.
    pub flags: BTreeMap<String, String>,
    /// Reads `SPIN_VARIABLE_<NAME>`.
    pub env: bool,
    /// A dotenv file (`NAME=value` lines, names matched case-insensitively),
    /// e.g. the one `scripts/stack.sh` writes for `wrangler dev`.
    pub file: Option<PathBuf>,
}

impl Sources {
    fn file_values(&self) -> Result<BTreeMap<String, String>> {
        let Some(path) = &self.file else {
            return Ok(BTreeMap::new());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading variables file {}", path.display()))?;
        Ok(parse_dotenv(&text))
    }

    fn lookup(&self, file: &BTreeMap<String, String>, name: &str) -> Option<String> {
        if let Some(v) = self.flags.get(name) {
            return Some(v.clone());
        }
        if self.env
            && let Ok(v) = std::env::var(format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase()))
        {
            return Some(v);
        }
        file.get(name).cloned()
    }
}

/// `NAME=value` lines; `#` comments and blank lines skipped; one pair of
/// surrounding quotes removed; names lower-cased (Spin variable names).
pub fn parse_dotenv(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("export ").unwrap_or(l).split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let unquoted = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            (k.trim().to_ascii_lowercase(), unquoted.to_string())
        })
        .collect()
}

/// Expands `{{ name }}` from `values`; an unknown name is an error.
fn expand(template: &str, values: &BTreeMap<String, String>) -> Result<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            bail!("unclosed {{{{ in {template:?}");
        };
        let name = after[..end].trim();
        let value = values
            .get(name)
            .with_context(|| format!("{template:?} names an undeclared variable {name:?}"))?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Reads `manifest` and resolves its single component.
pub fn load(manifest: &Path, sources: &Sources) -> Result<Resolved> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let raw: RawManifest =
        toml::from_str(&text).with_context(|| format!("parsing {}", manifest.display()))?;
    let file = sources.file_values()?;
    let mut values = BTreeMap::new();
    for (name, decl) in &raw.variables {
        match sources.lookup(&file, name).or_else(|| decl.default.clone()) {
            Some(v) => {
                values.insert(name.clone(), v);
            }
            None if decl.required => bail!(
                "variable {name} is required: pass --variable {name}=..., set \
                 SPIN_VARIABLE_{}, or put it in the variables file",
                name.to_ascii_uppercase()
            ),
            None => {}
        }
    }
    let mut components = raw.component.into_iter();
    let (name, component) = components
        .next()
        .context("the manifest declares no component")?;
    if components.next().is_some() {
        bail!("wasm-host serves one component; the manifest declares several");
    }
    Ok(Resolved {
        name,
        source: component.source,
        allowed_outbound_hosts: component
            .allowed_outbound_hosts
            .iter()
            .map(|h| expand(h, &values))
            .collect::<Result<_>>()?,
        key_value_stores: component.key_value_stores,
        variables: component
            .variables
            .iter()
            .map(|(k, v)| Ok((k.clone(), expand(v, &values)?)))
            .collect::<Result<_>>()?,
    })
}

/// Whether `scheme://host:port` is allowed by one of `allowed` (entries are
/// `scheme://host[:port]`; `*` matches any host or port).
pub fn host_allowed(allowed: &[String], scheme: &str, host: &str, port: u16) -> bool {
    allowed.iter().any(|entry| {
        let Some((s, rest)) = entry.split_once("://") else {
            return false;
        };
        let rest = rest.trim_end_matches('/');
        let (h, p) = match rest.rsplit_once(':') {
            Some((h, p))
                if p == "*" || (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) =>
            {
                (h, Some(p))
            }
            _ => (rest, None),
        };
        let default_port = match s {
            "http" => Some(80),
            "https" => Some(443),
            "postgres" => Some(5432),
            _ => None,
        };
        let port_ok = match p {
            Some("*") => true,
            Some(p) => p.parse::<u16>().ok() == Some(port),
            None => default_port == Some(port),
        };
        (s == scheme || s == "*") && (h == "*" || h.eq_ignore_ascii_case(host)) && port_ok
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_and_dotenv() {
        let values = BTreeMap::from([("a".to_string(), "x".to_string())]);
        assert_eq!(expand("p://{{ a }}:1", &values).unwrap(), "p://x:1");
        assert!(expand("{{ b }}", &values).is_err());
        assert!(expand("{{ a", &values).is_err());
        let env = parse_dotenv("# c\nMEMSHADOW_X=\"1=2\"\nexport Y='z'\n\nbad\n");
        assert_eq!(env.get("memshadow_x").map(String::as_str), Some("1=2"));
        assert_eq!(env.get("y").map(String::as_str), Some("z"));
        assert_eq!(env.len(), 2);
    }

    #[test]
    fn allowed_hosts() {
        let allowed = vec![
            "postgres://127.0.0.1:54329".to_string(),
            "http://127.0.0.1:8790".to_string(),
            "https://api.example.com".to_string(),
        ];
        assert!(host_allowed(&allowed, "postgres", "127.0.0.1", 54329));
        assert!(!host_allowed(&allowed, "postgres", "127.0.0.1", 5432));
        assert!(host_allowed(&allowed, "http", "127.0.0.1", 8790));
        assert!(!host_allowed(&allowed, "https", "127.0.0.1", 8790));
        assert!(!host_allowed(&allowed, "http", "10.0.0.1", 8790));
        assert!(host_allowed(&allowed, "https", "API.example.com", 443));
        assert!(!host_allowed(&allowed, "https", "api.example.com", 8443));
    }
}
