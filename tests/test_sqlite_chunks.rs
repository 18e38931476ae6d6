//! SQLite saves split into statements (by rows and by payload bytes) and stay
//! all-or-nothing, whether a flush is one statement or a transaction of many.
#![cfg(feature = "sqlite")]

use std::sync::Arc;

use toast::{Key, Record, Store};
use uuid::Uuid;

fn url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("chunks.db").display())
}

async fn raw(url: &str) -> sqlx::SqlitePool {
    let path = url.trim_start_matches("sqlite://");
    sqlx::SqlitePool::connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(path))
        .await
        .unwrap()
}

async fn count(pool: &sqlx::SqlitePool) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM toast_records")
        .fetch_one(pool)
        .await
        .unwrap()
}

fn record(tenant: &Arc<str>, class: &str, bytes: usize) -> Record {
    let data = format!("\"{}\"", "x".repeat(bytes));
    Record::new(
        Key::new(Arc::clone(tenant), class, Uuid::new_v4()),
        data,
        Vec::new(),
    )
}

/// Makes SQLite refuse any record of class `Poison`.
async fn poison(pool: &sqlx::SqlitePool) {
    sqlx::query(
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON toast_records \
         WHEN NEW.class_name = 'Poison' BEGIN SELECT RAISE(ABORT, 'poison'); END",
    )
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn big_and_many_record_flushes_are_stored_whole() {
    let dir = tempfile::tempdir().unwrap();
    let url = url(&dir);
    let store = Store::connect(&url).await.unwrap();
    let tenant: Arc<str> = Arc::from("chunks");
    // 9 MiB of payload (several statements by bytes) and 2,500 rows (two by rows).
    let mut records: Vec<Record> = (0..9).map(|_| record(&tenant, "Big", 1 << 20)).collect();
    records.extend((0..2_500).map(|_| record(&tenant, "Small", 10)));
    store.backend().save(&records).await.unwrap();
    let keys: Vec<Key> = records.iter().map(|r| r.key.clone()).collect();
    let loaded = store.backend().load(&keys).await.unwrap();
    assert_eq!(loaded.len(), records.len());
    let mut by_id: std::collections::HashMap<Uuid, &Record> =
        records.iter().map(|r| (r.key.id, r)).collect();
    for r in &loaded {
        let sent = by_id.remove(&r.key.id).expect("a record that was saved");
        assert_eq!(r.key, sent.key);
        assert_eq!(r.data, sent.data);
    }
    assert_eq!(count(&raw(&url).await).await, 2_509);
}

#[tokio::test]
async fn a_flush_of_several_statements_stores_nothing_when_a_later_one_fails() {
    let dir = tempfile::tempdir().unwrap();
    let url = url(&dir);
    let store = Store::connect(&url).await.unwrap();
    let pool = raw(&url).await;
    poison(&pool).await;
    let tenant: Arc<str> = Arc::from("chunks");
    // Two 3 MiB records fill the first statements; the poisoned one comes last.
    let mut records: Vec<Record> = (0..2).map(|_| record(&tenant, "Big", 3 << 20)).collect();
    records.push(record(&tenant, "Poison", 10));
    let err = store.backend().save(&records).await.unwrap_err();
    assert!(err.to_string().contains("poison"), "{err}");
    assert_eq!(
        count(&pool).await,
        0,
        "the earlier statements were rolled back"
    );
}

#[tokio::test]
async fn a_one_statement_flush_stores_nothing_when_it_fails() {
    let dir = tempfile::tempdir().unwrap();
    let url = url(&dir);
    let store = Store::connect(&url).await.unwrap();
    let pool = raw(&url).await;
    poison(&pool).await;
    let tenant: Arc<str> = Arc::from("chunks");
    let mut records: Vec<Record> = (0..100).map(|_| record(&tenant, "Small", 10)).collect();
    records.push(record(&tenant, "Poison", 10));
    assert!(store.backend().save(&records).await.is_err());
    assert_eq!(count(&pool).await, 0);
}
