//! The audit log: one JSON object per line on stderr, written by a thread of its own, so that
//! a slow log pipe never holds a request (or a runtime thread). Lines wait in a bounded queue;
//! if the pipe cannot keep up the newest are dropped and counted, and the count is itself
//! written as a line when the pipe has caught up.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, OnceLock};

use kms_jwt::issuer::AuditRecord;

/// Lines waiting for the writer.
const QUEUE: usize = 65_536;

struct Log {
    lines: SyncSender<String>,
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

fn write_lines(queue: &Receiver<String>, dropped: &AtomicU64) {
    let stderr = std::io::stderr();
    for line in queue {
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
    if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = log.lines.try_send(line) {
        log.dropped.fetch_add(1, Ordering::Relaxed);
    }
}
