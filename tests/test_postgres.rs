//! The PostgreSQL backend's behaviour on the shared server
//! (`TOAST_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/test`):
//! documents, migrations, names, batches, listing, concurrency and options.
//! Faults are in `test_postgres_faults.rs`, plans and server logs in
//! `test_postgres_introspection.rs`.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use support::postgres::{
    connect, drop_schema, nested, raw, record, shared_url, unique_schema, with_option,
    FreshDatabase, TestResult, Top,
};
use support::unique;
use toast::backend::{Key, ListQuery, Record};
use toast::{Backend, Store};
use uuid::Uuid;

/// The schema the shared URL's stores use.
fn shared_schema() -> String {
    url::Url::parse(&shared_url())
        .ok()
        .and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "schema")
                .map(|(_, v)| v.into_owned())
        })
        .unwrap_or_else(|| toast::backend::postgres::DEFAULT_SCHEMA.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_of_nested_documents_with_one_save_and_one_load_per_level() -> TestResult {
    let store = connect(&shared_url()).await.tenant(unique("nested"));
    let doc = nested("rt");
    let before = store.stats();
    let json = toast::scope(store.clone(), toast::to_json(&doc)).await??;
    let after_save = store.stats().since(&before);
    assert_eq!(after_save.save_calls, 1, "one round trip per flush");
    assert!(after_save.records_saved >= 10, "{after_save:?}");
    assert!(
        json.len() < 300,
        "the document keeps references only: {json}"
    );

    let back: Top = toast::scope(store.clone(), toast::from_json(&json)).await??;
    assert_eq!(back, doc);
    let after_load = store.stats().since(&before);
    assert_eq!(after_load.load_calls, 3, "one query per nesting level");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_persist_across_a_new_store() -> TestResult {
    let tenant = unique("persist");
    let url = shared_url();
    let first = connect(&url).await.tenant(&tenant);
    let doc = nested("persist");
    let json = toast::scope(first.clone(), toast::to_json(&doc)).await??;
    let plain = first.put(&vec![1u32, 2, 3]).await?;
    first.close().await?;
    drop(first);

    let second = connect(&url).await.tenant(&tenant);
    let back: Top = toast::scope(second.clone(), toast::from_json(&json)).await??;
    assert_eq!(back, doc);
    assert_eq!(second.get::<Vec<u32>>(&plain).await?, vec![1, 2, 3]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_on_an_empty_database_and_rerunning_is_a_no_op() -> TestResult {
    let db = FreshDatabase::create(&shared_url()).await;
    let store = connect(db.url()).await;
    let r = store.put(&"first".to_owned()).await?;

    let mut conn = raw(db.url()).await;
    let rows: Vec<(i64, String, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
        "SELECT version, name, applied_at FROM toast._toast_migrations ORDER BY version",
    )
    .fetch_all(&mut conn)
    .await?;
    let versions: Vec<i64> = rows.iter().map(|r| r.0).collect();
    assert_eq!(versions, [1, 2, 3]);
    assert_eq!(
        versions.last(),
        Some(&toast::backend::postgres::SCHEMA_VERSION)
    );
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT indexname, indexdef FROM pg_indexes \
         WHERE schemaname = 'toast' AND tablename = 'records' ORDER BY indexname",
    )
    .fetch_all(&mut conn)
    .await?;
    let names: Vec<&str> = indexes.iter().map(|i| i.0.as_str()).collect();
    assert_eq!(names, ["records_listing", "records_pkey"]);
    // The key leads with the id (migration 3), so a load's `id = ANY` is its
    // index condition.
    assert!(
        indexes[1].1.ends_with("(id, tenant, class_name)"),
        "{indexes:?}"
    );
    let sqlx_tables: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE tablename = '_sqlx_migrations'")
            .fetch_one(&mut conn)
            .await?;
    assert_eq!(sqlx_tables, 0, "toast never creates sqlx's table");

    // Again, twice: nothing is applied, recorded or lost.
    for _ in 0..2 {
        let again = connect(db.url()).await;
        assert_eq!(again.get::<String>(&r).await?, "first");
        again.close().await?;
    }
    let rows_again: Vec<(i64, String, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
        "SELECT version, name, applied_at FROM toast._toast_migrations ORDER BY version",
    )
    .fetch_all(&mut conn)
    .await?;
    assert_eq!(rows_again, rows);
    store.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_stores_connecting_at_once_to_an_empty_database_all_succeed() -> TestResult {
    let db = FreshDatabase::create(&shared_url()).await;
    let url = with_option(db.url(), "pool_max=2");
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move {
                let store = Store::connect(&url).await?.tenant(format!("t{i}"));
                let r = store.put(&format!("value {i}")).await?;
                let back: String = store.get(&r).await?;
                store.close().await?;
                Ok::<_, toast::Error>(back)
            })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        assert_eq!(task.await??, format!("value {i}"));
    }
    let mut conn = raw(db.url()).await;
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM toast._toast_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await?;
    assert_eq!(versions, [1, 2, 3]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_applications_own_sqlx_migrations_table_is_untouched() -> TestResult {
    let db = FreshDatabase::create(&shared_url()).await;
    let mut conn = raw(db.url()).await;
    // The table sqlx's migrator creates, with one applied migration of the app.
    sqlx::Executor::execute(
        &mut conn,
        "CREATE TABLE public._sqlx_migrations (
            version BIGINT PRIMARY KEY, description TEXT NOT NULL,
            installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL,
            checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL);
         INSERT INTO public._sqlx_migrations VALUES
            (20240101000000, 'create users', '2024-01-01T00:00:00Z', true, '\\x0102', 42);
         CREATE TABLE public.users (id bigint PRIMARY KEY);",
    )
    .await?;
    let snapshot = "SELECT version, description, installed_on::text, success, checksum, \
                    execution_time FROM public._sqlx_migrations ORDER BY version";
    type Row = (i64, String, String, bool, Vec<u8>, i64);
    let before: Vec<Row> = sqlx::query_as(snapshot).fetch_all(&mut conn).await?;

    let store = connect(db.url()).await;
    store.put(&"hello".to_owned()).await?;
    store.close().await?;

    let after: Vec<Row> = sqlx::query_as(snapshot).fetch_all(&mut conn).await?;
    assert_eq!(after, before);
    let where_: Vec<(String, String)> = sqlx::query_as(
        "SELECT schemaname::text, tablename::text FROM pg_tables \
         WHERE tablename LIKE '%migrations' ORDER BY 1, 2",
    )
    .fetch_all(&mut conn)
    .await?;
    assert_eq!(
        where_,
        [
            ("public".to_owned(), "_sqlx_migrations".to_owned()),
            ("toast".to_owned(), "_toast_migrations".to_owned())
        ]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_database_schema_is_refused_before_anything_is_written() -> TestResult {
    let url = shared_url();
    let mut conn = raw(&url).await;

    // A schema some newer release migrated: version 99 recorded, no records table yet.
    let schema = unique_schema("toast_newer");
    sqlx::Executor::execute(
        &mut conn,
        format!(
            "CREATE SCHEMA \"{schema}\";
             CREATE TABLE \"{schema}\"._toast_migrations (version bigint PRIMARY KEY,
                name text NOT NULL, checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now());
             INSERT INTO \"{schema}\"._toast_migrations (version, name, checksum)
                VALUES (1, 'records', 'x'), (99, 'from the future', 'y');"
        )
        .as_str(),
    )
    .await?;
    let err = Store::connect(&with_option(&url, &format!("schema={schema}")))
        .await
        .unwrap_err();
    assert!(err.is_validation(), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "database schema version 99 is newer than this toast release supports ({}); \
             upgrade serde-toast",
            toast::backend::postgres::SCHEMA_VERSION
        )
    );
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = $1 ORDER BY 1",
    )
    .bind(&schema)
    .fetch_all(&mut conn)
    .await?;
    assert_eq!(tables, ["_toast_migrations"], "nothing created");
    let versions: Vec<i64> = sqlx::query_scalar(&format!(
        "SELECT version FROM \"{schema}\"._toast_migrations ORDER BY 1"
    ))
    .fetch_all(&mut conn)
    .await?;
    assert_eq!(versions, [1, 99], "nothing recorded");
    drop_schema(&url, &schema).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_tenant_and_class_names_are_data_and_stay_isolated() -> TestResult {
    let run = unique("hostile");
    let store = connect(&shared_url()).await;
    let backend: Arc<dyn Backend> = Arc::clone(store.backend());
    let tenants: Vec<String> = [
        "plain",
        "o'brien",
        "x'; DROP TABLE toast.records; --",
        "nul\0byte",
        "nul\u{1}0byte",
        "nul\u{1}1byte",
        "nul\u{1}byte",
        "\0",
        "\u{1}",
        "",
        "%",
        "_",
        "back\\slash\"quote",
        "💥 ünïcode",
    ]
    .iter()
    .map(|t| format!("{t}{run}"))
    .collect();
    let classes = ["Item", "It\0em", "It\u{1}0em", "Item'--"];
    let id = Uuid::new_v4();

    // Every (tenant, class) pair gets its own record under the same id.
    let mut records = Vec::new();
    for (t, tenant) in tenants.iter().enumerate() {
        for (c, class) in classes.iter().enumerate() {
            records.push(record(tenant, class, id, &format!("[{t},{c}]")));
        }
    }
    backend.save(&records).await?;

    for (t, tenant) in tenants.iter().enumerate() {
        for (c, class) in classes.iter().enumerate() {
            let key = Key::new(tenant.as_str(), *class, id);
            let got = backend.load(std::slice::from_ref(&key)).await?;
            assert_eq!(got.len(), 1, "{key:?}");
            assert_eq!(got[0].key, key, "names round-trip exactly");
            let v: Vec<usize> = serde_json::from_slice(&got[0].data)?;
            assert_eq!(v, [t, c], "{key:?} reads its own record only");
        }
        let listed = backend
            .list(&ListQuery {
                tenant: Arc::from(tenant.as_str()),
                class_name: Arc::from(classes[1]),
                offset: 0,
                limit: 100,
            })
            .await?;
        assert_eq!(listed.iter().map(|e| e.id).collect::<Vec<_>>(), [id]);
    }

    // Tenant 0 overwrites and deletes its own record only.
    let victim = &tenants[0];
    backend
        .save(&[record(victim, classes[0], id, r#""overwritten""#)])
        .await?;
    assert_eq!(
        backend
            .delete(&[Key::new(victim.as_str(), classes[1], id)])
            .await?,
        1
    );
    assert_eq!(
        backend
            .delete(&[Key::new(victim.as_str(), classes[1], id)])
            .await?,
        0
    );
    for (t, tenant) in tenants.iter().enumerate().skip(1) {
        let keys: Vec<Key> = classes
            .iter()
            .map(|c| Key::new(tenant.as_str(), *c, id))
            .collect();
        let got = backend.load(&keys).await?;
        assert_eq!(got.len(), classes.len(), "tenant {t} lost nothing");
        for r in got {
            assert_ne!(&r.data[..], br#""overwritten""#);
        }
    }

    // The same through the Store API: other tenants cannot see a value.
    let a = store.tenant(&tenants[3]);
    let b = store.tenant(&tenants[4]);
    let reference = a.put(&"secret of a".to_owned()).await?;
    assert!(b
        .get::<String>(&reference)
        .await
        .unwrap_err()
        .is_not_found());
    assert!(!b.delete(&reference).await?);
    assert!(b.list("String", 0, 10).await?.is_empty());
    assert_eq!(a.get::<String>(&reference).await?, "secret of a");
    assert_eq!(a.list("String", 0, 10).await?, [reference]);

    let all_keys: Vec<Key> = records.iter().map(|r| r.key.clone()).collect();
    backend.delete(&all_keys).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_holding_nul_is_a_validation_error_naming_the_record_and_nothing_is_written(
) -> TestResult {
    let store = connect(&shared_url()).await.tenant(unique("nul"));
    let err = store.put(&"a\0b".to_owned()).await.unwrap_err();
    assert!(err.is_validation(), "{err:?}");
    assert!(err.to_string().contains("String"), "{err}");
    assert!(err.to_string().contains("\\u0000"), "{err}");

    let tenant = store.tenant_name().to_owned();
    let good = record(&tenant, "Good", Uuid::new_v4(), r#""fine""#);
    let bad = record(&tenant, "Bad", Uuid::new_v4(), r#"{"k":"x\u0000y"}"#);
    let err = store
        .backend()
        .save(&[good.clone(), bad.clone()])
        .await
        .unwrap_err();
    assert!(err.is_validation());
    assert!(err.to_string().contains(&bad.key.id.to_string()), "{err}");
    let loaded = store.backend().load(&[good.key, bad.key]).await?;
    assert!(loaded.is_empty(), "the batch is all or nothing");

    // An escaped backslash before "u0000" is ordinary text.
    let fine = store.put(&"\\u0000 is just text".to_owned()).await?;
    assert_eq!(store.get::<String>(&fine).await?, "\\u0000 is just text");
    Ok(())
}

/// The conformance suite checks the upsert itself (created_at kept,
/// updated_at, refs and schema_version replaced, the later duplicate wins,
/// a repeated key deleted once); PostgreSQL adds JSONB's text form and a key
/// loaded twice coming back once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upserted_record_reads_back_in_jsonb_text_form_and_a_key_loaded_twice_comes_once(
) -> TestResult {
    let store = connect(&shared_url()).await;
    let tenant = unique("upsert");
    let backend = store.backend();
    let id = Uuid::new_v4();
    let mut first = record(&tenant, "Doc", id, r#"{"v":1}"#);
    first.created_at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
    first.updated_at = first.created_at;
    backend.save(std::slice::from_ref(&first)).await?;

    let mut second = record(&tenant, "Doc", id, r#"{"v":2}"#);
    second.refs = vec![toast::Reference::new("Other", Uuid::nil())];
    second.schema_version = 7;
    let mut third = second.clone();
    third.data = bytes::Bytes::from_static(br#"{"v":3}"#);
    // The same key twice in one batch: one statement cannot touch a row twice,
    // so the backend keeps the last.
    backend.save(&[second.clone(), third.clone()]).await?;

    let got = backend.load(std::slice::from_ref(&first.key)).await?;
    assert_eq!(got.len(), 1);
    let got = &got[0];
    assert_eq!(&got.data[..], br#"{"v": 3}"#, "JSONB's text form");

    // Loading a key twice returns it once.
    let twice = backend
        .load(&[first.key.clone(), first.key.clone()])
        .await?;
    assert_eq!(twice.len(), 1);
    assert_eq!(backend.delete(&[first.key.clone(), first.key]).await?, 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_return_the_callers_keys_for_one_class_and_for_mixed_batches() -> TestResult {
    let store = connect(&shared_url()).await;
    let backend = store.backend();
    let run = unique("positions");
    // Names that need escaping, and one that looks like an escaped form.
    let tenants = [
        format!("a{run}"),
        format!("b{run}"),
        format!("nul\0{run}"),
        format!("nul\u{1}0{run}"),
    ];
    let classes = ["X", "Y\0", "Y\u{1}0"];
    let ids: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
    // Every (tenant, class, id) but the last id under tenant 1, with data
    // naming it; a record with references and one without.
    let mut records = Vec::new();
    for (t, tenant) in tenants.iter().enumerate() {
        for (c, class) in classes.iter().enumerate() {
            for (i, id) in ids.iter().enumerate() {
                if t == 1 && i == 3 {
                    continue;
                }
                let mut r = record(tenant, class, *id, &format!("[{t},{c},{i}]"));
                if i == 0 {
                    r.refs = vec![toast::Reference::new("Leaf", ids[1])];
                }
                records.push(r);
            }
        }
    }
    backend.save(&records).await?;
    // A loaded record carries the data saved under its own key (the data
    // names the key's tenant, class and id) and that key's references.
    let expect = |r: &Record| -> TestResult {
        let key = &r.key;
        let t = tenants
            .iter()
            .position(|t| **t == *key.tenant)
            .ok_or("tenant")?;
        let c = classes
            .iter()
            .position(|c| **c == *key.class_name)
            .ok_or("class")?;
        let i = ids.iter().position(|i| *i == key.id).ok_or("id")?;
        let v: Vec<usize> = serde_json::from_slice(&r.data)?;
        assert_eq!(v, [t, c, i], "{key:?} got another record's data");
        let refs = if i == 0 {
            vec![toast::Reference::new("Leaf", ids[1])]
        } else {
            vec![]
        };
        assert_eq!(r.refs, refs, "{key:?}");
        Ok(())
    };

    for tenant in &tenants {
        for class in classes {
            // One tenant and class: repeats, a missing id, shuffled order.
            let tenant_arc: Arc<str> = Arc::from(tenant.as_str());
            let class_arc: Arc<str> = Arc::from(class);
            let key = |id: Uuid| Key::new(Arc::clone(&tenant_arc), Arc::clone(&class_arc), id);
            let asked = vec![
                key(ids[2]),
                key(Uuid::new_v4()),
                key(ids[0]),
                key(ids[3]),
                key(ids[2]),
                key(ids[1]),
                key(ids[0]),
            ];
            let got = backend.load(&asked).await?;
            let present = if tenant == &tenants[1] { 3 } else { 4 };
            assert_eq!(
                got.len(),
                present,
                "{tenant:?} {class:?}: each found key once"
            );
            let mut seen: Vec<Uuid> = got.iter().map(|r| r.key.id).collect();
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), present);
            for r in &got {
                expect(r)?;
                assert!(
                    Arc::ptr_eq(&r.key.tenant, &tenant_arc)
                        && Arc::ptr_eq(&r.key.class_name, &class_arc),
                    "the caller's key is reused, not rebuilt from the row"
                );
            }
        }
    }

    // Mixed tenants and classes in one batch, with repeats and missing keys.
    let mut asked = Vec::new();
    for (n, tenant) in tenants.iter().enumerate() {
        for (c, class) in classes.iter().enumerate() {
            asked.push(Key::new(tenant.as_str(), *class, ids[(n + c) % 4]));
        }
    }
    asked.push(asked[0].clone());
    asked.push(asked[5].clone());
    asked.push(Key::new(tenants[1].as_str(), "X", ids[3])); // not stored
    asked.push(Key::new(format!("c{run}"), "X", ids[0])); // no such tenant
    asked.push(Key::new(tenants[0].as_str(), "Z", ids[0])); // no such class
    let got = backend.load(&asked).await?;
    let mut wanted: Vec<Key> = asked[..12]
        .iter()
        .filter(|k| !(*k.tenant == *tenants[1] && k.id == ids[3]))
        .cloned()
        .collect();
    wanted.sort();
    let mut keys: Vec<Key> = got.iter().map(|r| r.key.clone()).collect();
    keys.sort();
    assert_eq!(keys, wanted, "every present key once, no other");
    for r in &got {
        expect(r)?;
    }

    // Empty reference lists are stored as `[]` (sent as NULL).
    let mut conn = raw(&shared_url()).await;
    let stored: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT DISTINCT refs::text FROM \"{}\".records WHERE tenant = $1",
        shared_schema()
    ))
    .bind(&tenants[0])
    .fetch_all(&mut conn)
    .await?;
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert!(stored.iter().any(|r| r == "[]"), "{stored:?}");

    let all: Vec<Key> = records.iter().map(|r| r.key.clone()).collect();
    assert_eq!(backend.delete(&all).await?, records.len() as u64);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_schema_is_upgraded_in_place_and_keeps_its_records() -> TestResult {
    let url = shared_url();
    let schema = unique_schema("toast_v1");
    let mut conn = raw(&url).await;
    let quoted = format!("\"{schema}\"");
    let v1 = include_str!("../migrations/postgres/0001_records.sql").replace("{schema}", &quoted);
    sqlx::Executor::execute(
        &mut conn,
        format!(
            "CREATE SCHEMA {quoted};
             {v1};
             CREATE TABLE {quoted}._toast_migrations (version bigint PRIMARY KEY,
                name text NOT NULL, checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now());
             INSERT INTO {quoted}._toast_migrations (version, name, checksum)
                VALUES (1, 'records', 'v1');
             INSERT INTO {quoted}.records
                (tenant, class_name, id, data, refs, schema_version, created_at, updated_at)
                VALUES ('t', 'C', '00000000-0000-0000-0000-00000000000a', '\"kept\"', '[]',
                        1, now(), now());"
        )
        .as_str(),
    )
    .await?;
    let store = Store::connect(&with_option(&url, &format!("schema={schema}")))
        .await?
        .tenant("t");
    let key = Key::new("t", "C", Uuid::from_u128(10));
    let loaded = store.backend().load(std::slice::from_ref(&key)).await?;
    assert_eq!(loaded.len(), 1);
    assert_eq!(&loaded[0].data[..], b"\"kept\"");
    let listed = store.list("C", 0, 10).await?;
    assert_eq!(listed.iter().map(|e| e.id).collect::<Vec<_>>(), [key.id]);
    store.close().await?;

    let versions: Vec<(i64, String)> = sqlx::query_as(&format!(
        "SELECT version, checksum FROM {quoted}._toast_migrations ORDER BY version"
    ))
    .fetch_all(&mut conn)
    .await?;
    assert_eq!(versions[0], (1, "v1".to_owned()), "version 1 is not re-run");
    assert_eq!(versions.iter().map(|v| v.0).collect::<Vec<_>>(), [1, 2, 3]);
    let listing: String = sqlx::query_scalar(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND indexname = 'records_listing'",
    )
    .bind(&schema)
    .fetch_one(&mut conn)
    .await?;
    assert!(
        listing.contains("(tenant || '\u{1}/'::text) || class_name)"),
        "{listing}"
    );
    let key: String = sqlx::query_scalar(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND indexname = 'records_pkey'",
    )
    .bind(&schema)
    .fetch_one(&mut conn)
    .await?;
    assert!(key.ends_with("(id, tenant, class_name)"), "{key}");
    drop_schema(&url, &schema).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_keys_of_names_holding_the_separator_never_meet() -> TestResult {
    let store = connect(&shared_url()).await;
    let base = unique("sep");
    // The listing key is tenant, U+0001 '/', class: these two pairs would
    // give the same key if the names were not escaped.
    let a = (format!("{base}\u{1}/x"), "C".to_owned());
    let b = (base.clone(), "x\u{1}/C".to_owned());
    let ra = record(&a.0, &a.1, Uuid::new_v4(), "1");
    let rb = record(&b.0, &b.1, Uuid::new_v4(), "2");
    store.backend().save(&[ra.clone(), rb.clone()]).await?;
    let ids = |entries: Vec<toast::Reference>| entries.iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.tenant(&a.0).list(&a.1, 0, 10).await?),
        [ra.key.id]
    );
    assert_eq!(
        ids(store.tenant(&b.0).list(&b.1, 0, 10).await?),
        [rb.key.id]
    );
    assert!(store.tenant(&base).list("C", 0, 10).await?.is_empty());
    store.backend().delete(&[ra.key, rb.key]).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_above_the_chunk_size_is_saved_whole_and_loaded_in_one_query() -> TestResult {
    let store = connect(&shared_url()).await;
    let tenant = unique("chunks");
    let records: Vec<Record> = (0..12_000)
        .map(|i| record(&tenant, "Row", Uuid::new_v4(), &i.to_string()))
        .collect();
    let keys: Vec<Key> = records.iter().map(|r| r.key.clone()).collect();

    // One bad record in the last chunk: the whole flush is refused, nothing written.
    let mut with_bad = records.clone();
    with_bad.push(record(&tenant, "Row", Uuid::new_v4(), r#""\u0000""#));
    let err = store.backend().save(&with_bad).await.unwrap_err();
    assert!(err.is_validation(), "{err:?}");
    assert!(store.backend().load(&keys).await?.is_empty());

    store.backend().save(&records).await?;
    let loaded = store.backend().load(&keys).await?;
    assert_eq!(loaded.len(), records.len());
    assert_eq!(store.backend().delete(&keys).await?, 12_000);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_tasks_write_and_read_their_own_records_and_none_is_lost(
) -> TestResult {
    let store = connect(&shared_url()).await;
    let run = unique("concurrent");
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let store = store.tenant(format!("{run}-{i}"));
            tokio::spawn(async move {
                let mut refs = Vec::new();
                for j in 0..5 {
                    refs.push(store.put(&format!("task {i} value {j}")).await?);
                }
                let doc = nested(&format!("task{i}"));
                let json = toast::scope(store.clone(), toast::to_json(&doc)).await??;
                let back: Top = toast::scope(store.clone(), toast::from_json(&json)).await??;
                assert_eq!(back, doc);
                for (j, r) in refs.iter().enumerate() {
                    assert_eq!(store.get::<String>(r).await?, format!("task {i} value {j}"));
                }
                Ok::<_, toast::Error>(store.list("String", 0, 1000).await?.len())
            })
        })
        .collect();
    for task in tasks {
        // 5 plain strings plus the 16 blobs of the nested document.
        assert_eq!(task.await??, 5 + 16);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_url_options_are_validation_errors() {
    let base = shared_url();
    for option in [
        "schema=x;drop",
        "schema=1abc",
        "pool_max=0",
        "acquire_timeout=soon",
        "sslmode=sometimes",
        "pool_size=4",
    ] {
        let err = Store::connect(&with_option(&base, option))
            .await
            .unwrap_err();
        assert!(err.is_validation(), "{option}: {err:?}");
    }
}

#[cfg(feature = "conformance")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backend_passes_the_conformance_suite() {
    let store = connect(&shared_url()).await;
    let report = toast::backend::conformance::run(&store)
        .await
        .unwrap_or_else(|failure| panic!("{failure}"));
    assert!(report.skipped.is_empty(), "{report:?}");
    assert!(report.passed.len() >= 10, "{report:?}");
}
