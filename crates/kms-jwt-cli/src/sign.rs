//! `kms-jwt sign`: one token, or a streamed batch with bounded concurrency.

use std::io::{BufWriter, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use clap::Args;
use futures_util::StreamExt as _;
use kms_jwt::failover::FailoverSigner;
use kms_jwt::kms::{KmsOptions, KmsSigner};
use kms_jwt::{Algorithm, Claims, JwtSigner, KeyIdMode, Signer};

use crate::input::{self, Line};

/// Sign a JWT with a KMS key; prints the compact token and a newline
#[derive(Args)]
pub struct SignArgs {
    /// Key id, ARN, alias/NAME or NAME of an asymmetric `SIGN_VERIFY` key
    #[arg(long, value_name = "KEY")]
    key: String,

    /// Signing algorithm (default: RS256 for RSA keys, the curve's ES* for EC keys, `EdDSA` for Ed25519 keys (`Ed25519` on request, RFC 9864), the ML-DSA of ML-DSA keys)
    #[arg(long, value_name = "ALG")]
    alg: Option<Algorithm>,

    /// Claims as a JSON object (the flags below are applied on top)
    #[arg(long, value_name = "JSON", conflicts_with_all = ["claims_file", "batch"])]
    claims: Option<String>,

    /// Read the claims object from FILE, or - for standard input
    #[arg(long, value_name = "FILE|-", conflicts_with = "batch")]
    claims_file: Option<String>,

    /// Subject (sub)
    #[arg(long, value_name = "S")]
    sub: Option<String>,

    /// Issuer (iss)
    #[arg(long, value_name = "S")]
    iss: Option<String>,

    /// Audience (aud); repeat for several
    #[arg(long, value_name = "A")]
    aud: Vec<String>,

    /// Lifetime: exp = now + TTL (used when the claims carry no exp and --exp is absent)
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = humantime::parse_duration, conflicts_with = "exp")]
    ttl: Duration,

    /// Expiry as seconds since the epoch
    #[arg(long, value_name = "UNIX")]
    exp: Option<i64>,

    /// Not-before as seconds since the epoch
    #[arg(long, value_name = "UNIX")]
    nbf: Option<i64>,

    /// Do not add iat (issued-at)
    #[arg(long)]
    no_iat: bool,

    /// Add a random jti (128 bits)
    #[arg(long)]
    jti: bool,

    /// kid header: thumbprint (RFC 7638, the default), key-id, arn, or any other literal value
    #[arg(long, value_name = "thumbprint|key-id|arn|VALUE", default_value = "thumbprint")]
    kid: String,

    /// Sign one claims object per line of FILE (or - for stdin); one token per output line, same order
    #[arg(long, value_name = "FILE|-")]
    batch: Option<String>,

    /// KMS Sign calls in flight at once in --batch mode
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    concurrency: u16,

    /// Sign with the key's multi-Region replica in R when KMS in --region fails (unreachable, timeout, 5xx or throttling after the retries); repeatable, tried in order
    #[arg(long, value_name = "R")]
    fallback_region: Vec<String>,

    /// How long a region that failed is passed over before it is tried again
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration, requires = "fallback_region")]
    failback_after: Duration,
}

impl SignArgs {
    /// Applies the flags to a claims object: explicit flags win; `exp` and `iat` are only
    /// defaulted when the claims do not carry them.
    fn finish(&self, mut claims: Claims, now: i64) -> Result<Claims> {
        if let Some(sub) = &self.sub {
            claims = claims.subject(sub);
        }
        if let Some(iss) = &self.iss {
            claims = claims.issuer(iss);
        }
        if !self.aud.is_empty() {
            let mut map = claims.into_map();
            map.remove("aud");
            claims = self.aud.iter().fold(Claims::from_map(map)?, kms_jwt::Claims::audience);
        }
        if let Some(exp) = self.exp {
            claims = claims.expires_at(exp);
        } else if claims.get("exp").is_none() {
            let ttl = i64::try_from(self.ttl.as_secs()).context("--ttl is too large")?;
            claims = claims.expires_at(now.saturating_add(ttl));
        }
        if let Some(nbf) = self.nbf {
            claims = claims.not_before(nbf);
        }
        if !self.no_iat && claims.get("iat").is_none() {
            claims = claims.issued_at(now);
        }
        if self.jti {
            claims = claims.random_jwt_id();
        }
        Ok(claims)
    }

    fn kid_mode(&self, key_id: &str, arn: &str) -> KeyIdMode {
        match self.kid.as_str() {
            "thumbprint" => KeyIdMode::Thumbprint,
            "key-id" => KeyIdMode::Fixed(key_id.to_owned()),
            "arn" => KeyIdMode::Fixed(arn.to_owned()),
            other => KeyIdMode::Fixed(other.to_owned()),
        }
    }
}

/// Runs `kms-jwt sign`.
pub async fn run(args: SignArgs, opts: &KmsOptions) -> Result<ExitCode> {
    // Parse the input before any KMS call: a typo costs nothing and says so at once.
    let single = match (&args.batch, &args.claims, &args.claims_file) {
        (Some(_), _, _) => None,
        (None, Some(json), _) => Some(Claims::from_json(json.as_bytes()).context("--claims")?),
        (None, None, Some(path)) => {
            let text = input::read_text(path, "claims")?;
            Some(Claims::from_json(text.as_bytes()).with_context(|| format!("claims in {path}"))?)
        }
        (None, None, None) => Some(Claims::new()),
    };
    if args.fallback_region.is_empty() {
        let kms = KmsSigner::builder(&opts.connect().await?, &args.key).algorithm(args.alg).build().await?;
        let kid = args.kid_mode(&kms.key().key.key_id, &kms.key().key.arn);
        return emit(&args, single, &JwtSigner::with_kid(kms, kid)?).await;
    }
    let clients = crate::aws::connect_with_fallbacks(opts, &args.fallback_region).await?;
    let signer =
        FailoverSigner::builder(clients, &args.key).algorithm(args.alg).backoff(args.failback_after).build().await?;
    let kid = args.kid_mode(signer.key_id(), &signer.arn());
    emit(&args, single, &JwtSigner::with_kid(signer, kid)?).await
}

/// Signs the one token, or the batch.
async fn emit<S: Signer>(args: &SignArgs, single: Option<Claims>, signer: &JwtSigner<S>) -> Result<ExitCode> {
    match single {
        Some(claims) => {
            let token = signer.sign(&args.finish(claims, kms_jwt::now())?).await?;
            writeln!(std::io::stdout().lock(), "{token}")?;
            Ok(ExitCode::SUCCESS)
        }
        None => batch(args, signer, args.batch.as_deref().unwrap_or("-")).await,
    }
}

async fn batch<S: Signer>(args: &SignArgs, signer: &JwtSigner<S>, path: &str) -> Result<ExitCode> {
    let concurrency = usize::from(args.concurrency);
    let mut reader = input::open(path)?;
    let path_owned = path.to_owned();
    // A reader thread keeps blocking reads off the runtime; the bounded channel keeps at
    // most a few lines ahead of the signers, whatever the input size.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<(usize, Result<String>)>>(concurrency * 2);
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut number = 0;
        loop {
            number += 1;
            let next = input::next_line(&mut *reader, &mut buf, input::MAX_LINE)
                .with_context(|| format!("cannot read {path_owned}"))
                .map(|line| {
                    line.map(|line| match line {
                        Line::Text(text) => (number, Ok(text.to_owned())),
                        Line::TooLong(len) => (number, Err(anyhow!("the line is {len} bytes long"))),
                        Line::NotUtf8 => (number, Err(anyhow!("the line is not UTF-8 text"))),
                    })
                })
                .transpose();
            let Some(item) = next else { break };
            if tx.blocking_send(item).is_err() {
                break;
            }
        }
    });
    let lines = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let mut tokens = std::pin::pin!(
        lines
            .map(|item| async move {
                let (number, line) = item?;
                let claims = line.and_then(|text| Ok(Claims::from_json(text.as_bytes())?));
                let claims = claims.and_then(|c| args.finish(c, kms_jwt::now()));
                let claims = claims.with_context(|| format!("line {number} of {path}"))?;
                signer.sign(&claims).await.with_context(|| format!("line {number} of {path}"))
            })
            .buffered(concurrency)
    );
    let mut out = BufWriter::new(std::io::stdout().lock());
    while let Some(result) = tokens.next().await {
        match result {
            Ok(token) => writeln!(out, "{token}")?,
            Err(e) => {
                // Every token printed so far is valid and stays printed.
                out.flush()?;
                return Err(e);
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
