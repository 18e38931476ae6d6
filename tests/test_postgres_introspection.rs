//! The PostgreSQL backend seen from the server: the plans of its statements
//! (`EXPLAIN`) and the statements a throwaway server logs.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::postgres::{
    connect, drop_schema, nested, record, shared_url, unique_schema, with_option, TestResult,
    ThrowawayPostgres, Top,
};
use toast::backend::{Key, ListQuery, Record};
use toast::Backend;
use uuid::Uuid;

/// A backend with one connection on a schema of its own (named from
/// `prefix`), and the shared URL and that schema, to drop afterwards.
async fn one_connection_backend(
    prefix: &str,
) -> Result<(String, String, toast::backend::postgres::PostgresBackend), Box<dyn std::error::Error>>
{
    let url = shared_url();
    let schema = unique_schema(prefix);
    let store_url = with_option(&url, &format!("schema={schema}&pool_max=1"));
    let backend = toast::backend::postgres::PostgresBackend::connect(
        &toast::backend::ConnectUrl::parse(&store_url)?,
    )
    .await?;
    Ok((url, schema, backend))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_probe_the_primary_key_whatever_the_plan_and_statistics() -> TestResult {
    // One connection, so the session setting below holds for every load.
    let (url, schema, backend) = one_connection_backend("toast_plans").await?;
    // 100 tenants of 50 rows, analyzed (every tenant in the statistics'
    // most-common list), then a big tenant the statistics do not know yet
    // (autovacuum may be off or not have run): as a constant it is costed
    // at ~1 row, where the listing index tied with the primary key.
    let records: Vec<Record> = (0..5_000)
        .map(|i| {
            record(
                &format!("t{}", i % 100),
                "C",
                Uuid::new_v4(),
                &i.to_string(),
            )
        })
        .collect();
    backend.save(&records).await?;
    sqlx::query(&format!("ANALYZE \"{schema}\".records"))
        .execute(backend.pool())
        .await?;
    let big: Vec<Record> = (0..500)
        .map(|i| record("big", "C", Uuid::new_v4(), &i.to_string()))
        .collect();
    backend.save(&big).await?;
    sqlx::query("SET plan_cache_mode = force_generic_plan")
        .execute(backend.pool())
        .await?;

    let one_class: Vec<Key> = big.iter().map(|r| r.key.clone()).collect();
    let mixed: Vec<Key> = records[..20].iter().map(|r| r.key.clone()).collect();
    for _ in 0..8 {
        assert_eq!(backend.load(&one_class).await?.len(), 500);
        assert_eq!(backend.load(&mixed).await?.len(), 20);
    }

    assert_loads_probe_the_primary_key(&backend, &["t7", "big", "unknown"]).await?;
    backend.close().await?;
    drop_schema(&url, &schema).await;
    Ok(())
}

/// Both load statements `backend` has prepared, `EXPLAIN`ed under generic
/// and custom plans for each of `tenants` (class `C`), use only the primary
/// key. `backend` must have one connection and have run both loads.
async fn assert_loads_probe_the_primary_key(
    backend: &toast::backend::postgres::PostgresBackend,
    tenants: &[&str],
) -> TestResult {
    let mut conn = backend.pool().acquire().await?;
    let statements: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, statement FROM pg_prepared_statements \
         WHERE strpos(statement, $1) > 0 ORDER BY name",
    )
    .bind("records AS s")
    .fetch_all(&mut *conn)
    .await?;
    assert_eq!(statements.len(), 2, "{statements:?}");
    for mode in ["force_generic_plan", "force_custom_plan"] {
        sqlx::query(&format!("SET plan_cache_mode = {mode}"))
            .execute(&mut *conn)
            .await?;
        for (name, statement) in &statements {
            for tenant in tenants {
                let args = if statement.contains("$1::text[]") {
                    format!("'{{{tenant}}}', '{{C}}', ARRAY[gen_random_uuid(), gen_random_uuid()]")
                } else {
                    format!("'{tenant}', 'C', ARRAY[gen_random_uuid(), gen_random_uuid()]")
                };
                let plan: Vec<String> =
                    sqlx::query_scalar(&format!("EXPLAIN EXECUTE {name}({args})"))
                        .fetch_all(&mut *conn)
                        .await?;
                let plan = plan.join("\n");
                assert!(
                    plan.contains("records_pkey") && !plan.contains("records_listing"),
                    "{mode} {tenant}: {statement}\n{plan}"
                );
                // One tenant and class: the ids are the key's leading index
                // condition, not a filter over the class.
                if !statement.contains("$1::text[]") {
                    assert!(
                        plan.contains("Index Cond: ((id = ANY") && !plan.contains("Filter"),
                        "{mode} {tenant}: {statement}\n{plan}"
                    );
                }
            }
        }
    }
    sqlx::query("RESET plan_cache_mode")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_from_a_table_never_analyzed_probe_the_primary_key() -> TestResult {
    let (url, schema, backend) = one_connection_backend("toast_no_stats").await?;
    // The state of a new table (and of any table where autovacuum is off):
    // rows written and deleted, then a class of 1,000, no ANALYZE. Version
    // 1's listing index, on (tenant, class_name, created_at, id), cost the
    // same as the primary key there and was chosen, so each probe read the
    // whole class.
    let gone: Vec<Record> = (0..1_000)
        .map(|i| record("old", "C", Uuid::new_v4(), &i.to_string()))
        .collect();
    backend.save(&gone).await?;
    let gone: Vec<Key> = gone.into_iter().map(|r| r.key).collect();
    assert_eq!(backend.delete(&gone).await?, 1_000);
    let records: Vec<Record> = (0..1_000)
        .map(|i| record("fresh", "C", Uuid::new_v4(), &i.to_string()))
        .collect();
    backend.save(&records).await?;
    let analyzed: Option<i64> = sqlx::query_scalar(
        "SELECT coalesce(analyze_count + autoanalyze_count, 0) FROM pg_stat_user_tables \
         WHERE schemaname = $1 AND relname = 'records'",
    )
    .bind(&schema)
    .fetch_optional(backend.pool())
    .await?;
    let one_class: Vec<Key> = records.iter().map(|r| r.key.clone()).collect();
    let mixed: Vec<Key> = vec![one_class[0].clone(), Key::new("other", "D", Uuid::new_v4())];
    assert_eq!(backend.load(&one_class).await?.len(), 1_000);
    assert_eq!(backend.load(&mixed).await?.len(), 1);
    assert_loads_probe_the_primary_key(&backend, &["fresh", "unknown"]).await?;
    // Listing finds its index: the statement's expression is the index's.
    let listed = backend
        .list(&ListQuery {
            tenant: "fresh".into(),
            class_name: "C".into(),
            offset: 0,
            limit: 10,
        })
        .await?;
    assert_eq!(listed.len(), 10);
    let mut conn = backend.pool().acquire().await?;
    let (name,): (String,) = sqlx::query_as(
        "SELECT name FROM pg_prepared_statements WHERE strpos(statement, 'ORDER BY created_at') > 0",
    )
    .fetch_one(&mut *conn)
    .await?;
    let plan: Vec<String> =
        sqlx::query_scalar(&format!("EXPLAIN EXECUTE {name}('fresh', 'C', 10, 0)"))
            .fetch_all(&mut *conn)
            .await?;
    let plan = plan.join("\n");
    assert!(plan.contains("records_listing"), "{plan}");
    drop(conn);
    // Where autovacuum is on it may have analyzed the table meanwhile; the
    // plans above must hold either way, and on this machine's server
    // (autovacuum off) the table is known to be without statistics.
    if analyzed == Some(0) {
        let reltuples: f32 = sqlx::query_scalar(
            "SELECT reltuples FROM pg_class WHERE oid = (quote_ident($1) || '.records')::regclass",
        )
        .bind(&schema)
        .fetch_one(backend.pool())
        .await?;
        assert!(reltuples <= 0.0, "reltuples {reltuples}");
    }
    backend.close().await?;
    drop_schema(&url, &schema).await;
    Ok(())
}

/// Counts the executions of toast's statements on one table in a server log.
fn executions(log: &str, table: &str, verb: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("LOG:  execute") && l.contains(table) && l.contains(verb))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_log_shows_one_statement_per_flush_and_one_query_per_level() -> TestResult {
    let server = ThrowawayPostgres::start_new();
    let schema = unique_schema("toast_log");
    let store = connect(&with_option(
        &server.url("postgres"),
        &format!("schema={schema}"),
    ))
    .await;
    let table = format!("\"{schema}\".records");

    let doc = nested("log");
    let mark = server.log().len();
    let json = toast::scope(store.clone(), toast::to_json(&doc)).await??;
    let log = server.log();
    assert_eq!(
        executions(&log[mark..], &table, "INSERT INTO"),
        1,
        "one statement for the whole flush:\n{}",
        &log[mark..]
    );
    assert_eq!(store.stats().save_calls, 1);

    let mark = server.log().len();
    let back: Top = toast::scope(store.clone(), toast::from_json(&json)).await??;
    assert_eq!(back, doc);
    let log = server.log();
    assert_eq!(
        executions(&log[mark..], &table, "SELECT"),
        3,
        "one query per nesting level:\n{}",
        &log[mark..]
    );
    assert_eq!(store.stats().load_calls, 3);
    assert_eq!(executions(&log[mark..], &table, "INSERT INTO"), 0);
    Ok(())
}
