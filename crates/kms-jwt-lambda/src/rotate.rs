//! The scheduled rotation: rotate the set if its current key is old enough (as `kms-jwt keyset
//! rotate --if-older-than` does: runs that race change the set once), then publish the
//! documents to S3. Only an event that says `{"kms_jwt":"rotate"}` runs it.

use anyhow::{Context as _, Result, bail};
use kms_jwt::keyset::{KeySetName, KeySets, RotationPolicy};
use kms_jwt::kms::KmsClient;
use kms_jwt::publish;
use serde_json::{Value, json};

use crate::config::Config;

/// Runs one scheduled rotation for `event` and says what it did, as JSON.
pub async fn handle(
    config: &Config,
    kms: &KmsClient,
    s3: &kms_jwt::aws_sdk_s3::Client,
    event: &Value,
) -> Result<Value> {
    if event.get("kms_jwt").and_then(Value::as_str) != Some("rotate") {
        bail!("not a rotation event: the schedule's input is {{\"kms_jwt\":\"rotate\"}}");
    }
    let name = KeySetName::parse(&config.key)?;
    let sets = KeySets::new(kms.clone());
    let policy = RotationPolicy {
        pending_window_days: 30,
        min_overlap: None,
        if_older_than: config.rotate_if_older_than,
        force: false,
        description: "kms-jwt signing key".into(),
        key_spec: None,
    };
    let rotated = match sets.rotate(&name, &policy).await {
        Ok(outcome) => outcome.rotated,
        // Another run holds the set: it rotates and publishes; this one changes nothing.
        Err(kms_jwt::Error::Busy { detail, .. }) => {
            return Ok(json!({ "rotated": false, "published": false, "busy": detail }));
        }
        Err(e) => return Err(e).context("rotation failed"),
    };
    let target = config.publish_to.as_ref().context("KMS_JWT_PUBLISH_TO is not set")?;
    let done = publish::publish_keys_to_s3(kms, s3, target, &[name.current()], &config.issuer, config.max_age).await?;
    Ok(json!({
        "rotated": rotated,
        "current_kid": done.current_kid,
        "published": !done.written.is_empty(),
        "written": done.written,
        "unchanged": done.unchanged,
    }))
}
