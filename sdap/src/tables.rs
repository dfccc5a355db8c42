//! What a backup holds: the tables, their columns, and the one text form of
//! each column that both the exporter (edge-api, through its Sql port) and
//! the restore tool's post-load check select, so a restored database
//! re-exports to the very bytes the manifest hashed.
//!
//! Every column is exported as text (or NULL) by an expression that does
//! not depend on session settings: timestamps in UTC with microseconds,
//! bytea as `\x…` hex. Restore casts each text back with `type`.

/// The newest migration whose tables and columns this list covers. A
/// restore refuses a database that has not applied it.
pub const SCHEMA_VERSION: &str = "0002_auth";

pub struct Column {
    pub name: &'static str,
    /// The SQL type the text is cast back to on restore.
    pub sql_type: &'static str,
    /// How the exporter selects it (a text-valued expression).
    pub select: &'static str,
}

pub struct Table {
    pub name: &'static str,
    /// The stable cursor: unique, immutable, ordered by Postgres.
    pub key: &'static str,
    pub key_type: &'static str,
    pub columns: &'static [Column],
}

const fn col(name: &'static str, sql_type: &'static str, select: &'static str) -> Column {
    Column {
        name,
        sql_type,
        select,
    }
}

macro_rules! ts {
    ($c:literal) => {
        concat!(
            "to_char(",
            $c,
            " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
        )
    };
}

pub const USERS: Table = Table {
    name: "users",
    key: "id",
    key_type: "uuid",
    columns: &[
        col("id", "uuid", "id::text"),
        col("email", "text", "email"),
        col("username", "text", "username"),
        col("password_hash", "text", "password_hash"),
        col("created_at", "timestamptz", ts!("created_at")),
    ],
};

pub const WEBAUTHN_CREDENTIALS: Table = Table {
    name: "webauthn_credentials",
    key: "id",
    key_type: "uuid",
    columns: &[
        col("id", "uuid", "id::text"),
        col("user_id", "uuid", "user_id::text"),
        col(
            "credential_id",
            "bytea",
            "'\\x' || encode(credential_id, 'hex')",
        ),
        col("public_key", "bytea", "'\\x' || encode(public_key, 'hex')"),
        col("alg", "integer", "alg::text"),
        col("sign_count", "bigint", "sign_count::text"),
        col("aaguid", "uuid", "aaguid::text"),
        col("backup_eligible", "boolean", "backup_eligible::text"),
        col("backup_state", "boolean", "backup_state::text"),
        col("transports", "text[]", "transports::text"),
        col("name", "text", "name"),
        col("created_at", "timestamptz", ts!("created_at")),
        col("last_used_at", "timestamptz", ts!("last_used_at")),
    ],
};

pub const REFRESH_TOKENS: Table = Table {
    name: "refresh_tokens",
    key: "token_hash",
    key_type: "text",
    columns: &[
        col("token_hash", "text", "token_hash"),
        col("family_id", "uuid", "family_id::text"),
        col("user_id", "uuid", "user_id::text"),
        col("amr", "text[]", "amr::text"),
        col("mfa_pending", "boolean", "mfa_pending::text"),
        col("hwk_at", "timestamptz", ts!("hwk_at")),
        col("issued_at", "timestamptz", ts!("issued_at")),
        col("expires_at", "timestamptz", ts!("expires_at")),
        col("used_at", "timestamptz", ts!("used_at")),
        col("revoked_at", "timestamptz", ts!("revoked_at")),
    ],
};

pub const MEMORIES: Table = Table {
    name: "memories",
    key: "id",
    key_type: "uuid",
    columns: &[
        col("id", "uuid", "id::text"),
        col("user_id", "uuid", "user_id::text"),
        col("content", "text", "content"),
        col("content_hash", "text", "content_hash"),
        col("metadata", "jsonb", "metadata::text"),
        col("tags", "text[]", "tags::text"),
        col("embedding", "vector", "embedding::text"),
        col("embedding_model", "text", "embedding_model"),
        col("embedding_status", "text", "embedding_status"),
        col("embed_attempts", "integer", "embed_attempts::text"),
        col("next_embed_at", "timestamptz", ts!("next_embed_at")),
        col("created_at", "timestamptz", ts!("created_at")),
        col("updated_at", "timestamptz", ts!("updated_at")),
        col("accessed_at", "timestamptz", ts!("accessed_at")),
        col("access_count", "bigint", "access_count::text"),
        col("expires_at", "timestamptz", ts!("expires_at")),
    ],
};

/// In load order: a table's foreign keys point only at tables before it.
pub const TABLES: &[&Table] = &[&USERS, &WEBAUTHN_CREDENTIALS, &REFRESH_TOKENS, &MEMORIES];

pub fn table(name: &str) -> Option<&'static Table> {
    TABLES.iter().copied().find(|t| t.name == name)
}

impl Table {
    pub fn column_names(&self) -> Vec<&'static str> {
        self.columns.iter().map(|c| c.name).collect()
    }

    /// `SELECT <text expressions> FROM <table>` plus `extra` (a WHERE
    /// clause using `$1` as the cursor, ORDER BY, LIMIT): the exporter's and
    /// the post-restore check's one way to read rows.
    pub fn select_sql(&self, extra: &str) -> String {
        let cols: Vec<&str> = self.columns.iter().map(|c| c.select).collect();
        format!("SELECT {} FROM {} {extra}", cols.join(", "), self.name)
    }

    /// Rows after the cursor `$1` (all rows when `$1` is NULL), key order,
    /// at most `$2` of them.
    pub fn page_sql(&self, filter: Option<&str>) -> String {
        let filter = filter.map(|f| format!("AND ({f})")).unwrap_or_default();
        self.select_sql(&format!(
            "WHERE ($1::text IS NULL OR {key} > $1::text::{kt}{coll}) {filter} ORDER BY {key}{coll} LIMIT $2::text::bigint",
            key = self.key,
            kt = self.key_type,
            coll = self.key_collation(),
        ))
    }

    /// Text keys compare bytewise everywhere, whatever the database's locale.
    fn key_collation(&self) -> &'static str {
        if self.key_type == "text" {
            " COLLATE \"C\""
        } else {
            ""
        }
    }

    /// The position of the key among the columns (the cursor of a page is
    /// the key of its last row).
    pub fn key_index(&self) -> usize {
        self.columns
            .iter()
            .position(|c| c.name == self.key)
            .unwrap_or(0)
    }

    /// Inserts the rows of a JSON array of arrays (`$1`, text) in column
    /// order. `merge` skips rows whose key already exists.
    pub fn insert_sql(&self, merge: bool) -> String {
        let names = self.column_names().join(", ");
        let casts: Vec<String> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| format!("(r->>{i})::{}", c.sql_type))
            .collect();
        format!(
            "INSERT INTO {} ({names}) SELECT {} FROM jsonb_array_elements($1::text::jsonb) AS r{}",
            self.name,
            casts.join(", "),
            if merge { " ON CONFLICT DO NOTHING" } else { "" }
        )
    }
}
