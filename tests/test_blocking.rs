//! The blocking API: plain `fn` code with no async runtime.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde::{Deserialize, Serialize};
use toast::blocking;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Item {
    name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Doc {
    #[serde(with = "toast::external")]
    item: Item,
    #[serde(with = "toast::external")]
    more: Vec<Item>,
}

fn doc() -> Doc {
    Doc {
        item: Item { name: "a".into() },
        more: vec![Item { name: "b".into() }],
    }
}

#[test]
fn scope_with_plain_serde_json_round_trips() {
    let store = blocking::Store::memory().unwrap();
    let json = store
        .scope(|| serde_json::to_string(&doc()))
        .unwrap()
        .unwrap();
    assert_eq!(
        store.stats().save_calls,
        1,
        "flushed at the end of the scope"
    );
    // Plain from_str loads each missing reference on the spot.
    let back: Doc = store
        .scope(|| serde_json::from_str(&json))
        .unwrap()
        .unwrap();
    assert_eq!(back, doc());
    assert_eq!(store.stats().load_calls, 2);
    // blocking::from_json prefetches: one load for the level.
    let fresh = blocking::Store::memory().unwrap();
    let json = fresh.scope(|| blocking::to_json(&doc())).unwrap().unwrap();
    let back: Doc = fresh
        .scope(|| {
            let back: Doc = blocking::from_json(&json).unwrap();
            // Known to the scope afterwards: plain from_str loads nothing.
            let again: Doc = serde_json::from_str(&json).unwrap();
            assert_eq!(again, back);
            back
        })
        .unwrap();
    assert_eq!(back, doc());
    assert_eq!(fresh.stats().load_calls, 1);
}

#[test]
fn put_get_delete_and_tenants() {
    let store = blocking::Store::memory().unwrap();
    let r = store.put(&doc()).unwrap();
    assert_eq!(store.get::<Doc>(&r).unwrap(), doc());
    assert!(store
        .tenant("other")
        .get::<Doc>(&r)
        .unwrap_err()
        .is_not_found());
    assert_eq!(store.list("Doc", 0, 10).unwrap(), vec![r.clone()]);
    assert!(store.delete(&r).unwrap());
    assert!(store.get::<Doc>(&r).unwrap_err().is_not_found());
}

#[cfg(feature = "sqlite")]
#[test]
fn connect_by_url_persists() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("b.db").display());
    let r = blocking::Store::connect(&url).unwrap().put(&doc()).unwrap();
    let again = blocking::Store::connect(&url).unwrap();
    assert_eq!(again.get::<Doc>(&r).unwrap(), doc());
}

#[test]
fn errors_in_a_blocking_scope_keep_their_kind() {
    let store = blocking::Store::memory().unwrap();
    let json = r#"{"item":{"class_name":"Item","id":"0b6f5c1e-8f5e-4b7c-9d3a-2a1b0c9d8e7f"},"more":{"class_name":"Vec<Item>","id":"0b6f5c1e-8f5e-4b7c-9d3a-2a1b0c9d8e7f"}}"#;
    let err = store
        .scope(|| blocking::from_json::<Doc>(json))
        .unwrap()
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert!(
        blocking::to_json(&doc()).unwrap_err().is_validation(),
        "outside a scope"
    );
}

#[tokio::test]
async fn inside_an_async_runtime_it_is_an_error_not_a_panic() {
    let err = blocking::Store::memory().unwrap_err();
    assert!(
        err.is_validation() && err.to_string().contains("async"),
        "{err}"
    );
}

#[test]
fn a_blocking_store_can_be_dropped_inside_an_async_runtime() {
    let store = blocking::Store::memory().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async move {
        let err = store.put(&1u8).unwrap_err();
        assert!(err.is_validation());
        drop(store);
    });
}
