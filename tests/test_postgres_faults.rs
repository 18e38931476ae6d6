//! The PostgreSQL backend when things go wrong: an unreachable server, a
//! wrong password, a server stopped and started again (throwaway servers
//! started from the system binaries), a failing statement.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use support::postgres::{
    connect, drop_schema, free_port, raw, shared_url, unique_schema, with_option, TestResult,
    ThrowawayPostgres,
};
use toast::Store;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_other_sql_failure_is_a_backend_error_with_its_source() -> TestResult {
    let schema = unique_schema("toast_broken");
    let url = with_option(&shared_url(), &format!("schema={schema}"));
    let store = connect(&url).await;
    let mut conn = raw(&shared_url()).await;
    sqlx::Executor::execute(
        &mut conn,
        format!("DROP TABLE \"{schema}\".records").as_str(),
    )
    .await?;
    let err = store.put(&1u8).await.unwrap_err();
    assert!(matches!(err, toast::Error::Backend { .. }), "{err:?}");
    assert!(std::error::Error::source(&err).is_some());
    assert!(err.to_string().contains("records"), "{err}");
    drop_schema(&shared_url(), &schema).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_a_connection_error_within_seconds_with_a_hint() {
    let port = free_port();
    let url = format!("postgres://app:hunter2@127.0.0.1:{port}/app?connect_timeout=3");
    let started = Instant::now();
    let err = Store::connect(&url).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(err.is_connection(), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("connection refused"), "{text}");
    assert!(
        text.contains(&format!("is PostgreSQL running at 127.0.0.1:{port}?")),
        "{text}"
    );
    assert!(text.contains("postgres://app:***@127.0.0.1"), "{text}");
    assert!(!text.contains("hunter2") && !format!("{err:?}").contains("hunter2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_a_clear_connection_error_without_the_password() -> TestResult {
    let server = ThrowawayPostgres::start_new();
    let port = server.port();
    let wrong = format!("postgres://postgres:wrong-hunter2@127.0.0.1:{port}/postgres");
    let err = Store::connect(&wrong).await.unwrap_err();
    assert!(err.is_connection(), "{err:?}");
    let mut texts = vec![err.to_string(), format!("{err:?}")];
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        texts.push(s.to_string());
        source = s.source();
    }
    assert!(texts[0].contains("authentication failed"), "{}", texts[0]);
    assert!(
        texts[0].contains("postgres://postgres:***@127.0.0.1"),
        "{}",
        texts[0]
    );
    for text in &texts {
        assert!(!text.contains("wrong-hunter2"), "{text}");
    }

    let missing_db = format!(
        "postgres://postgres:{}@127.0.0.1:{port}/no_such_db",
        server.password()
    );
    let err = Store::connect(&missing_db).await.unwrap_err();
    assert!(err.is_connection(), "{err:?}");
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(!format!("{err} {err:?}").contains(server.password()));

    let store = connect(&server.url("postgres")).await;
    assert!(!format!("{store:?}").contains(server.password()));
    let r = store.put(&"with the right password".to_owned()).await?;
    assert_eq!(store.get::<String>(&r).await?, "with the right password");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_gives_connection_errors_and_the_same_store_works_once_it_is_back(
) -> TestResult {
    let mut server = ThrowawayPostgres::start_new();
    let url = with_option(&server.url("postgres"), "acquire_timeout=2&pool_max=4");
    let store = connect(&url).await;
    let before = store.put(&"written before the outage".to_owned()).await?;
    // Several pooled connections, all of which die with the server.
    let values: Vec<u32> = (0..4).collect();
    let warm: Vec<_> = values.iter().map(|v| store.put(v)).collect();
    for r in futures_util::future::join_all(warm).await {
        r?;
    }

    server.stop();
    let hint = format!("is PostgreSQL running at 127.0.0.1:{}?", server.port());
    for attempt in 0..2 {
        let started = Instant::now();
        let err = store.get::<String>(&before).await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "bounded by acquire_timeout: {:?}",
            started.elapsed()
        );
        assert!(err.is_connection(), "attempt {attempt}: {err:?}");
        assert!(err.to_string().contains(&hint), "{err}");
        assert!(!format!("{err} {err:?}").contains(server.password()));
    }
    let err = store.put(&"during".to_owned()).await.unwrap_err();
    assert!(err.is_connection(), "{err:?}");
    let started = Instant::now();
    let err = Store::connect(&url).await.unwrap_err();
    assert!(err.is_connection(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(6));

    server.start();
    assert_eq!(
        store.get::<String>(&before).await?,
        "written before the outage",
        "the same store works again without reconnecting by hand"
    );
    let after = store.put(&"written after".to_owned()).await?;
    assert_eq!(store.get::<String>(&after).await?, "written after");
    Ok(())
}
