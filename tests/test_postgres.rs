//! The PostgreSQL backend against real servers: the shared one
//! (`TOAST_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/test`)
//! and throwaway ones started from the system binaries for the tests that
//! stop a server, read its statement log or need password authentication.
#![cfg(feature = "postgres")]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sqlx::Connection;
use support::postgres::{
    free_port, shared_url, unique_schema, with_option, FreshDatabase, ThrowawayPostgres,
};
use support::unique;
use toast::{Backend, Key, ListQuery, Record, Store};
use uuid::Uuid;

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Leaf {
    n: u64,
    #[serde(with = "toast::external")]
    blob: String,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Mid {
    name: String,
    #[serde(with = "toast::external")]
    leaves: Vec<Leaf>,
    #[serde(with = "toast::external")]
    note: Leaf,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Top {
    id: u64,
    #[serde(with = "toast::external")]
    mids: Vec<Mid>,
    #[serde(with = "toast::external")]
    extra: Mid,
}

/// Three levels of externals: Top → (Vec<Mid>, Mid) → (Vec<Leaf>, Leaf) → String.
fn nested(seed: &str) -> Top {
    let leaf = |n: u64| Leaf {
        n,
        blob: format!("{seed}-blob-{n}-{}", "x".repeat(200)),
    };
    let mid = |m: u64| Mid {
        name: format!("{seed}-mid-{m}"),
        leaves: (0..3).map(|i| leaf(m * 10 + i)).collect(),
        note: leaf(m * 10 + 9),
    };
    Top {
        id: 7,
        mids: (0..3).map(mid).collect(),
        extra: mid(5),
    }
}

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

async fn connect(url: &str) -> Store {
    Store::connect(url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL test server not usable at {url}: {e}"))
}

async fn raw(url: &str) -> sqlx::PgConnection {
    sqlx::PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL test server not reachable at {url}: {e}"))
}

async fn drop_schema(url: &str, schema: &str) {
    let mut conn = raw(url).await;
    let _ = sqlx::Executor::execute(
        &mut conn,
        format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE").as_str(),
    )
    .await;
}

fn record(tenant: &str, class: &str, id: Uuid, data: &str) -> Record {
    Record::new(Key::new(tenant, class, id), data.to_owned(), vec![])
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_keeps_created_at_moves_updated_at_and_the_last_duplicate_wins() -> TestResult {
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
    assert_eq!(got.created_at, first.created_at, "created_at kept");
    assert_eq!(
        got.updated_at.timestamp_micros(),
        third.updated_at.timestamp_micros(),
        "updated_at moved (PostgreSQL keeps microseconds)"
    );
    assert_eq!(got.refs, third.refs);
    assert_eq!(got.schema_version, 7);

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

/// A backend with one connection on a schema of its own (named from
/// `prefix`), and the shared URL and that schema, to drop afterwards.
async fn one_connection_backend(
    prefix: &str,
) -> Result<(String, String, toast::backend::postgres::PostgresBackend), Box<dyn std::error::Error>>
{
    let url = shared_url();
    let schema = unique_schema(prefix);
    let store_url = with_option(&url, &format!("schema={schema}&pool_max=1"));
    let backend =
        toast::backend::postgres::PostgresBackend::connect(&toast::ConnectUrl::parse(&store_url)?)
            .await?;
    Ok((url, schema, backend))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_probe_the_primary_key_whatever_the_plan_and_statistics() -> TestResult {
    // One connection, so the session setting below holds for every load.
    let (url, schema, backend) = one_connection_backend("toast_plans").await?;
    // 100 tenants of 50 rows, analyzed (every tenant in the statistics'
    // most-common list), then a big tenant the statistics do not know yet
    // (autovacuum may be off or not have run): as a constant it is costed
    // at ~1 row, where the listing index tied with the primary key.
    let records: Vec<Record> = (0..5_000)
        .map(|i| {
            record(
                &format!("t{}", i % 100),
                "C",
                Uuid::new_v4(),
                &i.to_string(),
            )
        })
        .collect();
    backend.save(&records).await?;
    sqlx::query(&format!("ANALYZE \"{schema}\".records"))
        .execute(backend.pool())
        .await?;
    let big: Vec<Record> = (0..500)
        .map(|i| record("big", "C", Uuid::new_v4(), &i.to_string()))
        .collect();
    backend.save(&big).await?;
    sqlx::query("SET plan_cache_mode = force_generic_plan")
        .execute(backend.pool())
        .await?;

    let one_class: Vec<Key> = big.iter().map(|r| r.key.clone()).collect();
    let mixed: Vec<Key> = records[..20].iter().map(|r| r.key.clone()).collect();
    for _ in 0..8 {
        assert_eq!(backend.load(&one_class).await?.len(), 500);
        assert_eq!(backend.load(&mixed).await?.len(), 20);
    }

    assert_loads_probe_the_primary_key(&backend, &["t7", "big", "unknown"]).await?;
    backend.close().await?;
    drop_schema(&url, &schema).await;
    Ok(())
}

/// Both load statements `backend` has prepared, `EXPLAIN`ed under generic
/// and custom plans for each of `tenants` (class `C`), use only the primary
/// key. `backend` must have one connection and have run both loads.
async fn assert_loads_probe_the_primary_key(
    backend: &toast::backend::postgres::PostgresBackend,
    tenants: &[&str],
) -> TestResult {
    let mut conn = backend.pool().acquire().await?;
    let statements: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, statement FROM pg_prepared_statements \
         WHERE strpos(statement, $1) > 0 ORDER BY name",
    )
    .bind("records AS s")
    .fetch_all(&mut *conn)
    .await?;
    assert_eq!(statements.len(), 2, "{statements:?}");
    for mode in ["force_generic_plan", "force_custom_plan"] {
        sqlx::query(&format!("SET plan_cache_mode = {mode}"))
            .execute(&mut *conn)
            .await?;
        for (name, statement) in &statements {
            for tenant in tenants {
                let args = if statement.contains("$1::text[]") {
                    format!("'{{{tenant}}}', '{{C}}', ARRAY[gen_random_uuid(), gen_random_uuid()]")
                } else {
                    format!("'{tenant}', 'C', ARRAY[gen_random_uuid(), gen_random_uuid()]")
                };
                let plan: Vec<String> =
                    sqlx::query_scalar(&format!("EXPLAIN EXECUTE {name}({args})"))
                        .fetch_all(&mut *conn)
                        .await?;
                let plan = plan.join("\n");
                assert!(
                    plan.contains("records_pkey") && !plan.contains("records_listing"),
                    "{mode} {tenant}: {statement}\n{plan}"
                );
                // One tenant and class: the ids are the key's leading index
                // condition, not a filter over the class.
                if !statement.contains("$1::text[]") {
                    assert!(
                        plan.contains("Index Cond: ((id = ANY") && !plan.contains("Filter"),
                        "{mode} {tenant}: {statement}\n{plan}"
                    );
                }
            }
        }
    }
    sqlx::query("RESET plan_cache_mode")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_from_a_table_never_analyzed_probe_the_primary_key() -> TestResult {
    let (url, schema, backend) = one_connection_backend("toast_no_stats").await?;
    // The state of a new table (and of any table where autovacuum is off):
    // rows written and deleted, then a class of 1,000, no ANALYZE. Version
    // 1's listing index, on (tenant, class_name, created_at, id), cost the
    // same as the primary key there and was chosen, so each probe read the
    // whole class.
    let gone: Vec<Record> = (0..1_000)
        .map(|i| record("old", "C", Uuid::new_v4(), &i.to_string()))
        .collect();
    backend.save(&gone).await?;
    let gone: Vec<Key> = gone.into_iter().map(|r| r.key).collect();
    assert_eq!(backend.delete(&gone).await?, 1_000);
    let records: Vec<Record> = (0..1_000)
        .map(|i| record("fresh", "C", Uuid::new_v4(), &i.to_string()))
        .collect();
    backend.save(&records).await?;
    let analyzed: Option<i64> = sqlx::query_scalar(
        "SELECT coalesce(analyze_count + autoanalyze_count, 0) FROM pg_stat_user_tables \
         WHERE schemaname = $1 AND relname = 'records'",
    )
    .bind(&schema)
    .fetch_optional(backend.pool())
    .await?;
    let one_class: Vec<Key> = records.iter().map(|r| r.key.clone()).collect();
    let mixed: Vec<Key> = vec![one_class[0].clone(), Key::new("other", "D", Uuid::new_v4())];
    assert_eq!(backend.load(&one_class).await?.len(), 1_000);
    assert_eq!(backend.load(&mixed).await?.len(), 1);
    assert_loads_probe_the_primary_key(&backend, &["fresh", "unknown"]).await?;
    // Listing finds its index: the statement's expression is the index's.
    let listed = backend
        .list(&ListQuery {
            tenant: "fresh".into(),
            class_name: "C".into(),
            offset: 0,
            limit: 10,
        })
        .await?;
    assert_eq!(listed.len(), 10);
    let mut conn = backend.pool().acquire().await?;
    let (name,): (String,) = sqlx::query_as(
        "SELECT name FROM pg_prepared_statements WHERE strpos(statement, 'ORDER BY created_at') > 0",
    )
    .fetch_one(&mut *conn)
    .await?;
    let plan: Vec<String> =
        sqlx::query_scalar(&format!("EXPLAIN EXECUTE {name}('fresh', 'C', 10, 0)"))
            .fetch_all(&mut *conn)
            .await?;
    let plan = plan.join("\n");
    assert!(plan.contains("records_listing"), "{plan}");
    drop(conn);
    // Where autovacuum is on it may have analyzed the table meanwhile; the
    // plans above must hold either way, and on this machine's server
    // (autovacuum off) the table is known to be without statistics.
    if analyzed == Some(0) {
        let reltuples: f32 = sqlx::query_scalar(
            "SELECT reltuples FROM pg_class WHERE oid = (quote_ident($1) || '.records')::regclass",
        )
        .bind(&schema)
        .fetch_one(backend.pool())
        .await?;
        assert!(reltuples <= 0.0, "reltuples {reltuples}");
    }
    backend.close().await?;
    drop_schema(&url, &schema).await;
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
async fn list_is_newest_first_and_paged_within_one_tenant() -> TestResult {
    let store = connect(&shared_url()).await;
    let tenant = unique("list");
    let base = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
    let mut records = Vec::new();
    for i in 0..5i64 {
        let mut r = record(&tenant, "Todo", Uuid::new_v4(), &i.to_string());
        r.created_at = base + chrono::Duration::seconds(i);
        records.push(r);
    }
    // Two with the same created_at: the larger id comes first.
    let mut tie_a = record(&tenant, "Todo", Uuid::from_u128(1), "\"a\"");
    let mut tie_b = record(&tenant, "Todo", Uuid::from_u128(2), "\"b\"");
    tie_a.created_at = base - chrono::Duration::seconds(10);
    tie_b.created_at = tie_a.created_at;
    records.push(tie_a.clone());
    records.push(tie_b.clone());
    records.push(record(&unique("other"), "Todo", Uuid::new_v4(), "0"));
    records.push(record(&tenant, "NotTodo", Uuid::new_v4(), "0"));
    store.backend().save(&records).await?;

    let view = store.tenant(&tenant);
    let all = view.list("Todo", 0, 100).await?;
    let expected: Vec<Uuid> = [4, 3, 2, 1, 0]
        .iter()
        .map(|&i| records[i].key.id)
        .chain([tie_b.key.id, tie_a.key.id])
        .collect();
    assert_eq!(all.iter().map(|r| r.id).collect::<Vec<_>>(), expected);
    let page = view.list("Todo", 2, 3).await?;
    assert_eq!(
        page.iter().map(|r| r.id).collect::<Vec<_>>(),
        expected[2..5]
    );
    assert!(view.list("Todo", 100, 10).await?.is_empty());
    assert!(view.list("Todo", 0, 0).await?.is_empty());
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
async fn any_other_sql_failure_is_a_backend_error_with_its_source() -> TestResult {
    let schema = unique_schema("toast_broken");
    let url = with_option(&shared_url(), &format!("schema={schema}"));
    let store = connect(&url).await;
    let mut conn = raw(&shared_url()).await;
    sqlx::Executor::execute(
        &mut conn,
        format!("DROP TABLE \"{schema}\".records").as_str(),
    )
    .await?;
    let err = store.put(&1u8).await.unwrap_err();
    assert!(matches!(err, toast::Error::Backend { .. }), "{err:?}");
    assert!(std::error::Error::source(&err).is_some());
    assert!(err.to_string().contains("records"), "{err}");
    drop_schema(&shared_url(), &schema).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_a_connection_error_within_seconds_with_a_hint() {
    let port = free_port();
    let url = format!("postgres://app:hunter2@127.0.0.1:{port}/app?connect_timeout=3");
    let started = Instant::now();
    let err = Store::connect(&url).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(err.is_connection(), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("connection refused"), "{text}");
    assert!(
        text.contains(&format!("is PostgreSQL running at 127.0.0.1:{port}?")),
        "{text}"
    );
    assert!(text.contains("postgres://app:***@127.0.0.1"), "{text}");
    assert!(!text.contains("hunter2") && !format!("{err:?}").contains("hunter2"));
}

/// Counts the executions of toast's statements on one table in a server log.
fn executions(log: &str, table: &str, verb: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("LOG:  execute") && l.contains(table) && l.contains(verb))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_log_shows_one_statement_per_flush_and_one_query_per_level() -> TestResult {
    let server = ThrowawayPostgres::start_new();
    let schema = unique_schema("toast_log");
    let store = connect(&with_option(
        &server.url("postgres"),
        &format!("schema={schema}"),
    ))
    .await;
    let table = format!("\"{schema}\".records");

    let doc = nested("log");
    let mark = server.log().len();
    let json = toast::scope(store.clone(), toast::to_json(&doc)).await??;
    let log = server.log();
    assert_eq!(
        executions(&log[mark..], &table, "INSERT INTO"),
        1,
        "one statement for the whole flush:\n{}",
        &log[mark..]
    );
    assert_eq!(store.stats().save_calls, 1);

    let mark = server.log().len();
    let back: Top = toast::scope(store.clone(), toast::from_json(&json)).await??;
    assert_eq!(back, doc);
    let log = server.log();
    assert_eq!(
        executions(&log[mark..], &table, "SELECT"),
        3,
        "one query per nesting level:\n{}",
        &log[mark..]
    );
    assert_eq!(store.stats().load_calls, 3);
    assert_eq!(executions(&log[mark..], &table, "INSERT INTO"), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_a_clear_connection_error_without_the_password() -> TestResult {
    let server = ThrowawayPostgres::start_new();
    let port = server.port();
    let wrong = format!("postgres://postgres:wrong-hunter2@127.0.0.1:{port}/postgres");
    let err = Store::connect(&wrong).await.unwrap_err();
    assert!(err.is_connection(), "{err:?}");
    let mut texts = vec![err.to_string(), format!("{err:?}")];
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        texts.push(s.to_string());
        source = s.source();
    }
    assert!(texts[0].contains("authentication failed"), "{}", texts[0]);
    assert!(
        texts[0].contains("postgres://postgres:***@127.0.0.1"),
        "{}",
        texts[0]
    );
    for text in &texts {
        assert!(!text.contains("wrong-hunter2"), "{text}");
    }

    let missing_db = format!(
        "postgres://postgres:{}@127.0.0.1:{port}/no_such_db",
        server.password()
    );
    let err = Store::connect(&missing_db).await.unwrap_err();
    assert!(err.is_connection(), "{err:?}");
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(!format!("{err} {err:?}").contains(server.password()));

    let store = connect(&server.url("postgres")).await;
    assert!(!format!("{store:?}").contains(server.password()));
    let r = store.put(&"with the right password".to_owned()).await?;
    assert_eq!(store.get::<String>(&r).await?, "with the right password");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_gives_connection_errors_and_the_same_store_works_once_it_is_back(
) -> TestResult {
    let mut server = ThrowawayPostgres::start_new();
    let url = with_option(&server.url("postgres"), "acquire_timeout=2&pool_max=4");
    let store = connect(&url).await;
    let before = store.put(&"written before the outage".to_owned()).await?;
    // Several pooled connections, all of which die with the server.
    let values: Vec<u32> = (0..4).collect();
    let warm: Vec<_> = values.iter().map(|v| store.put(v)).collect();
    for r in futures_util::future::join_all(warm).await {
        r?;
    }

    server.stop();
    let hint = format!("is PostgreSQL running at 127.0.0.1:{}?", server.port());
    for attempt in 0..2 {
        let started = Instant::now();
        let err = store.get::<String>(&before).await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "bounded by acquire_timeout: {:?}",
            started.elapsed()
        );
        assert!(err.is_connection(), "attempt {attempt}: {err:?}");
        assert!(err.to_string().contains(&hint), "{err}");
        assert!(!format!("{err} {err:?}").contains(server.password()));
    }
    let err = store.put(&"during".to_owned()).await.unwrap_err();
    assert!(err.is_connection(), "{err:?}");
    let started = Instant::now();
    let err = Store::connect(&url).await.unwrap_err();
    assert!(err.is_connection(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(6));

    server.start();
    assert_eq!(
        store.get::<String>(&before).await?,
        "written before the outage",
        "the same store works again without reconnecting by hand"
    );
    let after = store.put(&"written after".to_owned()).await?;
    assert_eq!(store.get::<String>(&after).await?, "written after");
    Ok(())
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
