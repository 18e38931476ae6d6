//! Defects found by adversarial testing (issue 19, items 4, 5, 6 and 8): each
//! test reproduces one and checks the fix.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde::{Deserialize, Serialize};
use toast::Store;
use uuid::Uuid;

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Doc {
    title: String,
    #[serde(with = "toast::external")]
    body: String,
}

fn doc(i: usize, size: usize) -> Doc {
    Doc {
        title: format!("doc {i}"),
        body: format!("{i:08}").repeat(size / 8),
    }
}

/// Item 4: a plain `serde_json::from_str` of a document whose reference was
/// not prefetched, inside a scope under `LocalSet::run_until` on a
/// multi-thread runtime, used to panic inside `block_in_place`.
#[test]
fn a_reference_met_inside_a_local_set_on_a_multi_thread_runtime_is_loaded_not_a_panic() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = Store::memory();
        let original = doc(1, 64);
        let json = toast::scope(store.clone(), toast::to_json(&original))
            .await
            .expect("scope")
            .expect("to_json");
        let local = tokio::task::LocalSet::new();
        let back = local
            .run_until(toast::scope(store.clone(), async {
                serde_json::from_str::<Doc>(&json)
            }))
            .await
            .expect("scope");
        assert_eq!(back.expect("loaded on the spot"), original);
        assert_eq!(store.stats().load_calls, 1);
    });
}

/// Item 5: `from_value` of a value nested 10,000 deep used to overflow the
/// stack (the reference walk recursed without a limit).
#[tokio::test]
async fn from_value_of_a_value_nested_ten_thousand_deep_is_an_error_not_a_stack_overflow() {
    let mut value = serde_json::Value::Null;
    for _ in 0..10_000 {
        value = serde_json::Value::Array(vec![value]);
    }
    let err = toast::scope(
        Store::memory(),
        toast::from_value::<serde_json::Value>(value),
    )
    .await
    .expect("scope")
    .expect_err("too deep");
    assert!(err.is_validation(), "{err}");
    assert!(err.to_string().contains("nested"), "{err}");
}

/// A value of the shape item 6 describes: each record names the next one
/// twice, so a read decodes 2^n records from n stored ones.
#[derive(Deserialize, Debug)]
struct Node {
    #[serde(with = "toast::external::option")]
    a: Option<Box<Node>>,
    #[serde(with = "toast::external::option")]
    b: Option<Box<Node>>,
}

/// Stores `depth` records, each naming the next one twice, and returns the
/// reference to the first.
async fn doubling_chain(store: &Store, depth: usize) -> toast::Reference {
    let class = toast::class_name::<Box<Node>>();
    let ids: Vec<Uuid> = (0..=depth).map(|_| Uuid::new_v4()).collect();
    let mut records = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let reference = toast::Reference::new(&*class, *id);
        let key = store.key_for(&reference);
        let record = match ids.get(i + 1) {
            Some(next) => {
                let child = toast::Reference::new(&*class, *next);
                let text = serde_json::to_string(&serde_json::json!({"a": child, "b": child}))
                    .expect("json");
                toast::backend::Record::new(key, text, vec![child.clone(), child])
            }
            None => toast::backend::Record::new(key, r#"{"a":null,"b":null}"#, Vec::new()),
        };
        records.push(record);
    }
    store.backend().save(&records).await.expect("saved");
    toast::Reference::new(&*class, ids[0])
}

/// Item 6: records that each name the next one twice made a read's work
/// double per record (23 records took seconds and a gigabyte); the work of
/// one read is now bounded by the store's limits.
#[tokio::test]
async fn records_that_name_the_next_one_twice_stop_at_the_read_limits() {
    let store = Store::memory();
    let first = doubling_chain(&store, 23).await;

    let err = store
        .get::<Box<Node>>(&first)
        .await
        .expect_err("over the limits");
    assert!(err.is_validation(), "{err}");
    assert!(err.to_string().contains("limits of one read"), "{err}");

    // Configured per store, and the same through from_json.
    let strict = store.with_read_limits(1_000, 1 << 20);
    let err = strict.get::<Box<Node>>(&first).await.expect_err("over");
    assert!(err.to_string().contains("1000 references"), "{err}");
    let text = serde_json::json!({"a": first, "b": first}).to_string();
    let err = toast::scope(strict.clone(), toast::from_json::<Node>(&text))
        .await
        .expect("scope")
        .expect_err("over");
    assert!(err.is_validation(), "{err}");

    // A short chain is within the limits and reads whole.
    let short = doubling_chain(&store, 5).await;
    let node = strict.get::<Box<Node>>(&short).await.expect("within");
    fn leaves(node: &Node) -> usize {
        match (&node.a, &node.b) {
            (Some(a), Some(b)) => leaves(a) + leaves(b),
            _ => 1,
        }
    }
    assert_eq!(leaves(&node), 32);
}

/// How many records a scope's cache holds, as its `Debug` shows.
fn cached(ctx: &toast::Context) -> usize {
    let shown = format!("{ctx:?}");
    let rest = shown
        .split("cached: ")
        .nth(1)
        .expect("Debug shows the cache");
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().expect("a count")
}

/// Item 8: a long-lived scope kept every record it ever read or wrote. Its
/// cache now stays within the store's budget.
#[tokio::test]
async fn a_long_lived_scope_keeps_its_cache_within_the_budget() {
    let store = Store::memory().with_cache_budget(64 * 1024);
    // At most this many 4 KiB records (and their keys) fit the budget.
    let fits = 64 * 1024 / 4096;
    let mut texts = Vec::new();
    toast::scope(store.clone(), async {
        let ctx = toast::current().expect("scope");
        for i in 0..500 {
            texts.push(toast::to_json(&doc(i, 4096)).await.expect("written"));
            assert!(cached(&ctx) <= fits + 1, "after {i} writes: {ctx:?}");
        }
        for (i, text) in texts.iter().enumerate() {
            let back: Doc = toast::from_json(text).await.expect("read");
            assert_eq!(back, doc(i, 4096));
            assert!(cached(&ctx) <= fits + 1, "after {i} reads: {ctx:?}");
        }
    })
    .await
    .expect("scope");
    // Records forgotten by the cache are loaded again when needed.
    assert!(store.stats().load_calls >= 500 - fits as u64);
}

/// Item 8: records a read is using are not evicted while it runs, however
/// small the budget: on a current-thread runtime, where nothing can be
/// fetched on the spot, a three-level document still reads whole.
#[tokio::test(flavor = "current_thread")]
async fn records_a_read_is_using_are_never_evicted_during_it() {
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Leaf {
        #[serde(with = "toast::external")]
        text: String,
    }
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Middle {
        #[serde(with = "toast::external")]
        leaves: Vec<Leaf>,
    }
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Top {
        #[serde(with = "toast::external")]
        middles: Vec<Middle>,
    }
    let top = Top {
        middles: (0..3)
            .map(|m| Middle {
                leaves: (0..3)
                    .map(|l| Leaf {
                        text: format!("{m}-{l}").repeat(100),
                    })
                    .collect(),
            })
            .collect(),
    };
    let store = Store::memory().with_cache_budget(1);
    let json = toast::scope(store.clone(), toast::to_json(&top))
        .await
        .expect("scope")
        .expect("written");
    let back: Top = toast::scope(store.clone(), async {
        let first: Top = toast::from_json(&json).await?;
        // A second read in the same scope, after the first one's records
        // were evicted: loaded again.
        let again: Top = toast::from_json(&json).await?;
        assert_eq!(first, again);
        Ok::<_, toast::Error>(again)
    })
    .await
    .expect("scope")
    .expect("read");
    assert_eq!(back, top);
}
