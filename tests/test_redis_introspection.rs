//! The Redis backend seen from the server: the commands a flush and a load
//! send, counted by a throwaway `redis-server`'s command statistics.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use support::redis::{calls_in, nested_doc, Doc, ThrowawayRedis};
use toast::backend::{Key, Record};
use toast::{External, Store};
use uuid::Uuid;

#[tokio::test]
async fn one_round_trip_per_flush_and_per_level_counted_by_the_server() {
    let server = ThrowawayRedis::start();
    let store = Store::connect(&server.url()).await.unwrap().tenant("t");
    let doc = nested_doc(5);

    server.reset_stats();
    let json = toast::scope(store.clone(), toast::to_json(&doc))
        .await
        .unwrap()
        .unwrap();
    let records = store.stats().records_saved;
    assert_eq!(records, 7);
    assert_eq!(store.stats().save_calls, 1);
    // A flush of new records is one pipeline of SET … NX: no script at all
    // (or only the test's own INFO/CONFIG).
    let calls = server.command_calls();
    let count = |name: &str| calls_in(&calls, name);
    assert_eq!(count("set"), records, "one SET per record: {calls:?}");
    for (name, _) in &calls {
        assert!(
            name == "set" || name.starts_with("config|") || name == "info",
            "unexpected command {name} for a flush of new records: {calls:?}"
        );
    }

    server.reset_stats();
    let back: Doc = toast::scope(store.clone(), toast::from_json(&json))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, doc);
    let calls = server.command_calls();
    let count = |name: &str| calls_in(&calls, name);
    // A level of one key is a GET.
    assert_eq!(
        count("mget") + count("get"),
        3,
        "one MGET (or GET) per level: {calls:?}"
    );
    for (name, _) in &calls {
        assert!(
            name == "mget" || name == "get" || name == "info" || name.starts_with("config|"),
            "unexpected command {name} for a load: {calls:?}"
        );
    }

    // Serializing again: every record exists (content ids), so the one
    // pipeline of SET … NX is followed by one update script call.
    server.reset_stats();
    let before = store.stats();
    let again = toast::scope(store.clone(), toast::to_json(&doc))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again, json);
    assert_eq!(store.stats().since(&before).save_calls, 1);
    let calls = server.command_calls();
    let count = |name: &str| calls_in(&calls, name);
    assert_eq!(
        count("set"),
        2 * records,
        "NX tries, then the script's SETs: {calls:?}"
    );
    assert_eq!(count("evalsha"), 1, "{calls:?}");
    assert_eq!(count("getrange"), records, "{calls:?}");

    // Many concurrent operations share the store's one connection.
    let mut watcher = server.admin();
    let puts = (0..40u32).map(|i| {
        let store = store.clone();
        async move { store.put(&i).await }
    });
    for r in futures_util::future::join_all(puts).await {
        r.unwrap();
    }
    let clients = |conn: &mut redis::Connection| -> u64 {
        let info: String = redis::cmd("INFO").arg("clients").query(conn).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("connected_clients:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    while clients(&mut watcher) > 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        clients(&mut watcher),
        2,
        "the store's connection and the test's"
    );
}

#[tokio::test]
async fn a_flush_mixing_new_and_existing_records_updates_only_the_existing() {
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Page {
        #[serde(with = "toast::external")]
        fresh: Vec<u32>,
        kept: External<Vec<String>>,
    }
    let server = ThrowawayRedis::start();
    let store = Store::connect(&server.url()).await.unwrap().tenant("mix");
    let mut page = Page {
        fresh: vec![1],
        kept: External::new(vec!["v1".into()]),
    };
    toast::scope(store.clone(), toast::to_json(&page))
        .await
        .unwrap()
        .unwrap();
    let kept = page.kept.reference().unwrap();
    let first = store.record(&kept).await.unwrap();

    // `fresh` changes (a new content id: a new key), `kept` is updated in place.
    page.fresh = vec![2];
    page.kept.push("v2".into());
    server.reset_stats();
    let json = toast::scope(store.clone(), toast::to_json(&page))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        server.calls_of("set"),
        2 + 1,
        "two SET NX, one SET in the script"
    );
    assert_eq!(server.calls_of("evalsha"), 1);
    assert_eq!(
        server.calls_of("getrange"),
        1,
        "only the existing key is read"
    );
    let second = store.record(&kept).await.unwrap();
    assert_eq!(second.created_at, first.created_at);
    assert!(second.updated_at > first.updated_at);
    assert_eq!(&second.data[..], br#"["v1","v2"]"#);
    let back: Page = toast::scope(store.clone(), toast::from_json(&json))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, page);
}

#[tokio::test]
async fn a_flush_and_a_load_bigger_than_one_chunk() {
    let server = ThrowawayRedis::start();
    let store = Store::connect(&server.url()).await.unwrap().tenant("big");
    let backend = store.backend();
    // 2,500 records of 4 KiB: 10 MiB, more than one save chunk
    // (2 MiB, as documented) and more than two MGETs (1,000 keys each, as documented).
    let old = chrono::Utc::now() - chrono::Duration::hours(2);
    let records: Vec<Record> = (0..2500u32)
        .map(|i| {
            let body = format!(r#"{{"i":"{i:04}","body":"{}"}}"#, "b".repeat(4096));
            let mut r = Record::new(
                Key::new(store.tenant_name(), "Big", Uuid::new_v4()),
                body.into_bytes(),
                Vec::new(),
            );
            r.created_at = old;
            r
        })
        .collect();
    server.reset_stats();
    backend.save(&records).await.unwrap();
    assert_eq!(server.calls_of("set"), 2500);
    assert_eq!(server.calls_of("evalsha"), 0, "all new: no script");

    let keys: Vec<Key> = records.iter().map(|r| r.key.clone()).collect();
    server.reset_stats();
    let loaded = backend.load(&keys).await.unwrap();
    assert_eq!(server.calls_of("mget"), 3, "1,000 keys per MGET");
    assert_eq!(loaded.len(), records.len());
    let by_key: std::collections::HashMap<&Key, &Record> =
        loaded.iter().map(|r| (&r.key, r)).collect();
    for r in &records {
        assert_eq!(by_key.get(&r.key).copied(), Some(r), "{:?}", r.key);
    }

    // Saving them all again: every key exists, and each save chunk makes
    // one update script call.
    let now = chrono::Utc::now();
    let again: Vec<Record> = records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.created_at = now;
            r.updated_at = now;
            r
        })
        .collect();
    server.reset_stats();
    backend.save(&again).await.unwrap();
    // The documented layout and chunk size (private to the backend): a
    // 26-byte header, save chunks of at most 2 MiB of values.
    const HEADER_LEN: usize = 26;
    const SAVE_CHUNK_BYTES: usize = 2 * 1024 * 1024;
    let value_len = HEADER_LEN + records[0].data.len();
    let per_chunk = SAVE_CHUNK_BYTES / value_len;
    let chunks = records.len().div_ceil(per_chunk) as u64;
    assert!(chunks > 1, "{chunks}");
    assert_eq!(server.calls_of("evalsha"), chunks, "one per save chunk");
    assert_eq!(server.calls_of("getrange"), 2500);
    let loaded = backend.load(&keys[..10]).await.unwrap();
    for r in &loaded {
        assert_eq!(r.created_at, old, "created_at kept");
        assert_eq!(r.updated_at, now);
    }
}
