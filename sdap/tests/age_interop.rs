//! Our age implementation against the reference `age` crate, both ways.

use std::io::{Read, Write};

use age::secrecy::ExposeSecret;
use rand_core::OsRng;
use sdap::age::{Identity, Recipient, decrypt, encrypt};

fn sizes() -> Vec<usize> {
    vec![0, 1, 100, 65_535, 65_536, 65_537, 200_000]
}

fn sample(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 253) as u8).collect()
}

#[test]
fn files_we_write_open_with_the_age_crate() {
    let theirs = age::x25519::Identity::generate();
    let their_recipient = Recipient::parse(&theirs.to_public().to_string()).unwrap();
    let ours = Identity::generate(&mut OsRng).unwrap();
    for len in sizes() {
        let plain = sample(len);
        let ct = encrypt(
            &[ours.recipient(), their_recipient.clone()],
            &plain,
            &mut OsRng,
        )
        .unwrap();
        let opened = age::decrypt(&theirs, &ct).unwrap();
        assert_eq!(opened, plain, "len {len}");
    }
}

#[test]
fn files_the_age_crate_writes_open_with_ours() {
    let ours = Identity::generate(&mut OsRng).unwrap();
    let recipient: age::x25519::Recipient = ours.recipient().to_bech32().parse().unwrap();
    let other = age::x25519::Identity::generate().to_public();
    for len in sizes() {
        let plain = sample(len);
        let encryptor = age::Encryptor::with_recipients(
            [
                &other as &dyn age::Recipient,
                &recipient as &dyn age::Recipient,
            ]
            .into_iter(),
        )
        .unwrap();
        let mut ct = Vec::new();
        let mut w = encryptor.wrap_output(&mut ct).unwrap();
        w.write_all(&plain).unwrap();
        w.finish().unwrap();
        assert_eq!(
            decrypt(std::slice::from_ref(&ours), &ct).unwrap(),
            plain,
            "len {len}"
        );
        // And the single-recipient helper.
        let ct = age::encrypt(&recipient, &plain).unwrap();
        assert_eq!(
            decrypt(std::slice::from_ref(&ours), &ct).unwrap(),
            plain,
            "len {len}"
        );
    }
}

#[test]
fn key_strings_are_interchangeable() {
    let theirs = age::x25519::Identity::generate();
    let secret = theirs.to_string();
    let ours = Identity::parse(secret.expose_secret()).unwrap();
    assert_eq!(ours.recipient().to_bech32(), theirs.to_public().to_string());
    let mine = Identity::generate(&mut OsRng).unwrap();
    let parsed: age::x25519::Identity = mine.to_bech32().parse().unwrap();
    assert_eq!(parsed.to_public().to_string(), mine.recipient().to_bech32());

    // A file for `theirs` written by the crate, read by us via the parsed key.
    let ct = age::encrypt(&theirs.to_public(), b"interop").unwrap();
    let mut r = age::Decryptor::new(&ct[..])
        .unwrap()
        .decrypt([&theirs as &dyn age::Identity].into_iter())
        .unwrap();
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    assert_eq!(out, b"interop");
    assert_eq!(decrypt(&[ours], &ct).unwrap(), b"interop");
}

#[test]
fn the_age_crate_refuses_our_files_for_another_identity_and_ours_refuse_its() {
    let ours = Identity::generate(&mut OsRng).unwrap();
    let stranger = age::x25519::Identity::generate();
    let ct = encrypt(&[ours.recipient()], b"secret", &mut OsRng).unwrap();
    assert!(age::decrypt(&stranger, &ct).is_err());
    let ct = age::encrypt(&stranger.to_public(), b"secret").unwrap();
    assert_eq!(
        decrypt(&[ours], &ct),
        Err(sdap::age::AgeError::NoMatchingIdentity)
    );
}
