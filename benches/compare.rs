//! toast beside its raw-driver baseline, every workload of BENCH.md, one table.
//!
//! ```text
//! cargo bench --bench compare --features postgres,redis -- \
//!     [--backend memory|sqlite|postgres|redis|all] [--json FILE] [--only write_1k,single,…]
//! ```
//!
//! Each toast figure is measured in the same run as its baseline, the two
//! interleaved rep by rep (baseline first on even reps, toast first on odd
//! ones) so that drift on a noisy machine hits both alike; the figure is the
//! median of the reps after a warm-up, and `ratio` = toast ÷ baseline.
//!
//! Baselines: the CPU part is plain `serde_json` of the same document with the
//! items inline; the I/O part is the raw driver (the crates the backends use,
//! the same pool sizes) writing or reading the same payload bytes in one
//! batch. `round_trips` is `save_calls + load_calls` from `Store::stats()` per
//! toast operation.
//!
//! `big_doc` runs in child processes (this binary re-executed with
//! `TOAST_BENCH_CHILD=toast|baseline`), one per side and backend, each
//! reporting its own peak RSS (`VmHWM`), so neither side's memory counts
//! against the other.
//!
//! A backend that is not compiled in, not implemented yet, or whose server is
//! unreachable is reported as `skipped: <reason>`, never as a zero.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

type R<T> = Result<T, String>;
type BoxFut<'a, T> = Pin<Box<dyn Future<Output = R<T>> + Send + 'a>>;

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

#[cfg(feature = "postgres")]
const POSTGRES_FALLBACK: &str = "postgres://postgres@127.0.0.1:5432/test";
#[cfg(feature = "redis")]
const REDIS_FALLBACK: &str = "redis://127.0.0.1:6379/";
/// Pool sizes given to toast and to the baseline alike.
#[cfg(feature = "sqlite")]
const SQLITE_POOL: u32 = 4;
#[cfg(feature = "postgres")]
const POSTGRES_POOL: u32 = 10;

const ITEM_BYTES: usize = 1024;
const BIG_ITEM_BYTES: usize = 10 * 1024;
const BIG_ITEMS: usize = 10_000;
/// Child processes per side for `big_doc`.
const BIG_DOC_REPS: usize = 3;
const SINGLE_SAMPLES: usize = 2_000;
const TASKS: usize = 32;
const PER_TASK: usize = 500;

// ---------------------------------------------------------------- documents

/// The ~1 KiB item: an id, a name, a few tags, a text body.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Item {
    id: u64,
    name: String,
    tags: Vec<String>,
    body: String,
}

const WORDS: &[&str] = &[
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
    "et",
    "dolore",
    "magna",
    "aliqua",
];

/// An item whose JSON is `size` bytes long (its body padded to fit).
fn make_item(i: u64, size: usize) -> Item {
    let mut item = Item {
        id: i,
        name: format!("item-{i:08}-r{:08}", 0),
        tags: vec![
            "claim-check".to_owned(),
            format!("shard-{}", i % 7),
            format!("group-{}", i % 13),
        ],
        body: String::new(),
    };
    let overhead = serde_json::to_vec(&item).map(|v| v.len()).unwrap_or(0);
    let want = size.saturating_sub(overhead);
    let mut body = String::with_capacity(want + 16);
    let mut w = usize::try_from(i).unwrap_or(0);
    while body.len() < want {
        body.push_str(WORDS[w % WORDS.len()]);
        body.push(' ');
        w = w.wrapping_mul(31).wrapping_add(7);
    }
    body.truncate(want);
    item.body = body;
    item
}

#[derive(Serialize, Deserialize)]
struct ExtItem(#[serde(with = "toast::external")] Item);

/// `write_1k` / `read_1k`: 1,000 items, each stored out of line.
#[derive(Serialize, Deserialize)]
struct Doc {
    title: String,
    items: Vec<ExtItem>,
}

/// The same document with the items inline (the plain-serde baseline).
#[derive(Serialize, Deserialize)]
struct InlineDoc {
    title: String,
    items: Vec<Item>,
}

#[derive(Serialize, Deserialize)]
struct Section {
    name: String,
    items: Vec<ExtItem>,
}

#[derive(Serialize, Deserialize)]
struct ExtSection(#[serde(with = "toast::external")] Section);

#[derive(Serialize, Deserialize)]
struct Group {
    name: String,
    sections: Vec<ExtSection>,
}

#[derive(Serialize, Deserialize)]
struct ExtGroup(#[serde(with = "toast::external")] Group);

/// `nested_3`: 10 groups → 100 sections → 1,000 items, externals three deep.
#[derive(Serialize, Deserialize)]
struct NestedDoc {
    title: String,
    groups: Vec<ExtGroup>,
}

#[derive(Serialize, Deserialize)]
struct InlineSection {
    name: String,
    items: Vec<Item>,
}

#[derive(Serialize, Deserialize)]
struct InlineGroup {
    name: String,
    sections: Vec<InlineSection>,
}

#[derive(Serialize, Deserialize)]
struct InlineNested {
    title: String,
    groups: Vec<InlineGroup>,
}

/// The `big_doc` baseline's document: ids in place of the items.
#[derive(Serialize, Deserialize)]
struct IdDoc {
    title: String,
    ids: Vec<Uuid>,
}

/// `read_1k`'s claim check by hand: the document with references in place
/// of the items, as toast writes it, resolved without toast.
#[derive(Serialize, Deserialize)]
struct ClaimDoc<'a> {
    title: String,
    #[serde(borrow)]
    items: Vec<ClaimRef<'a>>,
}

impl ClaimDoc<'static> {
    /// The document of references to `payloads`, each an `Item`.
    fn of(title: &str, payloads: &[(Uuid, Bytes)]) -> Self {
        ClaimDoc {
            title: title.to_owned(),
            items: payloads
                .iter()
                .map(|(id, _)| ClaimRef {
                    class_name: "Item",
                    id: *id,
                })
                .collect(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct ClaimRef<'a> {
    class_name: &'a str,
    id: Uuid,
}

/// Everything the workloads share, built once per backend.
struct Fixture {
    items: Vec<Item>,
    payloads: Vec<(Uuid, Bytes)>,
    doc: Doc,
    inline_json: String,
    /// [`ClaimDoc`] of `payloads`' ids.
    claim_json: String,
    nested: NestedDoc,
    nested_inline_json: String,
}

/// Each item's JSON under a new id: what a baseline writes.
fn payloads_of(items: &[Item]) -> R<Vec<(Uuid, Bytes)>> {
    items
        .iter()
        .map(|it| {
            Ok((
                Uuid::new_v4(),
                Bytes::from(serde_json::to_vec(it).map_err(err)?),
            ))
        })
        .collect()
}

impl Fixture {
    fn new() -> R<Self> {
        let items: Vec<Item> = (0..1000).map(|i| make_item(i, ITEM_BYTES)).collect();
        let payloads = payloads_of(&items)?;
        let doc = Doc {
            title: "one thousand items".into(),
            items: items.iter().cloned().map(ExtItem).collect(),
        };
        let inline_json = serde_json::to_string(&InlineDoc {
            title: doc.title.clone(),
            items: items.clone(),
        })
        .map_err(err)?;
        let claim_json =
            serde_json::to_string(&ClaimDoc::of(&doc.title, &payloads)).map_err(err)?;
        let mut groups = Vec::new();
        let mut inline_groups = Vec::new();
        for g in 0..10 {
            let mut sections = Vec::new();
            let mut inline_sections = Vec::new();
            for s in 0..10 {
                let slice = &items[(g * 100 + s * 10)..(g * 100 + s * 10 + 10)];
                sections.push(ExtSection(Section {
                    name: format!("section {g}.{s}"),
                    items: slice.iter().cloned().map(ExtItem).collect(),
                }));
                inline_sections.push(InlineSection {
                    name: format!("section {g}.{s}"),
                    items: slice.to_vec(),
                });
            }
            groups.push(ExtGroup(Group {
                name: format!("group {g}"),
                sections,
            }));
            inline_groups.push(InlineGroup {
                name: format!("group {g}"),
                sections: inline_sections,
            });
        }
        let nested = NestedDoc {
            title: "three levels".into(),
            groups,
        };
        let nested_inline_json = serde_json::to_string(&InlineNested {
            title: nested.title.clone(),
            groups: inline_groups,
        })
        .map_err(err)?;
        Ok(Fixture {
            items,
            payloads,
            doc,
            inline_json,
            claim_json,
            nested,
            nested_inline_json,
        })
    }
}

// ---------------------------------------------------------------- raw drivers

/// The baseline: the same driver crates as the backends, used directly.
enum Raw {
    /// A `HashMap` of the same bytes, behind one lock like the memory backend's.
    Memory(RwLock<HashMap<Uuid, Bytes>>),
    /// `shaped`: the table has toast's shape (its columns, its primary key on
    /// tenant, class and id, and its listing index), so that an aside can
    /// show what that shape costs the same statements.
    #[cfg(feature = "sqlite")]
    Sqlite {
        pool: sqlx::SqlitePool,
        shaped: bool,
        /// As long as toast's tenant in the bench (`bench-<uuid>`): the same
        /// key bytes in every index.
        tenant: String,
    },
    #[cfg(feature = "postgres")]
    Postgres {
        pool: sqlx::PgPool,
        /// The baseline's own schema (quoted), which holds `table`.
        schema: String,
        table: String,
        tenant: String,
        /// As [`Raw::Sqlite`]'s.
        shaped: bool,
    },
    #[cfg(feature = "redis")]
    Redis {
        conn: redis::aio::ConnectionManager,
        prefix: String,
    },
}

/// Toast's SQLite migrations, for the baseline on a table of toast's shape.
#[cfg(feature = "sqlite")]
const SQLITE_MIGRATIONS: [&str; 2] = [
    include_str!("../migrations/sqlite/0001_records.sql"),
    include_str!("../migrations/sqlite/0002_rowid_table.sql"),
];

/// Toast's PostgreSQL migrations (`{schema}` to be replaced), likewise.
#[cfg(feature = "postgres")]
const POSTGRES_MIGRATIONS: [&str; 3] = [
    include_str!("../migrations/postgres/0001_records.sql"),
    include_str!("../migrations/postgres/0002_listing_by_expression.sql"),
    include_str!("../migrations/postgres/0003_key_by_id.sql"),
];

#[cfg(feature = "sqlite")]
fn sqlite_raw_table(shaped: bool) -> &'static str {
    if shaped {
        // The name toast's migrations give it.
        "toast_records"
    } else {
        "raw_records"
    }
}

/// The class condition a shaped table's key lookups need (its primary key
/// starts with tenant and class).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn class_condition(shaped: bool) -> &'static str {
    if shaped {
        " AND class_name = 'Item'"
    } else {
        ""
    }
}

/// Microseconds since the epoch, for the shaped SQLite baseline's timestamps.
#[cfg(feature = "sqlite")]
fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Rows per statement in the SQLite baseline: 3 parameters each, 7 shaped
/// (under SQLite's 32,766).
#[cfg(feature = "sqlite")]
fn sqlite_raw_chunk(shaped: bool) -> usize {
    if shaped {
        4_000
    } else {
        10_000
    }
}

/// `{verb} FROM` the SQLite baseline table the rows of `tenant` with these ids.
#[cfg(feature = "sqlite")]
fn sqlite_by_ids<'a>(
    verb: &str,
    shaped: bool,
    tenant: &'a str,
    ids: &[Uuid],
) -> sqlx::QueryBuilder<'a, sqlx::Sqlite> {
    let table = sqlite_raw_table(shaped);
    let mut qb = sqlx::QueryBuilder::new(format!("{verb} FROM {table} WHERE tenant = "));
    qb.push_bind(tenant)
        .push(class_condition(shaped))
        .push(" AND id IN (");
    let mut sep = qb.separated(", ");
    for id in ids {
        sep.push_bind(id.as_bytes().to_vec());
    }
    qb.push(")");
    qb
}

/// One multi-row upsert of `chunk` into the SQLite baseline table.
#[cfg(feature = "sqlite")]
fn sqlite_upsert<'a>(
    chunk: &'a [(Uuid, Bytes)],
    shaped: bool,
    tenant: &'a str,
) -> sqlx::QueryBuilder<'a, sqlx::Sqlite> {
    let table = sqlite_raw_table(shaped);
    if !shaped {
        let mut qb = sqlx::QueryBuilder::new(format!("INSERT INTO {table} (tenant, id, data) "));
        qb.push_values(chunk, |mut row, (id, data)| {
            row.push_bind(tenant)
                .push_bind(id.as_bytes().as_slice())
                .push_bind(data.as_ref());
        });
        qb.push(" ON CONFLICT (tenant, id) DO UPDATE SET data = excluded.data");
        return qb;
    }
    let mut qb = sqlx::QueryBuilder::new(format!(
        "INSERT INTO {table} \
         (tenant, class_name, id, data, schema_version, created_at, updated_at) "
    ));
    let now = now_micros();
    qb.push_values(chunk, |mut row, (id, data)| {
        row.push_bind(tenant)
            .push_bind("Item")
            .push_bind(id.as_bytes().as_slice())
            .push_bind(data.as_ref())
            .push_bind(1_i64)
            .push_bind(now)
            .push_bind(now);
    });
    qb.push(
        " ON CONFLICT (tenant, class_name, id) DO UPDATE SET \
         data = excluded.data, updated_at = excluded.updated_at",
    );
    qb
}

impl Raw {
    #[cfg(feature = "sqlite")]
    async fn sqlite(path: &Path, shaped: bool) -> R<Raw> {
        use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(SQLITE_POOL)
            .connect_with(options)
            .await
            .map_err(err)?;
        let ddl = if shaped {
            // Toast's own migrations, in a file of their own: the table and
            // index exactly as toast's backend leaves them.
            SQLITE_MIGRATIONS.concat()
        } else {
            format!(
                "CREATE TABLE IF NOT EXISTS {} (tenant TEXT NOT NULL, id BLOB NOT NULL, \
                 data BLOB NOT NULL, PRIMARY KEY (tenant, id))",
                sqlite_raw_table(false)
            )
        };
        sqlx::Executor::execute(&pool, ddl.as_str())
            .await
            .map_err(err)?;
        Ok(Raw::Sqlite {
            pool,
            shaped,
            tenant: format!("bench-{}", Uuid::new_v4()),
        })
    }

    #[cfg(feature = "postgres")]
    async fn postgres(url: &str, shaped: bool) -> R<Raw> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(POSTGRES_POOL)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(err)?;
        // A schema of its own, dropped at the end ([`Raw::cleanup`]).
        let schema = format!("\"toast_bench_raw_{}\"", Uuid::new_v4().simple());
        let (ddl, table) = if shaped {
            // Toast's own migrations: the table and index exactly as toast's
            // backend leaves them.
            let ddl = POSTGRES_MIGRATIONS.concat().replace("{schema}", &schema);
            (ddl, format!("{schema}.records"))
        } else {
            let table = format!("{schema}.raw_records");
            let ddl = format!(
                "CREATE TABLE {table} (tenant text NOT NULL, id uuid NOT NULL, \
                 data jsonb NOT NULL, PRIMARY KEY (tenant, id))"
            );
            (ddl, table)
        };
        let ddl = format!("CREATE SCHEMA {schema}; {ddl}");
        sqlx::Executor::execute(&pool, ddl.as_str())
            .await
            .map_err(err)?;
        Ok(Raw::Postgres {
            pool,
            schema,
            table,
            tenant: format!("bench-{}", Uuid::new_v4()),
            shaped,
        })
    }

    #[cfg(feature = "redis")]
    async fn redis(url: &str) -> R<Raw> {
        let client = redis::Client::open(url).map_err(err)?;
        // The driver's default response timeout (500 ms) is shorter than the
        // one 100 MiB pipeline of big_doc takes on a busy machine; toast's
        // backend allows 5 s per round trip, so the baseline gets the same.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(Some(Duration::from_secs(5)));
        let conn = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(err)?;
        Ok(Raw::Redis {
            conn,
            prefix: format!("toast-bench:{}:", Uuid::new_v4()),
        })
    }

    /// Writes (upserts) every payload in one batch.
    async fn write(&self, batch: &[(Uuid, Bytes)]) -> R<()> {
        match self {
            Raw::Memory(map) => {
                let mut map = map.write().map_err(err)?;
                for (id, data) in batch {
                    map.insert(*id, data.clone());
                }
                Ok(())
            }
            #[cfg(feature = "sqlite")]
            Raw::Sqlite {
                pool,
                shaped,
                tenant,
            } => {
                let build = |chunk| sqlite_upsert(chunk, *shaped, tenant);
                let rows = sqlite_raw_chunk(*shaped);
                if batch.len() <= rows {
                    // One statement is one transaction of its own.
                    build(batch).build().execute(pool).await.map_err(err)?;
                } else {
                    let mut tx = pool.begin().await.map_err(err)?;
                    for chunk in batch.chunks(rows) {
                        build(chunk).build().execute(&mut *tx).await.map_err(err)?;
                    }
                    tx.commit().await.map_err(err)?;
                }
                Ok(())
            }
            #[cfg(feature = "postgres")]
            Raw::Postgres {
                pool,
                table,
                tenant,
                shaped,
                ..
            } => {
                let ids: Vec<String> = batch.iter().map(|(id, _)| id.to_string()).collect();
                let data = batch
                    .iter()
                    .map(|(_, d)| std::str::from_utf8(d).map_err(err))
                    .collect::<R<Vec<&str>>>()?;
                let sql = if *shaped {
                    // Toast's columns; a timestamp per row from the server.
                    format!(
                        "INSERT INTO {table} \
                         (tenant, class_name, id, data, schema_version, created_at, updated_at) \
                         SELECT $1, 'Item', u.id::uuid, u.data::jsonb, 1, \
                         clock_timestamp(), clock_timestamp() \
                         FROM unnest($2::text[], $3::text[]) AS u(id, data) \
                         ON CONFLICT (tenant, class_name, id) DO UPDATE SET \
                         data = excluded.data, updated_at = excluded.updated_at"
                    )
                } else {
                    format!(
                        "INSERT INTO {table} (tenant, id, data) \
                         SELECT $1, u.id::uuid, u.data::jsonb \
                         FROM unnest($2::text[], $3::text[]) AS u(id, data) \
                         ON CONFLICT (tenant, id) DO UPDATE SET data = excluded.data"
                    )
                };
                sqlx::query(&sql)
                    .bind(tenant)
                    .bind(ids)
                    .bind(data)
                    .execute(pool)
                    .await
                    .map_err(err)?;
                Ok(())
            }
            #[cfg(feature = "redis")]
            Raw::Redis { conn, prefix } => {
                let mut conn = conn.clone();
                if let [(id, data)] = batch {
                    redis::cmd("SET")
                        .arg(format!("{prefix}{id}"))
                        .arg(data.as_ref())
                        .query_async::<()>(&mut conn)
                        .await
                        .map_err(err)?;
                    return Ok(());
                }
                let mut pipe = redis::pipe();
                for (id, data) in batch {
                    pipe.cmd("SET")
                        .arg(format!("{prefix}{id}"))
                        .arg(data.as_ref())
                        .ignore();
                }
                pipe.query_async::<()>(&mut conn).await.map_err(err)?;
                Ok(())
            }
        }
    }

    /// Reads the payloads of `ids` in one batch; fails if one is missing.
    async fn read(&self, ids: &[Uuid]) -> R<Vec<Bytes>> {
        let out: Vec<Bytes> = match self {
            Raw::Memory(map) => {
                let map = map.read().map_err(err)?;
                ids.iter().filter_map(|id| map.get(id).cloned()).collect()
            }
            #[cfg(feature = "sqlite")]
            Raw::Sqlite {
                pool,
                shaped,
                tenant,
            } => {
                use sqlx::Row;
                let mut out = Vec::with_capacity(ids.len());
                for chunk in ids.chunks(sqlite_raw_chunk(*shaped)) {
                    let mut qb = sqlite_by_ids("SELECT data", *shaped, tenant, chunk);
                    let rows = qb.build().fetch_all(pool).await.map_err(err)?;
                    for row in &rows {
                        let data: Vec<u8> = row.try_get(0).map_err(err)?;
                        out.push(Bytes::from(data));
                    }
                }
                out
            }
            #[cfg(feature = "postgres")]
            Raw::Postgres {
                pool,
                table,
                tenant,
                shaped,
                ..
            } => {
                use sqlx::Row;
                let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
                let class = class_condition(*shaped);
                let rows = sqlx::query(&format!(
                    "SELECT data::text FROM {table} \
                     WHERE tenant = $1{class} AND id = ANY($2::text[]::uuid[])"
                ))
                .bind(tenant)
                .bind(ids)
                .fetch_all(pool)
                .await
                .map_err(err)?;
                rows.iter()
                    .map(|row| row.try_get::<String, _>(0).map(Bytes::from).map_err(err))
                    .collect::<R<Vec<Bytes>>>()?
            }
            #[cfg(feature = "redis")]
            Raw::Redis { conn, prefix } => {
                let mut conn = conn.clone();
                if let [id] = ids {
                    let found: Option<Vec<u8>> = redis::cmd("GET")
                        .arg(format!("{prefix}{id}"))
                        .query_async(&mut conn)
                        .await
                        .map_err(err)?;
                    found.into_iter().map(Bytes::from).collect()
                } else {
                    let keys: Vec<String> = ids.iter().map(|id| format!("{prefix}{id}")).collect();
                    let found: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                        .arg(&keys)
                        .query_async(&mut conn)
                        .await
                        .map_err(err)?;
                    found.into_iter().flatten().map(Bytes::from).collect()
                }
            }
        };
        if out.len() != ids.len() {
            return Err(format!(
                "baseline read {} of {} payloads",
                out.len(),
                ids.len()
            ));
        }
        Ok(out)
    }

    /// After a rep: the baseline's SQLite log checkpointed (see [`checkpoint`]).
    async fn settle(&self) -> R<()> {
        #[cfg(feature = "sqlite")]
        if let Raw::Sqlite { pool, .. } = self {
            checkpoint(pool).await?;
        }
        Ok(())
    }

    /// Removes payloads (outside the timed part).
    async fn delete(&self, ids: &[Uuid]) -> R<()> {
        match self {
            Raw::Memory(map) => {
                let mut map = map.write().map_err(err)?;
                for id in ids {
                    map.remove(id);
                }
            }
            #[cfg(feature = "sqlite")]
            Raw::Sqlite {
                pool,
                shaped,
                tenant,
            } => {
                for chunk in ids.chunks(sqlite_raw_chunk(*shaped)) {
                    let mut qb = sqlite_by_ids("DELETE", *shaped, tenant, chunk);
                    qb.build().execute(pool).await.map_err(err)?;
                }
            }
            #[cfg(feature = "postgres")]
            Raw::Postgres {
                pool,
                table,
                tenant,
                shaped,
                ..
            } => {
                let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
                let class = class_condition(*shaped);
                sqlx::query(&format!(
                    "DELETE FROM {table} WHERE tenant = $1{class} AND id = ANY($2::text[]::uuid[])"
                ))
                .bind(tenant)
                .bind(ids)
                .execute(pool)
                .await
                .map_err(err)?;
            }
            #[cfg(feature = "redis")]
            Raw::Redis { conn, prefix } => {
                let mut conn = conn.clone();
                for chunk in ids.chunks(1000) {
                    let keys: Vec<String> =
                        chunk.iter().map(|id| format!("{prefix}{id}")).collect();
                    redis::cmd("DEL")
                        .arg(&keys)
                        .query_async::<()>(&mut conn)
                        .await
                        .map_err(err)?;
                }
            }
        }
        Ok(())
    }

    /// Drops toast's schema of this run (PostgreSQL), before
    /// [`Raw::cleanup`] closes the pool.
    async fn drop_schema(&self, toast_schema: &str) -> R<()> {
        #[cfg(feature = "postgres")]
        if let Raw::Postgres { pool, .. } = self {
            return drop_pg_schema(pool, &format!("\"{toast_schema}\"")).await;
        }
        Err(format!(
            "no PostgreSQL pool to drop schema {toast_schema} with"
        ))
    }

    /// Drops what the baseline wrote on a shared server.
    async fn cleanup(&self, written: &[Uuid]) -> R<()> {
        #[cfg(feature = "postgres")]
        if let Raw::Postgres { pool, schema, .. } = self {
            drop_pg_schema(pool, schema).await?;
            pool.close().await;
            return Ok(());
        }
        self.delete(written).await
    }
}

/// Drops the PostgreSQL schema `quoted` (an identifier in double quotes)
/// and everything in it.
#[cfg(feature = "postgres")]
async fn drop_pg_schema(pool: &sqlx::PgPool, quoted: &str) -> R<()> {
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {quoted} CASCADE"))
        .execute(pool)
        .await
        .map_err(err)?;
    Ok(())
}

// ---------------------------------------------------------------- targets

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Which {
    Memory,
    Sqlite,
    Postgres,
    Redis,
}

impl Which {
    const ALL: [Which; 4] = [Which::Memory, Which::Sqlite, Which::Postgres, Which::Redis];

    fn name(self) -> &'static str {
        match self {
            Which::Memory => "memory",
            Which::Sqlite => "sqlite",
            Which::Postgres => "postgres",
            Which::Redis => "redis",
        }
    }

    fn parse(s: &str) -> Option<Which> {
        Which::ALL.into_iter().find(|w| w.name() == s)
    }
}

/// One backend: a toast store on a fresh tenant, and its baseline.
struct Target {
    which: Which,
    store: toast::Store,
    raw: Arc<Raw>,
    /// SQLite and PostgreSQL: the baseline on a table of toast's shape
    /// ([`Raw::Sqlite`]'s `shaped`).
    shaped: Option<Arc<Raw>>,
    /// SQLite: a connection to toast's file, for [`Target::settle_toast`].
    #[cfg(feature = "sqlite")]
    toast_file: Option<sqlx::SqlitePool>,
    /// PostgreSQL: toast's schema for this run (`?schema=`), dropped at the
    /// end, so that toast's table starts as empty as the baselines' do.
    toast_schema: Option<String>,
}

#[cfg(any(feature = "postgres", feature = "redis"))]
fn env_url(var: &str, fallback: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| fallback.to_owned())
}

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "redis"))]
async fn connect_store(url: &str) -> R<toast::Store> {
    match tokio::time::timeout(Duration::from_secs(20), toast::Store::connect(url)).await {
        Ok(Ok(store)) => Ok(store.tenant(format!("bench-{}", Uuid::new_v4()))),
        Ok(Err(e)) => Err(format!("toast cannot connect: {e}")),
        Err(_) => Err(format!("toast connect to {} timed out", toast::redact(url))),
    }
}

/// Connects toast and the baseline to one backend; `Err` is the reason to skip.
async fn setup(which: Which, dir: &Path) -> R<Target> {
    let _ = dir;
    match which {
        Which::Memory => Ok(Target {
            which,
            store: toast::Store::memory().tenant(format!("bench-{}", Uuid::new_v4())),
            raw: Arc::new(Raw::Memory(RwLock::default())),
            shaped: None,
            #[cfg(feature = "sqlite")]
            toast_file: None,
            toast_schema: None,
        }),
        #[cfg(feature = "sqlite")]
        Which::Sqlite => {
            let toast_path = dir.join("toast.db");
            let url = format!("sqlite://{}?pool_max={SQLITE_POOL}", toast_path.display());
            let store = connect_store(&url).await?;
            let raw = Raw::sqlite(&dir.join("raw.db"), false)
                .await
                .map_err(|e| format!("baseline cannot open SQLite: {e}"))?;
            let shaped = Raw::sqlite(&dir.join("raw-shaped.db"), true)
                .await
                .map_err(|e| format!("baseline cannot open SQLite: {e}"))?;
            let toast_file = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(
                    sqlx::sqlite::SqliteConnectOptions::new()
                        .filename(&toast_path)
                        .busy_timeout(Duration::from_secs(5)),
                )
                .await
                .map_err(|e| format!("cannot open toast's SQLite file: {e}"))?;
            Ok(Target {
                which,
                store,
                raw: Arc::new(raw),
                shaped: Some(Arc::new(shaped)),
                toast_file: Some(toast_file),
                toast_schema: None,
            })
        }
        #[cfg(feature = "postgres")]
        Which::Postgres => {
            let base = env_url("TOAST_TEST_POSTGRES_URL", POSTGRES_FALLBACK);
            let mut url = url::Url::parse(&base).map_err(err)?;
            let toast_schema = format!("toast_bench_{}", Uuid::new_v4().simple());
            url.query_pairs_mut()
                .append_pair("pool_max", &POSTGRES_POOL.to_string())
                .append_pair("schema", &toast_schema);
            let store = connect_store(url.as_str()).await?;
            let base = &base;
            let connect = |shaped| async move {
                tokio::time::timeout(Duration::from_secs(20), Raw::postgres(base, shaped))
                    .await
                    .map_err(|_| "baseline connect timed out".to_owned())?
                    .map_err(|e| format!("baseline cannot connect: {e}"))
            };
            let raw = connect(false).await?;
            let shaped = connect(true).await?;
            Ok(Target {
                which,
                store,
                raw: Arc::new(raw),
                shaped: Some(Arc::new(shaped)),
                #[cfg(feature = "sqlite")]
                toast_file: None,
                toast_schema: Some(toast_schema),
            })
        }
        #[cfg(feature = "redis")]
        Which::Redis => {
            let base = env_url("TOAST_TEST_REDIS_URL", REDIS_FALLBACK);
            let store = connect_store(&base).await?;
            let raw = tokio::time::timeout(Duration::from_secs(20), Raw::redis(&base))
                .await
                .map_err(|_| "baseline connect timed out".to_owned())?
                .map_err(|e| format!("baseline cannot connect: {e}"))?;
            Ok(Target {
                which,
                store,
                raw: Arc::new(raw),
                shaped: None,
                #[cfg(feature = "sqlite")]
                toast_file: None,
                toast_schema: None,
            })
        }
        #[allow(unreachable_patterns)]
        other => Err(format!(
            "not compiled in (run with --features {})",
            other.name()
        )),
    }
}

/// Checkpoints an SQLite file's write-ahead log, outside the timers: left to
/// SQLite, a checkpoint (and its fsync) runs in whichever commit finds the
/// log past 1,000 pages, which made `write_1k`'s medians swing 3 × from run
/// to run on whichever side happened to pay for them.
#[cfg(feature = "sqlite")]
async fn checkpoint(pool: &sqlx::SqlitePool) -> R<()> {
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(pool)
        .await
        .map_err(err)?;
    Ok(())
}

impl Target {
    /// The baseline on a table of toast's shape, for the SQLite rows that
    /// time it beside the plain one.
    fn sqlite_shaped(&self) -> Option<&Arc<Raw>> {
        self.shaped.as_ref().filter(|_| self.which == Which::Sqlite)
    }

    /// After a rep: toast's SQLite log checkpointed (see [`checkpoint`]).
    async fn settle_toast(&self) -> R<()> {
        #[cfg(feature = "sqlite")]
        if let Some(pool) = &self.toast_file {
            checkpoint(pool).await?;
        }
        Ok(())
    }

    /// Leaves the servers as they were: toast's records, the baseline's
    /// (`written` are the payloads it holds outside the timed ops) and the
    /// shaped baseline's tables (it only runs asides, which delete what they
    /// write). Every process that made a target calls it, the `big_doc`
    /// children too (they used to leave their baseline tables behind).
    async fn cleanup(&self, written: &[Uuid]) -> R<()> {
        match &self.toast_schema {
            Some(schema) => self.raw.drop_schema(schema).await?,
            None => self.cleanup_toast().await?,
        }
        self.raw.cleanup(written).await?;
        if let Some(shaped) = &self.shaped {
            shaped.cleanup(&[]).await?;
        }
        Ok(())
    }

    /// Deletes every toast record this run wrote under its tenant.
    async fn cleanup_toast(&self) -> R<()> {
        let classes = [
            toast::class_name::<Item>(),
            toast::class_name::<Section>(),
            toast::class_name::<Group>(),
        ];
        for class in classes {
            loop {
                let refs = self.store.list(&class, 0, 5_000).await.map_err(err)?;
                if refs.is_empty() {
                    break;
                }
                let keys: Vec<toast::Key> = refs.iter().map(|r| self.store.key_for(r)).collect();
                self.store.backend().delete(&keys).await.map_err(err)?;
            }
        }
        Ok(())
    }

    async fn delete_refs(&self, refs: &[toast::Reference]) -> R<()> {
        for chunk in refs.chunks(2_000) {
            let keys: Vec<toast::Key> = chunk.iter().map(|r| self.store.key_for(r)).collect();
            self.store.backend().delete(&keys).await.map_err(err)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- measuring

static PROFILE_SIDE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
/// `--reps N`: exactly N measured reps (for a profiler), instead of a time budget.
static FIXED_REPS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// How long and how often to measure one workload.
#[derive(Clone, Copy)]
struct Plan {
    warmup: usize,
    min: usize,
    max: usize,
    budget: Duration,
}

struct Measured {
    toast_us: f64,
    baseline_us: f64,
    /// The medians of [`compare_aside`]'s asides, in their order.
    aside_us: Vec<f64>,
    /// Toast's median in the asides' loop, which their ratios are taken
    /// against.
    aside_toast_us: Option<f64>,
    reps: usize,
    round_trips: f64,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Runs `toast_op` and `base_op` interleaved (alternating which goes first)
/// and returns the medians of the durations they report (each op times its
/// own core, leaving preparation and clean-up out); round trips are counted
/// around the toast runs only.
async fn compare<'a>(
    plan: Plan,
    store: &toast::Store,
    toast_op: impl FnMut() -> BoxFut<'a, Duration>,
    base_op: impl FnMut() -> BoxFut<'a, Duration>,
) -> R<Measured> {
    compare_aside(plan, store, toast_op, base_op, Vec::new()).await
}

/// An aside: an operation [`compare_aside`] times beside a pair.
type Op<'o, 'a> = &'o mut (dyn FnMut() -> BoxFut<'a, Duration> + 'o);

/// As [`compare`], then the asides, in a loop of their own beside toast:
/// variants of the baseline that do more of toast's work, to show where a
/// ratio's excess goes ([`Measured::aside_us`], against
/// [`Measured::aside_toast_us`]).
async fn compare_aside<'a>(
    plan: Plan,
    store: &toast::Store,
    mut toast_op: impl FnMut() -> BoxFut<'a, Duration>,
    mut base_op: impl FnMut() -> BoxFut<'a, Duration>,
    mut asides: Vec<Op<'_, 'a>>,
) -> R<Measured> {
    // `--profile-side toast|baseline` runs one side only (for a profiler).
    let (run_toast, run_base) = match PROFILE_SIDE.get().map(String::as_str) {
        Some("toast") => (true, false),
        Some("baseline") => (false, true),
        _ => (true, true),
    };
    if !run_base {
        asides.clear();
    }
    let mut toast_op = move || -> BoxFut<'a, Duration> {
        if run_toast {
            toast_op()
        } else {
            Box::pin(async { Ok(Duration::from_nanos(1)) })
        }
    };
    let mut base_op = move || -> BoxFut<'a, Duration> {
        if run_base {
            base_op()
        } else {
            Box::pin(async { Ok(Duration::from_nanos(1)) })
        }
    };
    let plan = match FIXED_REPS.get() {
        Some(&n) => Plan {
            min: n,
            max: n,
            ..plan
        },
        None => plan,
    };
    for _ in 0..plan.warmup {
        base_op().await?;
        toast_op().await?;
    }
    let mut t = Vec::with_capacity(plan.min);
    let mut b = Vec::with_capacity(plan.min);
    let mut trips = 0u64;
    let started = Instant::now();
    while t.len() < plan.min || (t.len() < plan.max && started.elapsed() < plan.budget) {
        // The sides take turns going first.
        let toast_first = t.len() % 2 == 1;
        if !toast_first {
            b.push(micros(base_op().await?));
        }
        let before = store.stats();
        t.push(micros(toast_op().await?));
        let d = store.stats().since(&before);
        trips += d.save_calls + d.load_calls;
        if toast_first {
            b.push(micros(base_op().await?));
        }
    }
    let reps = t.len();
    // The asides in a loop of their own, beside toast again (alternating
    // which goes first), as many times: timed in the pair's loop they
    // warmed the baseline's data (the claim check by hand reads the
    // baseline's table) and cooled toast's, which moved SQLite `read_1k`'s
    // ratio from 0.98-1.04 to 1.08-1.18 (BENCHMARKS.md, round 10).
    let mut aside_toast = Vec::new();
    let mut a: Vec<Vec<f64>> = asides.iter().map(|_| Vec::with_capacity(reps)).collect();
    if !asides.is_empty() {
        for _ in 0..plan.warmup {
            for aside in &mut asides {
                aside().await?;
            }
            toast_op().await?;
        }
        while aside_toast.len() < reps {
            let toast_first = aside_toast.len() % 2 == 1;
            if toast_first {
                aside_toast.push(micros(toast_op().await?));
            }
            for (aside, times) in asides.iter_mut().zip(&mut a) {
                times.push(micros(aside().await?));
            }
            if !toast_first {
                aside_toast.push(micros(toast_op().await?));
            }
        }
    }
    Ok(Measured {
        toast_us: median(&mut t),
        baseline_us: median(&mut b),
        aside_us: a.iter_mut().map(|times| median(times)).collect(),
        aside_toast_us: (!aside_toast.is_empty()).then(|| median(&mut aside_toast)),
        reps,
        round_trips: trips as f64 / reps as f64,
    })
}

/// Awaits `fut` and returns how long it took, with its output.
async fn timed<T>(fut: impl Future<Output = R<T>>) -> R<(Duration, T)> {
    let start = Instant::now();
    let out = fut.await?;
    Ok((start.elapsed(), out))
}

// ---------------------------------------------------------------- results

#[derive(Default)]
struct Row {
    backend: &'static str,
    bench: &'static str,
    toast_us: Option<f64>,
    baseline_us: Option<f64>,
    round_trips: Option<f64>,
    reps: Option<usize>,
    /// Toast's median beside the asides ([`Measured::aside_toast_us`]).
    aside_toast_us: Option<f64>,
    target: &'static str,
    met: Option<bool>,
    extra: Vec<(&'static str, serde_json::Value)>,
    note: String,
    skipped: Option<String>,
}

impl Row {
    fn ratio(&self) -> Option<f64> {
        match (self.toast_us, self.baseline_us) {
            (Some(t), Some(b)) if b > 0.0 => Some(t / b),
            _ => None,
        }
    }

    fn skipped(backend: &'static str, bench: &'static str, reason: &str) -> Row {
        Row {
            backend,
            bench,
            skipped: Some(reason.to_owned()),
            ..Row::default()
        }
    }

    fn measured(backend: &'static str, bench: &'static str, m: &Measured) -> Row {
        Row {
            backend,
            bench,
            toast_us: Some(m.toast_us),
            baseline_us: Some(m.baseline_us),
            round_trips: Some(m.round_trips),
            reps: Some(m.reps),
            aside_toast_us: m.aside_toast_us,
            ..Row::default()
        }
    }

    /// Records an aside ([`compare_aside`]): its time as `field` in the JSON
    /// line, its time and toast's ratio to it in the note.
    fn aside(&mut self, field: &'static str, what: &str, us: Option<f64>) {
        let Some(us) = us else { return };
        // Against toast's time in the asides' own loop (the same window).
        let toast = self.aside_toast_us.or(self.toast_us).unwrap_or(f64::NAN);
        let note = format!("{what}: {} (toast ÷ that {:.2})", fmt_us(us), toast / us);
        if self.note.is_empty() {
            self.note = note;
        } else {
            self.note = format!("{}; {note}", self.note);
        }
        self.extra
            .push((field, ((us * 10.0).round() / 10.0).into()));
    }

    fn with_ratio_target(mut self, limit: f64, text: &'static str) -> Row {
        self.target = text;
        self.met = self.ratio().map(|r| r <= limit);
        self
    }

    /// One JSON line: the fields of BENCH.md in its order, then the extras.
    fn json(&self) -> String {
        let round = |x: f64| (x * 10.0).round() / 10.0;
        let mut fields: Vec<(&str, serde_json::Value)> = vec![
            ("bench", self.bench.into()),
            ("backend", self.backend.into()),
            ("toast_us", self.toast_us.map(round).into()),
            ("baseline_us", self.baseline_us.map(round).into()),
            (
                "ratio",
                self.ratio().map(|r| (r * 1000.0).round() / 1000.0).into(),
            ),
            ("round_trips", self.round_trips.map(whole_or_float).into()),
        ];
        if let Some(reps) = self.reps {
            fields.push(("reps", reps.into()));
        }
        if let Some(t) = self.aside_toast_us {
            fields.push(("aside_toast_us", round(t).into()));
        }
        for (k, v) in &self.extra {
            fields.push((k, v.clone()));
        }
        if let Some(reason) = &self.skipped {
            fields.push(("skipped", reason.clone().into()));
        }
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{}: {v}", serde_json::Value::from(*k)))
            .collect();
        format!("{{{}}}", body.join(", "))
    }
}

/// `2` rather than `2.0` when a count is whole.
fn whole_or_float(x: f64) -> serde_json::Value {
    if x.fract() == 0.0 && (0.0..9.0e15).contains(&x) {
        format!("{x:.0}")
            .parse::<u64>()
            .map(serde_json::Value::from)
            .unwrap_or_else(|_| x.into())
    } else {
        x.into()
    }
}

fn fmt_us(us: f64) -> String {
    if us >= 1e6 {
        format!("{:.2} s", us / 1e6)
    } else if us >= 1e3 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{us:.1} µs")
    }
}

fn fmt_trips(t: f64) -> String {
    if (t - t.round()).abs() < 1e-9 {
        format!("{t:.0}")
    } else {
        format!("{t:.2}")
    }
}

fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| backend | bench | toast | baseline | ratio | target | round_trips | reps | notes |"
    );
    let _ = writeln!(
        out,
        "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | --- |"
    );
    for r in rows {
        if let Some(reason) = &r.skipped {
            let _ = writeln!(
                out,
                "| {} | {} | — | — | — | {} | — | — | skipped: {} |",
                r.backend, r.bench, r.target, reason
            );
            continue;
        }
        let verdict = match r.met {
            Some(true) => " ✓",
            Some(false) => " ✗",
            None => "",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {}{} | {} | {} | {} |",
            r.backend,
            r.bench,
            r.toast_us.map(fmt_us).unwrap_or_else(|| "—".into()),
            r.baseline_us.map(fmt_us).unwrap_or_else(|| "—".into()),
            r.ratio()
                .map(|x| format!("{x:.2}"))
                .unwrap_or_else(|| "—".into()),
            r.target,
            verdict,
            r.round_trips.map(fmt_trips).unwrap_or_else(|| "—".into()),
            r.reps.map(|n| n.to_string()).unwrap_or_else(|| "—".into()),
            r.note
        );
    }
    out
}

// ---------------------------------------------------------------- workloads

const BENCHES: [&str; 6] = [
    "write_1k",
    "read_1k",
    "nested_3",
    "single",
    "concurrent",
    "big_doc",
];

fn target_of(bench: &str) -> &'static str {
    match bench {
        "write_1k" | "read_1k" | "concurrent" => "≤ 1.25",
        "single" => "≤ 1.20",
        "nested_3" => "round_trips = 3",
        "big_doc" => "RSS ≤ 2.5 × payload",
        _ => "",
    }
}

fn batch_plan(which: Which) -> Plan {
    match which {
        Which::Memory => Plan {
            warmup: 5,
            min: 31,
            max: 2_001,
            budget: Duration::from_secs(3),
        },
        _ => Plan {
            warmup: 3,
            min: 21,
            max: 501,
            budget: Duration::from_secs(5),
        },
    }
}

/// The fixture's items as a new revision: same sizes, new content (so new
/// content ids, and new rows: neither side can skip a write of unchanged bytes).
fn revision(items: &[Item], rev: u64) -> Vec<Item> {
    items
        .iter()
        .map(|it| Item {
            name: format!("item-{:08}-r{rev:08}", it.id),
            ..it.clone()
        })
        .collect()
}

async fn bench_write_1k(t: &Target, fx: &Fixture) -> R<Row> {
    let store = &t.store;
    let raw = &*t.raw;
    let items = &fx.items;
    let title = &fx.doc.title;
    // Every rep writes a new revision of the 1,000 items: new rows on both
    // sides (SQLite skips rewriting a row whose bytes did not change, which
    // would flatter a baseline that upserts the same payloads again).
    let rev = std::sync::atomic::AtomicU64::new(1);
    let rev = &rev;
    // The asides: on PostgreSQL and SQLite, the baseline again on a table of
    // toast's shape (in a file of its own on SQLite, whose WAL checkpoints
    // would otherwise be shared), then the same claim check written by hand
    // into that table; on memory and Redis the claim check by hand.
    let shaped = t.shaped.as_deref();
    let hand_made_into = shaped.unwrap_or(raw);
    let toast_op = move || -> BoxFut<'_, Duration> {
        Box::pin(async move {
            let doc = Doc {
                title: title.clone(),
                items: next_revision(items, rev).into_iter().map(ExtItem).collect(),
            };
            let (elapsed, json) = timed(async {
                toast::scope(store.clone(), toast::to_json(&doc))
                    .await
                    .map_err(err)?
                    .map_err(err)
            })
            .await?;
            let mut de = serde_json::Deserializer::from_str(&json);
            let refs = toast::collect_references(&mut de).map_err(err)?;
            t.delete_refs(&refs).await?;
            t.settle_toast().await?;
            Ok(elapsed)
        })
    };
    let base_op = move || -> BoxFut<'_, Duration> { Box::pin(write_raw(raw, items, title, rev)) };
    let mut shaped_op = shaped.map(|shaped| {
        move || -> BoxFut<'_, Duration> { Box::pin(write_raw(shaped, items, title, rev)) }
    });
    let mut hand_made_op = move || -> BoxFut<'_, Duration> {
        Box::pin(write_claim_check(hand_made_into, items, title, rev))
    };
    let mut asides: Vec<Op<'_, '_>> = Vec::new();
    if let Some(op) = &mut shaped_op {
        asides.push(op);
    }
    asides.push(&mut hand_made_op);
    let m = compare_aside(batch_plan(t.which), store, toast_op, base_op, asides).await?;
    let mut row = Row::measured(t.which.name(), "write_1k", &m).with_ratio_target(1.25, "≤ 1.25");
    // The content ids toast must compute (DESIGN.md: an id is a hash of the
    // class and the bytes), timed alone: the part of toast's time no
    // implementation can skip, set against the baseline's whole time.
    let ids_us = content_ids_us(&fx.payloads);
    row.note = format!(
        "new rows every rep on both sides; content ids alone {} ({:.2} × baseline)",
        fmt_us(ids_us),
        ids_us / row.baseline_us.unwrap_or(f64::NAN)
    );
    row.extra = vec![("content_ids_us", ((ids_us * 10.0).round() / 10.0).into())];
    let mut aside_us = m.aside_us.iter().copied();
    let into = if shaped.is_some() {
        row.aside("shaped_baseline_us", SHAPED, aside_us.next());
        " into that table"
    } else {
        ""
    };
    row.aside(
        "claim_check_us",
        &format!(
            "the same claim check by hand{into} (each payload serialized and given a content id, \
             the references written, one batch write)"
        ),
        aside_us.next(),
    );
    Ok(row)
}

/// The note of a shaped-baseline aside.
const SHAPED: &str =
    "the baseline on a table of toast's shape (its columns, primary key and listing index)";

/// `write_1k`'s claim check by hand, with the content ids DESIGN.md asks
/// for: each item serialized on its own, its id the hash toast uses, the
/// document of references serialized, the payloads written in one batch.
async fn write_claim_check(
    raw: &Raw,
    items: &[Item],
    title: &str,
    rev: &std::sync::atomic::AtomicU64,
) -> R<Duration> {
    let items = next_revision(items, rev);
    let (elapsed, ids) = timed(async {
        let payloads = items
            .iter()
            .map(|it| {
                let bytes = serde_json::to_vec(it).map_err(err)?;
                Ok((toast::content_id("Item", &bytes), Bytes::from(bytes)))
            })
            .collect::<R<Vec<_>>>()?;
        let claims = ClaimDoc::of(title, &payloads);
        std::hint::black_box(serde_json::to_string(&claims).map_err(err)?);
        raw.write(&payloads).await?;
        Ok(payloads
            .into_iter()
            .map(|(id, _)| id)
            .collect::<Vec<Uuid>>())
    })
    .await?;
    discard(raw, &ids).await?;
    Ok(elapsed)
}

/// The next revision of `items` (see [`revision`]), numbered by `rev`.
fn next_revision(items: &[Item], rev: &std::sync::atomic::AtomicU64) -> Vec<Item> {
    revision(
        items,
        rev.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
    )
}

/// After a `write_1k` rep, outside its timer: what it wrote deleted and the
/// store settled ([`Raw::settle`]).
async fn discard(raw: &Raw, ids: &[Uuid]) -> R<()> {
    raw.delete(ids).await?;
    raw.settle().await
}

/// `write_1k`'s baseline: the document inline, the payloads in one batch.
async fn write_raw(
    raw: &Raw,
    items: &[Item],
    title: &str,
    rev: &std::sync::atomic::AtomicU64,
) -> R<Duration> {
    let inline = InlineDoc {
        title: title.to_owned(),
        items: next_revision(items, rev),
    };
    let payloads = payloads_of(&inline.items)?;
    let (elapsed, ()) = timed(async {
        let json = serde_json::to_string(&inline).map_err(err)?;
        std::hint::black_box(json);
        raw.write(&payloads).await
    })
    .await?;
    let ids: Vec<Uuid> = payloads.iter().map(|(id, _)| *id).collect();
    discard(raw, &ids).await?;
    Ok(elapsed)
}

/// Median time of hashing every payload into its content id (51 reps).
fn content_ids_us(payloads: &[(Uuid, Bytes)]) -> f64 {
    let mut samples: Vec<f64> = (0..51)
        .map(|_| {
            let start = Instant::now();
            for (_, bytes) in payloads {
                std::hint::black_box(toast::content_id("ExtItem", bytes));
            }
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    median(&mut samples)
}

/// `read_1k`'s baseline: the inline document parsed, the payloads read in
/// one batch from `raw`. The payloads read are freed inside the timer, as
/// toast's are (its scope's cache goes when `scope` returns); the document
/// is returned and freed afterwards on both sides.
async fn inline_read(raw: &Raw, inline: &str, ids: &[Uuid], who: &str) -> R<Duration> {
    let (elapsed, (doc, read)) = timed(async {
        let doc: InlineDoc = serde_json::from_str(inline).map_err(err)?;
        let read = raw.read(ids).await?.len();
        Ok((doc, read))
    })
    .await?;
    if doc.items.len() != 1000 || read != 1000 {
        return Err(format!("{who} read a short document"));
    }
    Ok(elapsed)
}

async fn bench_read_1k(t: &Target, fx: &Fixture) -> R<Row> {
    let store = &t.store;
    let json = toast::scope(store.clone(), toast::to_json(&fx.doc))
        .await
        .map_err(err)?
        .map_err(err)?;
    let json = &json;
    let raw = &*t.raw;
    raw.write(&fx.payloads).await?;
    let ids: Vec<Uuid> = fx.payloads.iter().map(|(id, _)| *id).collect();
    let ids = &ids;
    let inline = &fx.inline_json;
    let claim = &fx.claim_json;
    // SQLite, where the ratio is closest to its target: the baseline again
    // reading a table of toast's shape (its key is tenant, class and id, so
    // each lookup compares two strings before the id).
    let shaped = t.sqlite_shaped();
    if let Some(shaped) = shaped {
        shaped.write(&fx.payloads).await?;
    }
    let mut shaped_op = shaped.map(|shaped| {
        move || -> BoxFut<'_, Duration> {
            Box::pin(inline_read(shaped, inline, ids, "the shaped baseline"))
        }
    });
    let mut hand = move || -> BoxFut<'_, Duration> {
        Box::pin(async move {
            // What toast does, written out for this one document: parse
            // the references, read their payloads in one batch, decode
            // each. It keeps the rows in the order the driver returns
            // them, where a real claim check must put each value back in
            // its place: a lower bound on hand-written code.
            let (elapsed, doc) = timed(async {
                let claims: ClaimDoc<'_> = serde_json::from_str(claim).map_err(err)?;
                let ids: Vec<Uuid> = claims.items.iter().map(|r| r.id).collect();
                let payloads = raw.read(&ids).await?;
                let items = payloads
                    .iter()
                    .map(|p| {
                        let text = std::str::from_utf8(p).map_err(err)?;
                        serde_json::from_str::<Item>(text).map_err(err)
                    })
                    .collect::<R<Vec<Item>>>()?;
                Ok(InlineDoc {
                    title: claims.title,
                    items,
                })
            })
            .await?;
            if doc.items.len() != 1000 {
                return Err("the hand-made claim check read a short document".into());
            }
            Ok(elapsed)
        })
    };
    let mut asides: Vec<Op<'_, '_>> = vec![&mut hand];
    if let Some(op) = shaped_op.as_mut() {
        asides.push(op);
    }
    let m = compare_aside(
        batch_plan(t.which),
        store,
        move || {
            Box::pin(async move {
                let (elapsed, doc) = timed(async {
                    toast::scope(store.clone(), toast::from_json::<Doc>(json))
                        .await
                        .map_err(err)?
                        .map_err(err)
                })
                .await?;
                if doc.items.len() != 1000 {
                    return Err("toast read a short document".into());
                }
                Ok(elapsed)
            })
        },
        move || Box::pin(inline_read(raw, inline, ids, "baseline")),
        asides,
    )
    .await?;
    if let Some(shaped) = shaped {
        shaped.delete(ids).await?;
    }
    let mut row = Row::measured(t.which.name(), "read_1k", &m).with_ratio_target(1.25, "≤ 1.25");
    row.aside(
        "claim_check_us",
        "the same claim check by hand (references parsed, one batch read, each payload decoded)",
        m.aside_us.first().copied(),
    );
    row.aside("shaped_baseline_us", SHAPED, m.aside_us.get(1).copied());
    Ok(row)
}

async fn bench_nested_3(t: &Target, fx: &Fixture) -> R<Row> {
    let store = &t.store;
    let json = toast::scope(store.clone(), toast::to_json(&fx.nested))
        .await
        .map_err(err)?
        .map_err(err)?;
    let json = &json;
    let raw = &*t.raw;
    raw.write(&fx.payloads).await?;
    let ids: Vec<Uuid> = fx.payloads.iter().map(|(id, _)| *id).collect();
    let levels = [ids[..10].to_vec(), ids[..100].to_vec(), ids];
    let levels = &levels;
    let inline = &fx.nested_inline_json;
    let m = compare(
        batch_plan(t.which),
        store,
        move || {
            Box::pin(async move {
                let (elapsed, doc) = timed(async {
                    toast::scope(store.clone(), toast::from_json::<NestedDoc>(json))
                        .await
                        .map_err(err)?
                        .map_err(err)
                })
                .await?;
                std::hint::black_box(doc);
                Ok(elapsed)
            })
        },
        move || {
            Box::pin(async move {
                let (elapsed, doc) = timed(async {
                    let doc: InlineNested = serde_json::from_str(inline).map_err(err)?;
                    // A hand-made claim check also needs one round trip per level.
                    for level in levels {
                        std::hint::black_box(raw.read(level).await?);
                    }
                    Ok(doc)
                })
                .await?;
                std::hint::black_box(doc);
                Ok(elapsed)
            })
        },
    )
    .await?;
    let mut row = Row::measured(t.which.name(), "nested_3", &m);
    row.target = "round_trips = 3";
    row.met = Some((m.round_trips - 3.0).abs() < 1e-9);
    row.note = "baseline: inline serde + 3 sequential batch reads (10, 100, 1,000)".into();
    Ok(row)
}

async fn bench_single(t: &Target, fx: &Fixture) -> R<Row> {
    let store = &t.store;
    let raw = &*t.raw;
    let items = &fx.items;
    let n = std::sync::atomic::AtomicUsize::new(0);
    let n = &n;
    let written = std::sync::Mutex::new(Vec::<toast::Reference>::new());
    let raw_written = std::sync::Mutex::new(Vec::<Uuid>::new());
    let (written_ref, raw_written_ref) = (&written, &raw_written);
    let plan = Plan {
        warmup: 200,
        min: SINGLE_SAMPLES,
        max: SINGLE_SAMPLES,
        budget: Duration::ZERO,
    };
    // SQLite: the baseline again on a table of toast's shape (each put
    // writes three b-trees, as toast's, instead of two).
    let shaped = t.sqlite_shaped();
    let shaped_written = std::sync::Mutex::new(Vec::<Uuid>::new());
    let mut shaped_op =
        shaped.map(|shaped| raw_single(shaped, items, n, &shaped_written, "the shaped baseline"));
    let mut asides: Vec<Op<'_, '_>> = Vec::new();
    if let Some(op) = shaped_op.as_mut() {
        asides.push(op);
    }
    let m = compare_aside(
        plan,
        store,
        move || {
            let item = &items[n.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % items.len()];
            Box::pin(async move {
                let (elapsed, (r, back)) = timed(async {
                    let r = store.put(item).await.map_err(err)?;
                    let back: Item = store.get(&r).await.map_err(err)?;
                    Ok((r, back))
                })
                .await?;
                if back.id != item.id {
                    return Err("toast read back another item".into());
                }
                written_ref.lock().map_err(err)?.push(r);
                Ok(elapsed)
            })
        },
        raw_single(raw, items, n, raw_written_ref, "baseline"),
        asides,
    )
    .await?;
    let refs = std::mem::take(&mut *written.lock().map_err(err)?);
    t.delete_refs(&refs).await?;
    let ids = std::mem::take(&mut *raw_written.lock().map_err(err)?);
    t.raw.delete(&ids).await?;
    if let Some(shaped) = shaped {
        let ids = std::mem::take(&mut *shaped_written.lock().map_err(err)?);
        shaped.delete(&ids).await?;
    }
    let mut row = Row::measured(t.which.name(), "single", &m).with_ratio_target(1.20, "≤ 1.20");
    row.note = "p50 of put+get; baseline: to_vec + write + read + from_slice".into();
    row.aside("shaped_baseline_us", SHAPED, m.aside_us.first().copied());
    Ok(row)
}

/// `single`'s baseline on `raw`: one item serialized, written, read back and
/// decoded; the ids written go to `written` (deleted afterwards).
fn raw_single<'a>(
    raw: &'a Raw,
    items: &'a [Item],
    n: &'a std::sync::atomic::AtomicUsize,
    written: &'a std::sync::Mutex<Vec<Uuid>>,
    who: &'static str,
) -> impl FnMut() -> BoxFut<'a, Duration> + 'a {
    move || {
        let item = &items[n.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % items.len()];
        Box::pin(async move {
            let id = Uuid::new_v4();
            let (elapsed, back) = timed(async {
                let bytes = Bytes::from(serde_json::to_vec(item).map_err(err)?);
                raw.write(&[(id, bytes)]).await?;
                let data = raw.read(&[id]).await?;
                serde_json::from_slice::<Item>(&data[0]).map_err(err)
            })
            .await?;
            if back.id != item.id {
                return Err(format!("{who} read back another item"));
            }
            written.lock().map_err(err)?.push(id);
            Ok(elapsed)
        })
    }
}

/// One concurrent run: TASKS tasks × PER_TASK put+get; returns the wall time.
async fn concurrent_toast(t: &Target, items: &Arc<Vec<Item>>) -> R<Duration> {
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let store = t.store.clone();
        let items = Arc::clone(items);
        set.spawn(async move {
            let mut refs = Vec::with_capacity(PER_TASK);
            for i in 0..PER_TASK {
                let item = &items[(task * PER_TASK + i) % items.len()];
                let r = store.put(item).await.map_err(err)?;
                let back: Item = store.get(&r).await.map_err(err)?;
                if back.id != item.id {
                    return Err("toast read back another item".to_owned());
                }
                refs.push(r);
            }
            Ok::<_, String>(refs)
        });
    }
    let mut refs = Vec::new();
    while let Some(done) = set.join_next().await {
        refs.extend(done.map_err(err)??);
    }
    let elapsed = start.elapsed();
    t.delete_refs(&refs).await?;
    Ok(elapsed)
}

async fn concurrent_raw(raw: &Arc<Raw>, items: &Arc<Vec<Item>>) -> R<Duration> {
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let raw = Arc::clone(raw);
        let items = Arc::clone(items);
        set.spawn(async move {
            let mut ids = Vec::with_capacity(PER_TASK);
            for i in 0..PER_TASK {
                let item = &items[(task * PER_TASK + i) % items.len()];
                let id = Uuid::new_v4();
                let bytes = Bytes::from(serde_json::to_vec(item).map_err(err)?);
                raw.write(&[(id, bytes)]).await?;
                let data = raw.read(&[id]).await?;
                let back: Item = serde_json::from_slice(&data[0]).map_err(err)?;
                if back.id != item.id {
                    return Err("baseline read back another item".to_owned());
                }
                ids.push(id);
            }
            Ok::<_, String>(ids)
        });
    }
    let mut ids = Vec::new();
    while let Some(done) = set.join_next().await {
        ids.extend(done.map_err(err)??);
    }
    let elapsed = start.elapsed();
    raw.delete(&ids).await?;
    Ok(elapsed)
}

async fn bench_concurrent(t: &Target, fx: &Fixture) -> R<Row> {
    let items = Arc::new(fx.items.clone());
    let items = &items;
    let plan = match t.which {
        Which::Memory => Plan {
            warmup: 1,
            min: 11,
            max: 51,
            budget: Duration::from_secs(4),
        },
        // Redis's repetitions take 0.3 s, so it runs up to 21 of them in the
        // budget (its ratio moved by ±15 % between runs of 9); SQLite's and
        // PostgreSQL's take 5–6 s and stop at the minimum.
        _ => Plan {
            warmup: 1,
            min: 5,
            max: 21,
            budget: Duration::from_secs(20),
        },
    };
    // SQLite, where the ratio is closest to its target: the baseline again
    // on a table of toast's shape (each put writes three b-trees, as toast's,
    // instead of two).
    let shaped = t.sqlite_shaped();
    let toast_op = move || -> BoxFut<'_, Duration> { Box::pin(concurrent_toast(t, items)) };
    let base_op = move || -> BoxFut<'_, Duration> { Box::pin(concurrent_raw(&t.raw, items)) };
    let mut aside = shaped
        .map(|shaped| move || -> BoxFut<'_, Duration> { Box::pin(concurrent_raw(shaped, items)) });
    let asides = aside
        .as_mut()
        .map(|op| op as Op<'_, '_>)
        .into_iter()
        .collect();
    let mut m = compare_aside(plan, &t.store, toast_op, base_op, asides).await?;
    let ops = (TASKS * PER_TASK) as f64;
    m.round_trips /= ops;
    let toast_ops = ops / (m.toast_us / 1e6);
    let base_ops = ops / (m.baseline_us / 1e6);
    let mut row = Row::measured(t.which.name(), "concurrent", &m).with_ratio_target(1.25, "≤ 1.25");
    row.extra = vec![
        ("toast_ops_per_s", (toast_ops.round()).into()),
        ("baseline_ops_per_s", (base_ops.round()).into()),
        (
            "throughput_ratio",
            ((toast_ops / base_ops * 1000.0).round() / 1000.0).into(),
        ),
    ];
    row.note = format!(
        "{TASKS}×{PER_TASK} put+get: {toast_ops:.0} vs {base_ops:.0} put+get/s ({:.2}×)",
        toast_ops / base_ops
    );
    row.aside("shaped_baseline_us", SHAPED, m.aside_us.first().copied());
    Ok(row)
}

// ---------------------------------------------------------------- big_doc

#[derive(Serialize, Deserialize)]
struct BigDoc {
    title: String,
    items: Vec<ExtItem>,
}

#[derive(Serialize, Deserialize, Debug)]
struct ChildReport {
    us: f64,
    peak_rss_bytes: u64,
    payload_bytes: u64,
    round_trips: u64,
}

fn vm_hwm() -> R<u64> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(err)?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .ok_or("no VmHWM in /proc/self/status")?;
    let kb: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .map_err(err)?;
    Ok(kb * 1024)
}

/// With `TOAST_BENCH_RSS_TRACE` set, a child prints its RSS at each phase.
fn trace_rss(phase: &str) {
    if std::env::var_os("TOAST_BENCH_RSS_TRACE").is_none() {
        return;
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l[name.len()..].trim().to_owned())
            .unwrap_or_default()
    };
    eprintln!(
        "rss {phase:<28} VmRSS {:>12}  VmHWM {:>12}",
        field("VmRSS:"),
        field("VmHWM:")
    );
}

fn checksum(items: impl Iterator<Item = u64>) -> u64 {
    items.fold(0u64, |acc, x| acc.wrapping_mul(1_000_003).wrapping_add(x))
}

/// The child process: one side of `big_doc` on one backend.
async fn child_big_doc(side: &str, which: Which, dir: &Path) -> R<ChildReport> {
    let target = setup(which, dir).await?;
    let items: Vec<Item> = (0..BIG_ITEMS)
        .map(|i| make_item(u64::try_from(i).unwrap_or(0), BIG_ITEM_BYTES))
        .collect();
    let payload_bytes: u64 = items
        .iter()
        .map(|it| serde_json::to_vec(it).map(|v| v.len() as u64).unwrap_or(0))
        .sum();
    let sum = checksum(items.iter().map(|it| it.id + it.body.len() as u64));
    let title = "ten thousand big items".to_owned();
    let report = match side {
        "toast" => {
            let doc = BigDoc {
                title,
                items: items.into_iter().map(ExtItem).collect(),
            };
            trace_rss("document built");
            let before = target.store.stats();
            let start = Instant::now();
            let json = toast::scope(target.store.clone(), toast::to_json(&doc))
                .await
                .map_err(err)?
                .map_err(err)?;
            trace_rss("to_json done");
            drop(doc);
            trace_rss("document dropped");
            let back: BigDoc = toast::scope(target.store.clone(), toast::from_json(&json))
                .await
                .map_err(err)?
                .map_err(err)?;
            trace_rss("from_json done");
            let us = micros(start.elapsed());
            let d = target.store.stats().since(&before);
            let got = checksum(back.items.iter().map(|it| it.0.id + it.0.body.len() as u64));
            if back.items.len() != BIG_ITEMS || got != sum {
                return Err("toast big_doc read back different items".into());
            }
            drop(back);
            let rss = vm_hwm()?;
            target.cleanup(&[]).await?;
            ChildReport {
                us,
                peak_rss_bytes: rss,
                payload_bytes,
                round_trips: d.save_calls + d.load_calls,
            }
        }
        _ => {
            // A hand-made claim check with the same driver: serialize each
            // item, write them in one batch, keep the ids in the document;
            // then read them back in one batch and deserialize.
            let start = Instant::now();
            let mut ids = Vec::with_capacity(items.len());
            let mut batch = Vec::with_capacity(items.len());
            for it in &items {
                let id = Uuid::new_v4();
                ids.push(id);
                batch.push((id, Bytes::from(serde_json::to_vec(it).map_err(err)?)));
            }
            let json = serde_json::to_string(&IdDoc { title, ids }).map_err(err)?;
            trace_rss("payloads serialized");
            target.raw.write(&batch).await?;
            trace_rss("payloads written");
            drop(batch);
            drop(items);
            trace_rss("items dropped");
            let doc: IdDoc = serde_json::from_str(&json).map_err(err)?;
            let data = target.raw.read(&doc.ids).await?;
            trace_rss("payloads read");
            let back = data
                .iter()
                .map(|d| serde_json::from_slice::<Item>(d).map_err(err))
                .collect::<R<Vec<Item>>>()?;
            drop(data);
            trace_rss("items decoded");
            let us = micros(start.elapsed());
            let mut got_items: Vec<&Item> = back.iter().collect();
            got_items.sort_by_key(|it| it.id);
            let got = checksum(got_items.iter().map(|it| it.id + it.body.len() as u64));
            if back.len() != BIG_ITEMS || got != sum {
                return Err("baseline big_doc read back different items".into());
            }
            drop(back);
            let rss = vm_hwm()?;
            target.cleanup(&doc.ids).await?;
            ChildReport {
                us,
                peak_rss_bytes: rss,
                payload_bytes,
                round_trips: 2,
            }
        }
    };
    Ok(report)
}

fn run_child(side: &str, which: Which, dir: &Path) -> R<ChildReport> {
    let exe = std::env::current_exe().map_err(err)?;
    let mut child = std::process::Command::new(exe);
    // The child measures peak RSS with the caller's heap parameters, not the
    // measuring process's (see `HEAP_TUNABLES`).
    // Without the restart (`TOAST_BENCH_TUNED` set by the caller) the
    // environment is the caller's already and is inherited as it is.
    match std::env::var("TOAST_BENCH_OWN_TUNABLES") {
        Ok(own) if !own.is_empty() => child.env("GLIBC_TUNABLES", own),
        Ok(_) => child.env_remove("GLIBC_TUNABLES"),
        Err(_) => &mut child,
    };
    let out = child
        .env("TOAST_BENCH_CHILD", side)
        .env("TOAST_BENCH_CHILD_BACKEND", which.name())
        .env("TOAST_BENCH_CHILD_DIR", dir)
        .output()
        .map_err(err)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("BIGDOC "))
        .ok_or_else(|| {
            format!(
                "{side} child failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )
        })?;
    let value: serde_json::Value = serde_json::from_str(line).map_err(err)?;
    if let Some(e) = value.get("error").and_then(|e| e.as_str()) {
        return Err(format!("{side} child: {e}"));
    }
    serde_json::from_value(value).map_err(err)
}

fn bench_big_doc(which: Which, dir: &Path) -> R<Row> {
    let tdir = dir.join("big-toast");
    let bdir = dir.join("big-base");
    std::fs::create_dir_all(&tdir).map_err(err)?;
    std::fs::create_dir_all(&bdir).map_err(err)?;
    // A few child pairs, alternating which side goes first: the median time,
    // the highest peak RSS of each side.
    let reps = FIXED_REPS.get().copied().unwrap_or(BIG_DOC_REPS);
    let (mut bt, mut tt) = (Vec::new(), Vec::new());
    let (mut base, mut toast): (Option<ChildReport>, Option<ChildReport>) = (None, None);
    for rep in 0..reps {
        let order = if rep % 2 == 0 {
            ["baseline", "toast"]
        } else {
            ["toast", "baseline"]
        };
        for side in order {
            let (dir, times, worst) = if side == "toast" {
                (&tdir, &mut tt, &mut toast)
            } else {
                (&bdir, &mut bt, &mut base)
            };
            let report = run_child(side, which, dir)?;
            times.push(report.us);
            if worst
                .as_ref()
                .is_none_or(|w| report.peak_rss_bytes > w.peak_rss_bytes)
            {
                *worst = Some(report);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&tdir);
    let _ = std::fs::remove_dir_all(&bdir);
    let (Some(mut base), Some(mut toast)) = (base, toast) else {
        return Err("big_doc ran no child".into());
    };
    base.us = median(&mut bt);
    toast.us = median(&mut tt);
    let payload = toast.payload_bytes as f64;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let mut row = Row {
        backend: which.name(),
        bench: "big_doc",
        toast_us: Some(toast.us),
        baseline_us: Some(base.us),
        round_trips: Some(toast.round_trips as f64),
        reps: Some(reps),
        target: "RSS ≤ 2.5 × payload",
        met: Some(toast.peak_rss_bytes as f64 <= 2.5 * payload),
        ..Row::default()
    };
    row.extra = vec![
        ("peak_rss_bytes", toast.peak_rss_bytes.into()),
        ("payload_bytes", toast.payload_bytes.into()),
        ("baseline_peak_rss_bytes", base.peak_rss_bytes.into()),
    ];
    row.note = format!(
        "highest peak RSS {:.0} MiB = {:.2} × payload {:.0} MiB (baseline {:.0} MiB = {:.2} ×)",
        mib(toast.peak_rss_bytes),
        toast.peak_rss_bytes as f64 / payload,
        mib(toast.payload_bytes),
        mib(base.peak_rss_bytes),
        base.peak_rss_bytes as f64 / payload
    );
    Ok(row)
}

// ---------------------------------------------------------------- main

struct Args {
    backends: Vec<Which>,
    json: Option<PathBuf>,
    only: Vec<String>,
}

fn parse_args() -> R<Args> {
    let mut backends = vec![Which::Memory, Which::Sqlite];
    let mut json = None;
    let mut only = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--backend" => {
                let v = args.next().ok_or("--backend needs a value")?;
                backends = if v == "all" {
                    Which::ALL.to_vec()
                } else {
                    v.split(',')
                        .map(|s| {
                            Which::parse(s).ok_or_else(|| {
                                format!("unknown backend '{s}': memory|sqlite|postgres|redis|all")
                            })
                        })
                        .collect::<R<Vec<_>>>()?
                };
            }
            "--profile-side" => {
                let side = args.next().ok_or("--profile-side needs toast|baseline")?;
                let _ = PROFILE_SIDE.set(side);
            }
            "--reps" => {
                let n = args.next().ok_or("--reps needs a number")?;
                let _ = FIXED_REPS.set(n.parse().map_err(|_| format!("--reps {n}: not a number"))?);
            }
            "--json" => json = Some(PathBuf::from(args.next().ok_or("--json needs a file")?)),
            "--only" => {
                only = args
                    .next()
                    .ok_or("--only needs a list of benches")?
                    .split(',')
                    .map(str::to_owned)
                    .collect();
                if let Some(bad) = only.iter().find(|b| !BENCHES.contains(&b.as_str())) {
                    return Err(format!("unknown bench '{bad}': {}", BENCHES.join(", ")));
                }
            }
            // `cargo bench` passes `--bench`; ignore it (and any filter it forwards).
            "--bench" => {}
            other if other.starts_with("--") => {
                return Err(format!(
                    "unknown option {other}: [--backend memory|sqlite|postgres|redis|all] \
                     [--json FILE] [--only {}]",
                    BENCHES.join(",")
                ))
            }
            _ => {}
        }
    }
    Ok(Args {
        backends,
        json,
        only,
    })
}

/// glibc heap parameters for the measuring process (the `big_doc` children,
/// which measure peak RSS, run with the defaults).
///
/// By default glibc gives the top of the heap back to the kernel once 128 KiB
/// of it is free, and serves blocks from a dynamic size (128 KiB up) with
/// `mmap`; each repetition then faults its pages in again, and how many
/// depends on what the *other* side freed just before. Measured on the machine
/// of BENCHMARKS.md: memory `read_1k`'s baseline took 0.55 ms or 1.0 ms
/// depending only on the toast code interleaved with it. With a fixed, high
/// trim threshold, top pad and mmap threshold, both sides reuse warm pages.
const HEAP_TUNABLES: &str = "glibc.malloc.trim_threshold=268435456:\
    glibc.malloc.top_pad=67108864:glibc.malloc.mmap_threshold=33554432";

/// Runs this bench again with [`HEAP_TUNABLES`] (glibc reads them only at
/// start-up) and exits with its status; returns in the process that has them.
fn steady_allocator() {
    if !cfg!(all(target_os = "linux", target_env = "gnu"))
        || std::env::var_os("TOAST_BENCH_TUNED").is_some()
    {
        return;
    }
    let own = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    let tunables = if own.is_empty() {
        HEAP_TUNABLES.to_owned()
    } else {
        format!("{own}:{HEAP_TUNABLES}")
    };
    let status = std::env::current_exe().and_then(|exe| {
        std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env("GLIBC_TUNABLES", tunables)
            .env("TOAST_BENCH_TUNED", "1")
            .env("TOAST_BENCH_OWN_TUNABLES", own)
            .status()
    });
    match status {
        Ok(status) => std::process::exit(status.code().unwrap_or(1)),
        Err(e) => {
            eprintln!("compare: cannot restart with steady heap parameters: {e}");
            std::process::exit(1);
        }
    }
}

fn child_main(side: &str) -> ! {
    let result = (|| -> R<ChildReport> {
        let which = std::env::var("TOAST_BENCH_CHILD_BACKEND")
            .ok()
            .and_then(|b| Which::parse(&b))
            .ok_or("TOAST_BENCH_CHILD_BACKEND missing")?;
        let dir = PathBuf::from(std::env::var("TOAST_BENCH_CHILD_DIR").map_err(err)?);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(err)?;
        rt.block_on(child_big_doc(side, which, &dir))
    })();
    let line = match result {
        Ok(report) => serde_json::to_string(&report).unwrap_or_default(),
        Err(e) => serde_json::json!({ "error": e }).to_string(),
    };
    println!("BIGDOC {line}");
    std::process::exit(0);
}

async fn run_backend(which: Which, only: &[String], dir: &Path) -> Vec<Row> {
    let name = which.name();
    let wanted: Vec<&'static str> = BENCHES
        .into_iter()
        .filter(|b| only.is_empty() || only.iter().any(|o| o == b))
        .collect();
    let target = match setup(which, dir).await {
        Ok(t) => t,
        Err(reason) => {
            eprintln!("[{name}] skipped: {reason}");
            return wanted
                .into_iter()
                .map(|b| {
                    let mut r = Row::skipped(name, b, &reason);
                    r.target = target_of(b);
                    r
                })
                .collect();
        }
    };
    let fixture = match Fixture::new() {
        Ok(f) => f,
        Err(e) => return vec![Row::skipped(name, "fixture", &e)],
    };
    let mut rows = Vec::new();
    for bench in wanted {
        eprint!("[{name}] {bench} … ");
        let _ = std::io::stderr().flush();
        let started = Instant::now();
        let result = match bench {
            "write_1k" => bench_write_1k(&target, &fixture).await,
            "read_1k" => bench_read_1k(&target, &fixture).await,
            "nested_3" => bench_nested_3(&target, &fixture).await,
            "single" => bench_single(&target, &fixture).await,
            "concurrent" => bench_concurrent(&target, &fixture).await,
            _ => {
                let dir = dir.to_owned();
                tokio::task::spawn_blocking(move || bench_big_doc(which, &dir))
                    .await
                    .map_err(err)
                    .and_then(|r| r)
            }
        };
        let mut row = result.unwrap_or_else(|e| {
            let mut r = Row::skipped(name, bench, &format!("failed: {e}"));
            r.target = target_of(bench);
            r
        });
        if row.target.is_empty() {
            row.target = target_of(bench);
        }
        eprintln!(
            "{:.1} s{}",
            started.elapsed().as_secs_f64(),
            row.ratio()
                .map(|r| format!(", ratio {r:.2}"))
                .unwrap_or_default()
        );
        rows.push(row);
    }
    let ids: Vec<Uuid> = fixture.payloads.iter().map(|(id, _)| *id).collect();
    if let Err(e) = target.cleanup(&ids).await {
        eprintln!("[{name}] WARNING: cleanup incomplete: {e}");
    }
    let _ = target.store.close().await;
    rows
}

fn main() {
    if let Ok(side) = std::env::var("TOAST_BENCH_CHILD") {
        child_main(&side);
    }
    steady_allocator();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("compare: {e}");
            std::process::exit(2);
        }
    };
    let started = Instant::now();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("compare: cannot start tokio: {e}");
            std::process::exit(1);
        }
    };
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("compare: cannot make a temp dir: {e}");
            std::process::exit(1);
        }
    };
    let mut rows = Vec::new();
    for which in &args.backends {
        let sub = dir.path().join(which.name());
        if let Err(e) = std::fs::create_dir_all(&sub) {
            eprintln!("compare: {e}");
            std::process::exit(1);
        }
        rows.extend(rt.block_on(run_backend(*which, &args.only, &sub)));
    }
    drop(rt);
    let elapsed = started.elapsed();
    println!();
    println!(
        "serde-toast compare — ratio = toast ÷ baseline (lower is better); medians over `reps` \
         interleaved repetitions after warm-up; round_trips = save_calls + load_calls per toast \
         operation"
    );
    println!();
    print!("{}", table(&rows));
    println!();
    println!("total time: {:.1} s", elapsed.as_secs_f64());
    if let Some(path) = &args.json {
        let mut text = String::new();
        for r in &rows {
            let _ = writeln!(text, "{}", r.json());
        }
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("compare: cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
        eprintln!("wrote {}", path.display());
    }
    let failed = rows.iter().any(|r| {
        r.skipped
            .as_deref()
            .is_some_and(|s| s.starts_with("failed"))
    });
    if failed {
        std::process::exit(1);
    }
}
