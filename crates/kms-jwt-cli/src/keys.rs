//! `kms-jwt jwks` and `kms-jwt public-key`: the public half of KMS keys, for verifiers.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, ValueEnum};
use kms_jwt::keyset::{KeySetName, KeySets};
use kms_jwt::kms::{KeyInfo, KmsClient, KmsOptions, normalize_key_ref};
use kms_jwt::{Algorithm, Jwk, Jwks};

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

/// Each key with the algorithm it is pinned to (`alg`, or its key spec's default). An alias
/// names a key set: its current, previous and next keys, each while enabled.
pub(crate) async fn fetch_keys(
    keys: &[String],
    alg: Option<Algorithm>,
    kms: &KmsClient,
) -> Result<Vec<(KeyInfo, Algorithm)>> {
    let sets = KeySets::new(kms.clone());
    let mut out: Vec<(KeyInfo, Algorithm)> = Vec::with_capacity(keys.len());
    for key in keys {
        let key = normalize_key_ref(key);
        let found = if let Some(name) = key.strip_prefix("alias/") {
            sets.published(&KeySetName::parse(name)?, alg).await?
        } else {
            let info = kms.describe_signing_key(&key).await?;
            let alg = info.algorithm(alg)?;
            vec![(info, alg)]
        };
        for (info, alg) in found {
            if !out.iter().any(|(k, _)| k.key_id == info.key_id) {
                out.push((info, alg));
            }
        }
    }
    Ok(out)
}

/// The JWKS of `keys`: each key's JWK with its thumbprint as `kid` and its pinned `alg`.
pub(crate) async fn fetch_jwks(keys: &[String], alg: Option<Algorithm>, kms: &KmsClient) -> Result<Jwks> {
    let keys = fetch_keys(keys, alg, kms).await?.into_iter().map(|(info, alg)| Jwk {
        kid: Some(info.public_key.thumbprint()),
        key: info.public_key,
        alg: Some(alg),
    });
    Ok(Jwks { keys: keys.collect() })
}

/// Runs `kms-jwt jwks`.
pub async fn jwks(args: JwksArgs, opts: &KmsOptions) -> Result<ExitCode> {
    let jwks = fetch_jwks(&args.key, args.alg, &opts.connect().await?).await?;
    writeln!(std::io::stdout().lock(), "{}", serde_json::to_string_pretty(&jwks.to_json())?)?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `kms-jwt public-key`.
pub async fn public_key(args: PublicKeyArgs, opts: &KmsOptions) -> Result<ExitCode> {
    // One key: the alias's current key, not its whole set.
    let info = opts.connect().await?.describe_signing_key(&args.key).await?;
    let jwk =
        Jwk { alg: Some(info.algorithm(args.alg)?), kid: Some(info.public_key.thumbprint()), key: info.public_key };
    let text = match args.format {
        Format::Pem => jwk.key.to_pem(),
        Format::Jwk => format!("{}\n", serde_json::to_string_pretty(&jwk.to_json())?),
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
