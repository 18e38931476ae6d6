//! `long_scope`: 100,000 reads of distinct documents inside one scope, in a
//! child process that reports how far its peak RSS rose during the reads.

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::big_doc::{run_child, vm_hwm, ChildReport};
use crate::measure::micros;
use crate::report::Row;
use crate::targets::{setup, Which};
use crate::{err, R};

const DOCS: usize = 100_000;
const BODY_BYTES: usize = 4096;
/// A scope's default cache budget (`Store::with_cache_budget`).
const CACHE_BUDGET: u64 = 64 << 20;
/// What the target allows beyond the budget.
const SLACK: u64 = 32 << 20;

pub(crate) const LONG_SCOPE_TARGET: &str = "RSS growth ≤ cache budget + 32 MiB";

/// A document's large part, stored out of line.
#[derive(Serialize, Deserialize)]
pub(crate) struct Body(String);

#[derive(Serialize, Deserialize)]
struct Small {
    n: u64,
    #[serde(with = "toast::external")]
    body: Body,
}

fn small(n: usize) -> Small {
    Small {
        n: n as u64,
        body: Body(format!("{n:08}").repeat(BODY_BYTES / 8)),
    }
}

/// The child: writes the documents (a thousand per scope, untimed), resets
/// the peak RSS, then reads every one with `from_json` in one scope.
pub(crate) async fn child_long_scope(which: Which, dir: &Path) -> R<ChildReport> {
    let target = setup(which, dir).await?;
    let store = target.store.clone();
    let mut texts = Vec::with_capacity(DOCS);
    let numbers: Vec<usize> = (0..DOCS).collect();
    for chunk in numbers.chunks(1_000) {
        let docs: Vec<Small> = chunk.iter().map(|&n| small(n)).collect();
        let written = toast::scope(store.clone(), async {
            docs.iter()
                .map(serde_json::to_string)
                .collect::<Result<Vec<String>, _>>()
        })
        .await
        .map_err(err)?
        .map_err(err)?;
        texts.extend(written);
    }
    // Linux: writing 5 to clear_refs resets the peak RSS to the current one.
    std::fs::write("/proc/self/clear_refs", "5").map_err(err)?;
    let before = vm_hwm()?;
    let stats = store.stats();
    let start = Instant::now();
    let sum = toast::scope(store.clone(), async {
        let mut sum = 0u64;
        for text in &texts {
            let doc: Small = toast::from_json(text).await?;
            sum = sum.wrapping_add(doc.n + doc.body.0.len() as u64);
        }
        Ok::<_, toast::Error>(sum)
    })
    .await
    .map_err(err)?
    .map_err(err)?;
    let us = micros(start.elapsed());
    let peak = vm_hwm()?;
    let want = (0..DOCS as u64).fold(0u64, |s, n| s.wrapping_add(n + BODY_BYTES as u64));
    if sum != want {
        return Err("long_scope read back different documents".into());
    }
    let loads = store.stats().since(&stats).load_calls;
    drop(texts);
    target.cleanup(&[]).await?;
    Ok(ChildReport {
        us,
        peak_rss_bytes: peak.saturating_sub(before),
        payload_bytes: before,
        round_trips: loads,
    })
}

pub(crate) fn bench_long_scope(which: Which, dir: &Path) -> R<Row> {
    if which == Which::Memory {
        return Ok(Row::skipped(
            which.name(),
            "long_scope",
            "the memory backend keeps the stored documents in the measuring process",
        ));
    }
    let cdir = dir.join("long-scope");
    std::fs::create_dir_all(&cdir).map_err(err)?;
    let report = run_child("long_scope", which, &cdir);
    let _ = std::fs::remove_dir_all(&cdir);
    let report = report?;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let mut row = Row {
        backend: which.name(),
        bench: "long_scope",
        toast_us: Some(report.us),
        round_trips: Some(report.round_trips as f64),
        reps: Some(1),
        target: LONG_SCOPE_TARGET,
        met: Some(report.peak_rss_bytes <= CACHE_BUDGET + SLACK),
        ..Row::default()
    };
    row.extra = vec![
        ("peak_rss_growth_bytes", report.peak_rss_bytes.into()),
        ("rss_before_bytes", report.payload_bytes.into()),
        ("documents", (DOCS as u64).into()),
    ];
    row.note = format!(
        "{DOCS} from_json of distinct documents with a 4 KiB external in one scope: \
         peak RSS rose {:.1} MiB over the {:.1} MiB before the reads ({:.1} µs a read)",
        mib(report.peak_rss_bytes),
        mib(report.payload_bytes),
        report.us / DOCS as f64
    );
    Ok(row)
}
