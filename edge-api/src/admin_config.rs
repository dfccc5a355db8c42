//! Who may call the operator endpoints (`/api/v1/admin/…`): the user ids
//! listed in `MEMSHADOW_ADMIN_USER_IDS`. A list in the configuration rather
//! than a role column or token claim: a deployer grants and revokes it
//! without a migration or a new token, and no sign-in path can mint it.

use uuid::Uuid;

use crate::config::ConfigError;

/// Comma-separated user UUIDs of the operators [none].
pub const ADMIN_USER_IDS: &str = "MEMSHADOW_ADMIN_USER_IDS";

/// Reads the admin list (`get` returns None for absent or empty).
pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Vec<Uuid>, ConfigError> {
    let Some(list) = get(ADMIN_USER_IDS) else {
        return Ok(Vec::new());
    };
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            Uuid::parse_str(s)
                .ok()
                .filter(|u| !u.is_nil())
                .ok_or_else(|| ConfigError {
                    variable: ADMIN_USER_IDS,
                    reason: "must be a comma-separated list of user UUIDs".into(),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(v: Option<&str>) -> Result<Vec<Uuid>, ConfigError> {
        from_lookup(&|_: &str| v.map(str::to_string))
    }

    #[test]
    fn reads_a_list_of_user_ids() {
        assert_eq!(read(None), Ok(vec![]));
        let a = "0b6f8a4e-3c55-4d2a-9a53-0f3c7d1e2a11";
        let b = "7d9e0c21-5f3a-4b8e-8c1d-2e4f6a8b0c33";
        let ids = read(Some(&format!(" {a} ,{b},"))).unwrap();
        assert_eq!(ids.len(), 2);
        assert_eq!(ids[0].to_string(), a);
        for bad in [
            "admin".to_string(),
            "00000000-0000-0000-0000-000000000000".into(),
            format!("{a},x"),
        ] {
            assert_eq!(read(Some(&bad)).unwrap_err().variable, ADMIN_USER_IDS);
        }
    }
}
