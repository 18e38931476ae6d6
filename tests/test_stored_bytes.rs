//! Stored bytes that are not UTF-8 JSON are a validation error, never a panic,
//! whether the value is read with `Store::get` or inside `from_json`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use toast::backend::{Key, Record};

use toast::{Reference, Store};
use uuid::Uuid;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Doc {
    #[serde(with = "toast::external")]
    body: String,
}

async fn corrupted(store: &Store) -> Reference {
    let id = Uuid::new_v4();
    let key = Key::new(Arc::from(store.tenant_name()), "String", id);
    // A JSON string whose content is not UTF-8.
    let record = Record::new(key, vec![b'"', 0xff, 0xfe, b'"'], Vec::new());
    store.backend().save(&[record]).await.unwrap();
    Reference::new("String", id)
}

#[tokio::test]
async fn get_of_non_utf8_bytes_is_a_validation_error() {
    let store = Store::memory();
    let reference = corrupted(&store).await;
    let err = store.get::<String>(&reference).await.unwrap_err();
    assert!(err.is_validation(), "{err:?}");
    assert!(err.to_string().contains("not UTF-8"), "{err}");
}

#[tokio::test]
async fn from_json_of_non_utf8_bytes_is_a_validation_error() {
    let store = Store::memory();
    let reference = corrupted(&store).await;
    let text = format!(
        r#"{{"body": {}}}"#,
        serde_json::to_string(&reference).unwrap()
    );
    let err = toast::scope(store, toast::from_json::<Doc>(&text))
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.is_validation(), "{err:?}");
    assert!(err.to_string().contains("not UTF-8"), "{err}");
}
