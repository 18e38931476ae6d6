//! The public types and futures are `Send` (they go into axum handlers and
//! `tokio::spawn`), and the handles `Sync`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde::{Deserialize, Serialize};

fn assert_send<T: Send>(_: &T) {}
fn assert_send_sync<T: Send + Sync>() {}
fn assert_static<T: 'static>(_: &T) {}

#[derive(Serialize, Deserialize)]
struct Doc {
    #[serde(with = "toast::external")]
    v: Vec<u8>,
}

#[test]
fn handles_and_errors_are_send_and_sync() {
    assert_send_sync::<toast::Store>();
    assert_send_sync::<toast::Error>();
    assert_send_sync::<toast::Context>();
    assert_send_sync::<toast::Reference>();
    assert_send_sync::<toast::backend::Record>();
    assert_send_sync::<toast::External<Vec<u8>>>();
    assert_send_sync::<toast::blocking::Store>();
    assert_send_sync::<std::sync::Arc<dyn toast::Backend>>();
}

#[test]
fn futures_are_send() {
    let store = toast::Store::memory();
    let doc = Doc { v: vec![1] };
    let to_json = toast::to_json(&doc);
    assert_send(&to_json);
    let from_json = toast::from_json::<Doc>("{}");
    assert_send(&from_json);
    let scope = toast::scope(store.clone(), async { 1 });
    assert_send(&scope);
    assert_static(&scope);
    assert_send(&toast::flush());
    assert_send(&store.put(&doc));
    assert_send(&store.get::<Doc>(&toast::Reference::new("Doc", uuid::Uuid::nil())));
    assert_send(&toast::Store::connect("memory://"));
}
