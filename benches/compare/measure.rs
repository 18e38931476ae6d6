//! Measuring: toast and its baseline interleaved rep by rep, medians, timers.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::{BoxFut, R};

pub(crate) static PROFILE_SIDE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
/// `--reps N`: exactly N measured reps (for a profiler), instead of a time budget.
pub(crate) static FIXED_REPS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// How long and how often to measure one workload.
#[derive(Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) warmup: usize,
    pub(crate) min: usize,
    pub(crate) max: usize,
    pub(crate) budget: Duration,
}

pub(crate) struct Measured {
    pub(crate) toast_us: f64,
    pub(crate) baseline_us: f64,
    /// The medians of [`compare_aside`]'s asides, in their order.
    pub(crate) aside_us: Vec<f64>,
    /// Toast's median in the asides' loop, which their ratios are taken
    /// against.
    pub(crate) aside_toast_us: Option<f64>,
    pub(crate) reps: usize,
    pub(crate) round_trips: f64,
}

pub(crate) fn median(v: &mut [f64]) -> f64 {
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

pub(crate) fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Runs `toast_op` and `base_op` interleaved (alternating which goes first)
/// and returns the medians of the durations they report (each op times its
/// own core, leaving preparation and clean-up out); round trips are counted
/// around the toast runs only.
pub(crate) async fn compare<'a>(
    plan: Plan,
    store: &toast::Store,
    toast_op: impl FnMut() -> BoxFut<'a, Duration>,
    base_op: impl FnMut() -> BoxFut<'a, Duration>,
) -> R<Measured> {
    compare_aside(plan, store, toast_op, base_op, Vec::new()).await
}

/// An aside: an operation [`compare_aside`] times beside a pair.
pub(crate) type Op<'o, 'a> = &'o mut (dyn FnMut() -> BoxFut<'a, Duration> + 'o);

/// As [`compare`], then the asides, in a loop of their own beside toast:
/// variants of the baseline that do more of toast's work, to show where a
/// ratio's excess goes ([`Measured::aside_us`], against
/// [`Measured::aside_toast_us`]).
pub(crate) async fn compare_aside<'a>(
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
    // would warm the baseline's data (the claim check by hand reads the
    // baseline's table) and cool toast's, and move the pair's ratio.
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
pub(crate) async fn timed<T>(fut: impl Future<Output = R<T>>) -> R<(Duration, T)> {
    let start = Instant::now();
    let out = fut.await?;
    Ok((start.elapsed(), out))
}
