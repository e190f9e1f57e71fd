//! The issuer: a load generator for `POST /token` (proofs made before the clock starts) and
//! kms-jwt's KMS signer in-process with the claims the issuer gives.

use std::time::{Duration, Instant};

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
