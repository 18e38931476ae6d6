//! `big_doc`: one child process per side and backend, each reporting its own peak RSS.

use std::path::Path;
use std::time::Instant;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::fixtures::{make_item, ExtItem, IdDoc, Item};
use crate::measure::{median, micros, FIXED_REPS};
use crate::report::Row;
use crate::targets::{setup, Which};
use crate::{err, R};

const BIG_ITEM_BYTES: usize = 10 * 1024;
const BIG_ITEMS: usize = 10_000;
/// Child processes per side for `big_doc`.
const BIG_DOC_REPS: usize = 3;

#[derive(Serialize, Deserialize)]
struct BigDoc {
    title: String,
    items: Vec<ExtItem>,
}

#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct ChildReport {
    pub(crate) us: f64,
    pub(crate) peak_rss_bytes: u64,
    pub(crate) payload_bytes: u64,
    pub(crate) round_trips: u64,
}

pub(crate) fn vm_hwm() -> R<u64> {
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
pub(crate) async fn child_big_doc(side: &str, which: Which, dir: &Path) -> R<ChildReport> {
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

pub(crate) fn run_child(side: &str, which: Which, dir: &Path) -> R<ChildReport> {
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

pub(crate) fn bench_big_doc(which: Which, dir: &Path) -> R<Row> {
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
