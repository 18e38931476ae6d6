//! The Redis backend against real servers: the shared one
//! (`TOAST_TEST_REDIS_URL`, default `redis://127.0.0.1:6379/`, used only with
//! unique key prefixes and tenants) and throwaway `redis-server`s for the
//! tests that kill, pause, restart or reconfigure the server.
#![cfg(feature = "redis")]

mod support;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use support::redis::{
    admin, calls_in, shared_url, shared_url_with, unique_prefix, RawValue, ThrowawayRedis,
};
use support::unique;
use toast::backend::redis::RedisBackend;
use toast::{External, Key, Record, Reference, Store};
use uuid::Uuid;

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Leaf {
    text: String,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Middle {
    name: String,
    #[serde(with = "toast::external")]
    leaves: Vec<Leaf>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Top {
    n: u32,
    #[serde(with = "toast::external")]
    middles: Vec<Middle>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Doc {
    title: String,
    #[serde(with = "toast::external")]
    top: Top,
}

/// A document with externals three levels deep: `top` (level 1), its
/// `middles` (level 2), and each middle's `leaves` (level 3).
fn nested_doc(middles: usize) -> Doc {
    Doc {
        title: "nested".into(),
        top: Top {
            n: 7,
            middles: (0..middles)
                .map(|m| Middle {
                    name: format!("m{m}"),
                    leaves: (0..3)
                        .map(|l| Leaf {
                            text: format!("leaf {m}/{l} {}", "x".repeat(200)),
                        })
                        .collect(),
                })
                .collect(),
        },
    }
}

/// A store on the shared server under a fresh key prefix. Records expire
/// after an hour so that test runs do not pile up on the shared server.
async fn shared_store() -> (Store, String) {
    let prefix = unique_prefix();
    let url = shared_url_with(&format!("prefix={prefix}&ttl=3600"));
    let store = Store::connect(&url).await.unwrap_or_else(|e| {
        panic!("the shared Redis server is not reachable (set TOAST_TEST_REDIS_URL): {e}")
    });
    (store.tenant(unique("redis")), prefix)
}

/// Display, Debug and the whole source chain of an error.
fn full_text(err: &toast::Error) -> String {
    let mut text = format!("{err} | {err:?}");
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        text.push_str(&format!(" | {e} | {e:?}"));
        source = e.source();
    }
    text
}

fn str_key(store: &Store, prefix: &str, reference: &Reference) -> String {
    format!(
        "{prefix}:{}:{}:{}",
        toast::backend::redis::escape(store.tenant_name()),
        toast::backend::redis::escape(&reference.class_name),
        reference.id
    )
}

/// A store over `backend` (what `RedisBackend::into_store` was), shown as
/// its redacted URL.
fn store_of(backend: RedisBackend) -> Store {
    let url = backend.url().to_owned();
    Store::from_arc(std::sync::Arc::new(backend), url)
}

#[tokio::test]
async fn nested_documents_round_trip_in_one_flush_and_one_load_per_level() {
    let (store, _) = shared_store().await;
    let doc = nested_doc(4);

    let before = store.stats();
    let json = toast::scope(store.clone(), toast::to_json(&doc))
        .await
        .unwrap()
        .unwrap();
    let saved = store.stats().since(&before);
    assert_eq!(saved.save_calls, 1, "one round trip per flush: {saved:?}");
    assert_eq!(saved.records_saved, 1 + 1 + 4, "{saved:?}");
    assert!(
        json.contains(r#""top":{"class_name":"Top","id":""#),
        "{json}"
    );

    let before = store.stats();
    let back: Doc = toast::scope(store.clone(), toast::from_json(&json))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, doc);
    let loaded = store.stats().since(&before);
    assert_eq!(loaded.load_calls, 3, "one round trip per level: {loaded:?}");
    assert_eq!(loaded.records_loaded, 6, "{loaded:?}");
}

#[tokio::test]
async fn records_persist_across_a_new_store() {
    let prefix = unique_prefix();
    let tenant = unique("persist");
    let url = shared_url_with(&format!("prefix={prefix}&ttl=3600"));
    let first = Store::connect(&url).await.unwrap().tenant(&tenant);
    let value = vec!["kept".to_owned(), "across".to_owned(), "stores".to_owned()];
    let reference = first.put(&value).await.unwrap();
    let record = first.record(&reference).await.unwrap();
    first.close().await.unwrap();
    drop(first);

    let second = Store::connect(&url).await.unwrap().tenant(&tenant);
    assert_eq!(second.get::<Vec<String>>(&reference).await.unwrap(), value);
    let again = second.record(&reference).await.unwrap();
    assert_eq!(again, record, "data, refs and timestamps survive exactly");
}

#[tokio::test]
async fn key_format_is_exact() {
    let prefix = unique_prefix();
    let url = shared_url_with(&format!("prefix={prefix}&ttl=3600"));
    let backend = RedisBackend::connect(&url).await.unwrap();
    assert_eq!(backend.prefix(), prefix);

    let id = Uuid::parse_str("0b6f1c2e-9d7a-4c1b-8e3f-2a5b6c7d8e9f").unwrap();
    assert_eq!(
        backend.key_of(&Key::new("acme", "Vec<Item>", id)),
        format!("{prefix}:acme:Vec<Item>:0b6f1c2e-9d7a-4c1b-8e3f-2a5b6c7d8e9f")
    );
    assert_eq!(
        backend.key_of(&Key::new("a:b*c", "x%y", id)),
        format!("{prefix}:a%3Ab%2Ac:x%25y:0b6f1c2e-9d7a-4c1b-8e3f-2a5b6c7d8e9f")
    );

    // The key a put really lands under, and the value's layout in it.
    let store = store_of(backend.clone()).tenant("a:b*c");
    let reference = store.put(&"hello".to_owned()).await.unwrap();
    let key = format!("{prefix}:a%3Ab%2Ac:String:{}", reference.id);
    assert_eq!(key, str_key(&store, &prefix, &reference));
    let mut conn = admin(&shared_url());
    let kind: String = redis::cmd("TYPE").arg(&key).query(&mut conn).unwrap();
    assert_eq!(kind, "string");
    let raw = RawValue::get(&mut conn, &key);
    let record = store.record(&reference).await.unwrap();
    assert_eq!(
        raw,
        RawValue {
            magic: 0xF7,
            layout: 1,
            schema_version: 1,
            created_ns: record.created_at.timestamp_nanos_opt().unwrap(),
            updated_ns: record.updated_at.timestamp_nanos_opt().unwrap(),
            refs: Vec::new(),
            data: b"\"hello\"".to_vec(),
        }
    );

    // A record with references carries them as compact JSON before the data.
    #[derive(Serialize)]
    struct Holder {
        #[serde(with = "toast::external")]
        inner: Vec<u8>,
    }
    let outer = store.put(&Holder { inner: vec![1, 2] }).await.unwrap();
    let raw = RawValue::get(&mut conn, &str_key(&store, &prefix, &outer));
    let refs: Vec<Reference> = serde_json::from_slice(&raw.refs).unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].class_name, "Vec<u8>");
    assert_eq!(
        raw.data,
        format!(
            r#"{{"inner":{{"class_name":"Vec<u8>","id":"{}"}}}}"#,
            refs[0].id
        )
        .into_bytes()
    );
}

#[tokio::test]
async fn tenants_with_colons_and_stars_are_isolated() {
    let prefix = unique_prefix();
    let url = shared_url_with(&format!("prefix={prefix}&ttl=3600"));
    let store = Store::connect(&url).await.unwrap();
    let tenants = [
        "a",
        "a:b",
        "a%3Ab",
        "*",
        "a*",
        "a:*",
        "[a]",
        "a\\",
        "a:b:Secret",
        "",
    ];
    let shared_id = Uuid::new_v4();
    let backend = store.backend();

    // The same (class, id) in every tenant: no write may reach another tenant.
    for tenant in tenants {
        let record = Record::new(
            Key::new(tenant, "String", shared_id),
            serde_json::to_vec(&format!("secret of {tenant}")).unwrap(),
            Vec::new(),
        );
        backend.save(&[record]).await.unwrap();
    }
    let secret = Reference::new("String", shared_id);
    for tenant in tenants {
        let view = store.tenant(tenant);
        assert_eq!(
            view.get::<String>(&secret).await.unwrap(),
            format!("secret of {tenant}"),
            "tenant {tenant:?} sees its own record only"
        );
        let listed = view.list("String", 0, 100).await.unwrap();
        assert_eq!(
            listed,
            vec![secret.clone()],
            "tenant {tenant:?} lists one record"
        );
    }

    // Distinct keys on the server: one per tenant (SCAN over the whole
    // prefix; the test's own prefix keeps this small).
    let mut conn = admin(&shared_url());
    let mut keys: Vec<String> = redis::cmd("SCAN")
        .arg(0)
        .arg("MATCH")
        .arg(format!("{prefix}:*"))
        .arg("COUNT")
        .arg(100_000)
        .query::<(u64, Vec<String>)>(&mut conn)
        .unwrap()
        .1;
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), tenants.len(), "{keys:?}");

    // A record only tenant "a" has: others cannot read, list or delete it.
    let only_a = store.tenant("a").put(&4711u32).await.unwrap();
    for tenant in tenants.iter().filter(|t| **t != "a") {
        let view = store.tenant(tenant);
        assert!(view.get::<u32>(&only_a).await.unwrap_err().is_not_found());
        assert!(
            !view.delete(&only_a).await.unwrap(),
            "{tenant:?} deleted a's record"
        );
        assert!(view.list("u32", 0, 100).await.unwrap().is_empty());
    }
    assert_eq!(store.tenant("a").get::<u32>(&only_a).await.unwrap(), 4711);
    assert_eq!(
        store.tenant("a").list("u32", 0, 100).await.unwrap(),
        vec![only_a]
    );

    // Deleting in "a:*" and "*" removes only their own record.
    assert!(store.tenant("a:*").delete(&secret).await.unwrap());
    assert!(store.tenant("*").delete(&secret).await.unwrap());
    for tenant in tenants {
        let gone = store.tenant(tenant).get::<String>(&secret).await;
        if tenant == "a:*" || tenant == "*" {
            assert!(gone.unwrap_err().is_not_found());
        } else {
            assert_eq!(gone.unwrap(), format!("secret of {tenant}"));
        }
    }
}

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
async fn ttl_from_the_url_expires_records() {
    let prefix = unique_prefix();
    let store = Store::connect(&shared_url_with(&format!("prefix={prefix}&ttl=1")))
        .await
        .unwrap()
        .tenant(unique("ttl"));
    let reference = store.put(&"short-lived".to_owned()).await.unwrap();
    let mut conn = admin(&shared_url());
    let pttl: i64 = redis::cmd("PTTL")
        .arg(str_key(&store, &prefix, &reference))
        .query(&mut conn)
        .unwrap();
    assert!((1..=1000).contains(&pttl), "PTTL {pttl}");
    assert_eq!(
        store.get::<String>(&reference).await.unwrap(),
        "short-lived"
    );

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match store.get::<String>(&reference).await {
            Err(e) if e.is_not_found() => break,
            Ok(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("record did not expire in time: {other:?}"),
        }
    }
}

#[tokio::test]
async fn ttl_per_store_and_the_last_save_decides() {
    let prefix = unique_prefix();
    let backend = RedisBackend::connect(&shared_url_with(&format!("prefix={prefix}")))
        .await
        .unwrap();
    assert_eq!(backend.ttl(), None);
    let tenant = unique("ttl");
    let forever = store_of(backend.clone()).tenant(&tenant);
    let cache = store_of(backend.with_ttl(Some(Duration::from_secs(1)))).tenant(&tenant);
    let mut conn = admin(&shared_url());
    let pttl = |conn: &mut redis::Connection, store: &Store, r: &Reference| -> i64 {
        redis::cmd("PTTL")
            .arg(str_key(store, &prefix, r))
            .query(conn)
            .unwrap()
    };

    let kept = forever.put(&"kept".to_owned()).await.unwrap();
    let cached = cache.put(&"cached".to_owned()).await.unwrap();
    let rescued = cache.put(&"rescued".to_owned()).await.unwrap();
    assert_eq!(pttl(&mut conn, &forever, &kept), -1, "no TTL: persistent");
    assert!(pttl(&mut conn, &cache, &cached) > 0);

    // Saved again by the store without TTL: persistent from then on.
    let record = cache.record(&rescued).await.unwrap();
    forever.backend().save(&[record]).await.unwrap();
    assert_eq!(pttl(&mut conn, &forever, &rescued), -1);
    // Saved again by the store with a TTL: it expires from then on.
    let adopted = forever.put(&"adopted".to_owned()).await.unwrap();
    assert_eq!(pttl(&mut conn, &forever, &adopted), -1);
    let record = forever.record(&adopted).await.unwrap();
    cache.backend().save(&[record]).await.unwrap();
    assert!((1..=1000).contains(&pttl(&mut conn, &cache, &adopted)));

    let deadline = Instant::now() + Duration::from_secs(5);
    while !cache
        .get::<String>(&cached)
        .await
        .is_err_and(|e| e.is_not_found())
    {
        assert!(
            Instant::now() < deadline,
            "the cached record did not expire"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(forever.get::<String>(&kept).await.unwrap(), "kept");
    assert_eq!(cache.get::<String>(&rescued).await.unwrap(), "rescued");
    // Keep the shared server tidy.
    assert!(forever.delete(&kept).await.unwrap());
    assert!(forever.delete(&rescued).await.unwrap());
}

#[tokio::test]
async fn an_update_keeps_created_at_on_the_server() {
    #[derive(Serialize, Deserialize)]
    struct Account {
        owner: String,
        profile: External<Vec<String>>,
    }
    let (store, _) = shared_store().await;
    let mut account = Account {
        owner: "ada".into(),
        profile: External::new(vec!["math".into()]),
    };
    toast::scope(store.clone(), toast::to_json(&account))
        .await
        .unwrap()
        .unwrap();
    let reference = account.profile.reference().unwrap();
    let first = store.record(&reference).await.unwrap();

    account.profile.push("engines".into());
    toast::scope(store.clone(), toast::to_json(&account))
        .await
        .unwrap()
        .unwrap();
    let second = store.record(&reference).await.unwrap();
    assert_eq!(second.created_at, first.created_at);
    assert!(second.updated_at > first.updated_at);
    assert_eq!(&second.data[..], br#"["math","engines"]"#);

    // Even a record that claims another created_at keeps the stored one.
    let mut forged = second.clone();
    forged.created_at = chrono::DateTime::UNIX_EPOCH;
    forged.updated_at = chrono::Utc::now();
    store.backend().save(&[forged.clone()]).await.unwrap();
    let third = store.record(&reference).await.unwrap();
    assert_eq!(third.created_at, first.created_at);
    assert_eq!(third.updated_at, forged.updated_at);
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
    // 2,500 records of 4 KiB: 10 MiB, more than one save chunk (2 MiB, as
    // documented) and more than two MGETs (1,000 keys each, as documented).
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

#[tokio::test]
async fn the_update_script_is_loaded_again_after_script_flush_and_restart() {
    let mut server = ThrowawayRedis::start();
    let store = Store::connect(&server.url()).await.unwrap();
    let mut value = External::new(vec![1u32]);
    toast::scope(store.clone(), toast::to_json(&value))
        .await
        .unwrap()
        .unwrap();
    let reference = value.reference().unwrap();
    let created = store.record(&reference).await.unwrap().created_at;

    // SCRIPT FLUSH: the next update is answered NOSCRIPT, loads the script
    // and succeeds.
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query(&mut server.admin())
        .unwrap();
    server.reset_stats();
    value.push(2);
    toast::scope(store.clone(), toast::to_json(&value))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(server.calls_of("script|load"), 1);
    let record = store.record(&reference).await.unwrap();
    assert_eq!(&record.data[..], b"[1,2]");
    assert_eq!(record.created_at, created);

    // A restarted server has no scripts (and, here, no data): the first
    // save goes through the reconnect, then an update loads the script again.
    server.restart();
    toast::scope(store.clone(), toast::to_json(&value))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("first save after the restart: {}", full_text(&e)));
    let created = store.record(&reference).await.unwrap().created_at;
    value.push(3);
    server.reset_stats();
    toast::scope(store.clone(), toast::to_json(&value))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("update after the restart: {}", full_text(&e)));
    assert_eq!(server.calls_of("script|load"), 1);
    let record = store.record(&reference).await.unwrap();
    assert_eq!(&record.data[..], b"[1,2,3]");
    assert_eq!(record.created_at, created);
}

#[tokio::test]
async fn list_is_newest_first_paged_and_scoped() {
    let (store, _) = shared_store().await;
    let mut refs = Vec::new();
    for i in 0..5u32 {
        refs.push(store.put(&i).await.unwrap());
    }
    store.put(&"another class".to_owned()).await.unwrap();
    store.tenant(unique("other")).put(&99u32).await.unwrap();

    let newest_first: Vec<Reference> = refs.iter().rev().cloned().collect();
    assert_eq!(store.list_of::<u32>(0, 100).await.unwrap(), newest_first);
    assert_eq!(
        store.list_of::<u32>(1, 2).await.unwrap(),
        newest_first[1..3].to_vec()
    );
    assert!(store.list_of::<u32>(5, 10).await.unwrap().is_empty());
    assert!(store.list("NoSuchClass", 0, 10).await.unwrap().is_empty());

    // Ties on created_at are broken by id, descending.
    let now = chrono::Utc::now();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    for id in [a, b] {
        let mut r = Record::new(
            Key::new(store.tenant_name(), "Tie", id),
            &b"1"[..],
            Vec::new(),
        );
        r.created_at = now;
        store.backend().save(&[r]).await.unwrap();
    }
    let ids: Vec<Uuid> = store
        .list("Tie", 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, vec![a.max(b), a.min(b)]);
}

#[tokio::test]
async fn delete_counts_and_empty_batches_do_nothing() {
    let (store, _) = shared_store().await;
    let a = store.put(&1u8).await.unwrap();
    let b = store.put(&2u8).await.unwrap();
    let missing = Key::new(store.tenant_name(), "u8", Uuid::new_v4());
    let keys = [
        store.key_for(&a),
        store.key_for(&b),
        missing,
        store.key_for(&a),
    ];
    assert_eq!(store.backend().delete(&keys).await.unwrap(), 2);
    assert_eq!(store.backend().delete(&keys).await.unwrap(), 0);
    assert_eq!(store.backend().delete(&[]).await.unwrap(), 0);
    store.backend().save(&[]).await.unwrap();
    assert!(store.backend().load(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn corrupted_records_and_foreign_keys_are_errors_not_panics() {
    let (store, prefix) = shared_store().await;
    let mut conn = admin(&shared_url());
    let set_raw = |conn: &mut redis::Connection, key: &str, value: &[u8]| {
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("EX")
            .arg(3600)
            .query(conn)
            .unwrap();
    };

    // Values under toast keys that do not fit the layout: Validation on load
    // and on list, naming the class and id.
    let good = store.put(&5u32).await.unwrap();
    let good_key = str_key(&store, &prefix, &good);
    let good_bytes: Vec<u8> = redis::cmd("GET").arg(&good_key).query(&mut conn).unwrap();
    let mut truncated_refs = good_bytes.clone();
    truncated_refs[22..26].copy_from_slice(&1000u32.to_be_bytes());
    // (list reads only the fixed header, so it sees only a broken header.)
    for (what, value, header_broken) in [
        ("truncated header", good_bytes[..20].to_vec(), true),
        ("refs length past the end", truncated_refs, false),
        ("plain JSON, no header", b"1".to_vec(), true),
    ] {
        let reference = Reference::new("u32", Uuid::new_v4());
        let key = str_key(&store, &prefix, &reference);
        set_raw(&mut conn, &key, &value);
        let err = store.get::<u32>(&reference).await.unwrap_err();
        assert!(err.is_validation(), "{what}: {err}");
        let text = err.to_string();
        assert!(text.contains("corrupted"), "{what}: {text}");
        assert!(
            text.contains("u32") && text.contains(&reference.id.to_string()),
            "{what}: {text}"
        );
        let listed = store.list_of::<u32>(0, 10).await;
        if header_broken {
            let err = listed.unwrap_err();
            assert!(err.is_validation(), "{what}: {err}");
            assert!(err.to_string().contains("corrupted"), "{what}: {err}");
        } else {
            assert_eq!(listed.unwrap().len(), 2, "{what}");
        }
        let _: () = redis::cmd("DEL").arg(&key).query(&mut conn).unwrap();
    }
    assert_eq!(
        store.list_of::<u32>(0, 10).await.unwrap(),
        vec![good.clone()]
    );

    // A key holding another type (e.g. a hash of an older layout) is not a
    // record: load does not find it (MGET answers nil, GET WRONGTYPE), list
    // skips it.
    let hash_ref = Reference::new("u32", Uuid::new_v4());
    let hash_key = str_key(&store, &prefix, &hash_ref);
    let _: () = redis::cmd("HSET")
        .arg(&hash_key)
        .arg(&["data", "1", "refs", "[]", "schema_version", "1"])
        .query(&mut conn)
        .unwrap();
    let _: () = redis::cmd("EXPIRE")
        .arg(&hash_key)
        .arg(3600)
        .query(&mut conn)
        .unwrap();
    assert!(store
        .get::<u32>(&hash_ref)
        .await
        .unwrap_err()
        .is_not_found());
    assert_eq!(
        store.list_of::<u32>(0, 10).await.unwrap(),
        vec![good.clone()]
    );

    // A foreign value under a toast key: the flush fails with a clear error,
    // and the update step writes nothing: neither the foreign value nor the
    // existing record in the same batch changes.
    let foreign = Reference::new("u32", Uuid::new_v4());
    let foreign_key = str_key(&store, &prefix, &foreign);
    set_raw(&mut conn, &foreign_key, b"not a toast record");
    let existing = store.record(&good).await.unwrap();
    let mut changed = existing.clone();
    changed.data = bytes::Bytes::from_static(b"6");
    changed.updated_at = chrono::Utc::now();
    for (what, foreign_key_of) in [("a string", &foreign), ("a hash", &hash_ref)] {
        let batch = [
            changed.clone(),
            Record::new(store.key_for(foreign_key_of), &b"2"[..], Vec::new()),
        ];
        let err = store.backend().save(&batch).await.unwrap_err();
        assert!(matches!(err, toast::Error::Backend { .. }), "{what}: {err}");
        assert!(
            err.to_string().contains("not a toast record"),
            "{what}: {err}"
        );
        assert_eq!(store.record(&good).await.unwrap(), existing, "{what}");
    }
    let foreign_now: Vec<u8> = redis::cmd("GET")
        .arg(&foreign_key)
        .query(&mut conn)
        .unwrap();
    assert_eq!(foreign_now, b"not a toast record");
    let kind: String = redis::cmd("TYPE").arg(&hash_key).query(&mut conn).unwrap();
    assert_eq!(kind, "hash");
    // New records of such a batch are stored by its first step (a flush is
    // not atomic across keys; see the module docs): still loadable.
    let fresh = Key::new(store.tenant_name(), "u32", Uuid::new_v4());
    let batch = [
        Record::new(fresh.clone(), &b"3"[..], Vec::new()),
        Record::new(store.key_for(&foreign), &b"2"[..], Vec::new()),
    ];
    assert!(store.backend().save(&batch).await.is_err());
    assert_eq!(store.backend().load(&[fresh]).await.unwrap().len(), 1);
}

#[tokio::test]
async fn auth_with_password_and_acl_user_and_no_secret_in_errors() {
    let password = "pw-s3cret-4711";
    let server = ThrowawayRedis::start_with_password(password);

    // The right password works, and is nowhere in Debug.
    let store = Store::connect(&server.url()).await.unwrap();
    let r = store.put(&"authenticated".to_owned()).await.unwrap();
    assert_eq!(store.get::<String>(&r).await.unwrap(), "authenticated");
    assert!(!format!("{store:?}").contains(password));
    assert!(store.url().contains(":***@"), "{}", store.url());

    // A wrong password: a clear Connection error, no secret in it.
    let wrong = "wrong-pw-0815";
    let err = Store::connect(&server.url_with_credentials("", wrong))
        .await
        .unwrap_err();
    let text = full_text(&err);
    assert!(err.is_connection(), "{text}");
    assert!(text.contains("authentication failed"), "{text}");
    assert!(text.contains(":***@"), "{text}");
    assert!(!text.contains(wrong) && !text.contains(password), "{text}");

    // No password where one is required: says so.
    let err = Store::connect(&format!("redis://127.0.0.1:{}/", server.port()))
        .await
        .unwrap_err();
    assert!(err.is_connection(), "{err}");
    assert!(err.to_string().contains("requires a password"), "{err}");

    // An ACL user with its own password.
    let acl_password = "alice-pw-9876";
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "alice", "on"])
        .arg(format!(">{acl_password}"))
        .arg(&["~*", "&*", "+@all"])
        .query(&mut server.admin())
        .unwrap();
    let alice = Store::connect(&server.url_with_credentials("alice", acl_password))
        .await
        .unwrap();
    let r = alice.put(&"as alice".to_owned()).await.unwrap();
    assert_eq!(alice.get::<String>(&r).await.unwrap(), "as alice");
    assert_eq!(
        alice.url(),
        format!("redis://alice:***@127.0.0.1:{}/", server.port())
    );

    let err = Store::connect(&server.url_with_credentials("alice", "nope-5555"))
        .await
        .unwrap_err();
    let text = full_text(&err);
    assert!(err.is_connection(), "{text}");
    assert!(text.contains("authentication failed"), "{text}");
    assert!(
        !text.contains("nope-5555") && !text.contains(acl_password),
        "{text}"
    );
}

#[tokio::test]
async fn the_database_number_in_the_url_is_used() {
    let server = ThrowawayRedis::start();
    let store = Store::connect(&format!("redis://127.0.0.1:{}/3", server.port()))
        .await
        .unwrap();
    let r = store.put(&"in db 3".to_owned()).await.unwrap();
    let dbsize = |db: u8| -> u64 {
        let mut conn = admin(&format!("redis://127.0.0.1:{}/{db}", server.port()));
        redis::cmd("DBSIZE").query(&mut conn).unwrap()
    };
    assert_eq!(dbsize(3), 1);
    assert_eq!(dbsize(0), 0);
    assert_eq!(store.get::<String>(&r).await.unwrap(), "in db 3");
}

#[tokio::test]
async fn an_unreachable_server_is_a_prompt_connection_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let started = Instant::now();
    let err = Store::connect(&format!("redis://:hidden-pw-1@127.0.0.1:{port}/"))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    let text = full_text(&err);
    assert!(err.is_connection(), "{text}");
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    assert!(
        text.contains(&format!("is Redis running at 127.0.0.1:{port}?")),
        "{text}"
    );
    assert!(text.contains("redis://:***@127.0.0.1"), "{text}");
    assert!(!text.contains("hidden-pw-1"), "{text}");
}

#[tokio::test]
async fn bad_urls_are_validation_errors() {
    for url in [
        "redis://127.0.0.1:6379/?tll=5",
        "redis://127.0.0.1:6379/?prefix=a:b",
        "redis://127.0.0.1:6379/?ttl=soon",
        "redis://127.0.0.1:6379/?timeout=-1",
        "redis://:pw-x@127.0.0.1:6379/notanumber",
    ] {
        let err = Store::connect(url).await.unwrap_err();
        assert!(err.is_validation(), "{url}: {err}");
        assert!(!full_text(&err).contains("pw-x"), "{err}");
    }
    #[cfg(not(feature = "redis-tls"))]
    {
        let err = Store::connect("rediss://127.0.0.1:6379/")
            .await
            .unwrap_err();
        assert!(
            err.is_validation() && err.to_string().contains("redis-tls"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn a_killed_server_fails_promptly_and_the_same_store_recovers_after_restart() {
    let mut server = ThrowawayRedis::start();
    let backend = RedisBackend::connect(&server.url()).await.unwrap();
    let bound = backend.operation_timeout();
    assert_eq!(bound, Duration::from_secs(7), "the documented default");
    let store = store_of(backend);
    let before = store.put(&"before".to_owned()).await.unwrap();

    server.kill();
    for attempt in 0..2 {
        let started = Instant::now();
        let err = store.put(&"during".to_owned()).await.unwrap_err();
        let elapsed = started.elapsed();
        assert!(
            err.is_connection(),
            "attempt {attempt}: {}",
            full_text(&err)
        );
        assert!(elapsed <= bound, "attempt {attempt} took {elapsed:?}");
        assert!(
            err.to_string()
                .contains(&format!("is Redis running at 127.0.0.1:{}", server.port())),
            "{err}"
        );
        let started = Instant::now();
        let err = store.get::<String>(&before).await.unwrap_err();
        assert!(err.is_connection(), "{err}");
        assert!(started.elapsed() <= bound);
    }

    server.restart();
    // The same store works again at once: the dead connection is noticed,
    // the manager reconnects, and the idempotent save is sent again.
    let after = store
        .put(&"after".to_owned())
        .await
        .unwrap_or_else(|e| panic!("the first put after the restart failed: {}", full_text(&e)));
    assert_eq!(store.get::<String>(&after).await.unwrap(), "after");
    // The server kept no data (--save ""): the old record is gone, not an error.
    assert!(store
        .get::<String>(&before)
        .await
        .unwrap_err()
        .is_not_found());
}

#[tokio::test]
async fn a_paused_server_times_out_instead_of_hanging() {
    let server = ThrowawayRedis::start();
    let url = format!("{}?timeout=0.3&connect_timeout=0.3", server.url());
    let backend = RedisBackend::connect(&url).await.unwrap();
    let bound = backend.operation_timeout();
    assert_eq!(bound, Duration::from_millis(600));
    let store = store_of(backend);
    let r = store.put(&"paused".to_owned()).await.unwrap();

    server.pause();
    let started = Instant::now();
    let err = store.get::<String>(&r).await.unwrap_err();
    let elapsed = started.elapsed();
    server.resume();
    assert!(err.is_connection(), "{}", full_text(&err));
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(
        elapsed < bound + Duration::from_millis(400),
        "took {elapsed:?}"
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match store.get::<String>(&r).await {
            Ok(v) => {
                assert_eq!(v, "paused");
                break;
            }
            Err(e) if e.is_connection() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the store did not recover: {}", full_text(&e)),
        }
    }
}

/// `rediss://` really speaks TLS (the crypto provider is in place, no panic):
/// against a plain-text server the handshake fails as a Connection error.
#[cfg(feature = "redis-tls")]
#[tokio::test]
async fn rediss_to_a_plaintext_server_is_a_connection_error_not_a_panic() {
    let server = ThrowawayRedis::start();
    let started = Instant::now();
    let err = Store::connect(&format!(
        "rediss://:tls-pw-1@127.0.0.1:{}/?timeout=1&connect_timeout=1",
        server.port()
    ))
    .await
    .unwrap_err();
    let text = full_text(&err);
    assert!(err.is_connection(), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(!text.contains("tls-pw-1"), "{text}");
}

/// The suite every backend must pass, on the shared server under a fresh prefix.
#[cfg(feature = "conformance")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_backend_conforms() {
    let url = shared_url_with(&format!("prefix={}&ttl=3600", unique_prefix()));
    let store = Store::connect(&url).await.unwrap();
    let report = toast::backend::conformance::run(&store).await.unwrap();
    assert!(report.skipped.is_empty(), "{report:?}");
    assert!(report.passed.len() >= 10, "{report:?}");
}
