//! A backup written with the format's own writer, then tampered twins: each
//! is refused with an error that names what is wrong (and the chunk).

use std::cell::RefCell;
use std::collections::BTreeMap;

use rand_core::OsRng;
use sdap::age::Identity;
use sdap::backup::{self, ObjectSource, object_key};
use sdap::chunk::Row;
use sdap::manifest::{ManifestSigner, parse_public_key};
use sdap::{ChunkRef, Error, tables};

#[derive(Default)]
struct MemStore(RefCell<BTreeMap<String, Vec<u8>>>);

impl ObjectSource for MemStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.0.borrow().get(key).cloned())
    }
}

impl MemStore {
    fn put(&self, key: &str, v: Vec<u8>) {
        self.0.borrow_mut().insert(key.to_string(), v);
    }
    fn take(&self, key: &str) -> Vec<u8> {
        self.0.borrow_mut().remove(key).unwrap()
    }
    fn clone_store(&self) -> MemStore {
        MemStore(RefCell::new(self.0.borrow().clone()))
    }
}

const ID: &str = "20261130T030000Z";

fn user_row(i: usize) -> Row {
    vec![
        Some(format!("00000000-0000-4000-8000-{i:012}")),
        Some(format!("user{i}@example.test")),
        Some(format!("user{i}")),
        Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        Some("2026-11-29T10:00:00.000000Z".into()),
    ]
}

fn memory_row(i: usize) -> Row {
    let mut r: Row = vec![None; tables::MEMORIES.columns.len()];
    r[0] = Some(format!("10000000-0000-4000-8000-{i:012}"));
    r[1] = Some("00000000-0000-4000-8000-000000000001".into());
    r[2] = Some(format!("memory number {i}: Ada prefers green tea"));
    r[3] = Some(format!("{:064x}", i));
    r[4] = Some("{\"source\": \"chat\"}".into());
    r[5] = Some("{prefs,tea}".into());
    r[8] = Some("pending".into());
    r[9] = Some("0".into());
    r[11] = Some("2026-11-29T10:00:00.000000Z".into());
    r[12] = Some("2026-11-29T10:00:00.000000Z".into());
    r[14] = Some("0".into());
    r
}

struct Fixture {
    store: MemStore,
    signer: ManifestSigner,
    identity: Identity,
}

/// Three chunks of users (2 rows each, 5 rows) and two of memories.
fn fixture() -> Fixture {
    let signer = ManifestSigner::generate(&mut OsRng).unwrap();
    let identity = Identity::generate(&mut OsRng).unwrap();
    let second = Identity::generate(&mut OsRng).unwrap();
    let recipients = vec![identity.recipient(), second.recipient()];
    let users: Vec<Row> = (0..5).map(user_row).collect();
    let memories: Vec<Row> = (0..7).map(memory_row).collect();
    let mut sealed =
        backup::seal_table(&tables::USERS, &users, 2, 0, &recipients, &mut OsRng).unwrap();
    let more =
        backup::seal_table(&tables::MEMORIES, &memories, 4, 3, &recipients, &mut OsRng).unwrap();
    sealed.extend(more);
    let store = MemStore::default();
    for c in &sealed {
        store.put(&object_key(ID, &c.entry.object), c.ciphertext.clone());
    }
    let manifest = backup::build_manifest(
        ID,
        "2026-11-30T03:00:00Z",
        "2026-11-30T03:00:05Z",
        sealed.into_iter().map(|c| c.entry).collect(),
        recipients.iter().map(|r| r.fingerprint()).collect(),
    );
    let (m, s) = signer.sign(&manifest).unwrap();
    store.put(&object_key(ID, backup::MANIFEST), m);
    store.put(&object_key(ID, backup::SIGNATURE), s);
    Fixture {
        store,
        signer,
        identity,
    }
}

fn verify(f: &Fixture, store: &MemStore) -> Result<sdap::manifest::Manifest, Error> {
    backup::verify(
        store,
        ID,
        &[f.signer.public_key()],
        std::slice::from_ref(&f.identity),
        &mut |_| {},
    )
}

fn chunk(index: u32, table: &str) -> ChunkRef {
    ChunkRef {
        index,
        object: format!("chunk-{index:06}.age"),
        table: table.into(),
    }
}

#[test]
fn the_genuine_backup_verifies_and_round_trips_rows() {
    let f = fixture();
    let m = verify(&f, &f.store).unwrap();
    assert_eq!(m.tables["users"], 5);
    assert_eq!(m.tables["memories"], 7);
    assert_eq!(m.tables["refresh_tokens"], 0);
    assert_eq!(m.chunks.len(), 5);
    let mut users = Vec::new();
    for e in m.chunks.iter().filter(|c| c.table == "users") {
        users.extend(
            backup::read_chunk(&f.store, &m, e, std::slice::from_ref(&f.identity)).unwrap(),
        );
    }
    assert_eq!(users, (0..5).map(user_row).collect::<Vec<_>>());
    // The other recipient can read it too.
    let p = parse_public_key(&base64_of(&f.signer)).unwrap();
    assert_eq!(p, f.signer.public_key());
}

fn base64_of(s: &ManifestSigner) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s.public_key().as_bytes())
}

#[test]
fn a_flipped_byte_in_a_chunk_is_refused_naming_the_chunk() {
    let f = fixture();
    let store = f.store.clone_store();
    let key = object_key(ID, "chunk-000001.age");
    let mut bytes = store.take(&key);
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    store.put(&key, bytes);
    let err = verify(&f, &store).unwrap_err();
    assert_eq!(
        err,
        Error::ChunkHash {
            chunk: chunk(1, "users"),
            found_as: None
        }
    );
    assert!(
        err.to_string()
            .contains("chunk 1 (chunk-000001.age, table users)")
    );
}

#[test]
fn a_missing_chunk_is_refused_naming_the_chunk() {
    let f = fixture();
    let store = f.store.clone_store();
    store.take(&object_key(ID, "chunk-000004.age"));
    let err = verify(&f, &store).unwrap_err();
    assert_eq!(err, Error::ChunkMissing(chunk(4, "memories")));
    assert_eq!(
        err.to_string(),
        "chunk 4 (chunk-000004.age, table memories) is missing from the store"
    );
}

#[test]
fn reordered_chunks_are_refused_naming_both() {
    let f = fixture();
    let store = f.store.clone_store();
    let a = store.take(&object_key(ID, "chunk-000000.age"));
    let b = store.take(&object_key(ID, "chunk-000002.age"));
    store.put(&object_key(ID, "chunk-000000.age"), b);
    store.put(&object_key(ID, "chunk-000002.age"), a);
    let err = verify(&f, &store).unwrap_err();
    assert_eq!(
        err,
        Error::ChunkHash {
            chunk: chunk(0, "users"),
            found_as: Some(2)
        }
    );
    assert!(err.to_string().contains("holds chunk 2's bytes"));
}

#[test]
fn a_manifest_edited_after_signing_is_refused() {
    let f = fixture();
    let store = f.store.clone_store();
    let key = object_key(ID, backup::MANIFEST);
    let text = String::from_utf8(store.take(&key)).unwrap();
    // Drop the claim of one memory: a plausible, well-formed edit.
    let edited = text.replacen("\"memories\": 7", "\"memories\": 6", 1);
    assert_ne!(edited, text);
    store.put(&key, edited.into_bytes());
    assert_eq!(verify(&f, &store).unwrap_err(), Error::BadSignature);
}

#[test]
fn a_manifest_signed_by_another_key_is_refused() {
    let f = fixture();
    let store = f.store.clone_store();
    let intruder = ManifestSigner::generate(&mut OsRng).unwrap();
    let manifest: sdap::manifest::Manifest = serde_json::from_slice(
        &store
            .get(&object_key(ID, backup::MANIFEST))
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    let (m, s) = intruder.sign(&manifest).unwrap();
    store.put(&object_key(ID, backup::MANIFEST), m);
    store.put(&object_key(ID, backup::SIGNATURE), s.clone());
    let err = verify(&f, &store).unwrap_err();
    assert_eq!(
        err,
        Error::UntrustedSigner {
            fingerprint: sdap::manifest::key_fingerprint(&intruder.public_key())
        }
    );
    // Claiming the trusted key while signing with another is no better.
    let mut sig: serde_json::Value = serde_json::from_slice(&s).unwrap();
    sig["public_key"] = serde_json::Value::String(base64_of(&f.signer));
    store.put(
        &object_key(ID, backup::SIGNATURE),
        serde_json::to_vec(&sig).unwrap(),
    );
    assert_eq!(verify(&f, &store).unwrap_err(), Error::BadSignature);
}

#[test]
fn the_wrong_identity_is_refused() {
    let f = fixture();
    let stranger = Identity::generate(&mut OsRng).unwrap();
    let err = backup::verify(
        &f.store,
        ID,
        &[f.signer.public_key()],
        std::slice::from_ref(&stranger),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(matches!(err, Error::NotARecipient { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&stranger.recipient().fingerprint())
    );
    // Past the early check (a manifest listing the stranger), each chunk
    // still refuses to open, naming itself.
    let m = backup::open_manifest(&f.store, ID, &[f.signer.public_key()]).unwrap();
    let e = &m.chunks[3];
    assert_eq!(
        backup::read_chunk(&f.store, &m, e, &[stranger]).unwrap_err(),
        Error::ChunkWrongIdentity(chunk(3, "memories"))
    );
}

#[test]
fn a_manifest_from_another_folder_or_with_hostile_names_is_refused() {
    let f = fixture();
    let store = f.store.clone_store();
    // The same signed manifest under another id: a replay.
    let other = "20261201T030000Z";
    for name in [backup::MANIFEST, backup::SIGNATURE] {
        let v = store.get(&object_key(ID, name)).unwrap().unwrap();
        store.put(&object_key(other, name), v);
    }
    let err = backup::open_manifest(&store, other, &[f.signer.public_key()]).unwrap_err();
    assert!(matches!(err, Error::Manifest(_)), "{err}");
    // A signed manifest whose chunk names leave the folder.
    let mut m = backup::open_manifest(&store, ID, &[f.signer.public_key()]).unwrap();
    m.chunks[0].object = "../../etc/passwd".into();
    let (mb, sb) = f.signer.sign(&m).unwrap();
    store.put(&object_key(ID, backup::MANIFEST), mb);
    store.put(&object_key(ID, backup::SIGNATURE), sb);
    let err = backup::open_manifest(&store, ID, &[f.signer.public_key()]).unwrap_err();
    assert!(err.to_string().contains("object name"), "{err}");
    assert!(backup::open_manifest(&store, "../x", &[f.signer.public_key()]).is_err());
}

#[test]
fn garbage_never_panics() {
    let f = fixture();
    let keys = [f.signer.public_key()];
    for garbage in [
        &b""[..],
        b"{}",
        b"\xff\xfe",
        b"age-encryption.org/v1\n-> X25519\n",
    ] {
        let store = f.store.clone_store();
        store.put(&object_key(ID, backup::SIGNATURE), garbage.to_vec());
        assert!(backup::open_manifest(&store, ID, &keys).is_err());
        let store = f.store.clone_store();
        store.put(&object_key(ID, "chunk-000000.age"), garbage.to_vec());
        assert!(verify(&f, &store).is_err());
        assert!(sdap::age::decrypt(std::slice::from_ref(&f.identity), garbage).is_err());
    }
}
