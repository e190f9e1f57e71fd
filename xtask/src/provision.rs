//! `cargo xtask provision`: create a key set's key and alias, or report the existing set.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use kms_jwt::keyset::{DEFAULT_KEY_SPEC, KeySetName, KeySets, ProvisionRequest};
use kms_jwt::kms::KmsOptions;

/// Create the KMS key and alias of a key set (idempotent)
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Key set name: NAME or alias/NAME
    #[arg(long, value_name = "NAME")]
    alias: String,
    /// KMS key spec, for example `RSA_2048`, `RSA_3072` or `ECC_NIST_P256`
    #[arg(long, default_value = DEFAULT_KEY_SPEC)]
    key_spec: String,
    /// Key description
    #[arg(long, value_name = "D", default_value = "kms-jwt signing key")]
    description: String,
    /// Extra tag K=V; repeatable
    #[arg(long, value_name = "K=V", value_parser = parse_tag)]
    tag: Vec<(String, String)>,
    /// Also write public.pem (current key) and jwks.json (the set) here
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
}

fn parse_tag(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| format!("{s:?} is not K=V"))
}

pub(crate) async fn run(args: Args, opts: &KmsOptions) -> Result<()> {
    let sets = KeySets::new(opts.connect().await?);
    let name = KeySetName::parse(&args.alias)?;
    let req =
        ProvisionRequest { name: name.clone(), key_spec: args.key_spec, description: args.description, tags: args.tag };
    let done = sets.provision(&req).await?;
    if let Some(dir) = &args.out_dir {
        let jwks = sets.jwks(&name, None).await?;
        crate::public_key::write_files(dir, &done.info.public_key, &jwks)?;
    }
    crate::print_json(&done.to_json()).context("cannot write the summary")
}
