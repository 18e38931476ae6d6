//! Errors: the right kind for each failure, messages that name the cause, the
//! typed error recovered across serde, and no password anywhere.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde::{Deserialize, Serialize};
use toast::{Error, Reference, Store};
use uuid::Uuid;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Item {
    name: String,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Doc {
    #[serde(with = "toast::external")]
    item: Item,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Other {
    n: u32,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct OtherDoc {
    #[serde(with = "toast::external")]
    item: Other,
}

async fn stored_doc(store: &Store) -> String {
    let doc = Doc {
        item: Item { name: "x".into() },
    };
    toast::scope(store.clone(), toast::to_json(&doc))
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn class_mismatch_names_both_classes() {
    let store = Store::memory();
    let json = stored_doc(&store).await;
    let err = toast::scope(store, toast::from_json::<OtherDoc>(&json))
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.is_validation(), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("expected Other") && msg.contains("got Item"),
        "{msg}"
    );
}

#[tokio::test]
async fn unknown_id_is_not_found_naming_class_and_id() {
    let id = Uuid::new_v4();
    let json = format!(r#"{{"item":{{"class_name":"Item","id":"{id}"}}}}"#);
    let err = toast::scope(Store::memory(), toast::from_json::<Doc>(&json))
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    match &err {
        Error::NotFound {
            class_name,
            id: got,
        } => {
            assert_eq!(class_name, "Item");
            assert_eq!(*got, id);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains(&id.to_string()));
}

#[tokio::test]
async fn malformed_references_are_validation_errors() {
    let cases = [
        r#"{"item":{"class_name":"Item","id":"not-a-uuid"}}"#,
        r#"{"item":{"class_name":"Item"}}"#,
        r#"{"item":{"id":"0b6f5c1e-8f5e-4b7c-9d3a-2a1b0c9d8e7f"}}"#,
        r#"{"item":{"class_name":"Item","id":"0b6f5c1e-8f5e-4b7c-9d3a-2a1b0c9d8e7f","extra":1}}"#,
        r#"{"item":["Item","0b6f5c1e-8f5e-4b7c-9d3a-2a1b0c9d8e7f","x"]}"#,
        r#"{"item":"just a string"}"#,
        r#"{"item":{"class_name":42,"id":"0b6f5c1e-8f5e-4b7c-9d3a-2a1b0c9d8e7f"}}"#,
        r#"{"item":{"name":"an inline value where a reference belongs"}}"#,
        r#"{"item": "#,
    ];
    for case in cases {
        let err = toast::scope(Store::memory(), toast::from_json::<Doc>(case))
            .await
            .unwrap()
            .unwrap_err();
        assert!(err.is_validation(), "{case}: {err:?}");
    }
}

#[tokio::test]
async fn stored_data_that_no_longer_fits_is_a_validation_error() {
    let store = Store::memory();
    let reference = store.put(&Item { name: "x".into() }).await.unwrap();
    // Same class name, incompatible shape.
    mod v2 {
        #[derive(Debug, serde::Deserialize)]
        pub struct Item {
            #[allow(dead_code)]
            pub required_new_field: u64,
        }
    }
    let err = store.get::<v2::Item>(&reference).await.unwrap_err();
    assert!(err.is_validation(), "{err:?}");
    assert!(err.to_string().contains("no longer fits"), "{err}");
}

#[tokio::test]
async fn outside_a_scope_the_error_says_how_to_open_one() {
    let doc = Doc {
        item: Item { name: "x".into() },
    };
    let err = serde_json::to_string(&doc).unwrap_err();
    assert!(err.to_string().contains("toast::scope"), "{err}");
    let err = toast::to_json(&doc).await.unwrap_err();
    assert!(
        err.is_validation() && err.to_string().contains("toast::scope"),
        "{err}"
    );
    let json = r#"{"item":{"class_name":"Item","id":"0b6f5c1e-8f5e-4b7c-9d3a-2a1b0c9d8e7f"}}"#;
    let err = serde_json::from_str::<Doc>(json).unwrap_err();
    assert!(err.to_string().contains("toast::scope"), "{err}");
}

/// Multi-thread: plain `serde_json::from_str` may load a missing reference on the spot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typed_error_crosses_serde_intact() {
    let store = Store::memory();
    let id = Uuid::new_v4();
    let json = format!(r#"{{"item":{{"class_name":"Item","id":"{id}"}}}}"#);
    // from_json returns the original NotFound, not a flattened string.
    let err = toast::scope(store.clone(), toast::from_json::<Doc>(&json))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    // Plain serde_json inside a scope: `?` into toast::Error recovers it.
    let result = toast::scope(store.clone(), async {
        let doc: Doc = serde_json::from_str(&json)?;
        Ok::<_, Error>(doc)
    })
    .await
    .unwrap();
    assert!(matches!(result, Err(Error::NotFound { .. })), "{result:?}");
    // And take_error() gives it back after any other serde call.
    let taken = toast::scope(store, async {
        let _ = serde_json::from_str::<Doc>(&json);
        toast::take_error()
    })
    .await
    .unwrap();
    assert!(taken.is_some_and(|e| e.is_not_found()));
}

#[tokio::test]
async fn nested_not_found_reaches_the_top_as_itself() {
    #[derive(Debug, Serialize, Deserialize)]
    struct Outer {
        #[serde(with = "toast::external")]
        doc: Doc,
    }
    let store = Store::memory();
    let json = toast::scope(
        store.clone(),
        toast::to_json(&Outer {
            doc: Doc {
                item: Item { name: "n".into() },
            },
        }),
    )
    .await
    .unwrap()
    .unwrap();
    // Delete the innermost record.
    let item_ref = Reference::new("Item", support::content_id("Item", br#"{"name":"n"}"#));
    assert!(store.delete(&item_ref).await.unwrap());
    let err = toast::scope(store, toast::from_json::<Outer>(&json))
        .await
        .unwrap()
        .unwrap_err();
    match err {
        Error::NotFound { class_name, id } => {
            assert_eq!(class_name, "Item");
            assert_eq!(id, item_ref.id);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn unknown_scheme_lists_the_registered_ones() {
    let err = Store::connect("nosuch://host/x").await.unwrap_err();
    assert!(err.is_validation());
    let msg = err.to_string();
    assert!(msg.contains("nosuch") && msg.contains("memory"), "{msg}");
    #[cfg(feature = "sqlite")]
    assert!(msg.contains("sqlite"), "{msg}");
}

#[tokio::test]
async fn malformed_urls_are_validation_errors_without_the_password() {
    for url in ["", "not a url", "postgres://user:hunter2@[::1/db", "memory"] {
        let err = Store::connect(url).await.unwrap_err();
        assert!(err.is_validation(), "{url}: {err:?}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
    }
}

#[tokio::test]
async fn store_debug_and_url_never_show_the_password() {
    toast::register_backend("pwtest", |_url: toast::backend::ConnectUrl| async {
        Ok(
            std::sync::Arc::new(toast::backend::memory::MemoryBackend::new())
                as std::sync::Arc<dyn toast::Backend>,
        )
    })
    .unwrap();
    let store = Store::connect("pwtest://admin:hunter2@host:1/db")
        .await
        .unwrap();
    assert_eq!(store.url(), "pwtest://admin:***@host:1/db");
    assert!(!format!("{store:?}").contains("hunter2"));
}

#[test]
fn invalid_scheme_names_are_rejected() {
    let make = |_url: toast::backend::ConnectUrl| async {
        Ok(
            std::sync::Arc::new(toast::backend::memory::MemoryBackend::new())
                as std::sync::Arc<dyn toast::Backend>,
        )
    };
    assert!(toast::register_backend("", make)
        .unwrap_err()
        .is_validation());
    assert!(toast::register_backend("9lives", make)
        .unwrap_err()
        .is_validation());
    assert!(toast::register_backend("has space", make)
        .unwrap_err()
        .is_validation());
}
