//! The one report writer: every comparison as a row of `target/bench/report.md` and
//! `report.json`, and on stdout.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::json;

use super::Stats;
use crate::step;

/// One comparison: our figure against a baseline's, and the goal for their ratio.
pub(super) struct Comparison {
    pub(super) measure: String,
    pub(super) unit: &'static str,
    pub(super) ours: Stats,
    pub(super) baseline: String,
    pub(super) theirs: Stats,
    /// `ours / theirs` must be at least this (rates) or at most this (costs).
    pub(super) goal: f64,
    pub(super) higher_is_better: bool,
}

impl Comparison {
    fn ratio(&self) -> f64 {
        self.ours.median / self.theirs.median
    }

    fn met(&self) -> bool {
        if self.higher_is_better { self.ratio() >= self.goal } else { self.ratio() <= self.goal }
    }

    fn goal_text(&self) -> String {
        if self.goal.is_infinite() {
            return "(context)".into();
        }
        format!("{} {}x", if self.higher_is_better { ">=" } else { "<=" }, self.goal)
    }
}

pub(super) fn write_report(out: &Path, results: &[Comparison]) -> Result<()> {
    let machine = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let mut md = String::from("# kms-jwt benchmarks\n\n");
    let _ = write!(
        md,
        "`cargo xtask bench`, {} CPUs ({machine}). Each figure is min / median / max over interleaved runs after a warm-up; ratios use medians.\n\n",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
    );
    md.push_str(
        "| measure | kms-jwt | baseline | baseline figure | ratio | goal | met |\n|---|---|---|---|---|---|---|\n",
    );
    let mut rows = Vec::new();
    for r in results {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.3}x | {} | {} |",
            r.measure,
            r.ours.text(r.unit),
            r.baseline,
            r.theirs.text(r.unit),
            r.ratio(),
            r.goal_text(),
            match (r.goal.is_infinite(), r.met()) {
                (true, _) => "-",
                (false, true) => "yes",
                (false, false) => "no",
            }
        );
        rows.push(json!({
            "measure": r.measure, "unit": r.unit, "kms_jwt": r.ours.json(), "baseline": r.baseline,
            "baseline_figure": r.theirs.json(), "ratio": r.ratio(), "goal": r.goal_text(), "met": (!r.goal.is_infinite()).then(|| r.met()),
        }));
    }
    std::fs::write(out.join("report.md"), &md)?;
    std::fs::write(out.join("report.json"), serde_json::to_string_pretty(&json!({ "results": rows }))? + "\n")?;
    crate::print_text(&md)?;
    step(&format!("report written to {}", PathBuf::from(out).join("report.md").display()));
    Ok(())
}
