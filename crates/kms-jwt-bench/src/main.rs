//! Baselines that `cargo xtask bench` measures `kms-jwt` against, built in release like it.
//!
//! Each reads the same inputs as the `kms-jwt` command it is compared with and does only the
//! part the comparison is about, so that the ratio shows what kms-jwt adds. One module per
//! measured area, as in `cargo xtask bench`; `report` prints what each run found.

mod cache;
mod drain;
mod failover;
mod issuer;
mod remote;
mod report;
mod scaling;
mod sign;
mod verify;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};
use kms_jwt::Algorithm;

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
    /// Write COUNT tokens alternating between two fresh local keys, and their JWKS, into DIR
    TokensMixed { alg: Algorithm, count: usize, dir: PathBuf },
    /// Verify every token in THREADS threads through one Verifier (or a clone per thread, or
    /// with bare aws-lc-rs signature checks: the machine's own ceiling); prints tokens per
    /// second of the verification alone (tokens are read first)
    VerifyThreads {
        tokens: PathBuf,
        jwks: PathBuf,
        threads: usize,
        #[arg(long)]
        clones: bool,
        #[arg(long, conflicts_with = "clones")]
        bare: bool,
    },
    /// Mints through a `TokenCache` (or straight through the signer) in front of a KMS made
    /// 50 ms slower; prints latency percentiles and Sign calls as JSON
    CacheLatency {
        endpoint: String,
        key_arn: String,
        #[arg(long)]
        cached: bool,
    },
    /// POST COUNT requests to the issuer's /token, CONCURRENCY at a time, as LocalStack's root,
    /// every proof made before the clock starts; all for AUDIENCE, or with --distinct for
    /// AUDIENCE0, AUDIENCE1, ... (each a new token: a cache miss). Prints answers per second
    /// and latency percentiles as JSON
    IssuerLoad {
        issuer: String,
        audience: String,
        count: usize,
        concurrency: usize,
        #[arg(long)]
        distinct: bool,
    },
    /// POST COUNT function URL events asking for a token for `api` as LocalStack's root (an IAM
    /// caller in the request context) to a Lambda runtime emulator's invoke URL, CONCURRENCY at
    /// a time. Prints answers per second and latency percentiles as JSON
    LambdaLoad { invoke_url: String, count: usize, concurrency: usize },
    /// Sign COUNT tokens with the claims the issuer gives LocalStack's root (iss ISSUER, aud
    /// api, 15 minutes, a jti) through kms-jwt's KMS signer, CONCURRENCY at a time, as
    /// `kms-jwt sign` does. Prints tokens per second and latency percentiles as JSON
    SignLatency { endpoint: String, key_arn: String, issuer: String, count: usize, concurrency: usize },
    /// Sign with SET (a multi-Region set, primary us-east-1, replica eu-west-1) through a
    /// failover signer, CONCURRENCY at a time, for three phases of `PHASE_SECS` each: us-east-1
    /// up, us-east-1 a black hole, us-east-1 back. Prints tokens per second per phase and the
    /// longest wait for one token as JSON
    Failover { endpoint: String, set: String, concurrency: usize, phase_secs: u64 },
    /// Serve a fresh ALG key's JWKS and discovery in-process, sign COUNT tokens for it (aud
    /// api), then verify them PASSES times per round, ROUNDS rounds after a warm-up round, with
    /// a warm `RemoteJwks` and with a local `Verifier` of the same keys in turn. Prints each
    /// round's tokens per second, remote and local, as JSON
    RemoteVerify { alg: Algorithm, count: usize, passes: usize, rounds: usize },
    /// A cold `RemoteJwks` for ISSUER (cooldown `COOLDOWN_SECS`) against COUNT tokens with made-up
    /// kids, CONCURRENCY at a time (tokens made first). Prints the run's length, the "unknown
    /// key" answers and the latencies of the calls made once the keys were fetched, as JSON
    RemoteStorm { issuer: String, count: usize, concurrency: usize, cooldown_secs: u64 },
    /// A `RemoteJwks` for ISSUER (cooldown `COOLDOWN_SECS`), warmed with a token of SET's current
    /// key; then `KMS_JWT keyset rotate --force --min-overlap 0s` and a token from the new key,
    /// verified until it passes. Prints the seconds from the rotation's end to that, as JSON
    RemoteRotation { endpoint: String, issuer: String, set: String, kms_jwt: PathBuf, cooldown_secs: u64 },
    /// `KMS_JWT serve` for SET with a token policy, STS (at ENDPOINT) behind a proxy that holds
    /// every call `HOLD_SECS`; COUNT `POST /token` at once, and SIGTERM once all have reached STS
    /// (drain timeout `DRAIN_SECS`). Prints the tokens, refusals and cut requests, the exit code
    /// and the seconds from SIGTERM to the exit, as JSON
    Drain { kms_jwt: PathBuf, endpoint: String, set: String, count: usize, hold_secs: u64, drain_secs: u64 },
}

#[tokio::main]
async fn main() -> Result<()> {
    match Args::parse().command {
        Command::Tokens { alg, count, dir } => verify::tokens(alg, count, &dir).await,
        Command::VerifyAwsLc { tokens, jwks } => verify::verify_aws_lc(&tokens, &jwks),
        Command::VerifyJsonwebtoken { tokens, jwks } => verify::verify_jsonwebtoken(&tokens, &jwks),
        Command::TokensMixed { alg, count, dir } => verify::tokens_mixed(alg, count, &dir).await,
        Command::VerifyThreads { tokens, jwks, threads, clones, bare } => {
            scaling::verify_threads(&tokens, &jwks, threads, clones, bare)
        }
        Command::CacheLatency { endpoint, key_arn, cached } => cache::cache_latency(endpoint, key_arn, cached).await,
        Command::IssuerLoad { issuer, audience, count, concurrency, distinct } => {
            issuer::issuer_load(issuer, audience, count, concurrency, distinct).await
        }
        Command::LambdaLoad { invoke_url, count, concurrency } => {
            issuer::lambda_load(invoke_url, count, concurrency).await
        }
        Command::SignLatency { endpoint, key_arn, issuer, count, concurrency } => {
            issuer::sign_latency(endpoint, key_arn, issuer, count, concurrency).await
        }
        Command::Failover { endpoint, set, concurrency, phase_secs } => {
            failover::failover(endpoint, set, concurrency, phase_secs).await
        }
        Command::SignSdk { endpoint, key_arn, count, concurrency } => {
            sign::sign_sdk(endpoint, key_arn, count, concurrency).await
        }
        Command::RemoteVerify { alg, count, passes, rounds } => remote::verify(alg, count, passes, rounds).await,
        Command::RemoteStorm { issuer, count, concurrency, cooldown_secs } => {
            remote::storm(issuer, count, concurrency, cooldown_secs).await
        }
        Command::RemoteRotation { endpoint, issuer, set, kms_jwt, cooldown_secs } => {
            remote::rotation(endpoint, issuer, set, &kms_jwt, cooldown_secs).await
        }
        Command::Drain { kms_jwt, endpoint, set, count, hold_secs, drain_secs } => {
            let (hold, timeout) = (Duration::from_secs(hold_secs), Duration::from_secs(drain_secs));
            drain::drain(&kms_jwt, &endpoint, &set, count, hold, timeout).await
        }
    }
}
