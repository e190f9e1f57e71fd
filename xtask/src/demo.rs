//! `cargo xtask demo`: the seed flow, narrated.

use anyhow::Result;
use kms_jwt::kms::KmsOptions;

pub(crate) fn run(_kms: &KmsOptions) -> Result<()> {
    anyhow::bail!("the demo arrives with the key-set work (provision and rotate)")
}
