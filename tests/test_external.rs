//! `#[serde(with = "toast::external")]`: the exact reference form, round trips of
//! nested and generic types, `option`, `named`, and content-derived ids.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use toast::Store;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Item {
    id: u32,
    name: String,
    tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Shape {
    Circle { r: f64 },
    Square(u32),
    Empty,
}

/// Generic containers spell out their bounds: serde derives none for `with` fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "T: Serialize",
    deserialize = "T: serde::de::DeserializeOwned"
))]
struct Wrapper<T> {
    #[serde(with = "toast::external")]
    inner: T,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Everything {
    #[serde(with = "toast::external")]
    items: Vec<Item>,
    #[serde(with = "toast::external")]
    shape: Shape,
    #[serde(with = "toast::external")]
    map: HashMap<String, Vec<u8>>,
    #[serde(with = "toast::external")]
    generic: Wrapper<BTreeMap<u8, Shape>>,
    #[serde(with = "toast::external::option")]
    present: Option<Item>,
    #[serde(with = "toast::external::option")]
    absent: Option<Item>,
    inline: String,
}

fn everything() -> Everything {
    Everything {
        items: vec![
            Item {
                id: 1,
                name: "a".into(),
                tags: vec!["x".into()],
            },
            Item {
                id: 2,
                name: "b".into(),
                tags: vec![],
            },
        ],
        shape: Shape::Circle { r: 1.5 },
        map: HashMap::from([("k".into(), vec![1, 2, 3])]),
        generic: Wrapper {
            inner: BTreeMap::from([(1, Shape::Square(4)), (2, Shape::Empty)]),
        },
        present: Some(Item {
            id: 3,
            name: "c".into(),
            tags: vec![],
        }),
        absent: None,
        inline: "stays inline".into(),
    }
}

#[tokio::test]
async fn reference_is_exactly_class_name_and_id() {
    let store = Store::memory();
    let doc = Wrapper {
        inner: vec![Item {
            id: 1,
            name: "n".into(),
            tags: vec![],
        }],
    };
    let json = toast::scope(store, toast::to_json(&doc))
        .await
        .unwrap()
        .unwrap();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let reference = value["inner"].as_object().unwrap();
    assert_eq!(reference.len(), 2, "{json}");
    assert_eq!(reference["class_name"], "Vec<Item>");
    let id = reference["id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    // Byte-exact shape of the whole document.
    assert_eq!(
        json,
        format!(r#"{{"inner":{{"class_name":"Vec<Item>","id":"{id}"}}}}"#)
    );
}

#[tokio::test]
async fn nested_and_generic_types_round_trip() {
    let store = Store::memory();
    let doc = everything();
    let json = toast::scope(store.clone(), toast::to_json(&doc))
        .await
        .unwrap()
        .unwrap();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["shape"]["class_name"], "Shape");
    assert_eq!(value["map"]["class_name"], "HashMap<String, Vec<u8>>");
    assert_eq!(
        value["generic"]["class_name"],
        "Wrapper<BTreeMap<u8, Shape>>"
    );
    assert_eq!(value["present"]["class_name"], "Item");
    assert!(value["absent"].is_null());
    assert_eq!(value["inline"], "stays inline");
    let back: Everything = toast::scope(store, toast::from_json(&json))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, doc);
}

#[tokio::test]
async fn to_vec_to_value_from_slice_from_value_round_trip() {
    let store = Store::memory();
    let doc = everything();
    let (bytes, value) = toast::scope(store.clone(), async {
        (
            toast::to_vec(&doc).await.unwrap(),
            toast::to_value(&doc).await.unwrap(),
        )
    })
    .await
    .unwrap();
    let (a, b): (Everything, Everything) = toast::scope(store, async {
        (
            toast::from_slice(&bytes).await.unwrap(),
            toast::from_value(value).await.unwrap(),
        )
    })
    .await
    .unwrap();
    assert_eq!(a, doc);
    assert_eq!(b, doc);
}

#[tokio::test]
async fn from_slice_of_bytes_that_are_not_utf8_is_a_validation_error_saying_where() {
    #[derive(Deserialize, Debug)]
    struct Doc {
        #[allow(dead_code)]
        title: String,
    }
    let store = Store::memory();
    // Valid JSON structure, a string holding a lone continuation byte.
    let bytes = b"{\"title\": \"a\x80b\"}";
    let err = toast::scope(store.clone(), toast::from_slice::<Doc>(bytes))
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.is_validation(), "{err:?}");
    assert!(
        err.to_string()
            .contains("invalid unicode code point at line 1 column"),
        "{err}"
    );
    // The same document as UTF-8 is read, from bytes and from text alike.
    let good = "{\"title\": \"a\u{e9}b\"}";
    let (a, b) = toast::scope(store, async {
        (
            toast::from_slice::<Doc>(good.as_bytes()).await,
            toast::from_json::<Doc>(good).await,
        )
    })
    .await
    .unwrap();
    assert_eq!(a.unwrap().title, "a\u{e9}b");
    assert_eq!(b.unwrap().title, "a\u{e9}b");
}

#[tokio::test]
async fn same_value_gets_the_same_id_and_is_stored_once() {
    let store = Store::memory();
    let item = Item {
        id: 9,
        name: "same".into(),
        tags: vec!["t".into()],
    };
    let pair = (
        Wrapper {
            inner: item.clone(),
        },
        Wrapper {
            inner: item.clone(),
        },
    );
    let json = toast::scope(store.clone(), toast::to_json(&pair))
        .await
        .unwrap()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["inner"]["id"], v[1]["inner"]["id"]);
    assert_eq!(
        store.stats().records_saved,
        1,
        "equal values are stored once"
    );

    // Serializing it again in another scope gives the same id again.
    let again = toast::scope(store.clone(), toast::to_json(&Wrapper { inner: item }))
        .await
        .unwrap()
        .unwrap();
    let w: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(w["inner"]["id"], v[0]["inner"]["id"]);

    // A different value gets a different id.
    let other = Wrapper {
        inner: Item {
            id: 10,
            name: "same".into(),
            tags: vec!["t".into()],
        },
    };
    let json = toast::scope(store, toast::to_json(&other))
        .await
        .unwrap()
        .unwrap();
    let o: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_ne!(o["inner"]["id"], v[0]["inner"]["id"]);
}

#[tokio::test]
async fn same_bytes_under_another_class_get_another_id() {
    #[derive(Serialize, Deserialize)]
    struct Pair {
        #[serde(with = "toast::external")]
        a: u32,
        #[serde(with = "toast::external")]
        b: u64,
    }
    let json = toast::scope(Store::memory(), toast::to_json(&Pair { a: 1, b: 1 }))
        .await
        .unwrap()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_ne!(v["a"]["id"], v["b"]["id"]);
    assert_eq!(v["a"]["class_name"], "u32");
}

#[tokio::test]
async fn externals_nest_three_deep() {
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct L3 {
        text: String,
    }
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct L2 {
        #[serde(with = "toast::external")]
        l3: L3,
    }
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct L1 {
        #[serde(with = "toast::external")]
        l2: L2,
    }
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Root {
        #[serde(with = "toast::external")]
        l1: L1,
    }
    let store = Store::memory();
    let root = Root {
        l1: L1 {
            l2: L2 {
                l3: L3 {
                    text: "deep".into(),
                },
            },
        },
    };
    let json = toast::scope(store.clone(), toast::to_json(&root))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.stats().records_saved, 3);
    // Each stored record remembers the references inside it.
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let l1_ref: toast::Reference = serde_json::from_value(v["l1"].clone()).unwrap();
    let l1_record = store.record(&l1_ref).await.unwrap();
    assert_eq!(l1_record.refs.len(), 1);
    assert_eq!(l1_record.refs[0].class_name, "L2");
    let back: Root = toast::scope(store, toast::from_json(&json))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, root);
}

#[tokio::test]
async fn named_types_pin_their_class_name() {
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Profile {
        name: String,
    }
    impl toast::Named for Profile {
        const CLASS_NAME: &'static str = "UserProfile";
    }
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct User {
        #[serde(with = "toast::external::named")]
        profile: Profile,
    }
    let store = Store::memory();
    let user = User {
        profile: Profile { name: "ada".into() },
    };
    let json = toast::scope(store.clone(), toast::to_json(&user))
        .await
        .unwrap()
        .unwrap();
    assert!(json.contains(r#""class_name":"UserProfile""#), "{json}");
    let back: User = toast::scope(store, toast::from_json(&json))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, user);
}

#[tokio::test]
async fn class_name_strips_module_paths() {
    assert_eq!(&*toast::class_name::<Item>(), "Item");
    assert_eq!(
        &*toast::class_name::<Vec<Option<Item>>>(),
        "Vec<Option<Item>>"
    );
    assert_eq!(
        &*toast::class_name::<HashMap<String, Item>>(),
        "HashMap<String, Item>"
    );
}
