//! Secrets in store URLs — the URL's password and every secret-looking
//! query option (`sslpassword`, `password`, `api_key`, `token`,
//! `client_secret`) — never appear in an error (its `Display`, its `Debug`
//! and those of its whole source chain) nor in the `Debug` of a
//! `ConnectUrl`, a `Store` or a backend, for every backend: unknown-option
//! errors, connection errors (an unused port on 127.0.0.1), malformed URLs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::error::Error as _;

use toast::backend::ConnectUrl;

use toast::Store;

/// The secrets the URLs below carry; none may ever be shown.
const SECRETS: [&str; 7] = [
    "PwInUrl7",
    "SslPw7",
    "QueryPw7",
    "ApiKey7",
    "Token7",
    "ClientSecret7",
    "Hash7secret",
];

/// Every text an error shows: Display and Debug of it and of each source.
fn texts(err: &toast::Error) -> Vec<String> {
    let mut out = vec![err.to_string(), format!("{err:?}")];
    let mut source = err.source();
    while let Some(s) = source {
        out.push(s.to_string());
        out.push(format!("{s:?}"));
        source = s.source();
    }
    out
}

fn assert_clean(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} shows {secret}: {text}");
    }
}

fn assert_error_clean(what: &str, err: &toast::Error) {
    for text in texts(err) {
        assert_clean(what, &text);
    }
}

/// `base` (a URL with a query or not) with each secret option alone, then
/// all of them at once.
fn with_each_secret_option(base: &str) -> Vec<String> {
    let sep = if base.contains('?') { '&' } else { '?' };
    let options = [
        "sslpassword=SslPw7",
        "password=QueryPw7",
        "api_key=ApiKey7",
        "token=Token7",
        "client_secret=ClientSecret7",
    ];
    let mut urls: Vec<String> = options.iter().map(|o| format!("{base}{sep}{o}")).collect();
    urls.push(format!("{base}{sep}{}", options.join("&")));
    urls
}

/// Connects `url`, which must fail; checks the error and returns it.
async fn connect_err(url: &str) -> toast::Error {
    if let Ok(parsed) = ConnectUrl::parse(url) {
        assert_clean(url, &format!("{parsed:?} {parsed}"));
    }
    match Store::connect(url).await {
        Ok(store) => panic!("{} connected: {store:?}", mask(url)),
        Err(err) => {
            assert_error_clean(&mask(url), &err);
            err
        }
    }
}

/// Malformed URLs of `scheme` (passwords holding an unencoded `#`, `/` or
/// `?`, a broken host): refused as malformed, or parsed with everything up
/// to the last `@` hidden; connecting fails (those that parse name
/// 127.0.0.1 and `port`, where nothing listens) and shows nothing either.
async fn malformed_urls_are_redacted(scheme: &str, port: u16) {
    for url in [
        format!("{scheme}://:Hash7secret#x@127.0.0.1:{port}/"),
        format!("{scheme}://user:a/Hash7secret@127.0.0.1:{port}/db"),
        format!("{scheme}://user:PwInUrl7@[::1/db?token=Token7"),
        format!("{scheme}://127.0.0.1:{port}#Hash7secret@127.0.0.1/db"),
        format!("{scheme}://127.0.0.1:{port}?Hash7secret@127.0.0.1/db"),
        format!("{scheme}://127.0.0.1:{port}/Hash7secret@127.0.0.1/db"),
    ] {
        match ConnectUrl::parse(&url) {
            Err(err) => {
                assert!(err.is_validation(), "{}: {err:?}", mask(&url));
                assert!(err.to_string().contains("malformed store URL"), "{err}");
                assert_error_clean(&mask(&url), &err);
            }
            Ok(parsed) => {
                let shown = parsed.to_string();
                assert!(shown.starts_with(&format!("{scheme}://***@")), "{shown}");
                assert_clean(&mask(&url), &format!("{parsed:?} {shown}"));
            }
        }
        connect_err(&url).await;
    }
}

/// `url` with its secrets replaced, for failure messages.
fn mask(url: &str) -> String {
    SECRETS
        .iter()
        .fold(url.to_owned(), |u, s| u.replace(s, "<secret>"))
}

#[tokio::test]
async fn memory_urls_never_show_secrets() {
    for url in with_each_secret_option("memory://name") {
        let err = connect_err(&url).await;
        assert!(err.is_validation(), "{err:?}");
        assert!(err.to_string().contains("unknown option"), "{err}");
    }
    for url in [
        "memory://user:PwInUrl7@name",
        "memory://127.0.0.1:1/Hash7secret@name",
    ] {
        let err = connect_err(url).await;
        assert!(err.is_validation(), "{err:?}");
    }
    malformed_urls_are_redacted("memory", support::postgres::free_port()).await;
    let store = Store::connect("memory://plain").await.unwrap();
    assert!(format!("{store:?} {:?}", store.backend()).contains("plain"));
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_urls_never_show_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.db");
    let base = format!("sqlite://{}", file.display());
    for url in with_each_secret_option(&base) {
        let err = connect_err(&url).await;
        assert!(err.is_validation(), "{err:?}");
        assert!(err.to_string().contains("unknown option"), "{err}");
    }
    for url in [
        format!("sqlite://user:PwInUrl7@{}", file.display()),
        "sqlite://127.0.0.1:1/Hash7secret@s.db".to_owned(),
    ] {
        let err = connect_err(&url).await;
        assert!(err.is_validation(), "{err:?}");
    }
    // A file that cannot be created: a connection error.
    let err = connect_err("sqlite:///nonexistent-dir-for-toast/x.db").await;
    assert!(err.is_connection(), "{err:?}");
    malformed_urls_are_redacted("sqlite", support::postgres::free_port()).await;
    let store = Store::connect(&base).await.unwrap();
    assert_clean("store", &format!("{store:?} {:?}", store.backend()));
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_urls_never_show_secrets() {
    use support::postgres::{free_port, shared_url};

    let port = free_port();
    for scheme in ["postgres", "postgresql"] {
        let base = format!("{scheme}://app:PwInUrl7@127.0.0.1:{port}/app?connect_timeout=2");
        for url in with_each_secret_option(&base) {
            let err = connect_err(&url).await;
            // `password` is the driver's: then the unused port refuses.
            if url.contains("password=QueryPw7") && !url.contains("token") {
                assert!(err.is_connection(), "{err:?}");
                assert!(err.to_string().contains("connection refused"), "{err}");
            } else {
                assert!(err.is_validation(), "{err:?}");
                assert!(err.to_string().contains("unknown option"), "{err}");
            }
        }
        let err = connect_err(&base).await;
        assert!(err.is_connection(), "{err:?}");
        // The password `{port}/Hash7secret`, unencoded: it parses, with host
        // 127.0.0.1 and the unused port; nothing of it is shown.
        let err = connect_err(&format!(
            "{scheme}://127.0.0.1:{port}/Hash7secret@db.invalid/app?connect_timeout=2"
        ))
        .await;
        assert!(err.is_connection(), "{err:?}");
        malformed_urls_are_redacted(scheme, port).await;
    }

    // Connected, with the password in the URL and as an option (the shared
    // server trusts local connections, so any password is accepted).
    let mut url = url::Url::parse(&shared_url()).unwrap();
    url.set_password(Some("PwInUrl7")).unwrap();
    url.query_pairs_mut().append_pair("password", "QueryPw7");
    let url = url.to_string();
    let parsed = ConnectUrl::parse(&url).unwrap();
    assert_clean("ConnectUrl", &format!("{parsed:?} {parsed}"));
    let store = Store::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("the shared PostgreSQL server is not usable: {e}"));
    assert_clean("store", &format!("{store:?} {:?}", store.backend()));
    let backend = toast::backend::postgres::PostgresBackend::connect(&parsed)
        .await
        .unwrap();
    assert_clean(
        "backend",
        &format!(
            "{backend:?} {:?} {:?}",
            backend.pool(),
            backend.pool().acquire().await
        ),
    );
    let r = store.put(&"fine".to_owned()).await.unwrap();
    assert_eq!(store.get::<String>(&r).await.unwrap(), "fine");
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_urls_never_show_secrets() {
    use support::postgres::free_port;
    use support::redis::ThrowawayRedis;

    let port = free_port();
    for scheme in ["redis", "rediss"] {
        let base = format!("{scheme}://:PwInUrl7@127.0.0.1:{port}/0?connect_timeout=1&timeout=1");
        for url in with_each_secret_option(&base) {
            let err = connect_err(&url).await;
            assert!(err.is_validation(), "{err:?}");
            assert!(err.to_string().contains("unknown option"), "{err}");
        }
        let err = connect_err(&base).await;
        if scheme == "redis" || cfg!(feature = "redis-tls") {
            assert!(err.is_connection(), "{err:?}");
        }
        let err = connect_err(&format!(
            "{scheme}://user:PwInUrl7@127.0.0.1:{port}/0?connect_timeout=1&timeout=1"
        ))
        .await;
        if scheme == "redis" || cfg!(feature = "redis-tls") {
            assert!(err.is_connection(), "{err:?}");
        }
        malformed_urls_are_redacted(scheme, port).await;
    }

    // A server that wants a password: the wrong one, then the right one.
    let server = ThrowawayRedis::start_with_password("PwInUrl7");
    let wrong = format!("redis://:Token7@127.0.0.1:{}/0", server.port());
    let err = connect_err(&wrong).await;
    assert!(err.is_connection(), "{err:?}");
    let url = server.url();
    assert!(url.contains("PwInUrl7"), "{}", mask(&url));
    let store = Store::connect(&url).await.unwrap();
    assert_clean("store", &format!("{store:?} {:?}", store.backend()));
    let backend = toast::backend::redis::RedisBackend::connect(&url)
        .await
        .unwrap();
    assert_clean("backend", &format!("{backend:?} {}", backend.url()));
    let r = store.put(&"fine".to_owned()).await.unwrap();
    assert_eq!(store.get::<String>(&r).await.unwrap(), "fine");
}
