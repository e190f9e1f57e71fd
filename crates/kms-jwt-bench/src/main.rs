//! Baselines that `cargo xtask bench` measures `kms-jwt` against, built in release like it.
//!
//! Each reads the same inputs as the `kms-jwt` command it is compared with and does only the
//! part the comparison is about, so that the ratio shows what kms-jwt adds.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
use clap::{Parser, Subcommand};
use futures_util::{StreamExt as _, TryStreamExt as _};
use kms_jwt::{Algorithm, Claims, Jwks, JwtSigner, LocalSigner, PublicKey, Signer, TokenCache, Verifier};

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
    /// Sign COUNT tokens with the claims the issuer gives LocalStack's root (iss ISSUER, aud
    /// api, 15 minutes, a jti) through kms-jwt's KMS signer, CONCURRENCY at a time, as
    /// `kms-jwt sign` does. Prints tokens per second and latency percentiles as JSON
    SignLatency { endpoint: String, key_arn: String, issuer: String, count: usize, concurrency: usize },
    /// Sign with SET (a multi-Region set, primary us-east-1, replica eu-west-1) through a
    /// failover signer, CONCURRENCY at a time, for three phases of `PHASE_SECS` each: us-east-1
    /// up, us-east-1 a black hole, us-east-1 back. Prints tokens per second per phase and the
    /// longest wait for one token as JSON
    Failover { endpoint: String, set: String, concurrency: usize, phase_secs: u64 },
}

/// The failover run's KMS settings: what a latency-minded caller would pass.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(2);
const FAILOVER_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);
const FAILOVER_BACKOFF: Duration = Duration::from_secs(1);

/// A TCP forwarder to `target` that can turn into a black hole: while cut, it forwards
/// nothing either way and answers nothing, so callers time out as on a dead network path.
async fn cuttable_forwarder(
    target: String,
    cut: Arc<std::sync::atomic::AtomicBool>,
    forwarded: Arc<AtomicUsize>,
) -> Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let target = target.trim_start_matches("http://").trim_end_matches('/').to_owned();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (cut, target, forwarded) = (cut.clone(), target.clone(), forwarded.clone());
            tokio::spawn(async move {
                let Ok(upstream) = tokio::net::TcpStream::connect(&target).await else { return };
                let ((client_rx, client_tx), (up_rx, up_tx)) = (client.into_split(), upstream.into_split());
                let unseen = AtomicUsize::new(0);
                tokio::join!(pump(client_rx, up_tx, &cut, &forwarded), pump(up_rx, client_tx, &cut, &unseen));
            });
        }
    });
    Ok(url)
}

/// Copies `from` to `to`, holding every byte while `cut` is set; counts the reads it passes on.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    cut: &std::sync::atomic::AtomicBool,
    count: &AtomicUsize,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        while cut.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if n == 0 || to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        count.fetch_add(1, Ordering::Relaxed);
    }
    let _ = to.shutdown().await;
}

async fn failover(endpoint: String, set: String, concurrency: usize, phase_secs: u64) -> Result<()> {
    use kms_jwt::kms::KmsOptions;
    let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let forwarded = Arc::new(AtomicUsize::new(0));
    let primary = cuttable_forwarder(endpoint.clone(), cut.clone(), forwarded.clone()).await?;
    let options = |url: &str, region: &str| KmsOptions {
        timeout: FAILOVER_TIMEOUT,
        attempt_timeout: FAILOVER_ATTEMPT_TIMEOUT,
        max_attempts: 2,
        ..KmsOptions::endpoint(url, region)
    };
    let clients =
        vec![options(&primary, "us-east-1").connect().await?, options(&endpoint, "eu-west-1").connect().await?];
    let signer = JwtSigner::new(
        kms_jwt::failover::FailoverSigner::builder(clients, set).backoff(FAILOVER_BACKOFF).build().await?,
    )?;
    let phase = Duration::from_secs(phase_secs);
    let started = Instant::now();
    let stop = started + 3 * phase;
    // Returns what had reached us-east-1 when the cut ended.
    let switch = {
        let (cut, forwarded) = (cut.clone(), forwarded.clone());
        tokio::spawn(async move {
            tokio::time::sleep(phase).await;
            cut.store(true, Ordering::SeqCst);
            tokio::time::sleep(phase).await;
            cut.store(false, Ordering::SeqCst);
            forwarded.load(Ordering::SeqCst)
        })
    };
    // Each worker signs one token after another; a token counts in the phase it finished in.
    let workers = (0..concurrency).map(|w| {
        let signer = &signer;
        async move {
            let mut done = Vec::new();
            let mut i = 0;
            while Instant::now() < stop {
                let asked = Instant::now();
                let claims = Claims::new().subject(format!("worker-{w}-{i}")).expires_at(kms_jwt::now() + 300);
                signer.sign(&claims).await?;
                done.push((asked.elapsed(), started.elapsed()));
                i += 1;
            }
            Ok::<_, kms_jwt::Error>(done)
        }
    });
    let done: Vec<(Duration, Duration)> =
        futures_util::future::try_join_all(workers).await?.into_iter().flatten().collect();
    let at_recovery = switch.await?;
    let rate = |n: u32| {
        let (from, to) = (n * phase, (n + 1) * phase);
        done.iter().filter(|(_, at)| *at >= from && *at < to).count() as f64 / phase.as_secs_f64()
    };
    let longest = done.iter().map(|(wait, _)| *wait).max().unwrap_or_default();
    let out = serde_json::json!({
        "before_per_sec": rate(0),
        "during_per_sec": rate(1),
        "after_per_sec": rate(2),
        "longest_wait_ms": longest.as_secs_f64() * 1e3,
        "timeout_ms": FAILOVER_TIMEOUT.as_secs_f64() * 1e3,
        "tokens": done.len(),
        "primary_requests_after": forwarded.load(Ordering::SeqCst) - at_recovery,
    });
    writeln!(std::io::stdout().lock(), "{out}")?;
    Ok(())
}

/// The account `LocalStack` answers `GetCallerIdentity` with, for the default test credentials.
const LOCALSTACK_ACCOUNT: &str = "000000000000";

/// Latencies' median and 99th percentile in milliseconds, and their rate over `elapsed`.
fn latency_figures(mut latencies: Vec<Duration>, elapsed: Duration) -> serde_json::Value {
    latencies.sort_unstable();
    let pct = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)].as_secs_f64() * 1e3;
    serde_json::json!({
        "count": latencies.len(), "per_sec": latencies.len() as f64 / elapsed.as_secs_f64(),
        "p50_ms": pct(50), "p99_ms": pct(99), "max_ms": pct(100),
    })
}

async fn issuer_load(issuer: String, audience: String, count: usize, concurrency: usize, distinct: bool) -> Result<()> {
    let opts = kms_jwt::kms::KmsOptions { region: Some("us-east-1".into()), ..Default::default() };
    let config = opts.load().await?;
    let mut requests = Vec::with_capacity(count);
    for i in 0..count {
        let proof = kms_jwt::issuer::make_proof(&config, "us-east-1", &issuer).await?;
        let audience = if distinct { format!("{audience}{i}") } else { audience.clone() };
        requests.push(serde_json::to_vec(&kms_jwt::issuer::TokenRequest { audience, ttl: None, proof })?);
    }
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let url = format!("{issuer}/token");
    let started = Instant::now();
    let latencies: Vec<Duration> = futures_util::stream::iter(requests)
        .map(|body| {
            let (client, url) = (&client, &url);
            async move {
                let sent = Instant::now();
                let answer = client.post(url).header("content-type", "application/json").body(body).send().await?;
                let status = answer.status();
                let text = answer.text().await?;
                anyhow::ensure!(status == 200 && text.contains("\"token\""), "the issuer answered {status}: {text}");
                Ok(sent.elapsed())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    writeln!(std::io::stdout().lock(), "{}", latency_figures(latencies, started.elapsed()))?;
    Ok(())
}

async fn sign_latency(
    endpoint: String,
    key_arn: String,
    issuer: String,
    count: usize,
    concurrency: usize,
) -> Result<()> {
    let kms = kms_jwt::kms::KmsOptions::endpoint(endpoint, "us-east-1").connect().await?;
    let signer = JwtSigner::new(kms_jwt::kms::KmsSigner::new(&kms, &key_arn).await?)?;
    let claims = Claims::new()
        .issuer(issuer)
        .subject(format!("arn:aws:iam::{LOCALSTACK_ACCOUNT}:root"))
        .audience("api")
        .claim(kms_jwt::issuer::ACCOUNT_CLAIM, LOCALSTACK_ACCOUNT);
    let started = Instant::now();
    let latencies: Vec<Duration> = futures_util::stream::iter(0..count)
        .map(|_| {
            let (signer, claims) = (&signer, &claims);
            async move {
                let sent = Instant::now();
                let now = kms_jwt::now();
                let claims = claims.clone().issued_at(now).expires_at(now + 900).random_jwt_id();
                signer.sign(&claims).await?;
                Ok::<_, kms_jwt::Error>(sent.elapsed())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    writeln!(std::io::stdout().lock(), "{}", latency_figures(latencies, started.elapsed()))?;
    Ok(())
}

/// KMS made slow: every signature waits this long first (as a region away, or a loaded KMS).
const KMS_DELAY: Duration = Duration::from_millis(50);

/// A signer in front of another that delays each signature by [`KMS_DELAY`] and counts them.
struct Slow<S> {
    inner: S,
    calls: AtomicUsize,
}

impl<S: Signer> Signer for Slow<S> {
    fn algorithm(&self) -> Algorithm {
        self.inner.algorithm()
    }
    fn public_key(&self) -> &PublicKey {
        self.inner.public_key()
    }
    fn sign_digest<'a>(&'a self, digest: &'a aws_lc_rs::digest::Digest) -> kms_jwt::SignatureFuture<'a> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        Box::pin(async move {
            tokio::time::sleep(KMS_DELAY).await;
            self.inner.sign_digest(digest).await
        })
    }
}

const CACHE_CLAIM_SETS: usize = 100;
const CACHE_MINTS: usize = 10_000;
const CACHE_CONCURRENCY: usize = 32;
/// Cache settings for the latency run: short enough that tokens are refreshed several times.
const CACHE_TTL: Duration = Duration::from_secs(4);
const CACHE_MARGIN: Duration = Duration::from_secs(1);
/// The pause between one worker's mints, so that the run spans several refresh cycles.
const CACHE_PACE: Duration = Duration::from_millis(18);

async fn cache_latency(endpoint: String, key_arn: String, cached: bool) -> Result<()> {
    let kms = kms_jwt::kms::KmsOptions::endpoint(endpoint, "us-east-1").connect().await?;
    let slow =
        Arc::new(Slow { inner: kms_jwt::kms::KmsSigner::new(&kms, &key_arn).await?, calls: AtomicUsize::new(0) });
    let signer = JwtSigner::new(slow.clone())?;
    let claims: Vec<Claims> =
        (0..CACHE_CLAIM_SETS).map(|i| Claims::new().subject(format!("svc-{i}")).audience("api")).collect();
    let cache = TokenCache::new(JwtSigner::new(slow.clone())?, CACHE_TTL, CACHE_MARGIN, 1024);
    let mint = |i: usize| {
        let (cache, signer, claims) = (cache.clone(), &signer, &claims[i % CACHE_CLAIM_SETS]);
        async move {
            let started = Instant::now();
            if cached {
                cache.token(claims).await?;
            } else {
                let exp = kms_jwt::now() + 60;
                signer.sign(&claims.clone().expires_at(exp)).await?;
            }
            Ok::<_, kms_jwt::Error>(started.elapsed())
        }
    };
    if cached {
        // Warm-up: every claims set once.
        futures_util::stream::iter(0..CACHE_CLAIM_SETS)
            .map(mint)
            .buffer_unordered(CACHE_CONCURRENCY)
            .try_collect::<Vec<_>>()
            .await?;
    }
    let warm_calls = slow.calls.load(Ordering::Relaxed);
    let started = Instant::now();
    let latencies: Vec<Duration> = futures_util::stream::iter(0..CACHE_MINTS)
        .map(|i| {
            let mint = mint(i);
            async move {
                let latency = mint.await?;
                if cached {
                    tokio::time::sleep(CACHE_PACE).await;
                }
                Ok::<_, kms_jwt::Error>(latency)
            }
        })
        .buffer_unordered(CACHE_CONCURRENCY)
        .try_collect()
        .await?;
    let elapsed = started.elapsed();
    // A token is refreshed when it is (ttl - 2 margins) old: that many refresh cycles fit the run.
    let cycle = CACHE_TTL.saturating_sub(2 * CACHE_MARGIN).as_millis().max(1);
    let cycles = 1 + usize::try_from(elapsed.as_millis() / cycle).unwrap_or(usize::MAX);
    let calls = slow.calls.load(Ordering::Relaxed);
    let mut out = latency_figures(latencies, elapsed);
    out["sign_calls"] = calls.into();
    out["warm_up_calls"] = warm_calls.into();
    out["elapsed_s"] = elapsed.as_secs_f64().into();
    out["expected_calls"] = (CACHE_CLAIM_SETS * cycles).into();
    writeln!(std::io::stdout().lock(), "{out}")?;
    Ok(())
}

fn verify_threads(tokens: &PathBuf, jwks: &PathBuf, threads: usize, clones: bool, bare: bool) -> Result<()> {
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
    writeln!(std::io::stdout().lock(), "{}", serde_json::json!({ "tokens_per_sec": rate }))?;
    Ok(())
}

/// The signature check alone, with aws-lc-rs: what any verifier must at least do. A token
/// without a signature part, or with one that is not base64url, is an error.
fn bare_verify(key: &kms_jwt::VerifyingKey, token: &str) -> Result<bool> {
    let (input, sig) = token.rsplit_once('.').context("no signature")?;
    let sig = kms_jwt::fuzzing::b64_decode(sig).context("signature")?;
    Ok(key.verify_signature(input.as_bytes(), &sig))
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

#[tokio::main]
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
                valid += usize::from(bare_verify(&key, &token)?);
            }
            report(valid)
        }
        Command::VerifyJsonwebtoken { tokens, jwks } => {
            let jwk = only_key(&jwks)?;
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
            };
            let validation = jsonwebtoken::Validation::new(alg);
            let mut valid = 0;
            for token in lines(&tokens)? {
                valid += usize::from(jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation).is_ok());
            }
            report(valid)
        }
        Command::TokensMixed { alg, count, dir } => {
            let signers = [JwtSigner::new(LocalSigner::generate(alg)?)?, JwtSigner::new(LocalSigner::generate(alg)?)?];
            std::fs::create_dir_all(&dir)?;
            let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join("tokens.txt"))?);
            for i in 0..count {
                let claims = Claims::new().subject(format!("user-{i}")).issuer("bench").expires_at(4_102_444_800);
                writeln!(out, "{}", signers[i % 2].sign(&claims).await?)?;
            }
            let jwks = Jwks { keys: signers.iter().map(JwtSigner::jwk).collect() };
            std::fs::write(dir.join("jwks.json"), jwks.to_json().to_string())?;
            Ok(())
        }
        Command::VerifyThreads { tokens, jwks, threads, clones, bare } => {
            verify_threads(&tokens, &jwks, threads, clones, bare)
        }
        Command::CacheLatency { endpoint, key_arn, cached } => cache_latency(endpoint, key_arn, cached).await,
        Command::IssuerLoad { issuer, audience, count, concurrency, distinct } => {
            issuer_load(issuer, audience, count, concurrency, distinct).await
        }
        Command::SignLatency { endpoint, key_arn, issuer, count, concurrency } => {
            sign_latency(endpoint, key_arn, issuer, count, concurrency).await
        }
        Command::Failover { endpoint, set, concurrency, phase_secs } => {
            failover(endpoint, set, concurrency, phase_secs).await
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
