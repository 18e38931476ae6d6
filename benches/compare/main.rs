//! toast beside its raw-driver baseline, every workload of BENCH.md, one table.
//!
//! ```text
//! cargo bench --bench compare --features postgres,redis -- \
//!     [--backend memory|sqlite|postgres|redis|all] [--json FILE] [--svg FILE] \
//!     [--only write_1k,single,…]
//! cargo bench --bench compare -- --chart FILE.json --svg FILE.svg
//! ```
//!
//! `--svg` draws the chart of the run (`chart.rs`) from the same JSON lines
//! `--json` writes; `--chart` draws it from a file of them, without running
//! anything.
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
// The bench's futures run on its own runtime and are never sent to another
// thread; its setup may panic on a broken environment.
#![allow(
    clippy::future_not_send,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod big_doc;
mod chart;
mod fixtures;
mod long_scope;
mod measure;
mod raw;
mod report;
mod targets;
mod workloads;

use std::fmt::Write as _;
use std::future::Future;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::big_doc::{bench_big_doc, child_big_doc, ChildReport};
use crate::fixtures::Fixture;
use crate::measure::{FIXED_REPS, PROFILE_SIDE};
use crate::report::{table, Row};
use crate::targets::{setup, Which};
use crate::workloads::{
    bench_concurrent, bench_nested_3, bench_read_1k, bench_scale, bench_single, bench_write_1k,
    rows_of, target_of, BENCHES,
};

type R<T> = Result<T, String>;
type BoxFut<'a, T> = Pin<Box<dyn Future<Output = R<T>> + Send + 'a>>;

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// How long one workload of one backend may take before it is reported as
/// failed.
const BENCH_TIMEOUT: Duration = Duration::from_secs(600);

struct Args {
    backends: Vec<Which>,
    json: Option<PathBuf>,
    /// `--svg`: the chart drawn from the JSON lines (of this run, or of `chart`).
    svg: Option<PathBuf>,
    /// `--chart`: a file of JSON lines to draw instead of running.
    chart: Option<PathBuf>,
    only: Vec<String>,
}

const USAGE: &str = "[--backend memory|sqlite|postgres|redis|all] [--json FILE] [--svg FILE] \
                     [--chart FILE.json --svg FILE.svg]";

fn parse_args() -> R<Args> {
    let mut backends = vec![Which::Memory, Which::Sqlite];
    let mut json = None;
    let mut svg = None;
    let mut chart = None;
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
            "--svg" => svg = Some(PathBuf::from(args.next().ok_or("--svg needs a file")?)),
            "--chart" => {
                chart = Some(PathBuf::from(
                    args.next().ok_or("--chart needs a file of JSON lines")?,
                ));
            }
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
                    "unknown option {other}: {USAGE} [--only {}]",
                    BENCHES.join(",")
                ))
            }
            _ => {}
        }
    }
    if chart.is_some() && svg.is_none() {
        return Err("--chart needs --svg FILE to draw into".into());
    }
    Ok(Args {
        backends,
        json,
        svg,
        chart,
        only,
    })
}

/// glibc heap parameters for the measuring process (the `big_doc` children,
/// which measure peak RSS, run with the defaults).
///
/// By default glibc gives the top of the heap back to the kernel once 128 KiB
/// of it is free, and serves blocks from a dynamic size (128 KiB up) with
/// `mmap`; each repetition then faults its pages in again, and how many
/// depends on what the *other* side freed just before: one side's time then
/// depends on the other side's code interleaved with it. With a fixed, high
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
        if side == "long_scope" {
            rt.block_on(long_scope::child_long_scope(which, &dir))
        } else {
            rt.block_on(child_big_doc(side, which, &dir))
        }
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
                .flat_map(rows_of)
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
        let run = async {
            match bench {
                "write_1k" => bench_write_1k(&target, &fixture).await.map(|r| vec![r]),
                "read_1k" => bench_read_1k(&target, &fixture).await.map(|r| vec![r]),
                "nested_3" => bench_nested_3(&target, &fixture).await.map(|r| vec![r]),
                "single" => bench_single(&target, &fixture).await.map(|r| vec![r]),
                "concurrent" => bench_concurrent(&target, &fixture).await.map(|r| vec![r]),
                "scale" => bench_scale(&target).await,
                "long_scope" => {
                    let dir = dir.to_owned();
                    tokio::task::spawn_blocking(move || long_scope::bench_long_scope(which, &dir))
                        .await
                        .map_err(err)
                        .and_then(|r| r)
                        .map(|r| vec![r])
                }
                _ => {
                    let dir = dir.to_owned();
                    tokio::task::spawn_blocking(move || bench_big_doc(which, &dir))
                        .await
                        .map_err(err)
                        .and_then(|r| r)
                        .map(|r| vec![r])
                }
            }
        };
        // A workload that hangs is reported as failed instead of holding
        // up the run (the `big_doc` children are left to end on their own).
        let result = tokio::time::timeout(BENCH_TIMEOUT, run)
            .await
            .unwrap_or_else(|_| Err(format!("not finished within {} s", BENCH_TIMEOUT.as_secs())));
        let got = result.unwrap_or_else(|e| {
            rows_of(bench)
                .into_iter()
                .map(|b| {
                    let mut r = Row::skipped(name, b, &format!("failed: {e}"));
                    r.target = target_of(b);
                    r
                })
                .collect()
        });
        let ratios: Vec<String> = got
            .iter()
            .filter_map(|r| r.ratio().map(|x| format!(", ratio {x:.2}")))
            .collect();
        eprintln!(
            "{:.1} s{}",
            started.elapsed().as_secs_f64(),
            ratios.concat()
        );
        for mut row in got {
            if row.target.is_empty() {
                row.target = target_of(row.bench);
            }
            rows.push(row);
        }
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
    if let (Some(from), Some(svg)) = (&args.chart, &args.svg) {
        let drawn = std::fs::read_to_string(from)
            .map_err(|e| format!("cannot read {}: {e}", from.display()))
            .and_then(|lines| chart::draw(&lines, svg, &from.display().to_string()));
        match drawn {
            Ok(()) => eprintln!("wrote {}", svg.display()),
            Err(e) => {
                eprintln!("compare: cannot draw {}: {e}", svg.display());
                std::process::exit(1);
            }
        }
        return;
    }
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
    let mut text = String::new();
    for r in &rows {
        let _ = writeln!(text, "{}", r.json());
    }
    if let Some(path) = &args.json {
        if let Err(e) = std::fs::write(path, &text) {
            eprintln!("compare: cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
        eprintln!("wrote {}", path.display());
    }
    if let Some(svg) = &args.svg {
        // Drawn from the JSON lines, as `--chart` draws them from a file.
        let source = args
            .json
            .as_ref()
            .map_or_else(|| "this run".to_owned(), |p| p.display().to_string());
        if let Err(e) = chart::draw(&text, svg, &source) {
            eprintln!("compare: cannot draw {}: {e}", svg.display());
            std::process::exit(1);
        }
        eprintln!("wrote {}", svg.display());
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
