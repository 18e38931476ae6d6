//! The embedded SQLite store: file created on first connect, WAL, versioned
//! migrations, one transaction per flush, data surviving a reopen.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde::{Deserialize, Serialize};
use sqlx::Row;
use toast::Store;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Item {
    n: u32,
    text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Doc {
    #[serde(with = "toast::external")]
    items: Vec<Item>,
    #[serde(with = "toast::external")]
    first: Item,
}

fn url(dir: &tempfile::TempDir, name: &str) -> String {
    format!("sqlite://{}", dir.path().join(name).display())
}

async fn raw(url: &str) -> sqlx::SqlitePool {
    let path = url.trim_start_matches("sqlite://");
    sqlx::SqlitePool::connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(path))
        .await
        .unwrap()
}

#[tokio::test]
async fn file_is_created_on_first_connect_in_wal_mode_with_migrations() {
    let dir = tempfile::tempdir().unwrap();
    let url = url(&dir, "new.db");
    assert!(!dir.path().join("new.db").exists());
    let store = Store::connect(&url).await.unwrap();
    assert!(dir.path().join("new.db").exists());
    store.close().await.unwrap();
    let pool = raw(&url).await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM _toast_migrations")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(versions, vec![1, 2]);
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type IN ('table','index') ORDER BY name",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(tables.contains(&"toast_records".to_owned()), "{tables:?}");
    assert!(
        tables.contains(&"toast_records_listing".to_owned()),
        "{tables:?}"
    );
}

#[tokio::test]
async fn data_survives_reopening_the_file_and_migrations_rerun_as_no_ops() {
    let dir = tempfile::tempdir().unwrap();
    let url = url(&dir, "persist.db");
    let doc = Doc {
        items: vec![Item {
            n: 1,
            text: "one".into(),
        }],
        first: Item {
            n: 0,
            text: "zero".into(),
        },
    };
    let json = {
        let store = Store::connect(&url).await.unwrap();
        let json = toast::scope(store.clone(), toast::to_json(&doc))
            .await
            .unwrap()
            .unwrap();
        store.close().await.unwrap();
        json
    };
    let reopened = Store::connect(&url).await.unwrap();
    let back: Doc = toast::scope(reopened.clone(), toast::from_json(&json))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, doc);
    reopened.close().await.unwrap();
    let pool = raw(&url).await;
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _toast_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 2, "reconnecting does not re-apply migrations");
}

/// A file written by a release that stopped at schema version 1 (the
/// records table WITHOUT ROWID) is upgraded at connect, keeping its records,
/// their timestamps and refs, and the listing index.
#[tokio::test]
async fn a_version_1_file_is_upgraded_to_a_rowid_table_keeping_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let url = url(&dir, "v1.db");
    let path = dir.path().join("v1.db");
    let pool = sqlx::SqlitePool::connect_with(
        sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true),
    )
    .await
    .unwrap();
    let v1 = include_str!("../migrations/sqlite/0001_records.sql");
    sqlx::raw_sql(v1).execute(&pool).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE _toast_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, \
         applied_at INTEGER NOT NULL); \
         INSERT INTO _toast_migrations VALUES (1, 'records table and listing index', 0);",
    )
    .execute(&pool)
    .await
    .unwrap();
    let id = uuid::Uuid::new_v4();
    let child = r#"[{"class_name":"Item","id":"00000000-0000-0000-0000-000000000007"}]"#;
    sqlx::query(
        "INSERT INTO toast_records VALUES ('default', 'Item', ?, ?, ?, 1, 1700000000000000, 1700000000500000)",
    )
    .bind(id.as_bytes().as_slice())
    .bind(br#"{"n":3,"text":"kept"}"#.as_slice())
    .bind(child)
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let store = Store::connect(&url).await.unwrap();
    let reference = toast::Reference::new("Item", id);
    let item: Item = store.get(&reference).await.unwrap();
    assert_eq!(
        item,
        Item {
            n: 3,
            text: "kept".into()
        }
    );
    let record = store.record(&reference).await.unwrap();
    assert_eq!(record.created_at.timestamp_micros(), 1_700_000_000_000_000);
    assert_eq!(record.updated_at.timestamp_micros(), 1_700_000_000_500_000);
    assert_eq!(record.refs.len(), 1);
    assert_eq!(store.list("Item", 0, 10).await.unwrap().len(), 1);
    store.close().await.unwrap();

    let pool = raw(&url).await;
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM _toast_migrations ORDER BY 1")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(versions, vec![1, 2]);
    let ddl: String =
        sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE name = 'toast_records'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(!ddl.to_uppercase().contains("WITHOUT ROWID"), "{ddl}");
    let index: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'toast_records_listing'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(index, 1);
}

#[tokio::test]
async fn a_newer_schema_is_refused_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let url = url(&dir, "future.db");
    Store::connect(&url).await.unwrap().close().await.unwrap();
    let pool = raw(&url).await;
    sqlx::query("INSERT INTO _toast_migrations VALUES (99, 'from the future', 0)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let err = Store::connect(&url).await.unwrap_err();
    assert!(err.is_validation(), "{err:?}");
    assert!(
        err.to_string().contains("99") && err.to_string().contains("upgrade"),
        "{err}"
    );
}

/// A document with three externals (a `Doc`, its `Vec<Item>` of 3,000 items
/// and its first `Item`) flushed to a new file: the store, the file's URL and
/// the directory that holds it.
async fn flush_a_big_document() -> (Store, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = url(&dir, "tx.db");
    let store = Store::connect(&url).await.unwrap();
    let doc = Doc {
        items: (0..3000)
            .map(|n| Item {
                n,
                text: "t".into(),
            })
            .collect(),
        first: Item {
            n: 9,
            text: "f".into(),
        },
    };
    #[derive(Serialize)]
    struct Outer {
        #[serde(with = "toast::external")]
        doc: Doc,
    }
    toast::scope(store.clone(), toast::to_json(&Outer { doc }))
        .await
        .unwrap()
        .unwrap();
    (store, url, dir)
}

#[tokio::test]
async fn a_flush_of_a_big_document_is_one_transaction() {
    let (store, _url, _dir) = flush_a_big_document().await;
    assert_eq!(store.stats().save_calls, 1);
}

#[tokio::test]
async fn classes_refs_and_timestamps_are_stored_in_their_columns() {
    let (_store, url, _dir) = flush_a_big_document().await;
    let pool = raw(&url).await;
    let rows = sqlx::query(
        "SELECT class_name, refs, created_at, updated_at FROM toast_records ORDER BY class_name",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let classes: Vec<String> = rows
        .iter()
        .map(|r| r.get::<String, _>("class_name"))
        .collect();
    assert_eq!(classes, ["Doc", "Item", "Vec<Item>"]);
    let doc_refs: String = rows[0].get("refs");
    assert!(
        doc_refs.contains("Vec<Item>") && doc_refs.contains(r#""class_name":"Item""#),
        "{doc_refs}"
    );
    let created: i64 = rows[0].get("created_at");
    assert!(
        created > 1_600_000_000_000_000,
        "microseconds since the epoch"
    );
}

#[tokio::test]
async fn bad_sqlite_urls_give_clear_errors() {
    let err = Store::connect("sqlite://").await.unwrap_err();
    assert!(
        err.is_validation() && err.to_string().contains("sqlite://data.db"),
        "{err}"
    );
    let err = Store::connect("sqlite:///nonexistent-dir-for-toast/x/y.db")
        .await
        .unwrap_err();
    assert!(err.is_connection(), "{err:?}");
    assert!(err.to_string().contains("directory"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let err = Store::connect(&format!("{}?pool_max=lots", url(&dir, "o.db")))
        .await
        .unwrap_err();
    assert!(
        err.is_validation() && err.to_string().contains("pool_max"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_on_one_file_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&url(&dir, "conc.db")).await.unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let store = store.tenant(format!("t{t}"));
            tokio::spawn(async move {
                let mut refs = Vec::new();
                for i in 0..20 {
                    refs.push(
                        store
                            .put(&Item {
                                n: i,
                                text: format!("{t}"),
                            })
                            .await
                            .unwrap(),
                    );
                }
                let items: Vec<Item> = store.get_many(&refs).await.unwrap();
                assert!(items.iter().all(|it| it.text == t.to_string()));
                assert_eq!(store.list_of::<Item>(0, 100).await.unwrap().len(), 20);
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}
