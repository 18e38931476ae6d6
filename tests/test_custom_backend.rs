//! The custom backend of `examples/custom_backend.rs`, registered for its own
//! scheme, round-trips documents and passes the conformance suite.
#![cfg(feature = "conformance")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../examples/custom_backend.rs"]
#[allow(dead_code)]
mod custom_backend;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_backend_registered_for_its_scheme_passes_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let report = custom_backend::demo(dir.path()).await.unwrap();
    assert!(report.passed.contains(&"tenant_isolation"));
    assert!(report.passed.contains(&"hostile_names"));
    assert!(report.skipped.is_empty(), "{report:?}");
    assert!(toast::registered_schemes().contains(&"files".to_owned()));
}

#[tokio::test]
async fn files_scheme_without_a_directory_is_a_validation_error() {
    custom_backend::register().unwrap();
    let err = toast::Store::connect("files://").await.unwrap_err();
    assert!(err.is_validation(), "{err:?}");
}
