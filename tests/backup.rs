//! SDAP backups end to end: the real Worker's daily trigger
//! (`/__scheduled?cron=0+3+*+*+*`) exports to miniflare's local R2 bucket;
//! the objects are fetched with `wrangler r2 object get`, restored with the
//! `sdap` tool into a fresh database, compared row by row with the source
//! (two accounts, 3,001 memories, a passkey), and a second Worker on the
//! restored database signs the user in and retrieves the memory; the
//! passkey account, whose passkey was registered through the API with a
//! software authenticator, signs in with password and passkey and retrieves
//! its memory. No stored object holds a memory text or an email.
//! A second daily backup then retires the first from the bucket (retention
//! keeps the newest backup of each day).
//!
//! Needs the stack (scripts/stack.sh up: its backup keys in
//! .data/backup-keys, the `sdap` and `migrate` binaries) and the superuser
//! URL in MEMSHADOW_ADMIN_DATABASE_URL.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use memshadow_e2e::database::{FreshDatabase, admin_url, run_sql, target_dir};
use memshadow_e2e::{Client, api_url, dev_keys_dir, eventually, repo_root, wrangler::Worker};
use serde_json::{Value, json};
use soft_authenticator::SoftAuthenticator;

/// Memories the round trip seeds besides the one ingested through the API.
const SEEDED_MEMORIES: usize = 3000;

fn data_dir() -> PathBuf {
    std::env::var("MEMSHADOW_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join(".data"))
}

fn api_port() -> u16 {
    api_url()
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or(8787)
}

/// Where wrangler dev keeps this stack's local state (scripts/stack.sh).
fn persist_dir() -> PathBuf {
    data_dir()
        .join(format!("run-{}", api_port()))
        .join("wrangler")
}

/// `wrangler r2 object get` from the stack's local bucket into `dest`.
fn r2_get(key: &str, dest: &Path) {
    let out = r2_get_output(key, dest);
    assert!(
        out.status.success() && dest.is_file(),
        "wrangler r2 object get {key} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether the stack's local bucket holds `key`.
fn r2_has(key: &str) -> bool {
    let dest = std::env::temp_dir().join(format!("memshadow-r2-probe-{}", uuid::Uuid::new_v4()));
    let found = r2_get_output(key, &dest).status.success() && dest.is_file();
    let _ = std::fs::remove_file(&dest);
    found
}

fn r2_get_output(key: &str, dest: &Path) -> std::process::Output {
    std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
    let node_dir = std::env::var("MEMSHADOW_NODE").unwrap_or_else(|_| {
        format!(
            "{}/.cache/memshadow/npm",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    Command::new("node")
        .arg(format!("{node_dir}/node_modules/wrangler/bin/wrangler.js"))
        .args(["r2", "object", "get"])
        .arg(format!("memshadow-backups/{key}"))
        .arg("--local")
        .arg("--persist-to")
        .arg(persist_dir())
        .arg("--file")
        .arg(dest)
        .current_dir(repo_root())
        .env("WRANGLER_SEND_METRICS", "false")
        .output()
        .expect("run wrangler")
}

fn sdap(args: &[&str]) -> String {
    let out = Command::new(target_dir().join("release/sdap"))
        .args(args)
        .output()
        .expect("run sdap (scripts/stack.sh build builds it)");
    assert!(
        out.status.success(),
        "sdap {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                files_under(&p, out);
            } else {
                out.push(p);
            }
        }
    }
}

fn login(base: &str, username: &str, password: &str) -> String {
    let r = Client::anonymous(base)
        .post(
            "/api/v1/auth/login",
            &json!({"username": username, "password": password}),
        )
        .expect(200);
    r.json()["access_token"]
        .as_str()
        .expect("token")
        .to_string()
}

#[test]
fn daily_backup_restores_into_a_fresh_database_that_signs_in_and_retrieves() {
    let base = api_url();
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let username = format!("bk{}", &tag[..12]);
    let email = format!("{username}@backup.example");
    let password = format!("correct horse {tag}");
    Client::anonymous(&base)
        .post(
            "/api/v1/auth/register",
            &json!({"email": email, "username": username, "password": password}),
        )
        .expect(200);
    let token = login(&base, &username, &password);
    let me = Client::anonymous(&base).with_token(&token);
    let secret = format!("the lighthouse key is under the blue stone {tag}");
    let stored = me.ingest(
        &secret,
        json!({"tags": ["backup"], "metadata": {"e2e": true}}),
    );
    let memory_id = stored["id"].as_str().expect("id").to_string();
    let user_id = run_sql(
        &admin_url(),
        &format!("SELECT id::text FROM users WHERE username = '{username}'"),
    )[0][0]
        .clone()
        .expect("user id");
    // A second account, which also holds a passkey.
    let pk_username = format!("pk{}", &tag[..12]);
    Client::anonymous(&base)
        .post(
            "/api/v1/auth/register",
            &json!({"email": format!("{pk_username}@backup.example"), "username": pk_username, "password": password}),
        )
        .expect(200);
    let pk_user_id = run_sql(
        &admin_url(),
        &format!("SELECT id::text FROM users WHERE username = '{pk_username}'"),
    )[0][0]
        .clone()
        .expect("user id");
    // Its passkey is registered through the API, as a browser would: the
    // software authenticator keeps the private key for the sign-in after
    // the restore.
    let pk_token = login(&base, &pk_username, &password);
    let pk_client = Client::anonymous(&base).with_token(&pk_token);
    let options = pk_client
        .post("/api/v1/auth/webauthn/register/begin", &json!({}))
        .expect(200)
        .json();
    let mut passkey =
        SoftAuthenticator::new(&format!("http://localhost:{}", api_port()), "localhost");
    pk_client
        .post(
            "/api/v1/auth/webauthn/register/complete",
            &passkey.create(&options),
        )
        .expect(201);
    let pk_secret = format!("the passkey holder's boat is called Heron {tag}");
    let pk_memory = pk_client.ingest(&pk_secret, json!({}));
    let pk_memory = pk_memory["id"].as_str().expect("id");
    eventually(Duration::from_secs(60), || {
        (pk_client.embedding_status(pk_memory) == "ready").then_some(())
    })
    .expect("the passkey account's memory is embedded before the backup");
    // A few thousand more memories (embedded, tagged, with metadata),
    // written straight into the stack's database: the backup must carry
    // every one of them, byte for byte.
    run_sql(
        &admin_url(),
        &format!(
            "INSERT INTO memories (user_id, content, content_hash, metadata, tags, embedding, \
               embedding_model, embedding_status, expires_at) \
             SELECT '{user_id}', 'seeded memory ' || g || ' {tag}', \
               encode(sha256(('{tag}' || g)::bytea), 'hex'), jsonb_build_object('n', g, 'odd', g % 2 = 1), \
               ARRAY['seed', 't' || (g % 7)], \
               (SELECT array_agg(sin(g * 0.7 + i)::real) FROM generate_series(1, 384) i)::vector, \
               'all-MiniLM-L6-v2', 'ready', CASE WHEN g % 5 = 0 THEN now() + interval '30 days' END \
             FROM generate_series(1, {SEEDED_MEMORIES}) g"
        ),
    );

    let backup_id = daily_backup(&base);

    // Fetch the backup out of the local R2 bucket.
    let store = std::env::temp_dir().join(format!("memshadow-backup-e2e-{tag}"));
    let folder = format!("backups/{backup_id}");
    for name in ["manifest.json", "manifest.sig"] {
        r2_get(&format!("{folder}/{name}"), &store.join(&folder).join(name));
    }
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(store.join(&folder).join("manifest.json")).expect("manifest"),
    )
    .expect("manifest json");
    for c in manifest["chunks"].as_array().expect("chunks") {
        let name = c["object"].as_str().expect("object");
        r2_get(&format!("{folder}/{name}"), &store.join(&folder).join(name));
    }

    // Restore into a fresh, migrated database.
    let keys = data_dir().join("backup-keys");
    let restored = FreshDatabase::create(&format!("restored_{}", &tag[..12]));
    let restored_admin = restored.admin_url();
    let out = sdap(&[
        "restore",
        "--from",
        store.to_str().expect("utf-8"),
        "--backup",
        &backup_id,
        "--identity",
        keys.join("identity.txt").to_str().expect("utf-8"),
        "--trusted-key",
        keys.join("signing-key.pub").to_str().expect("utf-8"),
        "--database",
        &restored_admin,
    ]);
    assert!(out.contains("row counts and content hashes match"), "{out}");

    // Our rows are identical in the source and the restored database.
    let pick = |table: &str, key: &str, value: &str| {
        let t = sdap::tables::table(table).expect("table");
        format!(
            "SELECT {} FROM {table} WHERE {key}::text = '{value}' ORDER BY 1",
            t.columns
                .iter()
                .map(|c| c.select)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    for (table, key, value, rows) in [
        ("users", "id", user_id.as_str(), 1),
        ("memories", "user_id", user_id.as_str(), SEEDED_MEMORIES + 1),
        ("users", "id", pk_user_id.as_str(), 1),
        ("webauthn_credentials", "user_id", pk_user_id.as_str(), 1),
        ("memories", "user_id", pk_user_id.as_str(), 1),
        ("refresh_tokens", "user_id", user_id.as_str(), 1),
    ] {
        let a = run_sql(&admin_url(), &pick(table, key, value));
        let b = run_sql(&restored_admin, &pick(table, key, value));
        assert_eq!(a.len(), rows, "{table}: our rows in the source");
        assert!(a == b, "{table} differs after restore");
    }
    assert!(
        run_sql(&restored_admin, &pick("memories", "id", &memory_id)).len() == 1,
        "the ingested memory is restored"
    );

    // Nothing in the local bucket is plaintext.
    let mut files = Vec::new();
    files_under(&persist_dir(), &mut files);
    let r2_files: Vec<&PathBuf> = files
        .iter()
        .filter(|p| p.to_string_lossy().contains("r2"))
        .collect();
    assert!(
        !r2_files.is_empty(),
        "no local R2 files under {}",
        persist_dir().display()
    );
    for f in r2_files {
        let bytes = std::fs::read(f).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(&secret),
            "{} holds a memory in plaintext",
            f.display()
        );
        assert!(
            !text.contains(&email),
            "{} holds an email in plaintext",
            f.display()
        );
    }

    // A Worker on the restored database: sign in with the password, retrieve.
    let signing_pem = std::fs::read_to_string(dev_keys_dir().join("private.pem")).expect("dev key");
    let restored_app = restored.app_url();
    let restored_origin = format!("http://localhost:{}", api_port() + 11);
    let worker = Worker::start(
        api_port() + 11,
        &[
            ("MEMSHADOW_WEBAUTHN_ORIGINS", restored_origin.as_str()),
            ("MEMSHADOW_DEV_DATABASE_URL", restored_app.as_str()),
            (
                "MEMSHADOW_JWT_SIGNING_KEY",
                &signing_pem.replace('\n', "\\n"),
            ),
            ("MEMSHADOW_EMBEDDING_URL", &memshadow_e2e::pool_url()),
        ],
    );
    let token = login(&worker.url(), &username, &password);
    // The restored passkey still guards its account: a password alone
    // earns only the step-up to the passkey ceremony.
    let step_up = Client::anonymous(&worker.url())
        .post(
            "/api/v1/auth/login",
            &json!({"username": pk_username, "password": password}),
        )
        .expect(200)
        .json();
    assert_eq!(step_up["mfa_required"], true, "{step_up}");
    let partial = step_up["access_token"].as_str().expect("token");
    let refused = Client::anonymous(&worker.url())
        .with_token(partial)
        .post("/api/v1/memory/retrieve", &json!({"query": "anything"}))
        .expect(403)
        .json();
    assert_eq!(refused["error"]["code"], "mfa_required", "{refused}");
    // The passkey completes that sign-in on the restored database, as it
    // would on the source: the restored credential holds its public key and
    // counter. The browser now runs on the restored deployment's origin.
    passkey.origin = restored_origin;
    let restored_api = Client::anonymous(&worker.url());
    // One passkey ceremony (username first), completed with `bearer` if given.
    let sign_in_with_passkey = |passkey: &mut SoftAuthenticator,
                                bearer: Option<&str>,
                                expected: u16| {
        let options = restored_api
            .post(
                "/api/v1/auth/webauthn/authenticate/begin",
                &json!({"username": pk_username}),
            )
            .expect(200)
            .json();
        let body = json!({"credential": passkey.get(&options, None), "state": options["state"]});
        let client = Client::anonymous(&worker.url());
        match bearer {
            Some(token) => client.with_token(token),
            None => client,
        }
        .post("/api/v1/auth/webauthn/authenticate/complete", &body)
        .expect(expected)
        .json()
    };
    let full = sign_in_with_passkey(&mut passkey, Some(partial), 200);
    assert_eq!(full["mfa_required"], false, "{full}");
    let (found, _) = Client::anonymous(&worker.url())
        .with_token(full["access_token"].as_str().expect("token"))
        .retrieve(
            "limit=5",
            &json!({"query": "what is the name of the boat?"}),
        );
    assert!(
        found.iter().any(|hit| hit["content"] == pk_secret.as_str()),
        "{found:?}"
    );
    // The restored counter moved with that sign-in: a clone replaying the
    // same counter value is refused.
    passkey.counter -= 1;
    let replayed = sign_in_with_passkey(&mut passkey, None, 401);
    assert_eq!(
        replayed["error"]["reason"], "sign_count_rollback",
        "{replayed}"
    );
    let (found, _) = Client::anonymous(&worker.url())
        .with_token(&token)
        .retrieve("limit=5", &json!({"query": "where is the lighthouse key?"}));
    assert!(
        found.iter().any(|hit| hit["content"] == secret.as_str()),
        "{found:?}"
    );
    drop(worker);
    drop(restored);
    let _ = std::fs::remove_dir_all(&store);

    // Retention (keep the newest backup of each day): a second daily
    // backup verifies, then the first one's objects leave the bucket and
    // its run is recorded as deleted.
    let newer = daily_backup(&base);
    assert_ne!(newer, backup_id);
    let deleted = eventually(Duration::from_secs(30), || {
        let rows = run_sql(
            &admin_url(),
            &format!(
                "SELECT deleted_at IS NOT NULL FROM backup_runs WHERE backup_id = '{backup_id}'"
            ),
        );
        (rows[0][0].as_deref() == Some("t")).then_some(())
    });
    assert!(
        deleted.is_some(),
        "retention did not record {backup_id} as deleted"
    );
    for c in manifest["chunks"].as_array().expect("chunks") {
        let name = c["object"].as_str().expect("object");
        assert!(
            !r2_has(&format!("{folder}/{name}")),
            "{name} of the retired backup is still stored"
        );
    }
    assert!(!r2_has(&format!("{folder}/manifest.json")));
    assert!(
        r2_has(&format!("backups/{newer}/manifest.json")),
        "the newest backup is kept"
    );
}

/// Runs the daily trigger and returns the id of the new successful backup
/// (the outcome shows in /ready).
fn daily_backup(base: &str) -> String {
    let before = Client::anonymous(base).get("/ready").json();
    // The trigger answers when the run ends: a backup of the whole stack's
    // database (every test's users) may outlast the harness's 60 s.
    Client::anonymous(base)
        .with_timeout(Duration::from_secs(600))
        .get("/__scheduled?cron=0+3+*+*+*")
        .expect(200);
    let outcome = eventually(Duration::from_secs(60), || {
        let ready: Value = Client::anonymous(base).get("/ready").json();
        let done = ready["backup"]["last_success"].clone();
        (done != before["backup"]["last_success"] && done.is_object()).then_some(done)
    })
    .expect("a new successful backup in /ready");
    outcome["backup_id"]
        .as_str()
        .expect("backup_id")
        .to_string()
}
