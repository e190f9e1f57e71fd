//! `cargo xtask public-key`: export a key set's public key as PEM, JWK or JWKS.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use kms_jwt::Jwk;
use kms_jwt::keyset::{KeySetName, KeySets};
use kms_jwt::kms::KmsOptions;

/// Export the current public key (pem, jwk) or the set's JWKS
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Key set name: NAME or alias/NAME
    #[arg(long, value_name = "NAME")]
    alias: String,
    /// pem or jwk: the current key; jwks: every published key of the set
    #[arg(long, value_enum, default_value_t = Format::Pem)]
    format: Format,
    /// Write to FILE instead of standard output
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Pem,
    Jwk,
    Jwks,
}

pub(crate) async fn run(args: Args, opts: &KmsOptions) -> Result<()> {
    let kms = opts.connect().await?;
    let name = KeySetName::parse(&args.alias)?;
    let text = match args.format {
        Format::Jwks => {
            serde_json::to_string_pretty(&KeySets::new(kms.clone()).jwks(&name, None).await?.to_json())? + "\n"
        }
        Format::Pem | Format::Jwk => {
            let info = kms.describe_signing_key(&name.current()).await?;
            if matches!(args.format, Format::Pem) {
                info.public_key.to_pem()
            } else {
                let alg = info.algorithm(None)?;
                let jwk = Jwk { kid: Some(info.public_key.thumbprint()), key: info.public_key, alg: Some(alg) };
                serde_json::to_string_pretty(&jwk.to_json())? + "\n"
            }
        }
    };
    match &args.out {
        Some(path) => std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display())),
        None => crate::print_text(&text),
    }
}
