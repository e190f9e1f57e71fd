//! Replays the checked-in fuzz corpora (`fuzz/corpus/*`) through the fuzz targets' bodies on
//! the stable toolchain, so every input a fuzzer ever kept stays a regression test.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

#[path = "../../../fuzz/targets.rs"]
mod targets;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        assert!(std::panic::catch_unwind(|| run(&data)).is_ok(), "{target}: {} makes the target fail", path.display());
        count += 1;
    }
    assert!(count >= 4, "{target}: only {count} corpus entries");
}

#[test]
fn verify_corpus() {
    replay("verify", targets::verify);
}

#[test]
fn ecdsa_der_corpus() {
    replay("ecdsa_der", targets::ecdsa_der);
}

#[test]
fn jwks_corpus() {
    replay("jwks", targets::jwks);
}

#[test]
fn claims_corpus() {
    replay("claims", targets::claims);
}
