//! Baselines that `cargo xtask bench` measures `kms-jwt` against, built in release like it.
//!
//! Each reads the same inputs as the `kms-jwt` command it is compared with and does only the
//! part the comparison is about, so that the ratio shows what kms-jwt adds.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
use clap::{Parser, Subcommand};
use futures_util::StreamExt as _;
use kms_jwt::{Algorithm, Claims, Jwks, JwtSigner, LocalSigner, PublicKey, b64};

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write COUNT tokens signed by a fresh local key, and its JWKS, into DIR
    Tokens { alg: Algorithm, count: usize, dir: PathBuf },
    /// Verify each token's signature with aws-lc-rs and nothing else (the limit)
    VerifyAwsLc { tokens: PathBuf, jwks: PathBuf },
    /// Verify each token with the jsonwebtoken crate
    VerifyJsonwebtoken { tokens: PathBuf, jwks: PathBuf },
    /// Sign COUNT SHA-256 digests with KMS Sign, CONCURRENCY at a time, with one SDK client
    SignSdk { endpoint: String, key_arn: String, count: usize, concurrency: usize },
}

fn lines(path: &PathBuf) -> Result<impl Iterator<Item = String>> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(BufReader::with_capacity(64 * 1024, file).lines().map_while(std::io::Result::ok))
}

fn only_key(jwks: &PathBuf) -> Result<kms_jwt::Jwk> {
    let jwks = Jwks::parse(&std::fs::read(jwks)?)?;
    jwks.keys.into_iter().next().context("empty JWKS")
}

fn report(valid: usize) -> Result<()> {
    writeln!(std::io::stdout().lock(), "{valid}")?;
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    match Args::parse().command {
        Command::Tokens { alg, count, dir } => {
            let signer = JwtSigner::new(LocalSigner::generate(alg)?)?;
            std::fs::create_dir_all(&dir)?;
            let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join("tokens.txt"))?);
            for i in 0..count {
                let claims = Claims::new().subject(format!("user-{i}")).issuer("bench").expires_at(4_102_444_800);
                writeln!(out, "{}", signer.sign(&claims).await?)?;
            }
            std::fs::write(dir.join("jwks.json"), Jwks { keys: vec![signer.jwk()] }.to_json().to_string())?;
            Ok(())
        }
        Command::VerifyAwsLc { tokens, jwks } => {
            let jwk = only_key(&jwks)?;
            let key = kms_jwt::VerifyingKey::from_jwk(&jwk, None)?;
            let mut valid = 0;
            for token in lines(&tokens)? {
                let (input, sig) = token.rsplit_once('.').context("no signature")?;
                let sig = b64::decode(sig).context("signature")?;
                valid += usize::from(key.verify_signature(input.as_bytes(), &sig));
            }
            report(valid)
        }
        Command::VerifyJsonwebtoken { tokens, jwks } => {
            let jwk = only_key(&jwks)?;
            let (key, alg) = match &jwk.key {
                PublicKey::Rsa { n, e } => (
                    jsonwebtoken::DecodingKey::from_rsa_components(&b64::encode(n), &b64::encode(e))?,
                    jsonwebtoken::Algorithm::RS256,
                ),
                PublicKey::Ec { x, y, .. } => (
                    jsonwebtoken::DecodingKey::from_ec_components(&b64::encode(x), &b64::encode(y))?,
                    jsonwebtoken::Algorithm::ES256,
                ),
            };
            let validation = jsonwebtoken::Validation::new(alg);
            let mut valid = 0;
            for token in lines(&tokens)? {
                valid += usize::from(jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation).is_ok());
            }
            report(valid)
        }
        Command::SignSdk { endpoint, key_arn, count, concurrency } => {
            let client = kms_jwt::kms::KmsOptions::endpoint(endpoint, "us-east-1").connect().await?.sdk().clone();
            let signed = futures_util::stream::iter(0..count)
                .map(|i| {
                    let (client, key_arn) = (client.clone(), key_arn.clone());
                    async move {
                        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, format!("{i}").as_bytes());
                        client
                            .sign()
                            .key_id(key_arn)
                            .message(Blob::new(digest.as_ref()))
                            .message_type(MessageType::Digest)
                            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
                            .send()
                            .await
                            .is_ok()
                    }
                })
                .buffer_unordered(concurrency)
                .filter(|ok| std::future::ready(*ok))
                .count()
                .await;
            report(signed)
        }
    }
}
