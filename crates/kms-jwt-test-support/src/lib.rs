//! Test support shared by the kms-jwt crates and the bench: the `LocalStack` endpoint (a
//! process or a testcontainers container), the `MiniStack` endpoint (Ed25519 in KMS), KMS keys, the binary under test, a `kms-jwt serve`
//! guard, a fault proxy, and verifiers we did not write.
//!
//! Two features: `harness` (the `serve` guard, the fault proxy, the CLI helper, `LocalStack`'s
//! dummy credentials: what xtask and kms-jwt-bench use, without an AWS SDK or testcontainers)
//! and `kms` (the `LocalStack` harness and KMS helpers, and `harness`), so that the library's
//! tests without its `kms` feature do not turn that feature back on through this crate.
#![allow(clippy::missing_panics_doc, clippy::unwrap_used, clippy::expect_used, clippy::must_use_candidate)]

#[cfg(feature = "harness")]
mod cli;
#[cfg(feature = "harness")]
pub mod lambda;
#[cfg(feature = "kms")]
mod localstack;
#[cfg(feature = "kms")]
mod ministack;
#[cfg(feature = "harness")]
pub mod proxy;
#[cfg(feature = "harness")]
pub mod serve;

#[cfg(feature = "harness")]
pub use cli::*;
#[cfg(feature = "kms")]
pub use localstack::*;
#[cfg(feature = "kms")]
pub use ministack::*;

use std::process::{Command, Output};

/// A name no other test run uses.
pub fn unique(prefix: &str) -> String {
    let mut id = [0u8; 6];
    aws_lc_rs::rand::fill(&mut id).expect("rng");
    format!("{prefix}-{}", kms_jwt::fuzzing::b64_encode(id).to_lowercase().replace(['-', '_'], "x"))
}

/// The `LocalStack` venv's Python (`PyJWT`, boto3).
pub fn python() -> String {
    std::env::var("KMS_JWT_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("this test needs the LocalStack venv's python: run `cargo xtask ci` or export KMS_JWT_TEST_PYTHON")
    })
}

/// Verifies `(token, pem, alg)` triples with `PyJWT` in one process; returns each outcome.
pub fn pyjwt_verify(cases: &[(String, String, String)]) -> Vec<Result<serde_json::Value, String>> {
    let script = r#"
import json, sys, jwt
out = []
for token, pem, alg in json.load(sys.stdin):
    try:
        out.append({"ok": jwt.decode(token, pem, algorithms=[alg], options={"verify_aud": False})})
    except Exception as e:
        out.append({"err": f"{type(e).__name__}: {e}"})
print(json.dumps(out))
"#;
    let input = serde_json::to_vec(cases).unwrap();
    let out = run_with_stdin(Command::new(python()).args(["-c", script]), &input);
    assert!(out.status.success(), "PyJWT failed: {}", String::from_utf8_lossy(&out.stderr));
    let results: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    results
        .into_iter()
        .map(|r| match r.get("ok") {
            Some(claims) => Ok(claims.clone()),
            None => Err(r["err"].as_str().unwrap_or("?").to_owned()),
        })
        .collect()
}

/// What jose (npm) said: each token it verified (its claims and the key's thumbprint, or its
/// error), and the tokens it signed with fresh keys (`alg`, token, public JWK with `kid`).
pub struct Jose {
    /// Per token given to verify: `{"claims", "thumbprint"}`, or jose's error.
    pub verified: Vec<Result<serde_json::Value, String>>,
    /// Per algorithm asked for: `(alg, token, jwk)`.
    pub signed: Vec<(String, String, serde_json::Value)>,
}

/// Runs jose on Node.js 24 (`scripts/jose.sh`, directory in `KMS_JWT_TEST_JOSE`): verifies each
/// `(token, public JWK, alg)` and signs a token with a fresh key for each of `sign`.
pub fn jose(verify: &[(String, serde_json::Value, String)], sign: &[&str]) -> Jose {
    let dir = std::env::var("KMS_JWT_TEST_JOSE").unwrap_or_else(|_| {
        panic!("this test needs jose (npm): run `cargo xtask ci`, or export KMS_JWT_TEST_JOSE=$(bash scripts/jose.sh)")
    });
    let dir = std::path::Path::new(&dir);
    let verify: Vec<serde_json::Value> =
        verify.iter().map(|(token, jwk, alg)| serde_json::json!({"token": token, "jwk": jwk, "alg": alg})).collect();
    let input = serde_json::to_vec(&serde_json::json!({"verify": verify, "sign": sign})).unwrap();
    let mut cmd = Command::new(dir.join("node_modules/.bin/node"));
    // ML-DSA in Node's Web Crypto is experimental: it says so on every run.
    cmd.arg("--no-warnings").arg(dir.join("interop.mjs"));
    let out = run_with_stdin(&mut cmd, &input);
    assert!(out.status.success(), "jose failed: {}", String::from_utf8_lossy(&out.stderr));
    let out: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let verified = out["verified"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| match r.get("err") {
            Some(err) => Err(err.as_str().unwrap_or("?").to_owned()),
            None => Ok(r.clone()),
        })
        .collect();
    let signed = out["signed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["alg"].as_str().unwrap().to_owned(), s["token"].as_str().unwrap().to_owned(), s["jwk"].clone()))
        .collect();
    Jose { verified, signed }
}

/// Verifies a JOSE signature with the openssl CLI (ECDSA converted back to DER; Ed25519 and
/// ML-DSA over the raw message with `pkeyutl`).
pub fn openssl_verify(pem: &str, alg: kms_jwt::Algorithm, signing_input: &str, jose_signature: &[u8]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let (pem_path, sig_path, msg_path) =
        (dir.path().join("pub.pem"), dir.path().join("sig.bin"), dir.path().join("msg"));
    std::fs::write(&pem_path, pem).unwrap();
    std::fs::write(&msg_path, signing_input).unwrap();
    let sig =
        if alg.is_ecdsa() { kms_jwt::fuzzing::fixed_to_der(jose_signature).unwrap() } else { jose_signature.to_vec() };
    std::fs::write(&sig_path, sig).unwrap();
    let Some(digest) = alg.digest() else {
        // Ed25519 and ML-DSA sign the message itself.
        let mut cmd = Command::new("openssl");
        cmd.args(["pkeyutl", "-verify", "-rawin", "-pubin", "-inkey"]).arg(&pem_path);
        cmd.arg("-sigfile").arg(&sig_path).arg("-in").arg(&msg_path);
        return cmd.output().expect("openssl");
    };
    let digest = match digest.output_len() {
        32 => "-sha256",
        48 => "-sha384",
        _ => "-sha512",
    };
    let mut cmd = Command::new("openssl");
    cmd.args(["dgst", digest, "-verify"]).arg(&pem_path).arg("-signature").arg(&sig_path);
    if alg.name().starts_with("PS") {
        cmd.args(["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"]);
    }
    cmd.arg(&msg_path).output().expect("openssl")
}

/// Runs a command with `input` on stdin.
pub fn run_with_stdin(cmd: &mut Command, input: &[u8]) -> Output {
    use std::io::Write as _;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait");
    writer.join().unwrap();
    out
}

/// jsonwebtoken's name for `alg`, where jsonwebtoken implements it (not ES512, ES256K,
/// RFC 9864's `Ed25519` or ML-DSA).
pub fn jsonwebtoken_alg(alg: kms_jwt::Algorithm) -> Option<jsonwebtoken::Algorithm> {
    use kms_jwt::Algorithm;
    Some(match alg {
        Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
        Algorithm::RS384 => jsonwebtoken::Algorithm::RS384,
        Algorithm::RS512 => jsonwebtoken::Algorithm::RS512,
        Algorithm::PS256 => jsonwebtoken::Algorithm::PS256,
        Algorithm::PS384 => jsonwebtoken::Algorithm::PS384,
        Algorithm::PS512 => jsonwebtoken::Algorithm::PS512,
        Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
        Algorithm::ES384 => jsonwebtoken::Algorithm::ES384,
        Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        _ => return None,
    })
}

/// A jsonwebtoken decoding key for a public key, from its JWK members (for the keys whose
/// algorithm [`jsonwebtoken_alg`] names).
pub fn jsonwebtoken_key(public: &kms_jwt::PublicKey) -> jsonwebtoken::DecodingKey {
    use kms_jwt::PublicKey;
    use kms_jwt::fuzzing::b64_encode;
    match public {
        PublicKey::Rsa { n, e } => {
            jsonwebtoken::DecodingKey::from_rsa_components(&b64_encode(n), &b64_encode(e)).unwrap()
        }
        PublicKey::Ec { x, y, .. } => {
            jsonwebtoken::DecodingKey::from_ec_components(&b64_encode(x), &b64_encode(y)).unwrap()
        }
        PublicKey::Ed25519 { x } => jsonwebtoken::DecodingKey::from_ed_components(&b64_encode(x)).unwrap(),
        PublicKey::MlDsa { level, .. } => panic!("jsonwebtoken has no {}", level.algorithm()),
    }
}
