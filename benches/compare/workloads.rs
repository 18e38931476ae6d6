//! The workloads of BENCH.md that run in this process, each timed beside its baselines.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use uuid::Uuid;

use crate::fixtures::{
    content_id, make_item, payloads_of, ClaimDoc, Doc, ExtItem, Fixture, InlineDoc, InlineNested,
    Item, NestedDoc, ITEM_BYTES,
};
use crate::measure::{compare, compare_aside, median, timed, Measured, Op, Plan};
use crate::raw::Raw;
use crate::report::{fmt_us, Row};
use crate::targets::{Target, Which};
use crate::{err, BoxFut, R};

const SINGLE_SAMPLES: usize = 2_000;
const TASKS: usize = 32;
const PER_TASK: usize = 500;

pub(crate) const BENCHES: [&str; 8] = [
    "write_1k",
    "read_1k",
    "nested_3",
    "single",
    "concurrent",
    "scale",
    "big_doc",
    "long_scope",
];

/// The rows a bench of [`BENCHES`] gives: `scale` one per shape, the others
/// one of their own name.
pub(crate) fn rows_of(bench: &'static str) -> Vec<&'static str> {
    match bench {
        "scale" => vec!["scale_write", "scale_read"],
        other => vec![other],
    }
}

pub(crate) fn target_of(bench: &str) -> &'static str {
    match bench {
        "write_1k" | "read_1k" | "concurrent" => "≤ 1.25",
        "single" => "≤ 1.20",
        "nested_3" => "round_trips = 3",
        "big_doc" => "RSS ≤ 2.5 × payload",
        "scale" | "scale_write" | "scale_read" => SCALE_TARGET,
        "long_scope" => crate::long_scope::LONG_SCOPE_TARGET,
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

pub(crate) async fn bench_write_1k(t: &Target, fx: &Fixture) -> R<Row> {
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
        Box::pin(toast_write(t, items, title, rev, Reset::Delete))
    };
    let base_op = move || -> BoxFut<'_, Duration> { Box::pin(write_raw(raw, items, title, rev)) };
    let mut shaped_op = shaped.map(|shaped| {
        move || -> BoxFut<'_, Duration> { Box::pin(write_raw(shaped, items, title, rev)) }
    });
    let mut hand_made_op = move || -> BoxFut<'_, Duration> {
        Box::pin(write_claim_check(
            hand_made_into,
            items,
            title,
            rev,
            Reset::Delete,
        ))
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

/// One toast write of the next revision of `items` (see [`revision`]) as a
/// [`Doc`]: `to_json` in a scope, timed; then what it wrote deleted and the
/// store settled, outside the timer.
async fn toast_write(
    t: &Target,
    items: &[Item],
    title: &str,
    rev: &std::sync::atomic::AtomicU64,
    reset: Reset,
) -> R<Duration> {
    let doc = Doc {
        title: title.to_owned(),
        items: next_revision(items, rev).into_iter().map(ExtItem).collect(),
    };
    let (elapsed, json) = timed(async {
        toast::scope(t.store.clone(), toast::to_json(&doc))
            .await
            .map_err(err)?
            .map_err(err)
    })
    .await?;
    if !(reset == Reset::Empty && t.empty_toast().await?) {
        let mut de = serde_json::Deserializer::from_str(&json);
        let refs = toast::collect_references(&mut de).map_err(err)?;
        t.delete_refs(&refs).await?;
        t.settle_toast().await?;
    }
    Ok(elapsed)
}

/// How a write rep leaves its table for the next, outside its timer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reset {
    /// What it wrote deleted by id.
    Delete,
    /// The table emptied in one statement where it holds only this run's
    /// rows (SQLite, PostgreSQL), as `Delete` elsewhere: deleting 100,000
    /// rows by id costs SQLite more than writing them.
    Empty,
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
    reset: Reset,
) -> R<Duration> {
    let items = next_revision(items, rev);
    let (elapsed, ids) = timed(async {
        let payloads = items
            .iter()
            .map(|it| {
                let bytes = serde_json::to_vec(it).map_err(err)?;
                Ok((content_id("Item", &bytes), Bytes::from(bytes)))
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
    if !(reset == Reset::Empty && raw.empty().await?) {
        discard(raw, &ids).await?;
    }
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
                std::hint::black_box(content_id("ExtItem", bytes));
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

/// One toast read of `json`, a [`Doc`] of `n` externals: `from_json` in a
/// fresh scope, timed.
async fn toast_read(store: &toast::Store, json: &str, n: usize) -> R<Duration> {
    let (elapsed, doc) = timed(async {
        toast::scope(store.clone(), toast::from_json::<Doc>(json))
            .await
            .map_err(err)?
            .map_err(err)
    })
    .await?;
    if doc.items.len() != n {
        return Err("toast read a short document".into());
    }
    Ok(elapsed)
}

/// `read_1k`'s claim check by hand on `raw`, for the [`ClaimDoc`] `claim` of
/// `n` references: what toast does, written out for this one document: parse
/// the references, read their payloads in one batch, decode each. It keeps
/// the rows in the order the driver returns them, where a real claim check
/// must put each value back in its place: a lower bound on hand-written code.
async fn read_claim_check(raw: &Raw, claim: &str, n: usize) -> R<Duration> {
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
    if doc.items.len() != n {
        return Err("the hand-made claim check read a short document".into());
    }
    Ok(elapsed)
}

pub(crate) async fn bench_read_1k(t: &Target, fx: &Fixture) -> R<Row> {
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
    let mut hand = move || -> BoxFut<'_, Duration> { Box::pin(read_claim_check(raw, claim, 1000)) };
    let mut asides: Vec<Op<'_, '_>> = vec![&mut hand];
    if let Some(op) = shaped_op.as_mut() {
        asides.push(op);
    }
    let m = compare_aside(
        batch_plan(t.which),
        store,
        move || Box::pin(toast_read(store, json, 1000)),
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

pub(crate) async fn bench_nested_3(t: &Target, fx: &Fixture) -> R<Row> {
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

pub(crate) async fn bench_single(t: &Target, fx: &Fixture) -> R<Row> {
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

pub(crate) async fn bench_concurrent(t: &Target, fx: &Fixture) -> R<Row> {
    let items = Arc::new(fx.items.clone());
    let items = &items;
    let plan = match t.which {
        Which::Memory => Plan {
            warmup: 1,
            min: 11,
            max: 51,
            budget: Duration::from_secs(4),
        },
        // Redis's repetitions are short enough to run more of them in the
        // budget (a few left its ratio noisy); SQLite's and PostgreSQL's
        // stop at the minimum.
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

/// `scale`'s documents: externals per document, the `write_1k` and `read_1k`
/// shapes at each size.
const SCALE_SIZES: [usize; 3] = [10, 1_000, 100_000];

/// Per external, the cost at the largest size ÷ the cost at 1,000.
const SCALE_LIMIT: f64 = 1.2;
const SCALE_TARGET: &str = "100k ÷ 1k ≤ 1.20 per external";

/// How long and how often to measure one `scale` size: the small documents
/// as `write_1k`'s are measured, the largest (long reps) a few times.
fn scale_plan(which: Which, n: usize) -> Plan {
    let memory = which == Which::Memory;
    if n <= 100 {
        Plan {
            warmup: 20,
            min: 101,
            max: 5_001,
            budget: Duration::from_secs(1),
        }
    } else if n <= 10_000 {
        Plan {
            warmup: 3,
            min: 21,
            max: 501,
            budget: Duration::from_secs(if memory { 2 } else { 3 }),
        }
    } else if memory {
        Plan {
            warmup: 1,
            min: 3,
            max: 7,
            budget: Duration::from_secs(5),
        }
    } else {
        // Its code is warm from the smaller sizes, and each rep is long.
        Plan {
            warmup: 0,
            min: 3,
            max: 3,
            budget: Duration::ZERO,
        }
    }
}

/// `scale`: the `write_1k` and `read_1k` shapes with each of
/// [`SCALE_SIZES`] externals (items of `write_1k`'s size), toast beside the
/// same claim check by hand; one row per shape.
pub(crate) async fn bench_scale(t: &Target) -> R<Vec<Row>> {
    let largest = SCALE_SIZES[SCALE_SIZES.len() - 1];
    let items: Vec<Item> = (0..largest)
        .map(|i| make_item(u64::try_from(i).unwrap_or(0), ITEM_BYTES))
        .collect();
    // From empty tables, where one statement can empty them (what the
    // benches before left there is not read again).
    t.empty_toast().await?;
    t.raw.empty().await?;
    if let Some(shaped) = &t.shaped {
        shaped.empty().await?;
    }
    let mut writes = Vec::new();
    let mut reads = Vec::new();
    for n in SCALE_SIZES {
        writes.push((n, scale_write(t, &items[..n]).await?));
        reads.push((n, scale_read(t, &items[..n]).await?));
    }
    Ok(vec![
        scale_row(t.which, "scale_write", &writes),
        scale_row(t.which, "scale_read", &reads),
    ])
}

/// `write_1k`'s shape with `items.len()` externals: toast beside the claim
/// check by hand (into a table of toast's shape where there is one, as in
/// `write_1k`), both writing a new revision every rep.
async fn scale_write(t: &Target, items: &[Item]) -> R<Measured> {
    let rev = std::sync::atomic::AtomicU64::new(1);
    let rev = &rev;
    let into = t.shaped.as_deref().unwrap_or(&*t.raw);
    compare(
        scale_plan(t.which, items.len()),
        &t.store,
        move || Box::pin(toast_write(t, items, "scale", rev, Reset::Empty)),
        move || Box::pin(write_claim_check(into, items, "scale", rev, Reset::Empty)),
    )
    .await
}

/// `read_1k`'s shape with `items.len()` externals: toast beside the claim
/// check by hand, each reading what it wrote beforehand, removed afterwards
/// (tables emptied where one statement can).
async fn scale_read(t: &Target, items: &[Item]) -> R<Measured> {
    let n = items.len();
    let doc = Doc {
        title: "scale".into(),
        items: items.iter().cloned().map(ExtItem).collect(),
    };
    let json = toast::scope(t.store.clone(), toast::to_json(&doc))
        .await
        .map_err(err)?
        .map_err(err)?;
    drop(doc);
    let payloads = payloads_of(items)?;
    let raw = &*t.raw;
    raw.write(&payloads).await?;
    let claim = serde_json::to_string(&ClaimDoc::of("scale", &payloads)).map_err(err)?;
    let (json, claim) = (&json, &claim);
    let measured = compare(
        scale_plan(t.which, n),
        &t.store,
        move || Box::pin(toast_read(&t.store, json, n)),
        move || Box::pin(read_claim_check(raw, claim, n)),
    )
    .await;
    if !raw.empty().await? {
        let ids: Vec<Uuid> = payloads.iter().map(|(id, _)| *id).collect();
        discard(raw, &ids).await?;
    }
    if !t.empty_toast().await? {
        let mut de = serde_json::Deserializer::from_str(json);
        let refs = toast::collect_references(&mut de).map_err(err)?;
        t.delete_refs(&refs).await?;
        t.settle_toast().await?;
    }
    measured
}

/// One `scale` row from its runs (externals, measurement), smallest first:
/// toast, baseline (the claim check by hand) and round trips of the
/// largest; the cost per external of each size and its growth from 1,000
/// to the largest in the extras and the note.
fn scale_row(which: Which, bench: &'static str, runs: &[(usize, Measured)]) -> Row {
    let Some((largest, last)) = runs.last() else {
        return Row::skipped(which.name(), bench, "no size measured");
    };
    let per_external = |us: fn(&Measured) -> f64| -> Vec<(usize, f64)> {
        runs.iter().map(|(n, m)| (*n, us(m) / *n as f64)).collect()
    };
    let toast = per_external(|m| m.toast_us);
    let hand = per_external(|m| m.baseline_us);
    let growth = |v: &[(usize, f64)]| {
        let at = |k: usize| v.iter().find(|(n, _)| *n == k).map(|(_, us)| *us);
        Some(at(*largest)? / at(1_000)?)
    };
    let (toast_growth, hand_growth) = (growth(&toast), growth(&hand));
    let thousandths = |x: f64| (x * 1000.0).round() / 1000.0;
    let by_size = |v: &[(usize, f64)]| {
        serde_json::Value::Object(
            v.iter()
                .map(|(n, x)| (n.to_string(), thousandths(*x).into()))
                .collect(),
        )
    };
    let round_trips: Vec<(usize, f64)> = runs.iter().map(|(n, m)| (*n, m.round_trips)).collect();
    let mut row = Row::measured(which.name(), bench, last);
    row.target = SCALE_TARGET;
    row.met = toast_growth.map(|g| g <= SCALE_LIMIT);
    row.extra = vec![
        ("externals", (*largest).into()),
        ("per_external_us", by_size(&toast)),
        ("by_hand_per_external_us", by_size(&hand)),
        ("ratio_100k_to_1k", toast_growth.map(thousandths).into()),
        (
            "by_hand_ratio_100k_to_1k",
            hand_growth.map(thousandths).into(),
        ),
        ("round_trips_per_size", by_size(&round_trips)),
    ];
    let list = |v: &[(usize, f64)]| {
        v.iter()
            .map(|(n, us)| format!("{}: {}", thousands(*n), fmt_us(*us)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let fmt_growth = |g: Option<f64>| g.map_or_else(|| "—".to_owned(), |g| format!("{g:.2}"));
    row.note = format!(
        "per external, toast {} (100k ÷ 1k {}); by hand {} ({}); toast, baseline (the claim \
         check by hand) and round trips of the {} run",
        list(&toast),
        fmt_growth(toast_growth),
        list(&hand),
        fmt_growth(hand_growth),
        thousands(*largest),
    );
    row
}

/// `100000` as `100,000`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
