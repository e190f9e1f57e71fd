//! `kms-jwt jwks` and `kms-jwt public-key`: the public half of KMS keys, for verifiers.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, ValueEnum};
use kms_jwt::Algorithm;
use kms_jwt::kms::KmsOptions;

/// Print the JWKS (JSON) of KMS keys
#[derive(Args)]
pub struct JwksArgs {
    /// Key id or ARN, or alias/NAME (or NAME) for the key set's current, previous and next keys; repeatable
    #[arg(long, value_name = "KEY", required = true)]
    key: Vec<String>,

    /// Algorithm the keys are published for (default: RS256 for RSA, the curve's ES* for EC)
    #[arg(long, value_name = "ALG")]
    alg: Option<Algorithm>,
}

/// Print the public key of a KMS key as PEM or JWK
#[derive(Args)]
pub struct PublicKeyArgs {
    /// Key id, ARN, alias/NAME or NAME
    #[arg(long, value_name = "KEY")]
    key: String,

    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Pem)]
    format: Format,

    /// Algorithm the JWK is published for (default: the key spec's default)
    #[arg(long, value_name = "ALG")]
    alg: Option<Algorithm>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Pem,
    Jwk,
}

/// Runs `kms-jwt jwks`.
pub async fn jwks(args: JwksArgs, opts: &KmsOptions) -> Result<ExitCode> {
    let jwks = kms_jwt::publish::jwks_from_kms(&opts.connect().await?, &args.key, args.alg).await?;
    writeln!(std::io::stdout().lock(), "{}", serde_json::to_string_pretty(&jwks.to_json())?)?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `kms-jwt public-key`.
pub async fn public_key(args: PublicKeyArgs, opts: &KmsOptions) -> Result<ExitCode> {
    // One key: the alias's current key, not its whole set.
    let info = opts.connect().await?.describe_signing_key(&args.key).await?;
    let jwk = info.jwk(info.algorithm(args.alg)?);
    let text = match args.format {
        Format::Pem => jwk.key.to_pem(),
        Format::Jwk => format!("{}\n", serde_json::to_string_pretty(&jwk.to_json())?),
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
