//! Property: arbitrary nested values round-trip through externals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use toast::Store;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Tree {
    Leaf(String),
    Num(i64),
    Flag(bool),
    Branch(Vec<Tree>),
    Map(BTreeMap<String, Tree>),
    Stored(#[serde(with = "toast::external")] Box<Tree>),
    MaybeStored(#[serde(with = "toast::external::option")] Option<Box<Tree>>),
}

fn tree() -> impl Strategy<Value = Tree> {
    let leaf = prop_oneof![
        any::<String>().prop_map(Tree::Leaf),
        any::<i64>().prop_map(Tree::Num),
        any::<bool>().prop_map(Tree::Flag),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Tree::Branch),
            prop::collection::btree_map(any::<String>(), inner.clone(), 0..4).prop_map(Tree::Map),
            inner.clone().prop_map(|t| Tree::Stored(Box::new(t))),
            prop::option::of(inner).prop_map(|t| Tree::MaybeStored(t.map(Box::new))),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn arbitrary_nested_values_round_trip(value in tree()) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let back = rt.block_on(async {
            let store = Store::memory();
            let json = toast::scope(store.clone(), toast::to_json(&value)).await.unwrap().unwrap();
            toast::scope(store, toast::from_json::<Tree>(&json)).await.unwrap().unwrap()
        });
        prop_assert_eq!(back, value);
    }
}
