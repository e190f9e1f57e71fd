//! `kms-jwt decode`: show a token's header and claims without verifying it.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use crate::input;

/// Print a token's header and payload as JSON, unverified (for debugging only)
#[derive(Args)]
pub struct DecodeArgs {
    /// The token, or - to read it from standard input
    token: String,
}

/// Runs `kms-jwt decode`.
pub fn run(args: &DecodeArgs) -> Result<ExitCode> {
    let token = if args.token == "-" { input::read_text("-", "token")? } else { args.token.clone() };
    let (header, payload) = kms_jwt::decode_unverified(token.trim())?;
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "kms-jwt: warning: the signature was NOT verified; use `kms-jwt verify` before trusting these claims"
        );
    }
    let doc = serde_json::json!({ "header": header, "payload": payload });
    writeln!(std::io::stdout().lock(), "{}", serde_json::to_string_pretty(&doc)?)?;
    Ok(ExitCode::SUCCESS)
}
