//! SQLite saves split into statements (by rows and by payload bytes) and stay
//! all-or-nothing, whether a flush is one statement or a transaction of many.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use toast::backend::{Key, Record};

use toast::Store;
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

#[tokio::test]
async fn loads_of_one_class_and_of_mixed_keys_return_exactly_the_stored_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&url(&dir)).await.unwrap();
    let (a, b): (Arc<str>, Arc<str>) = (Arc::from("tenant-a"), Arc::from("tenant-b"));
    // 9,000 records of one class: several load statements (at most 8,192 keys each).
    let items: Vec<Record> = (0..9_000).map(|_| record(&a, "Item", 8)).collect();
    let others = vec![record(&a, "Other", 8), record(&b, "Item", 8)];
    store.backend().save(&items).await.unwrap();
    store.backend().save(&others).await.unwrap();

    let mut keys: Vec<Key> = items.iter().rev().map(|r| r.key.clone()).collect();
    keys.push(Key::new(Arc::clone(&a), "Item", Uuid::new_v4())); // missing
    let loaded = store.backend().load(&keys).await.unwrap();
    assert_eq!(loaded.len(), 9_000);
    let sent: std::collections::HashMap<&Key, &Record> =
        items.iter().map(|r| (&r.key, r)).collect();
    for r in &loaded {
        assert_eq!(r.data, sent[&r.key].data, "{:?}", r.key);
    }

    // Mixed classes and tenants, one of them asked for under the wrong tenant.
    let mixed = vec![
        items[0].key.clone(),
        others[0].key.clone(),
        others[1].key.clone(),
        Key::new(Arc::clone(&b), "Item", items[1].key.id),
    ];
    let mut loaded = store.backend().load(&mixed).await.unwrap();
    loaded.sort_by(|x, y| x.key.cmp(&y.key));
    let mut want = vec![&items[0], &others[0], &others[1]];
    want.sort_by(|x, y| x.key.cmp(&y.key));
    assert_eq!(loaded.len(), 3);
    for (got, want) in loaded.iter().zip(want) {
        assert_eq!(got.key, want.key);
        assert_eq!(got.data, want.data);
    }
}

#[tokio::test]
async fn deletes_across_tenants_and_classes_count_and_touch_only_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    let url = url(&dir);
    let store = Store::connect(&url).await.unwrap();
    let (a, b): (Arc<str>, Arc<str>) = (Arc::from("tenant-a"), Arc::from("tenant-b"));
    let records = vec![
        record(&a, "Item", 8),
        record(&a, "Item", 8),
        record(&a, "Other", 8),
        record(&b, "Item", 8),
    ];
    store.backend().save(&records).await.unwrap();
    let keys = vec![
        records[0].key.clone(),
        records[0].key.clone(), // twice: still one record
        records[2].key.clone(),
        records[3].key.clone(),
        Key::new(Arc::clone(&b), "Item", records[1].key.id), // another tenant's id
        Key::new(Arc::clone(&a), "Item", Uuid::new_v4()),    // missing
    ];
    assert_eq!(store.backend().delete(&keys).await.unwrap(), 3);
    let left = store
        .backend()
        .load(&records.iter().map(|r| r.key.clone()).collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].key, records[1].key);
    assert_eq!(count(&raw(&url).await).await, 1);
}
