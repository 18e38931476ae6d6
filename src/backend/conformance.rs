//! The checks every backend must pass (feature `conformance`).
//!
//! The built-in backends run these in their tests, and so can yours: connect
//! a [`Store`] to it and call [`run`] from a `#[tokio::test]`. Every check
//! works in tenants of its own (random names), so the suite can run against a
//! shared server, concurrently with other tests, again and again; it deletes
//! what it wrote.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() {
//! let store = toast::Store::memory();
//! let report = toast::backend::conformance::run(&store).await.expect("memory conforms");
//! assert!(report.passed.contains(&"tenant_isolation"));
//! # }
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::record::{Key, ListQuery, Record};
use crate::reference::Reference;
use crate::store::Store;

/// A check that failed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The check's name.
    pub check: &'static str,
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "conformance check '{}' failed: {}",
            self.check, self.message
        )
    }
}

impl std::error::Error for Failure {}

/// What passed, and what was skipped (with the reason).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The checks that passed.
    pub passed: Vec<&'static str>,
    /// Checks not run, with the reason (e.g. a backend that cannot list).
    pub skipped: Vec<(&'static str, String)>,
}

/// Tenant names that must be treated as plain data by every backend.
pub const HOSTILE_NAMES: &[&str] = &[
    "",
    "default",
    "a:b",
    "a",
    "a:",
    ":a",
    "*",
    "a*",
    "?[x]",
    "%3A",
    "%",
    "'; DROP TABLE toast_records; --",
    "\" OR 1=1 --",
    "back\\slash",
    "nul\0byte",
    "\0",
    "new\nline",
    "tab\tand space ",
    "ünïcødé-名前-🦀",
    "{tenant}",
];

type CheckResult = std::result::Result<(), String>;

fn fail(check: &'static str) -> impl Fn(String) -> Failure {
    move |message| Failure { check, message }
}

/// Runs every check against the backend behind `store` (its tenant is ignored:
/// each check uses fresh tenants).
///
/// # Errors
///
/// The first [`Failure`].
pub async fn run(store: &Store) -> std::result::Result<Report, Failure> {
    let ns = format!("conformance-{}", Uuid::new_v4());
    let mut report = Report::default();
    macro_rules! check {
        ($name:literal, $fut:expr) => {
            $fut.await.map_err(fail($name))?;
            report.passed.push($name);
        };
    }
    check!("round_trip", round_trip(store, &ns));
    check!("batch_sizes", batch_sizes(store, &ns));
    check!("not_found", not_found(store, &ns));
    check!("repeated_keys", repeated_keys(store, &ns));
    check!("upsert_keeps_created_at", upsert(store, &ns));
    check!("refs_and_timestamps", refs_and_timestamps(store, &ns));
    check!("delete", delete(store, &ns));
    check!("tenant_isolation", isolation(store, &ns));
    check!("hostile_names", hostile(store, &ns));
    check!("concurrent_writers", concurrent(store, &ns));
    match list(store, &ns).await {
        Ok(true) => report.passed.push("list"),
        Ok(false) => report.skipped.push((
            "list",
            "the backend does not implement Backend::list".to_owned(),
        )),
        Err(message) => {
            return Err(Failure {
                check: "list",
                message,
            })
        }
    }
    Ok(report)
}

fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::microseconds(1)).unwrap_or(t)
}

fn record(tenant: &str, class: &str, id: Uuid, data: &str) -> Record {
    Record::new(
        Key::new(tenant, class, id),
        Bytes::from(data.to_owned()),
        Vec::new(),
    )
}

fn json_text(n: usize) -> String {
    format!(r#"{{"n":{n},"text":"{}"}}"#, "x".repeat(n % 97))
}

async fn save(store: &Store, records: &[Record]) -> CheckResult {
    store
        .backend()
        .save(records)
        .await
        .map_err(|e| format!("save of {} records failed: {e}", records.len()))
}

async fn load(store: &Store, keys: &[Key]) -> std::result::Result<Vec<Record>, String> {
    store
        .backend()
        .load(keys)
        .await
        .map_err(|e| format!("load of {} keys failed: {e}", keys.len()))
}

async fn cleanup(store: &Store, keys: &[Key]) -> CheckResult {
    store
        .backend()
        .delete(keys)
        .await
        .map(|_| ())
        .map_err(|e| format!("cleanup delete failed: {e}"))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Leaf {
    text: String,
    n: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Middle {
    #[serde(with = "crate::external")]
    leaf: Leaf,
    tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Top {
    #[serde(with = "crate::external")]
    middle: Middle,
    #[serde(with = "crate::external::option")]
    extra: Option<Vec<Leaf>>,
}

async fn round_trip(store: &Store, ns: &str) -> CheckResult {
    let store = store.tenant(format!("{ns}-rt"));
    let top = Top {
        middle: Middle {
            leaf: Leaf {
                text: "deep \"quoted\" ünïcødé".into(),
                n: -7,
            },
            tags: vec!["a".into(), "b".into()],
        },
        extra: Some(vec![Leaf {
            text: String::new(),
            n: i64::MAX,
        }]),
    };
    let text = crate::scope(store.clone(), crate::to_json(&top))
        .await
        .and_then(|r| r)
        .map_err(|e| format!("to_json failed: {e}"))?;
    let before = store.stats();
    let back: Top = crate::scope(store.clone(), crate::from_json(&text))
        .await
        .and_then(|r| r)
        .map_err(|e| format!("from_json failed: {e}"))?;
    if back != top {
        return Err(format!("round trip changed the value: {back:?} != {top:?}"));
    }
    let loads = store.stats().since(&before).load_calls;
    if loads != 2 {
        return Err(format!(
            "a document with externals two levels deep took {loads} load calls, expected 2"
        ));
    }
    let put = store
        .put(&top)
        .await
        .map_err(|e| format!("put failed: {e}"))?;
    let got: Top = store
        .get(&put)
        .await
        .map_err(|e| format!("get failed: {e}"))?;
    if got != top {
        return Err("put/get changed the value".into());
    }
    Ok(())
}

async fn batch_sizes(store: &Store, ns: &str) -> CheckResult {
    let tenant = format!("{ns}-batch");
    save(store, &[]).await?;
    if !load(store, &[]).await?.is_empty() {
        return Err("load of no keys returned records".into());
    }
    for n in [1usize, 2, 1000] {
        let records: Vec<Record> = (0..n)
            .map(|i| record(&tenant, &format!("Batch{n}"), Uuid::new_v4(), &json_text(i)))
            .collect();
        save(store, &records).await?;
        let keys: Vec<Key> = records.iter().map(|r| r.key.clone()).collect();
        let loaded = load(store, &keys).await?;
        if loaded.len() != n {
            return Err(format!("saved {n} records, loaded {}", loaded.len()));
        }
        for r in &loaded {
            let Some(original) = records.iter().find(|o| o.key == r.key) else {
                return Err(format!(
                    "load returned a key it was not asked for: {:?}",
                    r.key
                ));
            };
            let same: serde_json::Value = serde_json::from_slice(&r.data)
                .map_err(|e| format!("loaded data is not JSON: {e}"))?;
            let want: serde_json::Value =
                serde_json::from_slice(&original.data).map_err(|e| e.to_string())?;
            if same != want {
                return Err(format!("data changed for {:?}", r.key));
            }
        }
        cleanup(store, &keys).await?;
    }
    Ok(())
}

async fn not_found(store: &Store, ns: &str) -> CheckResult {
    let tenant = format!("{ns}-nf");
    let key = Key::new(tenant.as_str(), "Missing", Uuid::new_v4());
    if !load(store, std::slice::from_ref(&key)).await?.is_empty() {
        return Err("load of a missing key returned a record".into());
    }
    let err = store
        .tenant(&tenant)
        .get::<Leaf>(&Reference::new("Leaf", key.id))
        .await
        .err()
        .ok_or("get of a missing reference succeeded")?;
    if !err.is_not_found() {
        return Err(format!(
            "get of a missing reference gave {err:?}, expected NotFound"
        ));
    }
    let deleted = store
        .backend()
        .delete(&[key])
        .await
        .map_err(|e| format!("delete of a missing key failed: {e}"))?;
    if deleted != 0 {
        return Err(format!(
            "delete of a missing key reported {deleted} deleted"
        ));
    }
    Ok(())
}

/// A load may name a key more than once (toast asks a fresh scope's
/// references as they come): each stored one comes back, a missing one does
/// not, whatever the repeats.
async fn repeated_keys(store: &Store, ns: &str) -> CheckResult {
    let tenant = format!("{ns}-rk");
    let records: Vec<Record> = (0..3)
        .map(|n| record(&tenant, "Leaf", Uuid::new_v4(), &json_text(n)))
        .collect();
    save(store, &records).await?;
    let [a, b, c] = [0, 1, 2].map(|i| records[i].key.clone());
    let missing = Key::new(tenant.as_str(), "Leaf", Uuid::new_v4());
    let mut keys = vec![a.clone(), b.clone(), a.clone(), missing.clone()];
    keys.extend([b.clone(), missing, a.clone(), c.clone(), c.clone()]);
    // Past the few keys a backend may compare pairwise.
    keys.extend(std::iter::repeat_n(b.clone(), 12));
    let loaded = load(store, &keys).await;
    cleanup(store, &[a.clone(), b.clone(), c.clone()]).await?;
    let loaded = loaded?;
    for want in &records {
        let got = loaded
            .iter()
            .filter(|r| r.key == want.key)
            .collect::<Vec<_>>();
        let same = |r: &&Record| {
            serde_json::from_slice::<serde_json::Value>(&r.data).ok()
                == serde_json::from_slice::<serde_json::Value>(&want.data).ok()
        };
        if got.is_empty() || !got.iter().all(same) {
            return Err(format!(
                "a load naming {} several times returned {} records for it, or other data",
                want.key.id,
                got.len()
            ));
        }
    }
    if let Some(stray) = loaded.iter().find(|r| ![&a, &b, &c].contains(&&r.key)) {
        return Err(format!(
            "a load with repeated keys returned a record not asked for: {:?}",
            stray.key
        ));
    }
    Ok(())
}

async fn upsert(store: &Store, ns: &str) -> CheckResult {
    let tenant = format!("{ns}-upsert");
    let id = Uuid::new_v4();
    let mut first = record(&tenant, "Up", id, r#"{"v":1}"#);
    first.created_at = micros(Utc::now() - Duration::hours(1));
    first.updated_at = first.created_at;
    save(store, std::slice::from_ref(&first)).await?;
    let mut second = record(&tenant, "Up", id, r#"{"v":2}"#);
    second.created_at = micros(Utc::now());
    second.updated_at = second.created_at;
    second.refs = vec![Reference::new("Other", Uuid::nil())];
    second.schema_version = 7;
    save(store, std::slice::from_ref(&second)).await?;
    let loaded = load(store, std::slice::from_ref(&first.key)).await?;
    let [got] = loaded.as_slice() else {
        return Err(format!("expected one record, got {}", loaded.len()));
    };
    if got.data.as_ref() != br#"{"v":2}"#
        && serde_json::from_slice::<serde_json::Value>(&got.data).ok()
            != Some(serde_json::json!({"v": 2}))
    {
        return Err("an update did not replace the data".into());
    }
    if micros(got.created_at) != first.created_at {
        return Err(format!(
            "an update moved created_at from {} to {}",
            first.created_at, got.created_at
        ));
    }
    if micros(got.updated_at) != second.updated_at {
        return Err(format!(
            "an update left updated_at at {}, expected {}",
            got.updated_at, second.updated_at
        ));
    }
    if got.refs != second.refs {
        return Err(format!(
            "an update left the refs at {:?}, expected {:?}",
            got.refs, second.refs
        ));
    }
    if got.schema_version != second.schema_version {
        return Err(format!(
            "an update left schema_version at {}, expected {}",
            got.schema_version, second.schema_version
        ));
    }
    // The same key twice in one save: the later record wins, and the stored
    // created_at is still kept.
    let third = record(&tenant, "Up", id, r#"{"v":3}"#);
    let mut fourth = record(&tenant, "Up", id, r#"{"v":4}"#);
    fourth.created_at = micros(Utc::now());
    fourth.updated_at = fourth.created_at;
    save(store, &[third, fourth.clone()]).await?;
    let loaded = load(store, std::slice::from_ref(&first.key)).await?;
    let [got] = loaded.as_slice() else {
        return Err(format!(
            "after one save of a key twice, expected one record, got {}",
            loaded.len()
        ));
    };
    if serde_json::from_slice::<serde_json::Value>(&got.data).ok()
        != Some(serde_json::json!({"v": 4}))
    {
        return Err(format!(
            "a save holding one key twice kept {}, not the later record",
            String::from_utf8_lossy(&got.data)
        ));
    }
    if micros(got.created_at) != first.created_at {
        return Err(format!(
            "a save holding one key twice moved created_at from {} to {}",
            first.created_at, got.created_at
        ));
    }
    if micros(got.updated_at) != fourth.updated_at {
        return Err(format!(
            "a save holding one key twice left updated_at at {}, expected the later record's {}",
            got.updated_at, fourth.updated_at
        ));
    }
    cleanup(store, &[first.key]).await
}

async fn refs_and_timestamps(store: &Store, ns: &str) -> CheckResult {
    let tenant = format!("{ns}-refs");
    let refs = vec![
        Reference::new("Child<u8>", Uuid::new_v4()),
        Reference::new("Other", Uuid::new_v4()),
    ];
    let mut r = Record::new(
        Key::new(tenant.as_str(), "Parent", Uuid::new_v4()),
        Bytes::from_static(b"[1,2,3]"),
        refs.clone(),
    );
    r.created_at = micros(r.created_at);
    r.updated_at = r.created_at;
    save(store, std::slice::from_ref(&r)).await?;
    let loaded = load(store, std::slice::from_ref(&r.key)).await?;
    let [got] = loaded.as_slice() else {
        return Err(format!("expected one record, got {}", loaded.len()));
    };
    if got.refs != refs {
        return Err(format!("refs changed: {:?} != {refs:?}", got.refs));
    }
    if got.schema_version != r.schema_version {
        return Err("schema_version changed".into());
    }
    if micros(got.created_at) != r.created_at {
        return Err(format!(
            "created_at changed: {} != {} (microsecond precision expected)",
            got.created_at, r.created_at
        ));
    }
    cleanup(store, &[r.key]).await
}

async fn delete(store: &Store, ns: &str) -> CheckResult {
    let tenant = format!("{ns}-del");
    let records: Vec<Record> = (0..3)
        .map(|i| record(&tenant, "Del", Uuid::new_v4(), &json_text(i)))
        .collect();
    save(store, &records).await?;
    let mut keys: Vec<Key> = records.iter().map(|r| r.key.clone()).collect();
    keys.push(Key::new(tenant.as_str(), "Del", Uuid::new_v4()));
    let deleted = store
        .backend()
        .delete(&keys[1..])
        .await
        .map_err(|e| format!("delete failed: {e}"))?;
    if deleted != 2 {
        return Err(format!(
            "deleted 2 of 3 existing keys, backend reported {deleted}"
        ));
    }
    let left = load(store, &keys).await?;
    if left.len() != 1 || left[0].key != keys[0] {
        return Err(format!(
            "after delete, {} records remain, expected 1",
            left.len()
        ));
    }
    let reference = keys[0].reference();
    let deleted = store
        .tenant(&tenant)
        .delete(&reference)
        .await
        .map_err(|e| e.to_string())?;
    let again = store
        .tenant(&tenant)
        .delete(&reference)
        .await
        .map_err(|e| e.to_string())?;
    if !deleted || again {
        return Err(format!(
            "Store::delete gave {deleted} then {again}, expected true then false"
        ));
    }
    // A key named twice counts once; the same delete again counts nothing.
    let pair: Vec<Record> = (0..2)
        .map(|i| record(&tenant, "Del", Uuid::new_v4(), &json_text(i)))
        .collect();
    save(store, &pair).await?;
    let missing = Key::new(tenant.as_str(), "Del", Uuid::new_v4());
    let keys = [
        pair[0].key.clone(),
        pair[1].key.clone(),
        missing,
        pair[0].key.clone(),
    ];
    for (round, want) in [(1, 2u64), (2, 0)] {
        let deleted = store
            .backend()
            .delete(&keys)
            .await
            .map_err(|e| format!("delete with a repeated key failed: {e}"))?;
        if deleted != want {
            return Err(format!(
                "delete {round} of 2 existing keys (one named twice) and a missing one \
                 reported {deleted}, expected {want}"
            ));
        }
    }
    let deleted = store
        .backend()
        .delete(&[])
        .await
        .map_err(|e| format!("delete of no keys failed: {e}"))?;
    if deleted != 0 {
        return Err(format!("delete of no keys reported {deleted}"));
    }
    Ok(())
}

async fn isolation(store: &Store, ns: &str) -> CheckResult {
    let a = store.tenant(format!("{ns}-iso-a"));
    let b = store.tenant(format!("{ns}-iso-b"));
    let secret = Leaf {
        text: "a's secret".into(),
        n: 1,
    };
    let reference = a.put(&secret).await.map_err(|e| e.to_string())?;
    match b.get::<Leaf>(&reference).await {
        Err(e) if e.is_not_found() => {}
        other => return Err(format!("tenant b read tenant a's record: {other:?}")),
    }
    // b writes a record with the same class and id: a must not see it.
    let key_b = b.key_for(&reference);
    save(
        store,
        &[Record::new(
            key_b.clone(),
            Bytes::from_static(br#"{"text":"b","n":2}"#),
            vec![],
        )],
    )
    .await?;
    let still: Leaf = a.get(&reference).await.map_err(|e| e.to_string())?;
    if still != secret {
        return Err("tenant b overwrote tenant a's record".into());
    }
    if !b.delete(&reference).await.map_err(|e| e.to_string())? {
        return Err("tenant b could not delete its own record".into());
    }
    if b.delete(&reference).await.map_err(|e| e.to_string())? {
        return Err("tenant b's delete reached tenant a's record".into());
    }
    let still: Leaf = a
        .get(&reference)
        .await
        .map_err(|e| format!("tenant a's record vanished after b's delete: {e}"))?;
    if still != secret {
        return Err("tenant a's record changed after b's delete".into());
    }
    match b.list("Leaf", 0, 100).await {
        Ok(refs) if refs.is_empty() => {}
        Ok(refs) => {
            return Err(format!(
                "tenant b listed {} of tenant a's records",
                refs.len()
            ))
        }
        Err(e) if e.is_validation() => {}
        Err(e) => return Err(format!("list failed: {e}")),
    }
    a.delete(&reference).await.map_err(|e| e.to_string())?;
    Ok(())
}

async fn hostile(store: &Store, ns: &str) -> CheckResult {
    let id = Uuid::new_v4();
    let mut records = Vec::new();
    for (i, name) in HOSTILE_NAMES.iter().enumerate() {
        let tenant = format!("{ns}{name}");
        records.push(record(&tenant, "Hostile", id, &format!(r#"{{"i":{i}}}"#)));
        // The hostile string as a class name, in a plain tenant.
        records.push(record(
            &format!("{ns}-hostile-classes"),
            &format!("C{name}"),
            id,
            &format!(r#"{{"c":{i}}}"#),
        ));
        // And as the whole tenant (no namespace prefix), with a unique class.
        records.push(record(
            name,
            &format!("{ns}-Hostile"),
            id,
            &format!(r#"{{"t":{i}}}"#),
        ));
    }
    save(store, &records).await?;
    let keys: Vec<Key> = records.iter().map(|r| r.key.clone()).collect();
    for (record, key) in records.iter().zip(&keys) {
        let loaded = load(store, std::slice::from_ref(key)).await?;
        let [got] = loaded.as_slice() else {
            return Err(format!(
                "key {key:?} loaded {} records, expected exactly its own",
                loaded.len()
            ));
        };
        let got_v: serde_json::Value =
            serde_json::from_slice(&got.data).map_err(|e| e.to_string())?;
        let want_v: serde_json::Value =
            serde_json::from_slice(&record.data).map_err(|e| e.to_string())?;
        if got_v != want_v || got.key != *key {
            return Err(format!(
                "key {key:?} returned another key's record ({:?}: {got_v})",
                got.key
            ));
        }
    }
    let all = load(store, &keys).await?;
    let distinct: BTreeSet<&Key> = all.iter().map(|r| &r.key).collect();
    if all.len() != keys.len() || distinct.len() != keys.len() {
        return Err(format!(
            "batch load of {} hostile keys returned {} records ({} distinct)",
            keys.len(),
            all.len(),
            distinct.len()
        ));
    }
    let deleted = store
        .backend()
        .delete(&keys)
        .await
        .map_err(|e| e.to_string())?;
    if deleted != keys.len() as u64 {
        return Err(format!("deleted {deleted} of {} hostile keys", keys.len()));
    }
    Ok(())
}

async fn concurrent(store: &Store, ns: &str) -> CheckResult {
    const TASKS: usize = 16;
    const EACH: usize = 25;
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let store = store.tenant(format!("{ns}-conc-{t}"));
        handles.push(tokio::spawn(async move {
            let mut refs = Vec::new();
            for i in 0..EACH {
                let leaf = Leaf {
                    text: format!("task {t} item {i}"),
                    n: i64::try_from(i).unwrap_or_default(),
                };
                let r = store.put(&leaf).await.map_err(|e| e.to_string())?;
                let back: Leaf = store.get(&r).await.map_err(|e| e.to_string())?;
                if back != leaf {
                    return Err(format!("task {t} read back another value"));
                }
                refs.push(r);
            }
            let all: Vec<Leaf> = store.get_many(&refs).await.map_err(|e| e.to_string())?;
            if all.len() != EACH {
                return Err(format!("task {t} lost records: {} of {EACH}", all.len()));
            }
            let keys: Vec<Key> = refs.iter().map(|r| store.key_for(r)).collect();
            store
                .backend()
                .delete(&keys)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<(), String>(())
        }));
    }
    for handle in handles {
        handle
            .await
            .map_err(|e| format!("a writer task panicked: {e}"))??;
    }
    Ok(())
}

/// `Ok(false)` when the backend does not implement listing.
async fn list(store: &Store, ns: &str) -> std::result::Result<bool, String> {
    let tenant: Arc<str> = Arc::from(format!("{ns}-list"));
    let base = micros(Utc::now() - Duration::minutes(10));
    let mut records = Vec::new();
    for i in 0..5i64 {
        let mut r = record(&tenant, "Listed", Uuid::new_v4(), &json_text(0));
        r.created_at = base + Duration::seconds(i);
        r.updated_at = r.created_at;
        records.push(r);
    }
    // Two with the same created_at, older than the rest: the larger id first.
    for id in [Uuid::from_u128(1), Uuid::from_u128(2)] {
        let mut r = record(&tenant, "Listed", id, &json_text(0));
        r.created_at = base - Duration::seconds(10);
        r.updated_at = r.created_at;
        records.push(r);
    }
    // Another class and another tenant must not show up.
    records.push(record(&tenant, "Unlisted", Uuid::new_v4(), "{}"));
    records.push(record(
        &format!("{ns}-list-other"),
        "Listed",
        Uuid::new_v4(),
        "{}",
    ));
    let probe = ListQuery {
        tenant: Arc::clone(&tenant),
        class_name: Arc::from("Listed"),
        offset: 0,
        limit: 100,
    };
    match store.backend().list(&probe).await {
        Err(e) if e.is_validation() => return Ok(false),
        Err(e) => return Err(format!("list failed: {e}")),
        Ok(_) => {}
    }
    save(store, &records).await?;
    let all = store
        .backend()
        .list(&probe)
        .await
        .map_err(|e| format!("list failed: {e}"))?;
    let want: Vec<Uuid> = records[..5]
        .iter()
        .rev()
        .map(|r| r.key.id)
        .chain([Uuid::from_u128(2), Uuid::from_u128(1)])
        .collect();
    let got: Vec<Uuid> = all.iter().map(|e| e.id).collect();
    if got != want {
        return Err(format!(
            "list is not newest first (ties: larger id first) or not isolated: \
             {got:?} != {want:?}"
        ));
    }
    let page = store
        .backend()
        .list(&ListQuery {
            offset: 1,
            limit: 2,
            ..probe.clone()
        })
        .await
        .map_err(|e| format!("paged list failed: {e}"))?;
    let got: Vec<Uuid> = page.iter().map(|e| e.id).collect();
    if got != want[1..3] {
        return Err(format!(
            "list offset 1 limit 2 gave {got:?}, expected {:?}",
            &want[1..3]
        ));
    }
    let past_the_end = u64::try_from(want.len()).unwrap_or(u64::MAX);
    for (offset, limit) in [(past_the_end, 10), (100, 10), (0, 0)] {
        let page = store
            .backend()
            .list(&ListQuery {
                offset,
                limit,
                ..probe.clone()
            })
            .await
            .map_err(|e| format!("paged list failed: {e}"))?;
        if !page.is_empty() {
            return Err(format!(
                "list offset {offset} limit {limit} of {} records gave {} entries, expected none",
                want.len(),
                page.len()
            ));
        }
    }
    list_through_the_store(&store.tenant(&*tenant), &want).await?;
    let keys: Vec<Key> = records.iter().map(|r| r.key.clone()).collect();
    cleanup(store, &keys).await?;
    list_puts_in_sequence(store, ns).await?;
    Ok(true)
}

/// `Store::list` of class `Listed` in `store`'s tenant gives `want` (its ids,
/// in order) as references, paged; an unknown class lists nothing.
async fn list_through_the_store(store: &Store, want: &[Uuid]) -> CheckResult {
    let refs = |ids: &[Uuid]| -> Vec<Reference> {
        ids.iter().map(|id| Reference::new("Listed", *id)).collect()
    };
    let all = store
        .list("Listed", 0, 100)
        .await
        .map_err(|e| format!("Store::list failed: {e}"))?;
    if all != refs(want) {
        return Err(format!(
            "Store::list gave {all:?}, expected {:?}",
            refs(want)
        ));
    }
    let page = store
        .list("Listed", 2, 3)
        .await
        .map_err(|e| format!("Store::list failed: {e}"))?;
    if page != refs(&want[2..5]) {
        return Err(format!(
            "Store::list offset 2 limit 3 gave {page:?}, expected {:?}",
            refs(&want[2..5])
        ));
    }
    let unknown = store
        .list("NoSuchClass", 0, 10)
        .await
        .map_err(|e| format!("Store::list failed: {e}"))?;
    if !unknown.is_empty() {
        return Err(format!("a class never written listed {unknown:?}"));
    }
    Ok(())
}

/// Values put one after another list newest first, paged, past the end empty.
async fn list_puts_in_sequence(store: &Store, ns: &str) -> CheckResult {
    let tenant = store.tenant(format!("{ns}-list-puts"));
    let mut refs = Vec::new();
    for i in 0..5u32 {
        refs.push(
            tenant
                .put(&i)
                .await
                .map_err(|e| format!("put failed: {e}"))?,
        );
    }
    let newest_first: Vec<Reference> = refs.iter().rev().cloned().collect();
    for (offset, limit, want) in [
        (0, 100, &newest_first[..]),
        (1, 2, &newest_first[1..3]),
        (5, 10, &[][..]),
    ] {
        let got = tenant
            .list_of::<u32>(offset, limit)
            .await
            .map_err(|e| format!("Store::list_of failed: {e}"))?;
        if got != want {
            return Err(format!(
                "five puts in sequence listed at offset {offset} limit {limit} as {got:?}, \
                 expected {want:?}"
            ));
        }
    }
    for r in &refs {
        tenant.delete(r).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}
