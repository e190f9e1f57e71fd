//! `kms-jwt verify`: check tokens against a JWKS, a PEM or KMS public keys.

use std::io::{BufWriter, Write as _};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::{ArgGroup, Args};
use kms_jwt::kms::KmsOptions;
use kms_jwt::{Algorithm, Jwks, TokenError, Verifier, VerifyingKey};

use crate::input::{self, Line};

/// Verify tokens; print the claims (exit 0) or the reason (exit 1)
#[derive(Args)]
#[command(group(ArgGroup::new("keys").required(true).args(["jwks", "pem", "key"])))]
pub struct VerifyArgs {
    /// The token, or - to read one token from standard input
    #[arg(value_name = "TOKEN|-", required_unless_present = "batch", conflicts_with = "batch")]
    token: Option<String>,

    /// One token per line from FILE or - (stdin); one JSON result per line on stdout
    #[arg(long, value_name = "FILE|-")]
    batch: Option<String>,

    /// Verify against the keys of this JWKS file
    #[arg(long, value_name = "FILE")]
    jwks: Option<String>,

    /// Verify against this PEM public key
    #[arg(long, value_name = "FILE")]
    pem: Option<String>,

    /// Verify against the public key of this KMS key (repeatable)
    #[arg(long, value_name = "KEY")]
    key: Vec<String>,

    /// Pin the keys to this algorithm (default: the JWK's alg, else RS256 for RSA, the curve's ES* for EC)
    #[arg(long, value_name = "ALG")]
    alg: Option<Algorithm>,

    /// Require this issuer (iss)
    #[arg(long, value_name = "S")]
    iss: Option<String>,

    /// Require one of these audiences (aud); repeatable
    #[arg(long, value_name = "A")]
    aud: Vec<String>,

    /// Clock skew allowed for exp and nbf, in seconds
    #[arg(long, value_name = "SECS", default_value_t = kms_jwt::verify::DEFAULT_LEEWAY_SECS)]
    leeway: u64,
}

async fn build_verifier(args: &VerifyArgs, opts: &KmsOptions) -> Result<Verifier> {
    let verifier = if let Some(path) = &args.jwks {
        let text = input::read_text(path, "JWKS")?;
        Verifier::from_jwks(&Jwks::parse(text.as_bytes()).with_context(|| format!("in {path}"))?, args.alg)?
    } else if let Some(path) = &args.pem {
        Verifier::from_pem(&input::read_text(path, "PEM")?, args.alg).with_context(|| format!("in {path}"))?
    } else {
        // A token from `kms-jwt sign --kid key-id|arn` names the key by id or ARN rather than
        // by thumbprint: with the KMS key at hand, all three identify it.
        let mut keys = Vec::new();
        for (info, alg) in crate::keys::fetch_keys(&args.key, args.alg, &opts.connect().await?).await? {
            for kid in [info.public_key.thumbprint(), info.key_id.clone(), info.arn.clone()] {
                keys.push(VerifyingKey::new(info.public_key.clone(), alg, Some(kid))?);
            }
        }
        Verifier::new(keys)
    };
    let mut verifier = verifier.with_leeway(args.leeway);
    if let Some(iss) = &args.iss {
        verifier = verifier.with_issuer(iss);
    }
    for aud in &args.aud {
        verifier = verifier.with_audience(aud);
    }
    Ok(verifier)
}

/// Runs `kms-jwt verify`.
pub async fn run(args: VerifyArgs, opts: &KmsOptions) -> Result<ExitCode> {
    let verifier = build_verifier(&args, opts).await?;
    match (&args.batch, &args.token) {
        (Some(path), _) => batch(&verifier, path),
        (None, Some(token)) => {
            let token = if token == "-" { read_token_from_stdin()? } else { Ok(token.clone()) };
            match token.and_then(|token| verifier.verify(token.trim())) {
                Ok(claims) => {
                    writeln!(std::io::stdout().lock(), "{}", serde_json::to_string(claims.as_map())?)?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(reason) => {
                    #[allow(clippy::print_stderr)]
                    {
                        eprintln!("kms-jwt: invalid token: {reason}");
                    }
                    Ok(ExitCode::from(1))
                }
            }
        }
        (None, None) => unreachable!("clap requires a token or --batch"),
    }
}

/// One token from standard input. A token longer than any verifier accepts is an invalid
/// token (exit 1), like any other: it is counted, not kept, so its size costs no memory.
fn read_token_from_stdin() -> Result<Result<String, TokenError>> {
    use std::io::Read as _;
    let mut text = Vec::new();
    let mut stdin = std::io::stdin().lock();
    (&mut stdin).take(input::MAX_TOKEN_INPUT as u64 + 1).read_to_end(&mut text).context("cannot read the token")?;
    if text.len() > input::MAX_TOKEN_INPUT {
        let rest = std::io::copy(&mut stdin, &mut std::io::sink()).context("cannot read the token")?;
        let len = text.len() + usize::try_from(rest).unwrap_or(usize::MAX);
        return Ok(Err(TokenError::TooLong { len, max: kms_jwt::verify::DEFAULT_MAX_TOKEN_LEN }));
    }
    match String::from_utf8(text) {
        Ok(token) => Ok(Ok(token)),
        Err(_) => Ok(Err(TokenError::NotText)),
    }
}

fn batch(verifier: &Verifier, path: &str) -> Result<ExitCode> {
    let mut reader = input::open(path)?;
    let mut out = BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    let mut buf = Vec::new();
    let mut all_valid = true;
    while let Some(line) =
        input::next_line(&mut *reader, &mut buf, input::MAX_LINE).with_context(|| format!("cannot read {path}"))?
    {
        let result = match line {
            Line::Text(token) => verifier.verify_payload(token.trim_end()),
            Line::TooLong(len) => Err(TokenError::TooLong { len, max: input::MAX_LINE }),
            Line::NotUtf8 => Err(TokenError::NotText),
        };
        match result {
            Ok(payload) => {
                out.write_all(b"{\"valid\":true,\"claims\":")?;
                // The payload is a JSON object the verifier checked strictly; unless it spans
                // lines, it is already the claims' JSON: no need to parse and serialise it.
                if payload.iter().any(|&b| b == b'\n' || b == b'\r') {
                    serde_json::to_writer(&mut out, &serde_json::from_slice::<serde_json::Value>(&payload)?)?;
                } else {
                    out.write_all(&payload)?;
                }
                out.write_all(b"}\n")?;
            }
            Err(reason) => {
                all_valid = false;
                out.write_all(b"{\"valid\":false,\"error\":")?;
                serde_json::to_writer(&mut out, &reason.to_string())?;
                out.write_all(b"}\n")?;
            }
        }
    }
    out.flush()?;
    Ok(if all_valid { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
