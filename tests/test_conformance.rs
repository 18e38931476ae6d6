//! The conformance suite on the built-in embedded backends.
#![cfg(feature = "conformance")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use toast::backend::conformance;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_backend_conforms() {
    let report = conformance::run(&toast::Store::memory()).await.unwrap();
    assert!(report.skipped.is_empty(), "{report:?}");
    assert!(report.passed.len() >= 10, "{report:?}");
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_backend_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("conf.db").display());
    let store = toast::Store::connect(&url).await.unwrap();
    let report = conformance::run(&store).await.unwrap();
    assert!(report.skipped.is_empty(), "{report:?}");
    assert!(report.passed.len() >= 10, "{report:?}");
}
