//! End-to-end: a deployment picks its embedding model by configuration.
//! The stack's real pool serves all-MiniLM-L6-v2 by default and
//! all-mpnet-base-v2 by id. On a database of its own, a Worker left at the
//! default stores a memory with MiniLM's 384-dimension vector; a Worker
//! configured with `MEMSHADOW_EMBEDDING_MODEL=all-mpnet-base-v2` then
//! stores new memories with 768-dimension vectors, finds them by meaning
//! (vector-only and hybrid), and its scheduled job re-embeds the older
//! MiniLM row with mpnet, after which that row is found by meaning too.

use std::time::Duration;

use memshadow_e2e::database::{FreshDatabase, run_sql};
use memshadow_e2e::wrangler::Worker;
use memshadow_e2e::{Client, DevSigner, eventually};
use serde_json::json;
use uuid::Uuid;

const MPNET: &str = "all-mpnet-base-v2";

/// (dimension, model) of every memory in the database.
fn stored_vectors(db: &FreshDatabase) -> Vec<(String, String)> {
    run_sql(
        &db.admin_url(),
        "SELECT vector_dims(embedding)::text, embedding_model FROM memories \
         WHERE embedding IS NOT NULL ORDER BY created_at",
    )
    .into_iter()
    .map(|r| {
        let mut r = r.into_iter().map(Option::unwrap_or_default);
        (r.next().unwrap_or_default(), r.next().unwrap_or_default())
    })
    .collect()
}

#[test]
fn a_deployment_configured_for_mpnet_stores_searches_and_migrates_to_768_dimensions() {
    let api_port: u16 = std::env::var("MEMSHADOW_API_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8787);
    let db = FreshDatabase::create(&format!("model_choice_{}", std::process::id()));
    let user = Uuid::new_v4().to_string();
    let token = DevSigner::load().token_for(&user);
    // The pool of the stack under test: wrangler.toml's default is the dev
    // stack's, which a test run (CI) does not start.
    let pool = memshadow_e2e::pool_url();

    // The default deployment: MiniLM.
    let old = {
        let worker = Worker::start(
            api_port + 8,
            &[
                ("MEMSHADOW_DEV_DATABASE_URL", &db.app_url()),
                ("MEMSHADOW_EMBEDDING_URL", &pool),
            ],
        );
        let client = Client::anonymous(&worker.url()).with_token(&token);
        let m = client.ingest(
            "The spare key hangs behind the garden shed door.",
            json!({}),
        );
        assert_eq!(m["embedding_status"], "ready", "{m}");
        assert_eq!(m["embedding_model"], "all-MiniLM-L6-v2");
        m["id"].as_str().expect("id").to_string()
    };
    assert_eq!(
        stored_vectors(&db),
        vec![("384".to_string(), "all-MiniLM-L6-v2".to_string())]
    );

    // The same database, now deployed with mpnet (on a port of its own:
    // the first Worker's runtime may still be letting go of its port).
    let worker = Worker::start(
        api_port + 9,
        &[
            ("MEMSHADOW_DEV_DATABASE_URL", &db.app_url()),
            ("MEMSHADOW_EMBEDDING_MODEL", MPNET),
            ("MEMSHADOW_EMBEDDING_URL", &pool),
        ],
    );
    let client = Client::anonymous(&worker.url()).with_token(&token);
    let contents = [
        "Ada drinks her coffee black, never with sugar.",
        "The quarterly tax return is due at the end of April.",
        "Our cat Miso sleeps on the radiator all winter.",
    ];
    for c in contents {
        let m = client.ingest(c, json!({}));
        assert_eq!(m["embedding_status"], "ready", "{m}");
        assert_eq!(m["embedding_model"], MPNET);
    }
    let stored = stored_vectors(&db);
    assert_eq!(stored.len(), 4);
    assert!(
        stored[1..].iter().all(|(d, m)| d == "768" && m == MPNET),
        "{stored:?}"
    );

    // Found by meaning, with no shared word, through the vector branch alone.
    let (hits, reply) = client.retrieve(
        "limit=1",
        &json!({"query": "How does she take her morning brew?", "mode": "vector"}),
    );
    assert_eq!(reply.header("x-retrieval-mode").as_deref(), Some("vector"));
    assert_eq!(hits[0]["content"], contents[0], "{hits:?}");
    assert_eq!(hits[0]["embedding_model"], MPNET);
    // The MiniLM row is not compared with mpnet's vectors: until it is
    // re-embedded only the text branch can find it.
    let (hits, _) = client.retrieve(
        "",
        &json!({"query": "where can I find a house key outdoors?", "mode": "vector"}),
    );
    assert!(hits.iter().all(|h| h["id"] != old.as_str()), "{hits:?}");

    // The scheduled job re-embeds the older row with the new model.
    let migrated = eventually(Duration::from_secs(120), || {
        let reply = Client::anonymous(&worker.url()).get("/__scheduled?cron=*/5+*+*+*+*");
        assert_eq!(reply.status, 200, "scheduled trigger: {}", reply.text);
        let stored = stored_vectors(&db);
        stored
            .iter()
            .all(|(d, m)| d == "768" && m == MPNET)
            .then_some(stored)
    });
    assert!(
        migrated.is_some(),
        "the MiniLM row was not re-embedded: {:?}",
        stored_vectors(&db)
    );
    let (hits, reply) = client.retrieve(
        "limit=1",
        &json!({"query": "where can I find a house key outdoors?"}),
    );
    assert_eq!(reply.header("x-retrieval-mode").as_deref(), Some("hybrid"));
    assert_eq!(hits[0]["id"], old.as_str(), "{hits:?}");
    assert_eq!(hits[0]["embedding_model"], MPNET);
}
