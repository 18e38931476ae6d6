//! The results: one row per backend and bench, printed as a table and as JSON lines.

use std::fmt::Write as _;

use crate::measure::Measured;

#[derive(Default)]
pub(crate) struct Row {
    pub(crate) backend: &'static str,
    pub(crate) bench: &'static str,
    pub(crate) toast_us: Option<f64>,
    pub(crate) baseline_us: Option<f64>,
    pub(crate) round_trips: Option<f64>,
    pub(crate) reps: Option<usize>,
    /// Toast's median beside the asides ([`Measured::aside_toast_us`]).
    pub(crate) aside_toast_us: Option<f64>,
    pub(crate) target: &'static str,
    pub(crate) met: Option<bool>,
    pub(crate) extra: Vec<(&'static str, serde_json::Value)>,
    pub(crate) note: String,
    pub(crate) skipped: Option<String>,
}

impl Row {
    pub(crate) fn ratio(&self) -> Option<f64> {
        match (self.toast_us, self.baseline_us) {
            (Some(t), Some(b)) if b > 0.0 => Some(t / b),
            _ => None,
        }
    }

    pub(crate) fn skipped(backend: &'static str, bench: &'static str, reason: &str) -> Row {
        Row {
            backend,
            bench,
            skipped: Some(reason.to_owned()),
            ..Row::default()
        }
    }

    pub(crate) fn measured(backend: &'static str, bench: &'static str, m: &Measured) -> Row {
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
    pub(crate) fn aside(&mut self, field: &'static str, what: &str, us: Option<f64>) {
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

    pub(crate) fn with_ratio_target(mut self, limit: f64, text: &'static str) -> Row {
        self.target = text;
        self.met = self.ratio().map(|r| r <= limit);
        self
    }

    /// One JSON line: the fields of BENCH.md in its order, then the extras.
    pub(crate) fn json(&self) -> String {
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
        // BENCH.md's names for the claim check by hand: its time, and toast's
        // (timed in the same loop) over it.
        let by_hand = self
            .extra
            .iter()
            .find(|(k, _)| *k == "claim_check_us")
            .and_then(|(_, v)| v.as_f64());
        if let Some(by_hand) = by_hand {
            fields.push(("by_hand_us", round(by_hand).into()));
            if let Some(t) = self.aside_toast_us.or(self.toast_us) {
                let ratio = ((t / by_hand) * 1000.0).round() / 1000.0;
                fields.push(("ratio_by_hand", ratio.into()));
            }
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

pub(crate) fn fmt_us(us: f64) -> String {
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

pub(crate) fn table(rows: &[Row]) -> String {
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
