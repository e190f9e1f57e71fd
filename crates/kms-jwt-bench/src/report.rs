//! What a run found, on stdout for `cargo xtask bench` to read: a count, or one JSON object.

use std::io::Write as _;
use std::time::Duration;

use anyhow::Result;

/// Prints a count (of tokens verified, of digests signed).
pub(crate) fn count(valid: usize) -> Result<()> {
    writeln!(std::io::stdout().lock(), "{valid}")?;
    Ok(())
}

/// Prints `figures` as one line of JSON.
pub(crate) fn json(figures: &serde_json::Value) -> Result<()> {
    writeln!(std::io::stdout().lock(), "{figures}")?;
    Ok(())
}

/// Latencies' median and 99th percentile in milliseconds, and their rate over `elapsed`.
pub(crate) fn latency_figures(mut latencies: Vec<Duration>, elapsed: Duration) -> serde_json::Value {
    latencies.sort_unstable();
    let pct = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)].as_secs_f64() * 1e3;
    serde_json::json!({
        "count": latencies.len(), "per_sec": latencies.len() as f64 / elapsed.as_secs_f64(),
        "p50_ms": pct(50), "p99_ms": pct(99), "max_ms": pct(100),
    })
}
