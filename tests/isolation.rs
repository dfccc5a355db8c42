//! End-to-end: a user never sees, changes or deletes another user's
//! memories, by any route, on the real Worker and Postgres.

use memshadow_e2e::Client;
use serde_json::json;

#[test]
fn another_users_memories_are_invisible_by_every_route() {
    let (alice, _) = Client::new_user();
    let (mallory, _) = Client::new_user();
    let secret = alice.ingest(
        "Alice's bank PIN hint: the year her grandmother was born.",
        json!({"tags": ["secret"], "metadata": {"owner": "alice"}}),
    );
    let id = secret["id"].as_str().expect("id");
    let path = format!("/api/v1/memory/{id}");

    // Direct access by id is indistinguishable from a missing id.
    assert_eq!(
        mallory.get(&path).expect(404).error_code(),
        "memory_not_found"
    );
    assert_eq!(
        mallory
            .patch(&path, &json!({"content": "pwned"}))
            .expect(404)
            .error_code(),
        "memory_not_found"
    );
    assert_eq!(
        mallory.delete(&path).expect(404).error_code(),
        "memory_not_found"
    );

    // Search, list, export and filters show nothing of Alice's.
    let (hits, _) = mallory.retrieve("limit=100", &json!({"query": "bank PIN grandmother"}));
    assert_eq!(hits, Vec::<serde_json::Value>::new());
    let (filtered, _) =
        mallory.retrieve("", &json!({"query": "PIN", "filters": {"owner": "alice"}}));
    assert_eq!(filtered, Vec::<serde_json::Value>::new());
    assert_eq!(
        mallory.get("/api/v1/memory?tag=secret").expect(200).json()["memories"],
        json!([])
    );
    assert_eq!(mallory.get("/api/v1/memory/export").expect(200).text, "");

    // Same content is not a duplicate across users: dedupe is per user.
    let own = mallory.ingest(
        "Alice's bank PIN hint: the year her grandmother was born.",
        json!({}),
    );
    assert_ne!(own["id"], secret["id"]);

    // Bulk deletes only touch the caller's rows.
    assert_eq!(
        mallory.delete("/api/v1/memory").expect(200).json()["deleted"],
        1
    );
    let still = alice.get(&path).expect(200).json();
    assert_eq!(still["content"], secret["content"]);
    assert_eq!(
        still["metadata"],
        json!({"owner": "alice"}),
        "Mallory's PATCH changed nothing"
    );
    let (alice_hits, _) = alice.retrieve("", &json!({"query": "bank PIN grandmother"}));
    assert_eq!(alice_hits[0]["id"], secret["id"]);
}
