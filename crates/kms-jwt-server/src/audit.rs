//! The audit log: one JSON object per line on stderr, written by a thread of its own, so that
//! a slow log pipe never holds a request (or a runtime thread). Lines wait in a bounded queue;
//! if the pipe cannot keep up the newest are dropped and counted, and the count is itself
//! written as a line when the pipe has caught up. A server that stops waits (a little) for the
//! lines queued: the decisions of a drain are logged too.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use kms_jwt::issuer::AuditRecord;

/// Lines waiting for the writer.
const QUEUE: usize = 65_536;

/// What the writer is sent.
enum Line {
    Record(String),
    /// Answer once every line before this one is written.
    Flush(std::sync::mpsc::Sender<()>),
}

struct Log {
    lines: SyncSender<Line>,
    dropped: Arc<AtomicU64>,
}

static LOG: OnceLock<Log> = OnceLock::new();

fn log() -> &'static Log {
    LOG.get_or_init(|| {
        let (lines, queue) = sync_channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let counter = dropped.clone();
        std::thread::Builder::new()
            .name("kms-jwt-audit".into())
            .spawn(move || write_lines(&queue, &counter))
            .expect("the audit writer thread starts");
        Log { lines, dropped }
    })
}

fn write_lines(queue: &Receiver<Line>, dropped: &AtomicU64) {
    let stderr = std::io::stderr();
    for line in queue {
        let line = match line {
            Line::Record(line) => line,
            Line::Flush(done) => {
                let _ = done.send(());
                continue;
            }
        };
        let mut out = stderr.lock();
        let _ = writeln!(out, "{line}");
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            let _ = writeln!(out, "{}", serde_json::json!({ "audit": "dropped", "lines": lost }));
        }
    }
}

/// Queues one audit line. `serde_json` escapes every control character, so no input (an
/// audience with a newline) can break a line or forge another.
pub(crate) fn emit(record: &AuditRecord) {
    let Ok(line) = serde_json::to_string(record) else { return };
    let log = log();
    if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = log.lines.try_send(Line::Record(line)) {
        log.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// Waits up to `timeout` for the lines queued so far to be written.
pub(crate) fn flush(timeout: Duration) {
    let Some(log) = LOG.get() else { return };
    let (done, written) = std::sync::mpsc::channel();
    let deadline = std::time::Instant::now() + timeout;
    // The queue may be full: try until the deadline rather than block past it.
    let mut flush = Line::Flush(done);
    loop {
        match log.lines.try_send(flush) {
            Ok(()) => break,
            Err(TrySendError::Full(back)) if std::time::Instant::now() < deadline => {
                flush = back;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => return,
        }
    }
    let _ = written.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()));
}
