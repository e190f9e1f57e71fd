//! `kms-jwt keyset provision|rotate|status`: key sets for operators, from the installed binary.
//! The work is the library's (`kms_jwt::keyset`); `cargo xtask provision|rotate` run these same
//! commands.

mod output;

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use kms_jwt::keyset::{DEFAULT_KEY_SPEC, KeySetName, KeySets, ProvisionRequest, RotationPolicy};
use kms_jwt::kms::KmsOptions;
use kms_jwt::{Error, Jwks, PublicKey};

pub use output::{outcome_json, plan_json, provisioned_json, status_json};

/// Provision, rotate and inspect key sets (alias/NAME, alias/NAME/previous, alias/NAME/next)
#[derive(Args)]
pub struct KeysetArgs {
    #[command(subcommand)]
    command: KeysetCommand,
}

#[derive(Subcommand)]
enum KeysetCommand {
    Provision(ProvisionArgs),
    Rotate(RotateArgs),
    Status(StatusArgs),
}

/// Create a key set's KMS key and alias (idempotent; safe when runs race); prints a JSON summary
#[derive(Args)]
pub struct ProvisionArgs {
    /// Key set name: NAME or alias/NAME
    #[arg(long = "key", visible_alias = "alias", value_name = "NAME")]
    key: String,
    /// KMS key spec: `RSA_2048|3072|4096`, `ECC_NIST_P256|P384|P521`, `ECC_SECG_P256K1`, `ECC_NIST_EDWARDS25519` (Ed25519) or `ML_DSA_44|65|87`
    #[arg(long, default_value = DEFAULT_KEY_SPEC)]
    key_spec: String,
    /// Key description
    #[arg(long, value_name = "D", default_value = "kms-jwt signing key")]
    description: String,
    /// Extra tag K=V; repeatable
    #[arg(long, value_name = "K=V", value_parser = parse_tag)]
    tag: Vec<(String, String)>,
    /// Longest lifetime of a token the set's keys sign (the signer refuses longer ones; rotation's overlap follows from it)
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    max_token_ttl: Duration,
    /// Also write public.pem (current key) and jwks.json (the set) here
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
    /// A multi-Region set: the primary key in R1, replicas and the set's aliases in the others (rotate and status find them)
    #[arg(long, value_name = "R1,R2,...", value_delimiter = ',')]
    regions: Vec<String>,
    /// Deletion window (7-30 days) of a key this run creates and must retire at once (its alias could not be made, or a racing run won)
    #[arg(long, default_value_t = 30, value_name = "DAYS")]
    pending_window_days: i32,
}

/// Make a new (or the staged next) key current, demote the current key to previous, retire the old previous; prints JSON
#[derive(Args)]
pub struct RotateArgs {
    /// Key set name: NAME or alias/NAME
    #[arg(long = "key", visible_alias = "alias", value_name = "NAME")]
    key: String,
    /// Deletion window of the retired key, in days (7 to 30)
    #[arg(long, default_value_t = 30, value_name = "DAYS")]
    pending_window_days: i32,
    /// Refuse to retire a key demoted less than this long ago [default: the set's max token TTL + JWKS cache age + clock skew, or 24h for a set without a lifetime policy]
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    min_overlap: Option<Duration>,
    /// Rotate only if the current key is older than this (exit 0 with "rotated": false otherwise): for schedules
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    if_older_than: Option<Duration>,
    /// Print the plan as JSON and change nothing
    #[arg(long)]
    dry_run: bool,
    /// Retire the previous key even within the overlap
    #[arg(long)]
    force: bool,
    /// Spec of the new key, to move the set to another (`RSA_2048` to `ECC_NIST_EDWARDS25519`, say) [default: the current key's]
    #[arg(long, value_name = "SPEC")]
    key_spec: Option<String>,
}

/// Show a key set: each alias, key, state, created and demoted time, the policy, the lock, and when previous may be retired
#[derive(Args)]
pub struct StatusArgs {
    /// Key set name: NAME or alias/NAME
    #[arg(long = "key", visible_alias = "alias", value_name = "NAME")]
    key: String,
    /// JSON even on a terminal (it is always JSON when stdout is not a terminal)
    #[arg(long)]
    json: bool,
}

fn parse_tag(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| format!("{s:?} is not K=V"))
}

/// Runs `kms-jwt keyset ...`.
pub async fn run(args: KeysetArgs, opts: &KmsOptions) -> Result<ExitCode> {
    match args.command {
        KeysetCommand::Provision(args) => provision(args, opts).await,
        KeysetCommand::Rotate(args) => rotate(args, opts).await,
        KeysetCommand::Status(args) => status(args, opts).await,
    }
}

/// Runs `kms-jwt keyset provision`.
pub async fn provision(args: ProvisionArgs, opts: &KmsOptions) -> Result<ExitCode> {
    let name = KeySetName::parse(&args.key)?;
    let kms = match args.regions.first() {
        Some(primary) => opts.in_region(primary).connect().await?,
        None => opts.connect().await?,
    };
    let sets = KeySets::new(kms);
    let req = ProvisionRequest {
        name: name.clone(),
        key_spec: args.key_spec,
        description: args.description,
        tags: args.tag,
        max_token_ttl: args.max_token_ttl,
        regions: args.regions,
        pending_window_days: args.pending_window_days,
    };
    let done = sets.provision(&req).await?;
    if let Some(dir) = &args.out_dir {
        write_public_files(dir, &done.info.public_key, &sets.jwks(&name, None).await?)?;
    }
    print_json(&provisioned_json(&done))
}

/// Runs `kms-jwt keyset rotate`.
pub async fn rotate(args: RotateArgs, opts: &KmsOptions) -> Result<ExitCode> {
    let name = KeySetName::parse(&args.key)?;
    let sets = KeySets::new(opts.connect().await?);
    let policy = RotationPolicy {
        pending_window_days: args.pending_window_days,
        min_overlap: args.min_overlap,
        if_older_than: args.if_older_than,
        force: args.force,
        description: "kms-jwt signing key".into(),
        key_spec: args.key_spec,
    };
    let result = if args.dry_run {
        sets.plan_rotation(&name, &policy).await.map(|plan| plan_json(&plan))
    } else {
        sets.rotate(&name, &policy).await.map(|outcome| outcome_json(&outcome))
    };
    match result {
        Ok(json) => print_json(&json),
        Err(e @ Error::OverlapNotElapsed { .. }) => {
            Err(anyhow::anyhow!("{e} (wait, or pass --force to retire it now)"))
        }
        Err(e) => Err(e.into()),
    }
}

/// Runs `kms-jwt keyset status`.
pub async fn status(args: StatusArgs, opts: &KmsOptions) -> Result<ExitCode> {
    let name = KeySetName::parse(&args.key)?;
    let status = KeySets::new(opts.connect().await?).status(&name).await?;
    if args.json || !std::io::stdout().is_terminal() {
        return print_json(&status_json(&status)?);
    }
    let text = output::table(&status)?;
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

fn print_json(value: &serde_json::Value) -> Result<ExitCode> {
    writeln!(std::io::stdout().lock(), "{}", serde_json::to_string_pretty(value)?)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes `public.pem` (the current key) and `jwks.json` (the set) into `dir`.
pub fn write_public_files(dir: &Path, current: &PublicKey, jwks: &Jwks) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(dir.join("public.pem"), current.to_pem())
        .with_context(|| format!("cannot write {}/public.pem", dir.display()))?;
    let json = serde_json::to_string_pretty(&jwks.to_json())? + "\n";
    std::fs::write(dir.join("jwks.json"), json).with_context(|| format!("cannot write {}/jwks.json", dir.display()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_lifetime_is_the_library_default() {
        assert_eq!(humantime::parse_duration("1h").unwrap(), kms_jwt::keyset::DEFAULT_MAX_TOKEN_TTL);
    }
}
