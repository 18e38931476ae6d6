//! The Redis backend's behaviour on the shared server
//! (`TOAST_TEST_REDIS_URL`, default `redis://127.0.0.1:6379/`, used only with
//! unique key prefixes and tenants): documents, keys and layout, tenants,
//! TTLs, updates, listing, corrupted values and URLs. Faults are in
//! `test_redis_faults.rs`, command counts in `test_redis_introspection.rs`.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use support::redis::{
    admin, full_text, nested_doc, shared_url, shared_url_with, store_of, unique_prefix, Doc,
    RawValue, ThrowawayRedis,
};
use support::unique;
use toast::backend::redis::RedisBackend;
use toast::backend::{Key, Record};
use toast::{External, Reference, Store};
use uuid::Uuid;

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

fn str_key(store: &Store, prefix: &str, reference: &Reference) -> String {
    format!(
        "{prefix}:{}:{}:{}",
        toast::backend::redis::escape(store.tenant_name()),
        toast::backend::redis::escape(&reference.class_name),
        reference.id
    )
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
