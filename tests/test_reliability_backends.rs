//! Defects found by adversarial testing, one test each, named
//! for the defect: stored timestamps PostgreSQL accepts and chrono cannot
//! hold, SQLite corruption read through every load path, and round trips
//! whose reply is lost.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

/// Stored records that cannot be read back: the corrupted-record error,
/// never a panic, whatever the load path.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod corrupted {
    use serde::{Deserialize, Serialize};
    use toast::{Reference, Store};

    #[cfg(feature = "postgres")]
    use super::support;

    /// A document with four references of one class: its load is one batch of
    /// four keys (SQLite's packed path).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Four {
        #[serde(with = "toast::external")]
        a: String,
        #[serde(with = "toast::external")]
        b: String,
        #[serde(with = "toast::external")]
        c: String,
        #[serde(with = "toast::external")]
        d: String,
    }

    impl Four {
        fn new(seed: &str) -> Four {
            let v = |n: &str| format!("{seed}-{n}-{}", uuid::Uuid::new_v4());
            Four {
                a: v("a"),
                b: v("b"),
                c: v("c"),
                d: v("d"),
            }
        }
    }

    /// The references of a document written with [`Four`].
    fn references(json: &str) -> Vec<Reference> {
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        ["a", "b", "c", "d"]
            .iter()
            .map(|f| serde_json::from_value(value[f].clone()).unwrap())
            .collect()
    }

    /// `err` is the one corrupted-record error, naming class and id.
    fn assert_corrupted(what: &str, err: &toast::Error, reference: &Reference) {
        assert!(err.is_validation(), "{what}: {err:?}");
        let text = err.to_string();
        assert!(text.contains("corrupted"), "{what}: {text}");
        assert!(
            text.contains(&reference.class_name) && text.contains(&reference.id.to_string()),
            "{what}: {text}"
        );
    }

    #[cfg(feature = "postgres")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_timestamps_chrono_cannot_hold_are_corrupted_record_errors_not_panics() {
        use sqlx::Connection;
        use support::postgres::{shared_url, unique_schema, with_option};

        let schema = unique_schema("toast_infinity");
        let url = with_option(&shared_url(), &format!("schema={schema}"));
        let store = Store::connect(&url).await.unwrap().tenant("t");
        let mut conn = sqlx::PgConnection::connect(&shared_url()).await.unwrap();
        for (column, value) in [
            ("created_at", "infinity"),
            ("updated_at", "-infinity"),
            ("created_at", "294000-01-01 00:00:00+00"),
            ("updated_at", "280000-06-30 12:00:00+00"),
        ] {
            let what = format!("{column} = {value}");
            let doc = Four::new("inf");
            let json = toast::scope(store.clone(), toast::to_json(&doc))
                .await
                .unwrap()
                .unwrap();
            let refs = references(&json);
            let broken = &refs[1];
            sqlx::query(&format!(
                "UPDATE \"{schema}\".records SET {column} = '{value}'::timestamptz WHERE id = $1"
            ))
            .bind(broken.id)
            .execute(&mut conn)
            .await
            .unwrap();

            let err = store.get::<String>(broken).await.unwrap_err();
            assert_corrupted(&format!("get, {what}"), &err, broken);
            let err = toast::scope(store.clone(), toast::from_json::<Four>(&json))
                .await
                .unwrap()
                .unwrap_err();
            assert_corrupted(&format!("from_json, {what}"), &err, broken);
            let err = store.list("String", 0, 100).await.unwrap_err();
            assert!(err.is_validation(), "list, {what}: {err:?}");
            assert!(err.to_string().contains("corrupted"), "list, {what}: {err}");

            // The other records of the document still load.
            assert_eq!(store.get::<String>(&refs[0]).await.unwrap(), doc.a);
            assert!(store.delete(broken).await.unwrap());
        }
        sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .execute(&mut conn)
            .await
            .unwrap();
    }

    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn sqlite_corruption_is_a_validation_error_on_the_batched_load_path_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("corrupt.db");
        let store = Store::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let raw = sqlx::SqlitePool::connect_with(
            sqlx::sqlite::SqliteConnectOptions::new().filename(&path),
        )
        .await
        .unwrap();
        for (column, value) in [
            ("refs", "'not a list of references'"),
            ("refs", "'[{\"class_name\":1}]'"),
            ("created_at", "9223372036854775807"),
            ("updated_at", "'yesterday'"),
            ("created_at", "1.5"),
            ("schema_version", "-1"),
            ("schema_version", "4294967296"),
            ("schema_version", "'seven'"),
        ] {
            let what = format!("{column} = {value}");
            let doc = Four::new("sqlite");
            let json = toast::scope(store.clone(), toast::to_json(&doc))
                .await
                .unwrap()
                .unwrap();
            let refs = references(&json);
            let broken = &refs[2];
            sqlx::query(&format!(
                "UPDATE toast_records SET {column} = {value} WHERE id = ?"
            ))
            .bind(broken.id.as_bytes().as_slice())
            .execute(&raw)
            .await
            .unwrap();

            // One key (row by row), four keys (packed), and a document.
            let err = store.get::<String>(broken).await.unwrap_err();
            assert_corrupted(&format!("get, {what}"), &err, broken);
            let err = store.get_many::<String>(&refs).await.unwrap_err();
            assert_corrupted(&format!("get_many, {what}"), &err, broken);
            let err = toast::scope(store.clone(), toast::from_json::<Four>(&json))
                .await
                .unwrap()
                .unwrap_err();
            assert_corrupted(&format!("from_json, {what}"), &err, broken);
            sqlx::query("DELETE FROM toast_records WHERE id = ?")
                .bind(broken.id.as_bytes().as_slice())
                .execute(&raw)
                .await
                .unwrap();
        }
    }
}

/// Round trips whose reply is lost: bounded, and the store recovers.
#[cfg(any(feature = "postgres", feature = "redis"))]
mod lost_replies {
    use std::time::{Duration, Instant};

    use toast::Store;

    use super::support;

    /// Stalls `proxy` right after a `put` of a marked value was sent, checks
    /// that the put fails with `Error::Connection` within `bound`, resumes, and
    /// checks that the same store works again.
    async fn a_lost_reply_is_bounded_and_the_store_recovers(
        store: &Store,
        proxy: &support::proxy::Proxy,
        bound: Duration,
    ) {
        let before = store.put(&"before the stall".to_owned()).await.unwrap();
        let marker = format!("stall-here-{}", uuid::Uuid::new_v4());
        proxy.stall_after(marker.as_bytes());
        let started = Instant::now();
        let err = store.put(&marker).await.unwrap_err();
        let took = started.elapsed();
        assert!(proxy.is_stalled(), "the statement went out: {err:?}");
        assert!(err.is_connection(), "{err:?}");
        assert!(
            took < bound + Duration::from_secs(2),
            "{took:?} (bound {bound:?})"
        );
        proxy.resume();
        assert_eq!(
            store.get::<String>(&before).await.unwrap(),
            "before the stall",
            "the same store works again"
        );
        let after = store.put(&"after the stall".to_owned()).await.unwrap();
        assert_eq!(
            store.get::<String>(&after).await.unwrap(),
            "after the stall"
        );
    }

    #[cfg(feature = "postgres")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_postgres_statement_whose_reply_is_lost_fails_within_statement_timeout() {
        use support::postgres::{shared_url, with_option};
        use support::proxy::Proxy;

        let shared = url::Url::parse(&shared_url()).unwrap();
        let upstream = format!(
            "{}:{}",
            shared.host_str().unwrap(),
            shared.port().unwrap_or(5432)
        );
        let proxy = Proxy::start(upstream.parse().unwrap());
        let mut via = shared.clone();
        via.set_port(Some(proxy.port())).unwrap();
        // Without TLS, so that the proxy sees the statement go by.
        let url = with_option(
            via.as_str(),
            "statement_timeout=1&acquire_timeout=1&pool_max=2&sslmode=disable",
        );
        let store = Store::connect(&url)
            .await
            .unwrap()
            .tenant(support::unique("stall"));
        a_lost_reply_is_bounded_and_the_store_recovers(&store, &proxy, Duration::from_secs(1))
            .await;
    }

    #[cfg(feature = "redis")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_redis_command_whose_reply_is_lost_fails_within_the_timeout() {
        use support::proxy::Proxy;
        use support::redis::shared_url;

        let shared = url::Url::parse(&shared_url()).unwrap();
        let upstream = format!(
            "{}:{}",
            shared.host_str().unwrap(),
            shared.port().unwrap_or(6379)
        );
        let proxy = Proxy::start(upstream.parse().unwrap());
        let mut via = shared.clone();
        via.set_port(Some(proxy.port())).unwrap();
        let prefix = support::redis::unique_prefix();
        let url = format!("{via}?prefix={prefix}&ttl=600&timeout=0.5&connect_timeout=0.5");
        let store = Store::connect(&url).await.unwrap();
        a_lost_reply_is_bounded_and_the_store_recovers(&store, &proxy, Duration::from_secs(1))
            .await;
    }
}
