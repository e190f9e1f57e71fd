//! `kms-jwt completions`: shell completion scripts, generated from the command definition.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use clap_complete::Shell;

/// Print a completion script for a shell (for example: kms-jwt completions bash > /etc/bash_completion.d/kms-jwt)
#[derive(Args)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    shell: Shell,
}

/// Writes the script for `args.shell` of the command `cmd` to stdout.
pub fn run(args: &CompletionsArgs, cmd: &mut clap::Command) -> Result<ExitCode> {
    let name = cmd.get_name().to_owned();
    clap_complete::generate(args.shell, cmd, name, &mut std::io::stdout().lock());
    Ok(ExitCode::SUCCESS)
}
