//! `cargo xtask rotate`: rotate a key set through its aliases.

use std::time::Duration;

use anyhow::Result;
use kms_jwt::keyset::{KeySetName, KeySets, RotationPolicy};
use kms_jwt::kms::KmsOptions;

/// Make a new (or the staged next) key current, demote the current key to previous, retire the old previous
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Key set name: NAME or alias/NAME
    #[arg(long, value_name = "NAME")]
    alias: String,
    /// Deletion window of the retired key, in days (7 to 30)
    #[arg(long, default_value_t = 30, value_name = "DAYS")]
    pending_window_days: i32,
    /// Refuse to retire a key demoted less than this long ago (longest token lifetime plus clock skew)
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration, value_name = "DURATION")]
    min_overlap: Duration,
    /// Print the plan as JSON and change nothing
    #[arg(long)]
    dry_run: bool,
    /// Retire the previous key even within --min-overlap
    #[arg(long)]
    force: bool,
}

pub(crate) async fn run(args: Args, opts: &KmsOptions) -> Result<()> {
    let sets = KeySets::new(opts.connect().await?);
    let name = KeySetName::parse(&args.alias)?;
    let policy = RotationPolicy {
        pending_window_days: args.pending_window_days,
        min_overlap: args.min_overlap,
        force: args.force,
        description: "kms-jwt signing key".into(),
    };
    if args.dry_run {
        let plan = sets.plan_rotation(&name, &policy).await?;
        return crate::print_json(&plan.to_json());
    }
    let outcome = sets.rotate(&name, &policy).await?;
    crate::print_json(&outcome.to_json())
}
