//! What `kms-jwt keyset` prints: JSON for machines (the same shapes `cargo xtask provision`
//! and `rotate` print), a table for people.

use std::fmt::Write as _;
use std::time::SystemTime;

use kms_jwt::keyset::{KeySetState, KeySetStatus, NewKey, Provisioned, RotationOutcome, RotationPlan};
use kms_jwt::kms::KmsKey;
use serde_json::{Value, json};

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A key in a rotation's report: its id, kid and state.
fn summary(key: &KmsKey) -> Value {
    json!({ "key_id": key.key_id, "kid": key.kid(), "state": key.state.as_str() })
}

/// `provision`'s summary: alias, key id and ARN, key spec, alg, kid, whether it was created,
/// the regions.
#[must_use]
pub fn provisioned_json(done: &Provisioned) -> Value {
    json!({
        "alias": done.alias,
        "key_id": done.info.key.key_id,
        "key_arn": done.info.key.arn,
        "key_spec": done.info.key.spec.as_str(),
        "alg": done.alg.name(),
        "kid": done.kid,
        "created": done.created,
        "regions": done.regions,
    })
}

/// `rotate --dry-run`: what would be current, previous and retired.
#[must_use]
pub fn plan_json(plan: &RotationPlan) -> Value {
    let s = &plan.state;
    let new = match &plan.new {
        NewKey::Staged(next) => Some(summary(next)),
        NewKey::Create => Some(json!("a new key")),
        NewKey::None => s.current.as_ref().map(summary),
    };
    let (current, previous) = if plan.finish_only || plan.is_noop() {
        (s.current.as_ref().map(summary), s.previous.as_ref().map(summary))
    } else {
        (new, s.current.as_ref().map(summary))
    };
    json!({
        "dry_run": true,
        "rotates": !plan.is_noop(),
        "current": current,
        "previous": previous,
        "retired": plan.retire.iter().map(summary).collect::<Vec<_>>(),
    })
}

/// `rotate`: `{"rotated","current","previous","retired"}` with key id and kid per key.
#[must_use]
pub fn outcome_json(outcome: &RotationOutcome) -> Value {
    json!({
        "rotated": outcome.rotated,
        "current": outcome.state.current.as_ref().map(summary),
        "previous": outcome.state.previous.as_ref().map(summary),
        "retired": outcome.retired.iter().map(summary).collect::<Vec<_>>(),
    })
}

/// One alias's key in `status`.
fn key_status(alias: &str, key: &KmsKey) -> kms_jwt::Result<Value> {
    Ok(json!({
        "alias": alias,
        "key_id": key.key_id,
        "kid": key.kid(),
        "state": key.state.as_str(),
        "key_spec": key.spec.as_str(),
        "created_at": key.created.map(rfc3339),
        "demoted_at": key.demoted_at()?.map(rfc3339),
    }))
}

fn aliases(state: &KeySetState) -> [(String, Option<&KmsKey>); 3] {
    let n = &state.name;
    [(n.current(), state.current.as_ref()), (n.previous(), state.previous.as_ref()), (n.next(), state.next.as_ref())]
}

/// `status`: `set`, `region`, `policy`, `keys` (one per alias), `lock`,
/// `previous_retirable_at`, `replica_regions` (each with its aliases' key ids).
pub fn status_json(status: &KeySetStatus) -> kms_jwt::Result<Value> {
    let s = &status.state;
    let mut keys = Vec::new();
    for (alias, key) in aliases(s) {
        if let Some(key) = key {
            keys.push(key_status(&alias, key)?);
        }
    }
    let id = |key: &Option<KmsKey>| key.as_ref().map(|k| k.key_id.clone());
    Ok(json!({
        "set": s.name.name(),
        "region": s.region,
        "policy": {
            "max_token_ttl": s.max_token_ttl()?.map(|d| humantime::format_duration(d).to_string()),
            "min_overlap": humantime::format_duration(s.min_overlap()?).to_string(),
        },
        "keys": keys,
        "lock": status.lock.map(|t| json!({ "alias": s.name.lock(), "taken_at": rfc3339(t) })),
        "previous_retirable_at": status.previous_retirable_at()?.map(rfc3339),
        "replica_regions": status.replicas.iter().map(|r| json!({
            "region": r.region, "current": id(&r.current), "previous": id(&r.previous), "next": id(&r.next),
        })).collect::<Vec<_>>(),
    }))
}

/// The status for people: one row per alias, then the policy and what the next rotation may do.
pub(super) fn table(status: &KeySetStatus) -> kms_jwt::Result<String> {
    let json = status_json(status)?;
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    let mut rows = vec![["ALIAS", "KEY", "KID", "STATE", "CREATED", "DEMOTED"].map(str::to_owned)];
    for key in json["keys"].as_array().into_iter().flatten() {
        rows.push([
            text(&key["alias"]),
            text(&key["key_id"]),
            text(&key["kid"]),
            text(&key["state"]),
            text(&key["created_at"]),
            text(&key["demoted_at"]),
        ]);
    }
    let widths: Vec<usize> = (0..6).map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0)).collect();
    let mut out = format!("key set {} ({})\n\n", text(&json["set"]), text(&json["region"]));
    for row in &rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    let policy = &json["policy"];
    let _ = write!(
        out,
        "\nmax token ttl: {}\nmin overlap:   {}\nlock:          {}\n",
        policy["max_token_ttl"].as_str().unwrap_or("none (a set made before lifetime policies)"),
        text(&policy["min_overlap"]),
        json["lock"]["taken_at"].as_str().map_or_else(|| "free".to_owned(), |t| format!("held since {t}")),
    );
    let retire = match status.previous_retirable_at()? {
        None => "nothing to retire".to_owned(),
        Some(at) if at <= SystemTime::now() => "now".to_owned(),
        Some(at) => rfc3339(at),
    };
    let _ = writeln!(out, "next rotation may retire previous: {retire}");
    Ok(out)
}
