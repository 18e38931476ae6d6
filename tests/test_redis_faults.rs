//! The Redis backend when things go wrong, on throwaway `redis-server`s it
//! may kill, pause, restart or flush: unreachable servers, authentication,
//! outages, timeouts, lost scripts, TLS against a plain-text server.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use support::redis::{full_text, store_of, ThrowawayRedis};
use toast::backend::redis::RedisBackend;
use toast::{External, Store};

#[tokio::test]
async fn an_unreachable_server_is_a_prompt_connection_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let started = Instant::now();
    let err = Store::connect(&format!("redis://:hidden-pw-1@127.0.0.1:{port}/"))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    let text = full_text(&err);
    assert!(err.is_connection(), "{text}");
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    assert!(
        text.contains(&format!("is Redis running at 127.0.0.1:{port}?")),
        "{text}"
    );
    assert!(text.contains("redis://:***@127.0.0.1"), "{text}");
    assert!(!text.contains("hidden-pw-1"), "{text}");
}

#[tokio::test]
async fn the_right_password_connects_and_is_nowhere_in_debug() {
    let password = "pw-s3cret-4711";
    let server = ThrowawayRedis::start_with_password(password);

    // The right password works, and is nowhere in Debug.
    let store = Store::connect(&server.url()).await.unwrap();
    let r = store.put(&"authenticated".to_owned()).await.unwrap();
    assert_eq!(store.get::<String>(&r).await.unwrap(), "authenticated");
    assert!(!format!("{store:?}").contains(password));
    assert!(store.url().contains(":***@"), "{}", store.url());
}

#[tokio::test]
async fn a_wrong_password_is_a_connection_error_without_a_secret() {
    let password = "pw-s3cret-4711";
    let server = ThrowawayRedis::start_with_password(password);

    // A wrong password: a clear Connection error, no secret in it.
    let wrong = "wrong-pw-0815";
    let err = Store::connect(&server.url_with_credentials("", wrong))
        .await
        .unwrap_err();
    let text = full_text(&err);
    assert!(err.is_connection(), "{text}");
    assert!(text.contains("authentication failed"), "{text}");
    assert!(text.contains(":***@"), "{text}");
    assert!(!text.contains(wrong) && !text.contains(password), "{text}");
}

#[tokio::test]
async fn no_password_where_one_is_required_says_so() {
    let password = "pw-s3cret-4711";
    let server = ThrowawayRedis::start_with_password(password);

    // No password where one is required: says so.
    let err = Store::connect(&format!("redis://127.0.0.1:{}/", server.port()))
        .await
        .unwrap_err();
    assert!(err.is_connection(), "{err}");
    assert!(err.to_string().contains("requires a password"), "{err}");
}

#[tokio::test]
async fn an_acl_user_connects_with_its_own_password_and_not_with_a_wrong_one() {
    let password = "pw-s3cret-4711";
    let server = ThrowawayRedis::start_with_password(password);

    // An ACL user with its own password.
    let acl_password = "alice-pw-9876";
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "alice", "on"])
        .arg(format!(">{acl_password}"))
        .arg(&["~*", "&*", "+@all"])
        .query(&mut server.admin())
        .unwrap();
    let alice = Store::connect(&server.url_with_credentials("alice", acl_password))
        .await
        .unwrap();
    let r = alice.put(&"as alice".to_owned()).await.unwrap();
    assert_eq!(alice.get::<String>(&r).await.unwrap(), "as alice");
    assert_eq!(
        alice.url(),
        format!("redis://alice:***@127.0.0.1:{}/", server.port())
    );

    let err = Store::connect(&server.url_with_credentials("alice", "nope-5555"))
        .await
        .unwrap_err();
    let text = full_text(&err);
    assert!(err.is_connection(), "{text}");
    assert!(text.contains("authentication failed"), "{text}");
    assert!(
        !text.contains("nope-5555") && !text.contains(acl_password),
        "{text}"
    );
}

#[tokio::test]
async fn a_killed_server_fails_promptly_and_the_same_store_recovers_after_restart() {
    let mut server = ThrowawayRedis::start();
    let backend = RedisBackend::connect(&server.url()).await.unwrap();
    let bound = backend.operation_timeout();
    assert_eq!(bound, Duration::from_secs(7), "the documented default");
    let store = store_of(backend);
    let before = store.put(&"before".to_owned()).await.unwrap();

    server.kill();
    for attempt in 0..2 {
        let started = Instant::now();
        let err = store.put(&"during".to_owned()).await.unwrap_err();
        let elapsed = started.elapsed();
        assert!(
            err.is_connection(),
            "attempt {attempt}: {}",
            full_text(&err)
        );
        assert!(elapsed <= bound, "attempt {attempt} took {elapsed:?}");
        assert!(
            err.to_string()
                .contains(&format!("is Redis running at 127.0.0.1:{}", server.port())),
            "{err}"
        );
        let started = Instant::now();
        let err = store.get::<String>(&before).await.unwrap_err();
        assert!(err.is_connection(), "{err}");
        assert!(started.elapsed() <= bound);
    }

    server.restart();
    // The same store works again at once: the dead connection is noticed,
    // the manager reconnects, and the idempotent save is sent again.
    let after = store
        .put(&"after".to_owned())
        .await
        .unwrap_or_else(|e| panic!("the first put after the restart failed: {}", full_text(&e)));
    assert_eq!(store.get::<String>(&after).await.unwrap(), "after");
    // The server kept no data (--save ""): the old record is gone, not an error.
    assert!(store
        .get::<String>(&before)
        .await
        .unwrap_err()
        .is_not_found());
}

#[tokio::test]
async fn a_paused_server_times_out_instead_of_hanging() {
    let server = ThrowawayRedis::start();
    let url = format!("{}?timeout=0.3&connect_timeout=0.3", server.url());
    let backend = RedisBackend::connect(&url).await.unwrap();
    let bound = backend.operation_timeout();
    assert_eq!(bound, Duration::from_millis(600));
    let store = store_of(backend);
    let r = store.put(&"paused".to_owned()).await.unwrap();

    server.pause();
    let started = Instant::now();
    let err = store.get::<String>(&r).await.unwrap_err();
    let elapsed = started.elapsed();
    server.resume();
    assert!(err.is_connection(), "{}", full_text(&err));
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(
        elapsed < bound + Duration::from_millis(400),
        "took {elapsed:?}"
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match store.get::<String>(&r).await {
            Ok(v) => {
                assert_eq!(v, "paused");
                break;
            }
            Err(e) if e.is_connection() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the store did not recover: {}", full_text(&e)),
        }
    }
}

#[tokio::test]
async fn the_update_script_is_loaded_again_after_script_flush_and_restart() {
    let mut server = ThrowawayRedis::start();
    let store = Store::connect(&server.url()).await.unwrap();
    let mut value = External::new(vec![1u32]);
    toast::scope(store.clone(), toast::to_json(&value))
        .await
        .unwrap()
        .unwrap();
    let reference = value.reference().unwrap();
    let created = store.record(&reference).await.unwrap().created_at;

    // SCRIPT FLUSH: the next update is answered NOSCRIPT, loads the script
    // and succeeds.
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query(&mut server.admin())
        .unwrap();
    server.reset_stats();
    value.push(2);
    toast::scope(store.clone(), toast::to_json(&value))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(server.calls_of("script|load"), 1);
    let record = store.record(&reference).await.unwrap();
    assert_eq!(&record.data[..], b"[1,2]");
    assert_eq!(record.created_at, created);

    // A restarted server has no scripts (and, here, no data): the first
    // save goes through the reconnect, then an update loads the script again.
    server.restart();
    toast::scope(store.clone(), toast::to_json(&value))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("first save after the restart: {}", full_text(&e)));
    let created = store.record(&reference).await.unwrap().created_at;
    value.push(3);
    server.reset_stats();
    toast::scope(store.clone(), toast::to_json(&value))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("update after the restart: {}", full_text(&e)));
    assert_eq!(server.calls_of("script|load"), 1);
    let record = store.record(&reference).await.unwrap();
    assert_eq!(&record.data[..], b"[1,2,3]");
    assert_eq!(record.created_at, created);
}

/// `rediss://` really speaks TLS (the crypto provider is in place, no panic):
/// against a plain-text server the handshake fails as a Connection error.
#[cfg(feature = "redis-tls")]
#[tokio::test]
async fn rediss_to_a_plaintext_server_is_a_connection_error_not_a_panic() {
    let server = ThrowawayRedis::start();
    let started = Instant::now();
    let err = Store::connect(&format!(
        "rediss://:tls-pw-1@127.0.0.1:{}/?timeout=1&connect_timeout=1",
        server.port()
    ))
    .await
    .unwrap_err();
    let text = full_text(&err);
    assert!(err.is_connection(), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(!text.contains("tls-pw-1"), "{text}");
}
