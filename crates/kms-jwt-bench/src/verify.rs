//! Verification on one core: the tokens and JWKS every verify run reads, the bare aws-lc-rs
//! loop (the limit) and jsonwebtoken.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;

use anyhow::{Context as _, Result};
use kms_jwt::{Algorithm, Claims, Jwks, JwtSigner, LocalSigner, PublicKey};

use crate::report;

/// Writes `count` tokens signed by a fresh local key, and its JWKS, into `dir`.
pub(crate) async fn tokens(alg: Algorithm, count: usize, dir: &Path) -> Result<()> {
    let signer = JwtSigner::new(LocalSigner::generate(alg)?)?;
    std::fs::create_dir_all(dir)?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join("tokens.txt"))?);
    for i in 0..count {
        let claims = Claims::new().subject(format!("user-{i}")).issuer("bench").expires_at(4_102_444_800);
        writeln!(out, "{}", signer.sign(&claims).await?)?;
    }
    std::fs::write(dir.join("jwks.json"), Jwks { keys: vec![signer.jwk()] }.to_json().to_string())?;
    Ok(())
}

/// Writes `count` tokens alternating between two fresh local keys, and their JWKS, into `dir`.
pub(crate) async fn tokens_mixed(alg: Algorithm, count: usize, dir: &Path) -> Result<()> {
    let signers = [JwtSigner::new(LocalSigner::generate(alg)?)?, JwtSigner::new(LocalSigner::generate(alg)?)?];
    std::fs::create_dir_all(dir)?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join("tokens.txt"))?);
    for i in 0..count {
        let claims = Claims::new().subject(format!("user-{i}")).issuer("bench").expires_at(4_102_444_800);
        writeln!(out, "{}", signers[i % 2].sign(&claims).await?)?;
    }
    let jwks = Jwks { keys: signers.iter().map(JwtSigner::jwk).collect() };
    std::fs::write(dir.join("jwks.json"), jwks.to_json().to_string())?;
    Ok(())
}

/// Verifies each token's signature with aws-lc-rs and nothing else; prints how many passed.
pub(crate) fn verify_aws_lc(tokens: &Path, jwks: &Path) -> Result<()> {
    let jwk = only_key(jwks)?;
    let key = kms_jwt::VerifyingKey::from_jwk(&jwk, None)?;
    let mut valid = 0;
    for token in lines(tokens)? {
        valid += usize::from(bare_verify(&key, &token)?);
    }
    report::count(valid)
}

/// Verifies each token with the jsonwebtoken crate; prints how many passed.
pub(crate) fn verify_jsonwebtoken(tokens: &Path, jwks: &Path) -> Result<()> {
    let jwk = only_key(jwks)?;
    let (key, alg) = match &jwk.key {
        PublicKey::Rsa { n, e } => (
            jsonwebtoken::DecodingKey::from_rsa_components(
                &kms_jwt::fuzzing::b64_encode(n),
                &kms_jwt::fuzzing::b64_encode(e),
            )?,
            jsonwebtoken::Algorithm::RS256,
        ),
        PublicKey::Ec { x, y, .. } => (
            jsonwebtoken::DecodingKey::from_ec_components(
                &kms_jwt::fuzzing::b64_encode(x),
                &kms_jwt::fuzzing::b64_encode(y),
            )?,
            jsonwebtoken::Algorithm::ES256,
        ),
        PublicKey::Ed25519 { x } => (
            jsonwebtoken::DecodingKey::from_ed_components(&kms_jwt::fuzzing::b64_encode(x))?,
            jsonwebtoken::Algorithm::EdDSA,
        ),
        PublicKey::MlDsa { level, .. } => anyhow::bail!("jsonwebtoken has no {}", level.algorithm()),
    };
    let validation = jsonwebtoken::Validation::new(alg);
    let mut valid = 0;
    for token in lines(tokens)? {
        valid += usize::from(jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation).is_ok());
    }
    report::count(valid)
}

/// The signature check alone, with aws-lc-rs: what any verifier must at least do. A token
/// without a signature part, or with one that is not base64url, is an error.
pub(crate) fn bare_verify(key: &kms_jwt::VerifyingKey, token: &str) -> Result<bool> {
    let (input, sig) = token.rsplit_once('.').context("no signature")?;
    let sig = kms_jwt::fuzzing::b64_decode(sig).context("signature")?;
    Ok(key.verify_signature(input.as_bytes(), &sig))
}

/// The lines of the file at `path`.
pub(crate) fn lines(path: &Path) -> Result<impl Iterator<Item = String>> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(BufReader::with_capacity(64 * 1024, file).lines().map_while(std::io::Result::ok))
}

/// The one key of the JWKS at `jwks`.
pub(crate) fn only_key(jwks: &Path) -> Result<kms_jwt::Jwk> {
    let jwks = Jwks::parse(&std::fs::read(jwks)?)?;
    jwks.keys.into_iter().next().context("empty JWKS")
}
