//! `kms-jwt publish`: the JWKS and discovery documents as files for static hosting, or into an
//! S3 bucket behind a CDN.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Args;
use kms_jwt::kms::KmsOptions;
use kms_jwt::publish::{self, Documents};

/// Write .well-known/jwks.json and .well-known/openid-configuration for static hosting: to a directory, or to S3
#[derive(Args)]
#[command(group = clap::ArgGroup::new("destination").required(true).args(["out_dir", "to"]))]
pub struct PublishArgs {
    /// Key id or ARN, or alias/NAME (or NAME) for a whole key set; repeatable. The first names the key that signs now: a JWKS without it is not published
    #[arg(long, value_name = "KEY", required = true)]
    key: Vec<String>,
    /// The issuer URL, exactly as tokens carry it in iss (for example `https://auth.example.com`)
    #[arg(long, value_name = "URL")]
    issuer: String,
    /// Directory to write .well-known/ into
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
    /// S3 location to write .well-known/ into, `s3://BUCKET` or `s3://BUCKET/PREFIX` (JWKS first, then discovery; unchanged documents are not written); prints a JSON summary
    #[arg(long, value_name = "S3_URL")]
    to: Option<String>,
    /// Cache lifetime to recommend for the hosted files, in seconds (on S3, each write takes up to a tenth less, at random, so that caches do not expire together)
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    max_age: u64,
}

/// Runs `kms-jwt publish`.
pub async fn run(args: PublishArgs, opts: &KmsOptions) -> Result<ExitCode> {
    let issuer = crate::serve::check_issuer(&args.issuer)?;
    if let Some(to) = &args.to {
        return to_s3(&args, to, &issuer, opts).await;
    }
    let jwks = publish::jwks_from_kms(&opts.connect().await?, &args.key, None).await?;
    let docs = Documents::new(&issuer, &jwks);
    let dir = args.out_dir.as_ref().context("--out-dir or --to is required")?.join(".well-known");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, bytes) in [("jwks.json", &docs.jwks), ("openid-configuration", &docs.openid_configuration)] {
        let path = dir.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    crate::say(&format!(
        "wrote {dir}/jwks.json and {dir}/openid-configuration; serve both as application/json with \
         Cache-Control: {} and re-publish after every rotation",
        publish::cache_control(args.max_age),
        dir = dir.display()
    ));
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "s3")]
async fn to_s3(args: &PublishArgs, to: &str, issuer: &str, opts: &KmsOptions) -> Result<ExitCode> {
    let target: publish::S3Target = to.parse()?;
    let kms = opts.connect().await?;
    let s3 = publish::s3_client(&opts.load().await?);
    let done = publish::publish_keys_to_s3(&kms, &s3, &target, &args.key, issuer, args.max_age).await?;
    let summary = serde_json::json!({
        "to": target.to_string(),
        "current_kid": done.current_kid,
        "written": done.written,
        "unchanged": done.unchanged,
        "cache_control": done.cache_control,
    });
    writeln!(std::io::stdout().lock(), "{summary}")?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "s3"))]
async fn to_s3(_: &PublishArgs, _: &str, _: &str, _: &KmsOptions) -> Result<ExitCode> {
    anyhow::bail!("this kms-jwt was built without its s3 feature: --to is not available")
}
