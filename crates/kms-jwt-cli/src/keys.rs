//! `kms-jwt jwks` and `kms-jwt public-key`: the public half of KMS keys, for verifiers.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::{Args, ValueEnum};
use kms_jwt::Algorithm;
use kms_jwt::kms::KmsOptions;

/// Print the JWKS (JSON) of KMS keys
#[derive(Args)]
pub struct JwksArgs {
    /// Key id or ARN, or alias/NAME (or NAME) for the key set's current, previous and next keys; repeatable
    #[arg(long, value_name = "KEY", required = true)]
    key: Vec<String>,

    /// Algorithm the keys are published for (default: RS256 for RSA, the curve's ES* for EC, `EdDSA` for Ed25519 (or `Ed25519`, RFC 9864), the ML-DSA of the key)
    #[arg(long, value_name = "ALG")]
    alg: Option<Algorithm>,
}

/// Print the public key of a KMS key as PEM or JWK, or a key set's JWKS
#[derive(Args)]
pub struct PublicKeyArgs {
    /// Key id, ARN, alias/NAME or NAME (pem and jwk: the alias's current key)
    #[arg(long, visible_alias = "alias", value_name = "KEY")]
    key: String,

    /// Output format: pem or jwk for the key, jwks for every published key of its set
    #[arg(long, value_enum, default_value_t = Format::Pem)]
    format: Format,

    /// Algorithm the JWK is published for (default: the key spec's default)
    #[arg(long, value_name = "ALG")]
    alg: Option<Algorithm>,

    /// Write to FILE instead of standard output
    #[arg(long, value_name = "FILE")]
    out: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Pem,
    Jwk,
    Jwks,
}

/// Runs `kms-jwt jwks`.
pub async fn jwks(args: JwksArgs, opts: &KmsOptions) -> Result<ExitCode> {
    let jwks = kms_jwt::publish::jwks_from_kms(&opts.connect().await?, &args.key, args.alg).await?;
    writeln!(std::io::stdout().lock(), "{}", serde_json::to_string_pretty(&jwks.to_json())?)?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `kms-jwt public-key` (and `cargo xtask public-key`).
pub async fn public_key(args: PublicKeyArgs, opts: &KmsOptions) -> Result<ExitCode> {
    let kms = opts.connect().await?;
    let text = if let Format::Jwks = args.format {
        let jwks = kms_jwt::publish::jwks_from_kms(&kms, std::slice::from_ref(&args.key), args.alg).await?;
        format!("{}\n", serde_json::to_string_pretty(&jwks.to_json())?)
    } else {
        // One key: the alias's current key, not its whole set.
        let info = kms.describe_signing_key(&args.key).await?;
        let jwk = info.jwk(info.algorithm(args.alg)?);
        match args.format {
            Format::Pem => jwk.key.to_pem(),
            _ => format!("{}\n", serde_json::to_string_pretty(&jwk.to_json())?),
        }
    };
    match &args.out {
        Some(path) => std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?,
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}
