//! Every rotation and provisioning case, offline: states as KMS would report them, including
//! those a stopped or racing run leaves behind.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::*;
use crate::keyset::{KeySetName, TAG_KID, TAG_MAX_TOKEN_TTL};
use crate::kms::{KeySpec, KeyState, KmsKey, MultiRegion};

const HOUR: Duration = Duration::from_secs(3600);

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn key(id: &str) -> KmsKey {
    KmsKey {
        key_id: id.into(),
        arn: format!("arn:aws:kms:us-east-1:111122223333:key/{id}"),
        spec: KeySpec::EccNistP256,
        state: KeyState::Enabled,
        created: Some(now() - 100 * 24 * HOUR),
        multi_region: MultiRegion::No,
        tags: BTreeMap::from([(TAG_KID.into(), format!("kid-{id}")), (TAG_MAX_TOKEN_TTL.into(), "1h".into())]),
    }
}

/// A key demoted `ago` before now.
fn demoted(id: &str, ago: Duration) -> KmsKey {
    let mut k = key(id);
    k.tags.insert(TAG_DEMOTED_AT.into(), humantime::format_rfc3339_seconds(now() - ago).to_string());
    k
}

fn state(current: Option<KmsKey>, previous: Option<KmsKey>, next: Option<KmsKey>) -> KeySetState {
    KeySetState {
        name: KeySetName::parse("jwt-signer").unwrap(),
        region: Some("us-east-1".into()),
        current,
        previous,
        next,
    }
}

fn policy() -> RotationPolicy {
    RotationPolicy {
        pending_window_days: 30,
        min_overlap: None,
        if_older_than: None,
        force: false,
        description: "d".into(),
        key_spec: None,
    }
}

fn id(s: &str) -> KeyRef {
    KeyRef::Id(s.into())
}

use Alias::{Current, Next, Previous};

#[test]
fn a_fresh_set_stages_a_new_key_then_demotes_and_promotes() {
    let plan = plan_rotation(&state(Some(key("k1")), None, None), &policy(), now()).unwrap();
    assert_eq!(plan.new, NewKey::Create);
    assert_eq!((plan.retire, plan.finish_only), (None, false));
    assert_eq!(
        plan.steps,
        [
            Step::CreateNew,
            Step::TagDemoted("k1".into()),
            Step::SetAlias(None, Previous, id("k1")),
            Step::SetAlias(None, Current, KeyRef::New),
            Step::DeleteAlias(None, Next),
        ]
    );
}

#[test]
fn a_previous_key_past_its_overlap_is_retired_while_previous_still_names_it() {
    // Policy 1h: overlap 1h + 5 min JWKS cache + 1 min skew.
    let plan = plan_rotation(
        &state(Some(key("k2")), Some(demoted("k1", Duration::from_secs(67 * 60))), None),
        &policy(),
        now(),
    )
    .unwrap();
    assert_eq!(plan.retire.as_ref().map(|k| k.key_id.as_str()), Some("k1"));
    assert_eq!(
        plan.steps,
        [
            Step::CreateNew,
            Step::Retire(None, "k1".into()),
            Step::TagDemoted("k2".into()),
            Step::SetAlias(None, Previous, id("k2")),
            Step::SetAlias(None, Current, KeyRef::New),
            Step::DeleteAlias(None, Next),
        ]
    );
}

#[test]
fn the_overlap_guard_refuses_early_and_force_overrides_it() {
    let early = state(Some(key("k2")), Some(demoted("k1", HOUR)), None);
    match plan_rotation(&early, &policy(), now()).unwrap_err() {
        Error::OverlapNotElapsed { key, demoted_ago, min_overlap } => {
            assert_eq!((key.as_str(), demoted_ago, min_overlap), ("k1", HOUR, Duration::from_secs(3600 + 300 + 60)));
        }
        other => panic!("{other:?}"),
    }
    let forced = plan_rotation(&early, &RotationPolicy { force: true, ..policy() }, now()).unwrap();
    assert!(forced.steps.contains(&Step::Retire(None, "k1".into())));
    // An explicit overlap replaces the policy's.
    let short = RotationPolicy { min_overlap: Some(Duration::from_secs(60)), ..policy() };
    assert!(plan_rotation(&early, &short, now()).unwrap().retire.is_some());
    // A set without a lifetime policy keeps a day's overlap.
    let mut legacy = early.clone();
    for k in [&mut legacy.current, &mut legacy.previous].into_iter().flatten() {
        k.tags.remove(TAG_MAX_TOKEN_TTL);
    }
    let legacy_short = RotationPolicy { ..policy() };
    match plan_rotation(&legacy, &legacy_short, now()).unwrap_err() {
        Error::OverlapNotElapsed { min_overlap, .. } => assert_eq!(min_overlap, 24 * HOUR),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_previous_key_without_a_demotion_time_is_retired_only_by_force() {
    let unknown = state(Some(key("k2")), Some(key("k1")), None);
    let err = plan_rotation(&unknown, &policy(), now()).unwrap_err();
    assert!(matches!(&err, Error::Refused(m) if m.contains("has no kms-jwt:demoted-at tag")), "{err}");
    assert!(plan_rotation(&unknown, &RotationPolicy { force: true, ..policy() }, now()).unwrap().retire.is_some());
}

#[test]
fn unreadable_policy_tags_stop_the_rotation_with_a_clear_error() {
    let mut bad = state(Some(key("k2")), Some(demoted("k1", 2 * HOUR)), None);
    bad.current.as_mut().unwrap().tags.insert(TAG_MAX_TOKEN_TTL.into(), "an hour".into());
    let err = plan_rotation(&bad, &policy(), now()).unwrap_err();
    assert!(matches!(&err, Error::BadTag { tag, .. } if *tag == TAG_MAX_TOKEN_TTL), "{err}");
    let mut fresh = state(Some(key("k1")), None, None);
    fresh.current.as_mut().unwrap().tags.insert(TAG_MAX_TOKEN_TTL.into(), "an hour".into());
    assert!(matches!(plan_rotation(&fresh, &policy(), now()), Err(Error::BadTag { .. })), "not copied to a new key");
    let mut bad_date = state(Some(key("k2")), Some(key("k1")), None);
    bad_date.previous.as_mut().unwrap().tags.insert(TAG_DEMOTED_AT.into(), "yesterday".into());
    let err = plan_rotation(&bad_date, &policy(), now()).unwrap_err();
    assert!(matches!(&err, Error::BadTag { tag, .. } if *tag == TAG_DEMOTED_AT), "{err}");
}

#[test]
fn a_previous_key_already_pending_deletion_is_not_retired_again() {
    let mut old = demoted("k1", 100 * HOUR);
    old.state = KeyState::PendingDeletion;
    let plan = plan_rotation(&state(Some(key("k2")), Some(old), None), &policy(), now()).unwrap();
    assert_eq!(plan.retire, None);
    assert!(!plan.steps.iter().any(|s| matches!(s, Step::Retire(..))));
}

#[test]
fn a_staged_key_is_promoted_not_created_again() {
    let staged = key("k2");
    let plan = plan_rotation(&state(Some(key("k1")), None, Some(staged.clone())), &policy(), now()).unwrap();
    assert_eq!(plan.new, NewKey::Staged(staged));
    assert_eq!(plan.steps[0], Step::AdoptStaged);
    assert!(!plan.steps.contains(&Step::CreateNew));
}

#[test]
fn a_run_stopped_after_each_step_converges() {
    // Stopped after CreateNew (next staged): the re-run adopts it (above). Stopped after the
    // retirement: previous is pending deletion (above). Stopped after previous <- current:
    // previous and current name the same key, which is not retired.
    let both = state(Some(key("k1")), Some(demoted("k1", Duration::ZERO)), Some(key("k2")));
    let plan = plan_rotation(&both, &policy(), now()).unwrap();
    assert_eq!(plan.retire, None);
    assert_eq!(plan.new, NewKey::Staged(key("k2")));
    assert_eq!(plan.steps.last(), Some(&Step::DeleteAlias(None, Next)));
    // Stopped after current <- new: next and current name the same key, only the cleanup is left.
    let moved = state(Some(key("k2")), Some(demoted("k1", Duration::ZERO)), Some(key("k2")));
    let plan = plan_rotation(&moved, &policy(), now()).unwrap();
    assert!(plan.finish_only);
    assert_eq!(plan.steps, [Step::DeleteAlias(None, Next)]);
    // Done: a second run would rotate again, which is what a racing run must not do (the lock
    // stops it: see `lock`), and what `if_older_than` turns into a no-op.
}

#[test]
fn a_schedule_rotates_only_old_keys() {
    let young = RotationPolicy { if_older_than: Some(200 * 24 * HOUR), ..policy() };
    let plan = plan_rotation(&state(Some(key("k1")), None, None), &young, now()).unwrap();
    assert!(plan.is_noop() && plan.new == NewKey::None);
    let old = RotationPolicy { if_older_than: Some(90 * 24 * HOUR), ..policy() };
    assert!(!plan_rotation(&state(Some(key("k1")), None, None), &old, now()).unwrap().is_noop());
    // A racing run that rotated a moment ago left a current key younger than the schedule's
    // age: the run that comes second changes nothing.
    let mut just_made = key("k2");
    just_made.created = Some(now() - Duration::from_secs(5));
    assert!(plan_rotation(&state(Some(just_made), Some(key("k1")), None), &old, now()).unwrap().is_noop());
}

#[test]
fn a_multi_region_set_stages_everywhere_before_any_current_moves() {
    let mut primary = key("mrk-1");
    primary.multi_region = MultiRegion::Primary { replica_regions: vec!["eu-west-1".into(), "eu-central-1".into()] };
    let previous = demoted("mrk-0", 100 * HOUR);
    let plan = plan_rotation(&state(Some(primary), Some(previous), None), &policy(), now()).unwrap();
    let r = |name: &str| Some(name.to_owned());
    assert_eq!(
        plan.steps,
        [
            Step::CreateNew,
            Step::ReplicateNew("eu-west-1".into()),
            Step::SetAlias(r("eu-west-1"), Next, KeyRef::New),
            Step::ReplicateNew("eu-central-1".into()),
            Step::SetAlias(r("eu-central-1"), Next, KeyRef::New),
            Step::Retire(r("eu-west-1"), "mrk-0".into()),
            Step::Retire(r("eu-central-1"), "mrk-0".into()),
            Step::Retire(None, "mrk-0".into()),
            Step::TagDemoted("mrk-1".into()),
            Step::SetAlias(r("eu-west-1"), Previous, id("mrk-1")),
            Step::SetAlias(r("eu-west-1"), Current, KeyRef::New),
            Step::SetAlias(r("eu-central-1"), Previous, id("mrk-1")),
            Step::SetAlias(r("eu-central-1"), Current, KeyRef::New),
            Step::SetAlias(None, Previous, id("mrk-1")),
            Step::SetAlias(None, Current, KeyRef::New),
            Step::DeleteAlias(r("eu-west-1"), Next),
            Step::DeleteAlias(r("eu-central-1"), Next),
            Step::DeleteAlias(None, Next),
        ]
    );
    let first_current_move = plan.steps.iter().position(|s| matches!(s, Step::SetAlias(_, Current, _))).unwrap();
    let last_staging = plan.steps.iter().rposition(|s| matches!(s, Step::SetAlias(_, Next, _))).unwrap();
    assert!(last_staging < first_current_move);
}

#[test]
fn a_multi_region_rotation_stopped_after_the_primary_moved_brings_the_replicas_level() {
    let mut primary = key("mrk-2");
    primary.multi_region = MultiRegion::Primary { replica_regions: vec!["eu-west-1".into()] };
    let plan =
        plan_rotation(&state(Some(primary.clone()), Some(key("mrk-1")), Some(primary)), &policy(), now()).unwrap();
    assert!(plan.finish_only);
    let r = Some("eu-west-1".to_owned());
    assert_eq!(
        plan.steps,
        [
            Step::SetAlias(r.clone(), Previous, id("mrk-1")),
            Step::SetAlias(r.clone(), Current, id("mrk-2")),
            Step::DeleteAlias(r, Next),
            Step::DeleteAlias(None, Next),
        ]
    );
}

#[test]
fn a_set_without_a_current_key_or_a_bad_window_is_refused() {
    assert!(
        matches!(plan_rotation(&state(None, None, None), &policy(), now()), Err(Error::KeyNotFound(a)) if a == "alias/jwt-signer")
    );
    let err = plan_rotation(
        &state(Some(key("k1")), None, None),
        &RotationPolicy { pending_window_days: 3, ..policy() },
        now(),
    )
    .unwrap_err();
    assert!(matches!(&err, Error::Refused(m) if m.contains("between 7 and 30 days")), "{err}");
    let hmac = RotationPolicy { key_spec: Some("HMAC_256".into()), ..policy() };
    let err = plan_rotation(&state(Some(key("k1")), None, None), &hmac, now()).unwrap_err();
    assert!(matches!(&err, Error::Refused(m) if m == "key spec HMAC_256 cannot sign JWTs"), "{err}");
}

fn request(regions: &[&str]) -> ProvisionRequest {
    ProvisionRequest {
        name: KeySetName::parse("jwt-signer").unwrap(),
        key_spec: "ECC_NIST_P256".into(),
        description: "d".into(),
        tags: vec![],
        max_token_ttl: HOUR,
        regions: regions.iter().map(|r| (*r).to_owned()).collect(),
        pending_window_days: 30,
    }
}

#[test]
fn provisioning_reports_an_existing_set_promotes_a_staged_key_or_creates_one() {
    assert_eq!(plan_provision(&state(Some(key("k1")), None, None)), Provision::Existing(key("k1")));
    // A racing run that created its key, or one stopped before `current`: staged, promoted.
    assert_eq!(plan_provision(&state(None, None, Some(key("k1")))), Provision::PromoteNext(key("k1")));
    assert_eq!(plan_provision(&state(Some(key("k1")), None, Some(key("k2")))), Provision::Existing(key("k1")));
    assert_eq!(plan_provision(&state(None, None, None)), Provision::Create);
}

#[test]
fn provisioning_requests_are_checked_before_any_call() {
    check_provision(&request(&[]), Some("us-east-1")).unwrap();
    check_provision(&request(&["us-east-1", "eu-west-1"]), Some("us-east-1")).unwrap();
    let cases = [
        (ProvisionRequest { key_spec: "SYMMETRIC_DEFAULT".into(), ..request(&[]) }, "cannot sign JWTs"),
        (ProvisionRequest { pending_window_days: 31, ..request(&[]) }, "between 7 and 30 days"),
        (request(&["us-east-1", "eu-west-1", "us-east-1"]), "region us-east-1 is listed twice"),
        (request(&["eu-west-1", "us-east-1"]), "primary region (eu-west-1) must be the client's region (us-east-1)"),
    ];
    for (req, expected) in cases {
        let err = check_provision(&req, Some("us-east-1")).unwrap_err().to_string();
        assert!(err.contains(expected), "{expected:?} not in {err:?}");
    }
}
