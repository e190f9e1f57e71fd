//! The verifying side: a warm `RemoteJwks` against a local `Verifier` of the same keys, a
//! storm of unknown `kid`s against an issuer, and how soon a rotated key verifies.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use axum::http::header;
use kms_jwt::keyset::KeySetName;
use kms_jwt::kms::KmsSigner;
use kms_jwt::remote::RemoteJwks;
use kms_jwt::{Algorithm, Claims, Error, Jwks, JwtSigner, KeyIdMode, LocalSigner, TokenError, Verifier};
use kms_jwt_test_support::{self as support, Cli};
use serde::de::IgnoredAny;

use crate::report;

const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
const JWKS_PATH: &str = "/.well-known/jwks.json";

/// Serves `jwks` and a discovery document naming this server as the issuer, in-process, as
/// `kms-jwt serve` does (cacheable for an hour); returns the issuer URL.
async fn serve_keys(jwks: &Jwks) -> Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let issuer = format!("http://{}", listener.local_addr()?);
    let discovery = serde_json::json!({ "issuer": issuer, "jwks_uri": format!("{issuer}{JWKS_PATH}") }).to_string();
    let jwks = jwks.to_json().to_string();
    let document = |body: String| {
        move || {
            let body = body.clone();
            async move {
                ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "public, max-age=3600")], body)
            }
        }
    };
    let app = axum::Router::new()
        .route(DISCOVERY_PATH, axum::routing::get(document(discovery)))
        .route(JWKS_PATH, axum::routing::get(document(jwks)));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(issuer)
}

/// A fresh `alg` key served in-process, `count` tokens for it (iss the server, aud api), and
/// `rounds` rounds (after a warm-up round) of verifying them `passes` times with a warm
/// `RemoteJwks`, then with a local `Verifier` of the same keys. Prints each round's rates.
pub(crate) async fn verify(alg: Algorithm, count: usize, passes: usize, rounds: usize) -> Result<()> {
    let signer = JwtSigner::new(LocalSigner::generate(alg)?)?;
    let jwks = Jwks { keys: vec![signer.jwk()] };
    let issuer = serve_keys(&jwks).await?;
    let mut tokens = Vec::with_capacity(count);
    for i in 0..count {
        let claims =
            Claims::new().subject(format!("user-{i}")).issuer(&issuer).audience("api").expires_at(4_102_444_800);
        tokens.push(signer.sign(&claims).await?);
    }
    let keys = RemoteJwks::from_issuer(&issuer)?.audience("api").build()?;
    keys.verify::<IgnoredAny>(&tokens[0]).await?;
    let local = Verifier::from_jwks(&jwks, None)?.with_issuer(issuer.clone()).with_audience("api");
    let (mut remote_rates, mut local_rates) = (Vec::new(), Vec::new());
    let verifications = (tokens.len() * passes) as f64;
    for round in 0..=rounds {
        let started = Instant::now();
        for _ in 0..passes {
            for token in &tokens {
                keys.verify::<IgnoredAny>(token).await?;
            }
        }
        let remote = verifications / started.elapsed().as_secs_f64();
        let started = Instant::now();
        for _ in 0..passes {
            for token in &tokens {
                local.verify::<IgnoredAny>(token)?;
            }
        }
        let local = verifications / started.elapsed().as_secs_f64();
        if round > 0 {
            remote_rates.push(remote);
            local_rates.push(local);
        }
    }
    anyhow::ensure!(keys.fetches() == 1, "the keys were fetched {} times: not warm", keys.fetches());
    report::json(&serde_json::json!({ "remote_per_sec": remote_rates, "local_per_sec": local_rates }))
}

/// A `RemoteJwks` for `issuer` against `count` tokens with made-up kids: the first alone (it
/// fetches the keys), then, once the cooldown has passed and a fetch is allowed again, the rest
/// `concurrency` at a time. Prints the storm's length, the fetches the first token made, how
/// many tokens were answered "unknown key", and the latencies of the storm's calls made once
/// its first fetch was done.
pub(crate) async fn storm(issuer: String, count: usize, concurrency: usize, cooldown_secs: u64) -> Result<()> {
    let cooldown = Duration::from_secs(cooldown_secs);
    let keys = RemoteJwks::from_issuer(&issuer)?.audience("api").cooldown(cooldown).build()?;
    let signer = Arc::new(LocalSigner::generate(Algorithm::ES256)?);
    let mut tokens = Vec::with_capacity(count);
    for _ in 0..count {
        let forged = JwtSigner::with_kid(signer.clone(), KeyIdMode::Fixed(support::unique("kid")))?;
        let claims = Claims::new().subject("storm").issuer(&issuer).audience("api").expires_at(kms_jwt::now() + 600);
        tokens.push(forged.sign(&claims).await?);
    }
    let first = keys.verify::<IgnoredAny>(&tokens[0]).await;
    if !unknown_kid(&first) {
        let answer = first.err().map_or_else(|| "it verified".to_owned(), |e| e.to_string());
        anyhow::bail!("the first made-up kid was not answered \"unknown key\": {answer}");
    }
    let warm_up_fetches = keys.fetches();
    tokio::time::sleep(cooldown).await;

    let tokens = Arc::new(tokens);
    let next = Arc::new(AtomicUsize::new(1));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (keys, tokens, next) = (keys.clone(), tokens.clone(), next.clone());
            tokio::spawn(async move {
                let (mut unknown, mut after_fetch) = (0, Vec::new());
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(token) = tokens.get(i) else { break };
                    let fetched = keys.fetches() > warm_up_fetches;
                    let asked = Instant::now();
                    let answer = keys.verify::<IgnoredAny>(token).await;
                    let latency = asked.elapsed();
                    unknown += usize::from(unknown_kid(&answer));
                    if fetched {
                        after_fetch.push(latency);
                    }
                    // One request after another, as a server's tasks take them: without this a
                    // task would hold its thread for the whole storm (an unknown kid is answered
                    // without waiting), and the one fetch could not get the network in between.
                    tokio::task::yield_now().await;
                }
                (unknown, after_fetch)
            })
        })
        .collect();
    let (mut unknown, mut after_fetch) = (1, Vec::new());
    for task in tasks {
        let (n, latencies) = task.await?;
        unknown += n;
        after_fetch.extend(latencies);
    }
    let elapsed = started.elapsed();
    anyhow::ensure!(unknown == count, "only {unknown} of {count} tokens were answered \"unknown key\"");
    anyhow::ensure!(!after_fetch.is_empty(), "the storm never fetched the keys once its cooldown was over");
    let mut out = report::latency_figures(after_fetch, elapsed);
    out["elapsed_s"] = elapsed.as_secs_f64().into();
    out["unknown"] = unknown.into();
    out["warm_up_fetches"] = warm_up_fetches.into();
    out["client_fetches"] = keys.fetches().into();
    report::json(&out)
}

/// Whether `answer` is "unknown key".
fn unknown_kid<T>(answer: &kms_jwt::Result<T>) -> bool {
    matches!(answer, Err(Error::InvalidToken(TokenError::UnknownKid(_))))
}

/// A `RemoteJwks` for `issuer` warmed with a token of `set`'s current key just before
/// `kms-jwt keyset rotate --force --min-overlap 0s`; then a token from the new key, verified
/// every 20 ms until it passes. Prints the seconds from the rotation's end to that.
pub(crate) async fn rotation(
    endpoint: String,
    issuer: String,
    set: String,
    kms_jwt: &Path,
    cooldown_secs: u64,
) -> Result<()> {
    let cooldown = Duration::from_secs(cooldown_secs);
    let kms = kms_jwt::kms::KmsOptions::endpoint(&endpoint, support::REGION).connect().await?;
    let alias = KeySetName::parse(&set)?.current();
    let claims = Claims::new().subject("rotation").issuer(&issuer).audience("api");
    let token = |signer: JwtSigner<KmsSigner>| {
        let claims = claims.clone().expires_at(kms_jwt::now() + 600);
        async move { signer.sign(&claims).await }
    };
    let old = token(JwtSigner::new(KmsSigner::new(&kms, &alias).await?)?).await?;
    let keys = RemoteJwks::from_issuer(&issuer)?.audience("api").cooldown(cooldown).build()?;
    keys.verify::<IgnoredAny>(&old).await?;

    let rotate = Cli::new(kms_jwt)
        .endpoint(&endpoint)
        .command()
        .args(["keyset", "rotate", "--key", &set, "--force", "--min-overlap", "0s", "--pending-window-days", "7"])
        .output()
        .context("cannot run kms-jwt keyset rotate")?;
    anyhow::ensure!(rotate.status.success(), "keyset rotate failed: {}", String::from_utf8_lossy(&rotate.stderr));
    let rotated = Instant::now();
    let new = token(JwtSigner::new(KmsSigner::new(&kms, &alias).await?)?).await?;
    let kid = |token: &str| kms_jwt::decode_unverified(token).map(|(header, _)| header["kid"].clone());
    anyhow::ensure!(kid(&new)? != kid(&old)?, "the rotation did not change the current key");
    loop {
        match keys.verify::<IgnoredAny>(&new).await {
            Ok(_) => break,
            Err(Error::InvalidToken(TokenError::UnknownKid(_))) if rotated.elapsed() < 3 * cooldown => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => {
                anyhow::bail!("the new key's token did not verify {:?} after the rotation: {e}", rotated.elapsed())
            }
        }
    }
    let seconds = rotated.elapsed().as_secs_f64();
    report::json(&serde_json::json!({
        "seconds": seconds, "cooldown_s": cooldown_secs, "client_fetches": keys.fetches(),
    }))
}
