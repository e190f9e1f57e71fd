//! The issuer: a load generator for `POST /token` (proofs made before the clock starts) and
//! kms-jwt's KMS signer in-process with the claims the issuer gives.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use futures_util::{StreamExt as _, TryStreamExt as _};
use kms_jwt::{Claims, JwtSigner};
use kms_jwt_test_support as support;

use crate::report;

/// POSTs `count` requests to the issuer's /token, `concurrency` at a time, as `LocalStack`'s
/// root, all for `audience` or (`distinct`) each for its own; prints answers per second and
/// latency percentiles.
pub(crate) async fn issuer_load(
    issuer: String,
    audience: String,
    count: usize,
    concurrency: usize,
    distinct: bool,
) -> Result<()> {
    // A proof is used once, and two made with the same key in the same second are the same
    // proof: each request is a workload of its own, with an access key id no earlier run used
    // (LocalStack's STS answers its account's root for any id that is not 12 digits).
    let run = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
    let now = SystemTime::now();
    let mut requests = Vec::with_capacity(count);
    for i in 0..count {
        let key_id = format!("BENCH{run:X}{i:06}");
        let creds = aws_credential_types::Credentials::new(key_id, support::SECRET_ACCESS_KEY, None, None, "bench");
        let proof = kms_jwt::issuer::sign_proof(&creds, Some("us-east-1"), &issuer, now)?;
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
    report::json(&report::latency_figures(latencies, started.elapsed()))
}

/// POSTs `count` function URL events (LocalStack's root asking for `api`) to a Lambda runtime
/// emulator's `invoke_url`, `concurrency` at a time; prints answers per second and latency
/// percentiles.
pub(crate) async fn lambda_load(invoke_url: String, count: usize, concurrency: usize) -> Result<()> {
    let root = format!("arn:aws:iam::{}:root", support::ACCOUNT);
    let event =
        support::lambda::function_url_event("POST", "/token", r#"{"audience":"api"}"#, Some((&root, support::ACCOUNT)));
    let body = event.to_string();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let started = Instant::now();
    let latencies: Vec<Duration> = futures_util::stream::iter(0..count)
        .map(|_| {
            let (client, url, body) = (&client, &invoke_url, &body);
            async move {
                let sent = Instant::now();
                let answer = client.post(url).body(body.clone()).send().await?.text().await?;
                anyhow::ensure!(
                    answer.contains("\"statusCode\":200") && answer.contains("token"),
                    "the function answered {answer}"
                );
                Ok(sent.elapsed())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    report::json(&report::latency_figures(latencies, started.elapsed()))
}

pub(crate) async fn sign_latency(
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
        .subject(format!("arn:aws:iam::{}:root", support::ACCOUNT))
        .audience("api")
        .claim(kms_jwt::issuer::ACCOUNT_CLAIM, support::ACCOUNT);
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
    report::json(&report::latency_figures(latencies, started.elapsed()))
}
