//! The task-scoped context: plain serde inside a scope, flush, the invariant,
//! failed flushes, spawned tasks and `current()`, panics, and the on-the-spot
//! fetch rules per runtime flavour.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde::{Deserialize, Serialize};
use support::flaky;
use support::hooked::Hooked;
use toast::{Error, Store};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Item {
    name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Doc {
    #[serde(with = "toast::external")]
    item: Item,
}

fn doc(name: &str) -> Doc {
    Doc {
        item: Item { name: name.into() },
    }
}

/// `value` as JSON, its externals stored in `store`.
async fn written<T: Serialize + Sync>(store: &Store, value: &T) -> String {
    toast::scope(store.clone(), toast::to_json(value))
        .await
        .unwrap()
        .unwrap()
}

/// `json` read back in a scope of its own, with what the store did for it.
async fn read<T: serde::de::DeserializeOwned>(store: &Store, json: &str) -> (T, toast::Stats) {
    let before = store.stats();
    let back = toast::scope(store.clone(), toast::from_json(json))
        .await
        .unwrap()
        .unwrap();
    (back, store.stats().since(&before))
}

#[tokio::test]
async fn plain_serde_json_is_buffered_and_flushed_when_the_scope_ends() {
    let store = Store::memory();
    let (json, pending) = toast::scope(store.clone(), async {
        let json = serde_json::to_string(&doc("a")).unwrap();
        let pending = toast::current().unwrap().pending();
        (json, pending)
    })
    .await
    .unwrap();
    assert_eq!(pending, 1, "buffered, not written, during the scope");
    assert_eq!(store.stats().save_calls, 1, "flushed at the end");
    let back: Doc = toast::scope(store, toast::from_json(&json))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, doc("a"));
}

#[tokio::test]
async fn flush_writes_now_and_to_json_returns_only_after_the_flush() {
    let store = Store::memory();
    toast::scope(store.clone(), async {
        serde_json::to_string(&doc("x")).unwrap();
        assert_eq!(store.stats().save_calls, 0);
        toast::flush().await.unwrap();
        assert_eq!(store.stats().save_calls, 1);
        assert_eq!(toast::current().unwrap().pending(), 0);

        let json = toast::to_json(&doc("y")).await.unwrap();
        // The record is in the backend the moment to_json returns: a second,
        // independent scope can read it.
        let other = toast::scope(store.clone(), toast::from_json::<Doc>(&json))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(other, doc("y"));
    })
    .await
    .unwrap();
    assert_eq!(
        store.stats().save_calls,
        2,
        "nothing left for the scope's own flush"
    );
}

#[tokio::test]
async fn a_failed_flush_is_an_error_and_keeps_the_records() {
    let flaky = flaky::Flaky::new();
    let store = flaky::store(&flaky);
    flaky.set_failing(true);
    let result = toast::scope(store.clone(), async {
        let err = toast::to_json(&doc("kept")).await.unwrap_err();
        assert!(err.is_connection(), "{err:?}");
        // Still buffered: the next flush retries them.
        assert_eq!(toast::current().unwrap().pending(), 1);
        flaky.set_failing(false);
        toast::flush().await.unwrap();
        assert_eq!(toast::current().unwrap().pending(), 0);
    })
    .await;
    result.unwrap();
    let reference =
        toast::Reference::new("Item", support::content_id("Item", br#"{"name":"kept"}"#));
    assert_eq!(
        store.get::<Item>(&reference).await.unwrap(),
        Item {
            name: "kept".into()
        }
    );
}

#[tokio::test]
async fn a_flush_failing_at_scope_end_is_the_scope_error() {
    let flaky = flaky::Flaky::new();
    flaky.set_failing(true);
    let err = toast::scope(flaky::store(&flaky), async {
        serde_json::to_string(&doc("lost?")).unwrap()
    })
    .await
    .unwrap_err();
    assert!(err.is_connection(), "{err:?}");
    assert!(err.to_string().contains("injected failure"));
}

#[tokio::test]
async fn a_cancelled_flush_puts_its_records_back() {
    let flaky = flaky::Flaky::new();
    let store = flaky::store(&flaky);
    toast::scope(store, async {
        serde_json::to_string(&doc("c")).unwrap();
        let ctx = toast::current().unwrap();
        // Drop the flush future before it is polled to completion.
        let flush = ctx.flush();
        drop(flush);
        assert_eq!(ctx.pending(), 1);
    })
    .await
    .unwrap();
    assert_eq!(flaky.inner.len(), 1);
}

#[tokio::test]
async fn spawned_tasks_do_not_inherit_the_scope_but_current_carries_it_over() {
    let store = Store::memory();
    toast::scope(store.clone(), async {
        let orphan = tokio::spawn(async { toast::to_json(&doc("orphan")).await })
            .await
            .unwrap();
        let err = orphan.unwrap_err();
        assert!(
            err.is_validation() && err.to_string().contains("toast::scope"),
            "{err}"
        );

        let ctx = toast::current().expect("inside a scope");
        let carried =
            tokio::spawn(ctx.scope(async { serde_json::to_string(&doc("carried")).unwrap() }))
                .await
                .unwrap()
                .unwrap();
        assert!(carried.contains("class_name"));
    })
    .await
    .unwrap();
    assert_eq!(store.stats().records_saved, 1);
    assert!(toast::current().is_none(), "no context outside the scope");
}

#[tokio::test]
async fn a_panic_inside_an_inner_scope_leaves_the_outer_context_intact() {
    use futures_util::FutureExt;
    let outer = Store::memory();
    let inner = Store::memory().tenant("inner");
    toast::scope(outer.clone(), async {
        serde_json::to_string(&doc("before")).unwrap();
        let caught = std::panic::AssertUnwindSafe(toast::scope(inner.clone(), async {
            serde_json::to_string(&doc("inner")).unwrap();
            panic!("boom");
        }))
        .catch_unwind()
        .await;
        assert!(caught.is_err());
        let ctx = toast::current().expect("outer context restored");
        assert_eq!(ctx.store().tenant_name(), "default");
        assert_eq!(ctx.pending(), 1, "outer buffer intact");
        serde_json::to_string(&doc("after")).unwrap();
    })
    .await
    .unwrap();
    assert_eq!(outer.stats().records_saved, 2);
    assert_eq!(
        inner.stats().records_saved,
        0,
        "the panicking scope flushed nothing"
    );
}

#[tokio::test]
async fn a_panic_while_serializing_an_external_leaves_the_context_usable() {
    struct Bomb;
    impl Serialize for Bomb {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            panic!("serializer panic")
        }
    }
    #[derive(Serialize)]
    struct Holder {
        #[serde(with = "toast::external")]
        bomb: Bomb,
    }
    let store = Store::memory();
    toast::scope(store.clone(), async {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            serde_json::to_string(&Holder { bomb: Bomb })
        }));
        assert!(r.is_err());
        // The frame stack was unwound: a normal nested document still records its refs.
        let json = toast::to_json(&doc("fine")).await.unwrap();
        assert!(json.contains("Item"));
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn current_thread_runtime_cannot_fetch_on_the_spot_and_says_so() {
    let store = Store::memory();
    let json = written(&store, &doc("ct")).await;
    let err = toast::scope(store.clone(), async {
        serde_json::from_str::<Doc>(&json).map_err(Error::from)
    })
    .await
    .unwrap()
    .unwrap_err();
    assert!(err.is_validation(), "{err:?}");
    assert!(err.to_string().contains("toast::from_json"), "{err}");
    // from_json prefetches, so it works on the same runtime.
    let back: Doc = toast::scope(store, toast::from_json(&json))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, doc("ct"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_thread_runtime_fetches_on_the_spot() {
    let store = Store::memory();
    let json = written(&store, &doc("mt")).await;
    let before = store.stats();
    let back: Doc = toast::scope(store.clone(), async {
        serde_json::from_str::<Doc>(&json).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(back, doc("mt"));
    assert_eq!(store.stats().since(&before).load_calls, 1);
}

#[tokio::test]
async fn the_read_cache_serves_repeated_references_without_round_trips() {
    let store = Store::memory();
    let json = written(&store, &doc("cached")).await;
    let before = store.stats();
    toast::scope(store.clone(), async {
        for _ in 0..3 {
            let _: Doc = toast::from_json(&json).await.unwrap();
        }
    })
    .await
    .unwrap();
    assert_eq!(store.stats().since(&before).load_calls, 1);
}

#[tokio::test]
async fn runaway_nesting_is_an_error_not_a_stack_overflow() {
    #[derive(Debug, Serialize, Deserialize)]
    struct Chain {
        #[serde(with = "toast::external::option")]
        next: Option<Box<Chain>>,
    }
    let mut chain = Chain { next: None };
    // Externals nest at most 64 levels deep (the documented limit).
    for _ in 0..(64 + 5) {
        chain = Chain {
            next: Some(Box::new(chain)),
        };
    }
    let err = toast::scope(Store::memory(), toast::to_json(&chain))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        err.is_validation() && err.to_string().contains("nested"),
        "{err}"
    );

    // A self-referencing stored record (only a hostile writer makes one) stops too.
    let store = Store::memory();
    let id = uuid::Uuid::new_v4();
    let me = format!(r#"{{"next":{{"class_name":"Box<Chain>","id":"{id}"}}}}"#);
    let record = toast::backend::Record::new(
        toast::backend::Key::new("default", "Box<Chain>", id),
        me.clone(),
        vec![toast::Reference::new("Box<Chain>", id)],
    );
    store.backend().save(&[record]).await.unwrap();
    let err = toast::scope(store, toast::from_json::<Chain>(&me))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        err.is_validation() && err.to_string().contains("nested"),
        "{err}"
    );
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Outer {
    #[serde(with = "toast::external")]
    inner: Doc,
}

/// Two threads serializing nested externals in one shared context at the
/// same time: every stored record lists exactly the references inside its
/// own value (the nesting frames are per thread, never mixed between tasks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_sharing_a_context_on_two_threads_keep_their_own_children() {
    let store = Store::memory();
    let jsons = toast::scope(store.clone(), async {
        let ctx = toast::current().unwrap();
        let tasks: Vec<_> = (0..2)
            .map(|t| {
                let ctx = ctx.clone();
                tokio::spawn(ctx.clone().scope(async move {
                    (0..300)
                        .map(|i| {
                            let outer = Outer {
                                inner: doc(&format!("task {t} item {i}")),
                            };
                            serde_json::to_string(&outer).unwrap()
                        })
                        .collect::<Vec<_>>()
                }))
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap().unwrap());
        }
        all
    })
    .await
    .unwrap();
    assert_eq!(jsons.len(), 600);
    for json in &jsons {
        let outer_ref: toast::Reference = serde_json::from_value(
            serde_json::from_str::<serde_json::Value>(json).unwrap()["inner"].clone(),
        )
        .unwrap();
        let outer_record = store.record(&outer_ref).await.unwrap();
        let inner_json: serde_json::Value = serde_json::from_slice(&outer_record.data).unwrap();
        let item_ref: toast::Reference =
            serde_json::from_value(inner_json["item"].clone()).unwrap();
        assert_eq!(outer_record.refs, vec![item_ref.clone()], "{json}");
        assert!(store.record(&item_ref).await.unwrap().refs.is_empty());
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pair {
    #[serde(with = "toast::external")]
    first: Item,
    #[serde(with = "toast::external")]
    second: Item,
}

#[tokio::test]
async fn a_failed_prefetch_leaves_nothing_known_and_the_next_one_loads_again() {
    // A prefetch marks what it asks for in the scope's cache; a failed one
    // must not leave those marks counting as loaded or missing, in the same
    // scope, on a current-thread runtime (where nothing is loaded on the spot).
    let flaky = flaky::Flaky::new();
    let store = flaky::store(&flaky);
    let pair = Pair {
        first: Item { name: "a".into() },
        second: Item { name: "b".into() },
    };
    let json = written(&store, &pair).await;
    toast::scope(store.clone(), async {
        flaky.set_failing_loads(true);
        let err = toast::from_json::<Pair>(&json).await.unwrap_err();
        assert!(err.is_connection(), "{err}");
        flaky.set_failing_loads(false);
        let before = store.stats();
        let back: Pair = toast::from_json(&json).await.unwrap();
        assert_eq!(back, pair);
        let loaded = store.stats().since(&before);
        assert_eq!((loaded.load_calls, loaded.records_loaded), (1, 2));
        // Now known: read again without a round trip.
        let again: Pair = toast::from_json(&json).await.unwrap();
        assert_eq!(again, pair);
        assert_eq!(store.stats().since(&before).load_calls, 1);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_repeated_reference_is_loaded_once_and_a_missing_one_is_not_found() {
    let store = Store::memory();
    let json = written(&store, &doc("x")).await;
    let reference: serde_json::Value = serde_json::from_str(&json).unwrap();
    let twice = serde_json::json!({"first": reference["item"], "second": reference["item"]});
    let (back, loaded): (Pair, _) = read(&store, &twice.to_string()).await;
    assert_eq!(back.first, back.second);
    assert_eq!((loaded.load_calls, loaded.records_loaded), (1, 1));

    let gone = serde_json::json!({"first": reference["item"],
        "second": {"class_name": "Item", "id": uuid::Uuid::new_v4()}});
    let err = toast::scope(store, toast::from_json::<Pair>(&gone.to_string()))
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

// A document's own references are resolved from the records of its first
// load, in the order they are met; these read on a current-thread runtime,
// where a reference not found there cannot be fetched on the spot.

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Flattened {
    #[serde(with = "toast::external")]
    first: Item,
    #[serde(with = "toast::external")]
    second: Item,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct WithFlattened {
    #[serde(flatten)]
    inner: Flattened,
    #[serde(with = "toast::external")]
    last: Item,
}

#[tokio::test(flavor = "current_thread")]
async fn references_met_out_of_document_order_resolve_from_the_one_load() {
    let store = Store::memory();
    let value = WithFlattened {
        inner: Flattened {
            first: Item { name: "1".into() },
            second: Item { name: "2".into() },
        },
        last: Item { name: "3".into() },
    };
    let json = written(&store, &value).await;
    // serde buffers the flattened fields and resolves `last` first.
    assert!(json.find("first") < json.find("last"), "{json}");
    let (back, loaded): (WithFlattened, _) = read(&store, &json).await;
    assert_eq!(back, value);
    assert_eq!((loaded.load_calls, loaded.records_loaded), (1, 3));
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Many {
    #[serde(with = "toast::external")]
    items: Vec<Item>,
    #[serde(with = "toast::external")]
    a: Item,
    #[serde(with = "toast::external")]
    b: Item,
    #[serde(with = "toast::external")]
    c: Item,
    #[serde(with = "toast::external")]
    again: Item,
}

#[tokio::test(flavor = "current_thread")]
async fn records_answered_in_any_order_each_fill_their_own_references() {
    let store = Store::from_backend(Hooked::on_load(|mut records| {
        records.reverse();
        records
    }));
    let item = |n: &str| Item { name: n.into() };
    let value = Many {
        items: vec![item("x")],
        a: item("a"),
        b: item("b"),
        c: item("c"),
        again: item("a"),
    };
    let json = written(&store, &value).await;
    // One missing as well: the others still land in their places.
    let mut doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    doc["b"]["id"] = serde_json::json!(uuid::Uuid::new_v4());
    let err = toast::scope(store.clone(), toast::from_json::<Many>(&doc.to_string()))
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    let (back, _): (Many, _) = read(&store, &json).await;
    assert_eq!(back, value);
}

#[tokio::test(flavor = "current_thread")]
async fn a_document_mixing_known_and_new_references_loads_only_the_new() {
    let store = Store::memory();
    let pair = Pair {
        first: Item { name: "a".into() },
        second: Item { name: "b".into() },
    };
    let known = written(&store, &doc("a")).await;
    let json = written(&store, &pair).await;
    toast::scope(store.clone(), async {
        let _: Doc = toast::from_json(&known).await.unwrap();
        let before = store.stats();
        let back: Pair = toast::from_json(&json).await.unwrap();
        assert_eq!(back, pair);
        let loaded = store.stats().since(&before);
        assert_eq!((loaded.load_calls, loaded.records_loaded), (1, 1));
    })
    .await
    .unwrap();
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct DocAndNumber {
    #[serde(with = "toast::external")]
    item: Item,
    n: u32,
}

#[tokio::test(flavor = "current_thread")]
async fn a_document_failing_after_its_references_leaves_them_known() {
    let store = Store::memory();
    let json = written(&store, &doc("a")).await;
    let mut bad: serde_json::Value = serde_json::from_str(&json).unwrap();
    bad["n"] = serde_json::json!("not a number");
    toast::scope(store.clone(), async {
        let err = toast::from_json::<DocAndNumber>(&bad.to_string())
            .await
            .unwrap_err();
        assert!(err.is_validation(), "{err}");
        let before = store.stats();
        let back: Doc = toast::from_json(&json).await.unwrap();
        assert_eq!(back, doc("a"));
        // And through plain serde, which only looks in the cache.
        let again: Doc = serde_json::from_str(&json).unwrap();
        assert_eq!(again, doc("a"));
        assert_eq!(store.stats().since(&before).load_calls, 0);
    })
    .await
    .unwrap();
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Shares {
    #[serde(with = "toast::external")]
    item: Item,
    #[serde(with = "toast::external")]
    holder: Doc,
}

#[tokio::test(flavor = "current_thread")]
async fn a_record_named_by_the_document_and_by_a_loaded_value_resolves_in_both() {
    let store = Store::memory();
    // Content ids: `item` and the item inside `holder` are one record.
    let value = Shares {
        item: Item {
            name: "same".into(),
        },
        holder: doc("same"),
    };
    let json = written(&store, &value).await;
    let (back, loaded): (Shares, _) = read(&store, &json).await;
    assert_eq!(back, value);
    assert_eq!(loaded.load_calls, 2, "one per level");
}
