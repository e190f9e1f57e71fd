//! `kms-jwt publish`: the JWKS and discovery documents as files, for static hosting.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Args;
use kms_jwt::kms::KmsOptions;
use kms_jwt::publish::{self, Documents};

/// Write .well-known/jwks.json and .well-known/openid-configuration for static hosting
#[derive(Args)]
pub struct PublishArgs {
    /// Key id or ARN, or alias/NAME (or NAME) for a whole key set; repeatable
    #[arg(long, value_name = "KEY", required = true)]
    key: Vec<String>,
    /// The issuer URL, exactly as tokens carry it in iss (for example `https://auth.example.com`)
    #[arg(long, value_name = "URL")]
    issuer: String,
    /// Directory to write .well-known/ into
    #[arg(long, value_name = "DIR")]
    out_dir: PathBuf,
    /// Cache lifetime to recommend for the hosted files, in seconds
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    max_age: u64,
}

/// Runs `kms-jwt publish`.
pub async fn run(args: PublishArgs, opts: &KmsOptions) -> Result<ExitCode> {
    let issuer = crate::serve::check_issuer(&args.issuer)?;
    let jwks = publish::jwks_from_kms(&opts.connect().await?, &args.key, None).await?;
    let docs = Documents::new(&issuer, &jwks);
    let dir = args.out_dir.join(".well-known");
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
