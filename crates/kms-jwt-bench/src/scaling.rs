//! Every core: one `Verifier` shared by threads, a clone per thread, or bare aws-lc-rs checks
//! (the machine's own ceiling).

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use kms_jwt::{Jwks, Verifier};

use crate::report;
use crate::verify::{bare_verify, lines, only_key};

/// Verifies every token in `threads` threads through one Verifier (or a clone per thread, or
/// with bare aws-lc-rs signature checks); prints tokens per second of the verification alone.
pub(crate) fn verify_threads(tokens: &Path, jwks: &Path, threads: usize, clones: bool, bare: bool) -> Result<()> {
    let tokens: Vec<String> = lines(tokens)?.collect();
    let verifier = Verifier::from_jwks(&Jwks::parse(&std::fs::read(jwks)?)?, None)?;
    let key = kms_jwt::VerifyingKey::from_jwk(&only_key(jwks)?, None)?;
    let started = Instant::now();
    let valid: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let own = clones.then(|| verifier.clone());
                let (verifier, tokens, key) = (&verifier, &tokens, &key);
                scope.spawn(move || {
                    let verifier = own.as_ref().unwrap_or(verifier);
                    tokens
                        .iter()
                        .skip(t)
                        .step_by(threads)
                        .filter(|token| {
                            if bare {
                                bare_verify(key, token).unwrap_or(false)
                            } else {
                                verifier
                                    .verify::<Box<serde_json::value::RawValue>>(token)
                                    .map(|v| v.claims.get().as_bytes().to_vec())
                                    .is_ok()
                            }
                        })
                        .count()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    let rate = tokens.len() as f64 / started.elapsed().as_secs_f64();
    anyhow::ensure!(valid == tokens.len(), "only {valid} of {} tokens verified", tokens.len());
    report::json(&serde_json::json!({ "tokens_per_sec": rate }))
}
