//! The outer document in other serde formats: MessagePack.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde::{Deserialize, Serialize};
use toast::Store;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Item {
    name: String,
    weight: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Message {
    seq: u64,
    #[serde(with = "toast::external")]
    items: Vec<Item>,
    #[serde(with = "toast::external::option")]
    note: Option<String>,
}

fn message() -> Message {
    Message {
        seq: 3,
        items: vec![Item {
            name: "x".into(),
            weight: 1.5,
        }],
        note: Some("n".into()),
    }
}

#[tokio::test]
async fn messagepack_document_round_trips_with_prefetch() {
    let store = Store::memory();
    let bytes = toast::scope(store.clone(), async {
        let bytes = rmp_serde::to_vec_named(&message()).unwrap();
        toast::flush().await.unwrap();
        bytes
    })
    .await
    .unwrap();
    assert_eq!(store.stats().records_saved, 2);
    let back: Message = toast::scope(store.clone(), async {
        let refs =
            toast::collect_references(&mut rmp_serde::Deserializer::new(&bytes[..])).unwrap();
        assert_eq!(refs.len(), 2);
        toast::prefetch(refs).await.unwrap();
        rmp_serde::from_slice(&bytes).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(back, message());
    assert_eq!(store.stats().load_calls, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messagepack_compact_form_round_trips_with_on_the_spot_loads() {
    let store = Store::memory();
    // Compact (array) struct encoding: the reference is [class_name, id].
    let bytes = toast::scope(store.clone(), async {
        rmp_serde::to_vec(&message()).unwrap()
    })
    .await
    .unwrap();
    let back: Message = toast::scope(store.clone(), async {
        rmp_serde::from_slice(&bytes).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(back, message());
}
