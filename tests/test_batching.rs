//! Batching: one `Backend::save` per flush however many externals, one
//! `Backend::load` per nesting level, each value serialized once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};
use toast::Store;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Item {
    id: u32,
    body: String,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Slot {
    #[serde(with = "toast::external")]
    item: Item,
}

fn thousand() -> Vec<Slot> {
    (0..1000)
        .map(|i| Slot {
            item: Item {
                id: i,
                body: format!("item {i} ").repeat(20),
            },
        })
        .collect()
}

async fn check_thousand(store: Store) {
    let doc = thousand();
    let json = toast::scope(store.clone(), toast::to_json(&doc))
        .await
        .unwrap()
        .unwrap();
    let s = store.stats();
    assert_eq!(s.save_calls, 1, "one save for 1,000 externals");
    assert_eq!(s.records_saved, 1000);
    let back: Vec<Slot> = toast::scope(store.clone(), toast::from_json(&json))
        .await
        .unwrap()
        .unwrap();
    let s = store.stats();
    assert_eq!(
        s.load_calls, 1,
        "one load for 1,000 references at one level"
    );
    assert_eq!(s.records_loaded, 1000);
    assert_eq!(back, doc);
}

#[tokio::test]
async fn a_thousand_externals_one_save_one_load_memory() {
    check_thousand(Store::memory()).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_thousand_externals_one_save_one_load_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}", dir.path().join("b.db").display()))
        .await
        .unwrap();
    check_thousand(store).await;
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct L3 {
    n: u32,
}
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct L2 {
    #[serde(with = "toast::external")]
    leaves: Vec<L3>,
    #[serde(with = "toast::external")]
    one: L3,
}
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct L1 {
    #[serde(with = "toast::external")]
    l2: L2,
}
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Root {
    #[serde(with = "toast::external")]
    a: L1,
    #[serde(with = "toast::external")]
    b: L1,
}

#[tokio::test]
async fn three_levels_deep_one_load_per_level() {
    let store = Store::memory();
    let root = Root {
        a: L1 {
            l2: L2 {
                leaves: vec![L3 { n: 1 }],
                one: L3 { n: 2 },
            },
        },
        b: L1 {
            l2: L2 {
                leaves: vec![L3 { n: 3 }, L3 { n: 4 }],
                one: L3 { n: 5 },
            },
        },
    };
    let json = toast::scope(store.clone(), toast::to_json(&root))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.stats().save_calls, 1, "every level in one flush");
    assert_eq!(store.stats().records_saved, 8);
    let back: Root = toast::scope(store.clone(), toast::from_json(&json))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, root);
    assert_eq!(store.stats().load_calls, 3, "levels: L1s, L2s, leaves");
    assert_eq!(store.stats().records_loaded, 8);

    // Store::get follows the same rule.
    let r = store.put(&root).await.unwrap();
    let before = store.stats();
    let got: Root = store.get(&r).await.unwrap();
    assert_eq!(got, root);
    assert_eq!(
        store.stats().since(&before).load_calls,
        4,
        "the root record, then three levels"
    );
}

static SERIALIZED: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, PartialEq, Deserialize)]
struct Counted(u32);

impl Serialize for Counted {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        SERIALIZED.fetch_add(1, Ordering::SeqCst);
        s.serialize_u32(self.0)
    }
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct CountedSlot {
    #[serde(with = "toast::external")]
    v: Counted,
}

#[tokio::test]
async fn each_value_is_serialized_exactly_once() {
    let doc: Vec<CountedSlot> = (0..100).map(|i| CountedSlot { v: Counted(i) }).collect();
    SERIALIZED.store(0, Ordering::SeqCst);
    toast::scope(Store::memory(), toast::to_json(&doc))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(SERIALIZED.load(Ordering::SeqCst), 100);
}

#[tokio::test]
async fn an_empty_flush_makes_no_round_trip() {
    let store = Store::memory();
    toast::scope(store.clone(), async {
        toast::flush().await.unwrap();
        toast::to_json(&42u8).await.unwrap();
    })
    .await
    .unwrap();
    assert_eq!(store.stats().save_calls, 0);
}
