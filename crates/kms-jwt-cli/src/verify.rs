//! `kms-jwt verify`: check tokens against a JWKS, a PEM or KMS public keys.

use std::io::{BufWriter, Write as _};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::{ArgGroup, Args};
use kms_jwt::kms::KmsOptions;
use kms_jwt::remote::RemoteJwks;
use kms_jwt::{Algorithm, Claims, Jwks, TokenError, Verifier, VerifyingKey};
use serde_json::value::RawValue;

use crate::input;

/// Verify tokens; print the claims (exit 0) or the reason (exit 1)
#[derive(Args)]
#[command(group(ArgGroup::new("keys").required(true).args(["jwks", "pem", "key", "issuer_url"])))]
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

    /// Verify as a third party that knows only the issuer: its discovery document names the JWKS (https, or http on loopback), and iss must be this URL
    #[arg(long, value_name = "URL", conflicts_with = "iss")]
    issuer_url: Option<String>,

    /// Pin the keys to this algorithm (default: the JWK's alg, else RS256 for RSA, the curve's ES* for EC, `EdDSA` for Ed25519, the ML-DSA of the key)
    #[arg(long, value_name = "ALG")]
    alg: Option<Algorithm>,

    /// Require this issuer (iss)
    #[arg(long, value_name = "S")]
    iss: Option<String>,

    /// Require one of these audiences (aud); repeatable. Without it, a token that has an aud is refused
    #[arg(long, value_name = "A", conflicts_with = "any_audience")]
    aud: Vec<String>,

    /// Accept a token whatever its aud (for inspecting tokens; a service names its audience with --aud)
    #[arg(long)]
    any_audience: bool,

    /// Clock skew allowed for exp and nbf, in seconds
    #[arg(long, value_name = "SECS", default_value_t = kms_jwt::DEFAULT_LEEWAY_SECS)]
    leeway: u64,
}

async fn build_verifier(args: &VerifyArgs, opts: &KmsOptions) -> Result<Verifier> {
    if let Some(url) = &args.issuer_url {
        let mut remote = RemoteJwks::from_issuer(url)?.leeway(args.leeway);
        for aud in &args.aud {
            remote = remote.audience(aud);
        }
        if args.any_audience {
            remote = remote.allow_any_audience();
        }
        if let Some(alg) = args.alg {
            anyhow::bail!("--alg {alg} cannot be used with --issuer-url: the issuer's JWKS pins each key's algorithm");
        }
        return Ok(remote.build()?.snapshot().await?);
    }
    let verifier = if let Some(path) = &args.jwks {
        let text = input::read_text(path, "JWKS")?;
        Verifier::from_jwks(&Jwks::parse(text.as_bytes()).with_context(|| format!("in {path}"))?, args.alg)?
    } else if let Some(path) = &args.pem {
        Verifier::from_pem(&input::read_text(path, "PEM")?, args.alg).with_context(|| format!("in {path}"))?
    } else {
        // A token from `kms-jwt sign --kid key-id|arn` names the key by id or ARN rather than
        // by thumbprint: with the KMS key at hand, all three identify it.
        let mut keys = Vec::new();
        for (info, alg) in kms_jwt::publish::keys_from_kms(&opts.connect().await?, &args.key, args.alg).await? {
            for kid in [info.public_key.thumbprint(), info.key.key_id.clone(), info.key.arn.clone()] {
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
    if args.any_audience {
        verifier = verifier.allow_any_audience();
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
            match token.and_then(|token| verifier.verify::<Claims>(token.trim())) {
                Ok(valid) => {
                    writeln!(std::io::stdout().lock(), "{}", serde_json::to_string(valid.claims.as_map())?)?;
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
        return Ok(Err(TokenError::TooLong { len, max: kms_jwt::DEFAULT_MAX_TOKEN_LEN }));
    }
    match String::from_utf8(text) {
        Ok(token) => Ok(Ok(token)),
        Err(_) => Ok(Err(TokenError::NotText)),
    }
}

/// Lines per unit of work: large enough that handing a chunk to a thread costs nothing beside
/// verifying it, small enough that every core gets many.
const CHUNK_LINES: usize = 512;

/// `verify --batch` on every core. A reader hands out chunks of lines, the workers verify them
/// through clones of the one `Verifier` (no lock), and this thread writes the results in input
/// order. At most a few chunks per worker are in flight, so memory stays bounded whatever the
/// input's length.
///
/// The reader and the workers are detached threads, not scoped ones: when standard output
/// closes (`| head -1`), this returns at once, and the process exits without waiting for a
/// reader that may be blocked on an input that never ends.
fn batch(verifier: &Verifier, path: &str) -> Result<ExitCode> {
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let mut reader = input::open(path)?;
    let mut out = BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    let (work_tx, work_rx) = std::sync::mpsc::sync_channel::<(usize, Vec<Line>)>(workers);
    let work_rx = std::sync::Arc::new(std::sync::Mutex::new(work_rx));
    let (done_tx, done_rx) = std::sync::mpsc::channel::<(usize, Vec<u8>, bool)>();
    // One permit per chunk in flight; the writer returns it once the chunk is written.
    let (permit_tx, permit_rx) = std::sync::mpsc::sync_channel::<()>(4 * workers);
    for _ in 0..workers {
        let (verifier, work_rx, done_tx) = (verifier.clone(), work_rx.clone(), done_tx.clone());
        std::thread::spawn(move || {
            loop {
                let next = work_rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner).recv();
                let Ok((seq, lines)) = next else { break };
                let mut text = Vec::with_capacity(lines.len() * 160);
                let mut all_valid = true;
                for line in &lines {
                    all_valid &= verify_line(&verifier, line, &mut text);
                }
                if done_tx.send((seq, text, all_valid)).is_err() {
                    break;
                }
            }
        });
    }
    drop(done_tx);
    let path = path.to_owned();
    let reading = std::thread::spawn(move || -> Result<usize> {
        let mut buf = Vec::new();
        let mut seq = 0;
        loop {
            let mut lines = Vec::with_capacity(CHUNK_LINES);
            while lines.len() < CHUNK_LINES {
                let line = input::next_line(&mut *reader, &mut buf, input::MAX_LINE)
                    .with_context(|| format!("cannot read {path}"))?;
                let Some(line) = line else { break };
                lines.push(match line {
                    input::Line::Text(text) => Line::Text(text.to_owned()),
                    input::Line::TooLong(len) => Line::TooLong(len),
                    input::Line::NotUtf8 => Line::NotUtf8,
                });
            }
            if lines.is_empty() || permit_tx.send(()).is_err() || work_tx.send((seq, lines)).is_err() {
                return Ok(seq);
            }
            seq += 1;
        }
    });
    // The results end when every worker has stopped, which is when the reader has stopped.
    let mut pending = std::collections::BTreeMap::new();
    let (mut next, mut all_valid) = (0, true);
    for (seq, text, valid) in done_rx {
        pending.insert(seq, (text, valid));
        while let Some((text, valid)) = pending.remove(&next) {
            out.write_all(&text)?;
            all_valid &= valid;
            next += 1;
            let _ = permit_rx.recv();
        }
    }
    out.flush()?;
    let sent = reading.join().map_err(|_| anyhow::anyhow!("the batch reader panicked"))??;
    // Only a worker that panicked can lose a chunk; say so rather than end short in silence.
    anyhow::ensure!(next == sent, "a batch worker stopped after {next} of {sent} chunks");
    Ok(if all_valid { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// A batch line, owned so that it can travel to a worker.
enum Line {
    Text(String),
    TooLong(usize),
    NotUtf8,
}

/// Appends one JSON result line for `line` to `out`; returns whether the token is valid.
fn verify_line(verifier: &Verifier, line: &Line, out: &mut Vec<u8>) -> bool {
    let result = match line {
        Line::Text(token) => verifier.verify::<Box<RawValue>>(token.trim_end()).map(|v| v.claims),
        Line::TooLong(len) => Err(TokenError::TooLong { len: *len, max: input::MAX_LINE }),
        Line::NotUtf8 => Err(TokenError::NotText),
    };
    match result {
        Ok(claims) => {
            out.extend_from_slice(b"{\"valid\":true,\"claims\":");
            // The claims as signed, a JSON object the verifier checked strictly: unless it
            // spans lines, no need to parse and serialise it again.
            let text = claims.get();
            if text.contains(['\n', '\r']) {
                let value: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
                let _ = serde_json::to_writer(&mut *out, &value);
            } else {
                out.extend_from_slice(text.as_bytes());
            }
            out.extend_from_slice(b"}\n");
            true
        }
        Err(reason) => {
            out.extend_from_slice(b"{\"valid\":false,\"error\":");
            let _ = serde_json::to_writer(&mut *out, &reason.to_string());
            out.extend_from_slice(b"}\n");
            false
        }
    }
}
