//! `infra/`: every Terraform file parses, the module owns no key or alias (the CLI does), and
//! the IAM policies it writes grant exactly what the library does, on the keys tagged with the
//! set and nothing else.
//!
//! The policies are JSON templates (`infra/modules/signing-key/policies`): this test renders them
//! with values computed from the library, as Terraform's `templatefile` would, and reads them as
//! IAM would, for a multi-Region set and for the same set in one region. `scripts/iam-lint.sh`
//! lints the same templates with parliament.
//!
//! The workflows in `.github/workflows` are read here too, as text: their actions are pinned by
//! commit, and no step hides a failure.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use hcl::{Block, Body, Expression};
use kms_jwt::Algorithm;
use kms_jwt::keyset::{
    DEFAULT_KEY_SPEC, KEY_USAGE, KeySetName, ROTATE_ACCOUNT_ACTIONS, ROTATE_KEY_ACTIONS, ROTATE_MULTI_REGION_ACTIONS,
    TAG_KEY_SET, TAGS_ADDED_LATER, TAGS_AT_CREATION,
};
use kms_jwt::kms::SIGNER_ACTIONS;
use serde_json::{Value, json};

fn infra() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra")
}

fn module() -> PathBuf {
    infra().join("modules/signing-key")
}

fn tf_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if !path.ends_with(".terraform") {
                tf_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "tf") {
            out.push(path);
        }
    }
}

fn parse(path: &Path) -> Body {
    let text = std::fs::read_to_string(path).unwrap();
    hcl::parse(&text).unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()))
}

fn block<'a>(body: &'a Body, kind: &str, labels: &[&str]) -> &'a Block {
    body.blocks()
        .find(|b| b.identifier() == kind && b.labels().iter().map(hcl::BlockLabel::as_str).eq(labels.iter().copied()))
        .unwrap_or_else(|| panic!("no {kind} {labels:?} block"))
}

fn attr<'a>(body: &'a Body, key: &str) -> &'a Expression {
    body.attributes().find(|a| a.key() == key).unwrap_or_else(|| panic!("no attribute {key}")).expr()
}

/// An expression as HCL source, for comparing templates and function calls.
fn source(expr: &Expression) -> String {
    hcl::format::to_string(expr).unwrap()
}

/// The string elements of a list literal.
fn strings(expr: &Expression) -> Vec<String> {
    let Expression::Array(items) = expr else { panic!("{} is not a list", source(expr)) };
    items
        .iter()
        .map(|e| match e {
            Expression::String(s) => s.clone(),
            other => panic!("{} is not a string", source(other)),
        })
        .collect()
}

const ACCOUNT: &str = "111122223333";
/// The service principal of KMS's service-linked role for multi-Region keys.
const MRK_SERVICE: &str = "mrk.kms.amazonaws.com";
/// That role's name.
const MRK_ROLE_NAME: &str = "AWSServiceRoleForKeyManagementServiceMultiRegionKeys";

/// The ARN of KMS's service-linked role for multi-Region keys in the example account: service-linked
/// roles live under the path `aws-service-role/SERVICE-PRINCIPAL/`.
fn mrk_role() -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/aws-service-role/{MRK_SERVICE}/{MRK_ROLE_NAME}")
}

/// The values main.tf passes to the templates, computed from the library for set `jwt-signer`
/// with a replica in eu-central-1: the example values that the lint renders.
fn values() -> BTreeMap<&'static str, String> {
    let name = KeySetName::parse("jwt-signer").unwrap();
    let alias_arn = |alias: String| format!("arn:aws:kms:*:{ACCOUNT}:{alias}");
    let aliases = [name.current(), name.previous(), name.next(), name.lock(), format!("{}-*", name.lock())];
    let alg = Algorithm::default_for_key_spec(DEFAULT_KEY_SPEC).unwrap();
    BTreeMap::from([
        ("partition", "aws".to_owned()),
        ("account_id", ACCOUNT.to_owned()),
        ("name", name.name().to_owned()),
        ("key_spec", DEFAULT_KEY_SPEC.to_owned()),
        ("signing_algorithms", json!([alg.kms_name()]).to_string()),
        ("message_types", json!([message_type(alg)]).to_string()),
        ("creation_tag_keys", json!(TAGS_AT_CREATION).to_string()),
        ("later_tag_keys", json!(TAGS_ADDED_LATER).to_string()),
        ("alias_arns", json!(aliases.map(alias_arn)).to_string()),
        ("min_deletion_window_days", "7".to_owned()),
        ("multi_region", "true".to_owned()),
        ("replica_regions", json!(["eu-central-1"]).to_string()),
    ])
}

/// The KMS message type `KmsSigner` sends for `alg`.
fn message_type(alg: Algorithm) -> &'static str {
    if alg.signs_raw_message() { "RAW" } else { "DIGEST" }
}

/// The values main.tf passes for the same set in one region (`replica_regions = []`).
fn single_region_values() -> BTreeMap<&'static str, String> {
    let mut one_region = values();
    one_region.insert("multi_region", "false".to_owned());
    one_region.insert("replica_regions", json!([]).to_string());
    one_region
}

/// Renders a policy template as `templatefile` does for plain `${name}` values.
fn render_with(template: &str, values: &BTreeMap<&'static str, String>) -> Value {
    let path = module().join(format!("policies/{template}.json.tftpl"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(!text.contains("%{"), "{template}: no template directives");
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').unwrap() + start;
        let key = &rest[start + 2..end];
        out.push_str(values.get(key).unwrap_or_else(|| panic!("{template}: no value for ${{{key}}}")));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{template} is not JSON once rendered: {e}"))
}

/// Renders a role's policy with the example values.
fn render(role: &str) -> Value {
    render_with(role, &values())
}

/// The rotators' policy as main.tf writes it: `rotator.json.tftpl`, followed, when the set has
/// replica regions, by the statements of `rotator-replicas.json.tftpl`.
fn rotator_policy(values: &BTreeMap<&'static str, String>) -> Value {
    let mut policy = render_with("rotator", values);
    let regions: Vec<String> = serde_json::from_str(&values["replica_regions"]).unwrap();
    if !regions.is_empty() {
        let replicas = render_with("rotator-replicas", values);
        let more = statements(&replicas).to_vec();
        policy["Statement"].as_array_mut().unwrap().extend(more);
    }
    policy
}

fn list(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().map(|i| i.as_str().unwrap().to_owned()).collect(),
        other => panic!("{other} is neither a string nor a list"),
    }
}

fn statements(policy: &Value) -> &[Value] {
    assert_eq!(policy["Version"], "2012-10-17");
    policy["Statement"].as_array().unwrap()
}

fn actions(policy: &Value) -> BTreeSet<String> {
    statements(policy).iter().flat_map(|s| list(&s["Action"])).collect()
}

fn statement<'a>(policy: &'a Value, sid: &str) -> &'a Value {
    statements(policy).iter().find(|s| s["Sid"] == sid).unwrap_or_else(|| panic!("no statement {sid}"))
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// Every condition of `policy` on an empty list, as `Sid: operator key`.
fn empty_conditions(policy: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for s in statements(policy) {
        if let Some(condition) = s.get("Condition").and_then(Value::as_object) {
            for (operator, keys) in condition {
                let keys = keys.as_object().unwrap_or_else(|| panic!("{s}: {operator} is not a map"));
                for (key, value) in keys {
                    if value.as_array().is_some_and(Vec::is_empty) {
                        out.push(format!("{}: {operator} {key}", s["Sid"]));
                    }
                }
            }
        }
    }
    out
}

/// The keys of one condition operator pin the key to a signing key of the set's spec whose key
/// material KMS made.
fn assert_key_properties(sid: &str, conditions: &Value) {
    assert_eq!(conditions["kms:KeySpec"], DEFAULT_KEY_SPEC, "{sid}: {conditions}");
    assert_eq!(conditions["kms:KeyUsage"], KEY_USAGE, "{sid}: {conditions}");
    assert_eq!(conditions["kms:KeyOrigin"], "AWS_KMS", "{sid}: {conditions}");
}

/// Account-level actions name no resource; every other statement is on the account's keys and
/// conditioned on the set's tag, or on the set's aliases. The one action outside KMS, a
/// multi-Region set's `iam:CreateServiceLinkedRole`, names KMS's role for multi-Region keys only.
fn check_scoping(role: &str, policy: &Value) {
    let account_level = set(&["kms:CreateKey", "kms:ListAliases", "kms:ListKeys"]);
    let keys = format!("arn:aws:kms:*:{ACCOUNT}:key/*");
    for s in statements(policy) {
        assert_eq!(s["Effect"], "Allow", "{role}: {s}");
        let actions = list(&s["Action"]);
        let resources = list(&s["Resource"]);
        if actions.iter().any(|a| !a.starts_with("kms:")) {
            assert_eq!(actions, ["iam:CreateServiceLinkedRole"], "{role}: {s}: the only action outside KMS");
            assert_eq!(resources, [mrk_role()], "{role}: {s}");
            assert_eq!(s["Condition"], json!({"StringEquals": {"iam:AWSServiceName": MRK_SERVICE}}), "{role}: {s}");
        } else if resources == ["*"] {
            assert!(list(&s["Action"]).iter().all(|a| account_level.contains(a)), "{role}: {s} on *");
        } else if resources == [keys.clone()] {
            let by_tag = s["Condition"]["StringEquals"][format!("aws:ResourceTag/{TAG_KEY_SET}")] == "jwt-signer";
            let by_request = s["Condition"]["StringEquals"][format!("aws:RequestTag/{TAG_KEY_SET}")] == "jwt-signer";
            assert!(by_tag || by_request, "{role}: {s} is not limited to the set's keys");
        } else {
            assert!(resources.iter().all(|r| r.contains(":alias/jwt-signer")), "{role}: {s}");
        }
    }
}

#[test]
fn every_tf_file_parses() {
    let mut files = Vec::new();
    tf_files(&infra(), &mut files);
    assert!(files.len() >= 8, "found only {files:?}");
    for file in &files {
        parse(file);
    }
}

#[test]
fn terraform_owns_no_key_and_no_alias() {
    let mut files = Vec::new();
    tf_files(&infra(), &mut files);
    for file in &files {
        for b in parse(file).blocks().filter(|b| b.identifier() == "resource") {
            let kind = b.labels()[0].as_str();
            assert!(
                !kind.starts_with("aws_kms_"),
                "{}: {kind}: keys and aliases belong to kms-jwt keyset",
                file.display()
            );
        }
    }
}

#[test]
fn the_signer_may_sign_with_the_sets_keys_only() {
    let signer = render("signer");
    assert_eq!(actions(&signer), set(&SIGNER_ACTIONS));
    check_scoping("signer", &signer);
    let sign = statement(&signer, "SignWithTheSetsKeys");
    assert_eq!(list(&sign["Action"]), ["kms:Sign"]);
    let alg = Algorithm::default_for_key_spec(DEFAULT_KEY_SPEC).unwrap();
    assert_eq!(sign["Condition"]["StringEquals"]["kms:SigningAlgorithm"], json!([alg.kms_name()]));
    // KmsSigner sends the SHA digest of an RSA or ECDSA signing input, never the message.
    assert_eq!(sign["Condition"]["StringEquals"]["kms:MessageType"], json!(["DIGEST"]));

    // An Ed25519 or ML-DSA set signs the message itself (RAW), with the one pure algorithm.
    for spec in ["ECC_NIST_EDWARDS25519", "ML_DSA_65"] {
        let alg = Algorithm::default_for_key_spec(spec).unwrap();
        let mut values = values();
        values.insert("key_spec", spec.to_owned());
        values.insert("signing_algorithms", json!([alg.kms_name()]).to_string());
        values.insert("message_types", json!([message_type(alg)]).to_string());
        let signer = render_with("signer", &values);
        let sign = statement(&signer, "SignWithTheSetsKeys");
        assert_eq!(sign["Condition"]["StringEquals"]["kms:MessageType"], json!(["RAW"]), "{spec}");
        assert_eq!(sign["Condition"]["StringEquals"]["kms:SigningAlgorithm"], json!([alg.kms_name()]), "{spec}");
    }
}

#[test]
fn the_rotator_may_do_what_keyset_does_and_nothing_else() {
    let rotator = rotator_policy(&values());
    let mut expected = set(&ROTATE_KEY_ACTIONS);
    expected.extend(set(&ROTATE_ACCOUNT_ACTIONS));
    expected.extend(set(&ROTATE_MULTI_REGION_ACTIONS));
    assert_eq!(actions(&rotator), expected);
    check_scoping("rotator", &rotator);
    let empty = empty_conditions(&rotator);
    assert!(empty.is_empty(), "conditions on an empty list: {empty:?}");

    let create = &statement(&rotator, "CreateTheSetsKeys")["Condition"];
    assert_eq!(create["StringEquals"][format!("aws:RequestTag/{TAG_KEY_SET}")], "jwt-signer");
    assert_eq!(create["StringEquals"]["kms:KeySpec"], DEFAULT_KEY_SPEC);
    assert_eq!(create["StringEquals"]["kms:KeyUsage"], KEY_USAGE);
    assert_eq!(create["StringEquals"]["kms:KeyOrigin"], "AWS_KMS");
    // A multi-Region set (the example values): multi-Region keys, replicas where listed only.
    assert_eq!(create["Bool"]["kms:MultiRegion"], "true");
    let replicate = &statement(&rotator, "ReplicateTheSetsKeys")["Condition"]["StringEquals"];
    assert_eq!(replicate["kms:ReplicaRegion"], json!(["eu-central-1"]));
    assert_eq!(replicate[format!("aws:ResourceTag/{TAG_KEY_SET}")], "jwt-signer");
    let replica = &statement(&rotator, "CreateTheSetsReplicas")["Condition"];
    assert_eq!(replica["StringEquals"]["aws:RequestedRegion"], json!(["eu-central-1"]));
    assert_eq!(replica["StringEquals"]["kms:MultiRegionKeyType"], "REPLICA");
    assert_eq!(replica["ForAllValues:StringEquals"]["aws:TagKeys"], json!(TAGS_AT_CREATION));
    // Creating a multi-Region primary key needs iam:CreateServiceLinkedRole, for KMS's role only.
    let role = statement(&rotator, "CreateTheMultiRegionKeysServiceLinkedRole");
    assert_eq!(list(&role["Action"]), ["iam:CreateServiceLinkedRole"]);
    assert_eq!(list(&role["Resource"]), [mrk_role()]);
    assert_eq!(role["Condition"]["StringEquals"]["iam:AWSServiceName"], MRK_SERVICE);
    assert_eq!(create["ForAllValues:StringEquals"]["aws:TagKeys"], json!(TAGS_AT_CREATION));
    // CreateKey with tags also needs TagResource on the account's keys: only with the set's tag.
    let at_creation = &statement(&rotator, "TagTheSetsKeysAsTheyAreCreated")["Condition"];
    assert_eq!(at_creation["ForAllValues:StringEquals"]["aws:TagKeys"], json!(TAGS_AT_CREATION));
    let later = &statement(&rotator, "RecordKidAndDemotionOnTheSetsKeys")["Condition"];
    assert_eq!(later["ForAllValues:StringEquals"]["aws:TagKeys"], json!(TAGS_ADDED_LATER));

    let retire = &statement(&rotator, "RetireTheSetsKeys")["Condition"];
    assert_eq!(retire["NumericGreaterThanEquals"]["kms:ScheduleKeyDeletionPendingWindowInDays"], "7");

    // The aliases keyset moves: the set's three, its lock, and a lock breaker's name.
    let name = KeySetName::parse("jwt-signer").unwrap();
    let aliases = list(&statement(&rotator, "MoveTheSetsAliases")["Resource"]);
    for alias in [name.current(), name.previous(), name.next(), name.lock()] {
        assert!(aliases.contains(&format!("arn:aws:kms:*:{ACCOUNT}:{alias}")), "{alias} not in {aliases:?}");
    }
    assert!(aliases.contains(&format!("arn:aws:kms:*:{ACCOUNT}:{}-*", name.lock())));
}

#[test]
fn a_single_region_policy_says_nothing_of_replicas() {
    let one_region = single_region_values();
    let rotator = rotator_policy(&one_region);
    for (role, policy) in [
        ("signer", render_with("signer", &one_region)),
        ("admin", render_with("admin", &one_region)),
        ("rotator", rotator.clone()),
    ] {
        check_scoping(role, &policy);
        let empty = empty_conditions(&policy);
        assert!(empty.is_empty(), "{role}: conditions on an empty list: {empty:?}");
    }
    let mut expected = set(&ROTATE_KEY_ACTIONS);
    expected.extend(set(&ROTATE_ACCOUNT_ACTIONS));
    assert_eq!(actions(&rotator), expected, "a single-Region rotator neither replicates nor needs KMS's role");
    assert_eq!(statement(&rotator, "CreateTheSetsKeys")["Condition"]["Bool"]["kms:MultiRegion"], "false");
    for replica in statements(&render("rotator-replicas")) {
        assert!(
            statements(&rotator).iter().all(|s| s["Sid"] != replica["Sid"]),
            "{} in a single-Region policy",
            replica["Sid"]
        );
    }
    let text = rotator.to_string();
    for key in ["kms:ReplicaRegion", "aws:RequestedRegion", "kms:MultiRegionKeyType", "iam:"] {
        assert!(!text.contains(key), "a single-Region policy names {key}: {text}");
    }
}

#[test]
fn a_rotator_cannot_take_over_or_delete_other_keys() {
    for example in [single_region_values(), values()] {
        let rotator = rotator_policy(&example);
        // CreateKey with tags needs TagResource on keys that have no tags yet: a key that already
        // belongs to a set must belong to this one, and any key must be a signing key of the
        // set's spec made by KMS. IfExists: the key being created has no tags yet.
        let at_creation = &statement(&rotator, "TagTheSetsKeysAsTheyAreCreated")["Condition"];
        assert_eq!(at_creation["StringEquals"][format!("aws:RequestTag/{TAG_KEY_SET}")], "jwt-signer");
        let if_exists = &at_creation["StringEqualsIfExists"];
        assert_eq!(if_exists[format!("aws:ResourceTag/{TAG_KEY_SET}")], "jwt-signer", "{at_creation}");
        assert_key_properties("TagTheSetsKeysAsTheyAreCreated", if_exists);
        assert!(if_exists.get(format!("aws:RequestTag/{TAG_KEY_SET}")).is_none(), "the new tag is required");
        // Deletion only of the set's keys, and only of signing keys of its spec made by KMS.
        let retire = &statement(&rotator, "RetireTheSetsKeys")["Condition"]["StringEquals"];
        assert_eq!(retire[format!("aws:ResourceTag/{TAG_KEY_SET}")], "jwt-signer");
        assert_key_properties("RetireTheSetsKeys", retire);
        // No other statement tags, deletes or aliases a key that is not already the set's.
        for s in statements(&rotator) {
            let actions = list(&s["Action"]);
            let sid = s["Sid"].as_str().unwrap_or_default();
            let on_keys = list(&s["Resource"]) == [format!("arn:aws:kms:*:{ACCOUNT}:key/*")];
            let changes = actions.iter().any(|a| {
                ["kms:TagResource", "kms:ScheduleKeyDeletion", "kms:CreateAlias", "kms:UpdateAlias"]
                    .contains(&a.as_str())
            });
            if on_keys && changes && sid != "TagTheSetsKeysAsTheyAreCreated" {
                assert_eq!(
                    s["Condition"]["StringEquals"][format!("aws:ResourceTag/{TAG_KEY_SET}")],
                    "jwt-signer",
                    "{s}"
                );
            }
            if actions.iter().any(|a| a == "kms:ScheduleKeyDeletion") {
                assert_key_properties(sid, &s["Condition"]["StringEquals"]);
            }
        }
    }
}

#[test]
fn admins_cannot_sign_or_grant_signing() {
    let admin = render("admin");
    check_scoping("admin", &admin);
    // What admin_role_names promises (variables.tf): describe, read policies, grants and tags,
    // enable, disable, cancel a deletion, revoke grants; and list keys and aliases.
    let promised = set(&[
        "kms:DescribeKey",
        "kms:GetKeyPolicy",
        "kms:GetPublicKey",
        "kms:ListGrants",
        "kms:ListKeyPolicies",
        "kms:ListResourceTags",
        "kms:EnableKey",
        "kms:DisableKey",
        "kms:CancelKeyDeletion",
        "kms:RevokeGrant",
        "kms:ListKeys",
        "kms:ListAliases",
    ]);
    assert_eq!(actions(&admin), promised);
    for action in actions(&admin) {
        assert!(!action.contains('*'), "{action}: wildcards would include PutKeyPolicy or CreateGrant");
        for forbidden in [
            "kms:Sign",
            "kms:PutKeyPolicy",
            "kms:CreateGrant",
            "kms:TagResource",
            "kms:UntagResource",
            "kms:CreateAlias",
            "kms:UpdateAlias",
        ] {
            assert_ne!(action, forbidden, "admins must not have {forbidden}");
        }
    }
}

#[test]
fn main_tf_passes_the_values_the_library_expects() {
    let variables = parse(&module().join("variables.tf"));
    let main = parse(&module().join("main.tf"));
    let key_spec = block(&variables, "variable", &["key_spec"]);
    assert_eq!(attr(key_spec.body(), "default"), &Expression::String(DEFAULT_KEY_SPEC.into()));

    let locals = block(&main, "locals", &[]);
    let creation = source(attr(locals.body(), "creation_tag_keys"));
    assert!(creation.starts_with("concat(["), "{creation}");
    let listed: Vec<String> = creation["concat([".len()..creation.find(']').unwrap()]
        .split(',')
        .map(|t| t.trim().trim_matches('"').to_owned())
        .collect();
    assert_eq!(listed, TAGS_AT_CREATION);
    assert_eq!(strings(attr(locals.body(), "later_tag_keys")), TAGS_ADDED_LATER);

    // The replica statements are merged into the rotators' policy for a multi-Region set only.
    let templates: String = source(attr(locals.body(), "rotator_templates")).split_whitespace().collect();
    assert_eq!(templates, r#"length(var.replica_regions)>0?["rotator","rotator-replicas"]:["rotator"]"#);

    // The message types follow the algorithms as KmsSigner chooses them.
    let message_types: String = source(attr(locals.body(), "message_types")).split_whitespace().collect();
    assert_eq!(
        message_types,
        r#"sort(distinct([forainlocal.signing_algorithms:contains(["ED25519_SHA_512","ML_DSA_SHAKE_256"],a)?"RAW":"DIGEST"]))"#
    );
    let raw: Vec<&str> =
        Algorithm::ALL.into_iter().filter(|a| a.signs_raw_message()).map(Algorithm::kms_name).collect();
    assert!(raw.iter().all(|name| ["ED25519_SHA_512", "ML_DSA_SHAKE_256"].contains(name)), "{raw:?}");

    let Expression::Object(defaults) = attr(locals.body(), "default_signing_algorithm") else { panic!("not a map") };
    for (spec, kms_name) in defaults {
        let spec = hcl::format::to_string(spec).unwrap();
        let alg = Algorithm::default_for_key_spec(&spec).unwrap_or_else(|| panic!("{spec}"));
        assert_eq!(kms_name, &Expression::String(alg.kms_name().into()), "{spec}");
    }

    // The example values the lint renders are the ones this test computes from the library.
    let example: BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(module().join("policies/example-values.json")).unwrap()).unwrap();
    let computed: BTreeMap<String, String> = values().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    assert_eq!(example, computed);
}

fn workflow(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.github/workflows").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The steps of a workflow's jobs, each as its lines. No YAML parser is at hand: a step begins
/// with `- ` at the indentation of the first item under a `steps:` key, and ends where the next
/// one begins or the text comes back to a shallower indentation.
fn steps(workflow: &str) -> Vec<Vec<&str>> {
    let mut out: Vec<Vec<&str>> = Vec::new();
    let mut reading = false;
    let mut first = None;
    for line in workflow.lines() {
        let text = line.trim();
        if text == "steps:" {
            reading = true;
            first = None;
        } else if reading && (text.is_empty() || text.starts_with('#')) {
            if let Some(step) = out.last_mut() {
                step.push(line);
            }
        } else if reading {
            let depth = *first.get_or_insert(indent(line));
            if indent(line) == depth && text.starts_with("- ") {
                out.push(vec![line]);
            } else if indent(line) > depth {
                out.last_mut().unwrap().push(line);
            } else {
                reading = false;
            }
        }
    }
    out
}

/// The value of a step's own `key:` (`uses`, `shell`, `run`, ...), and where it is in the step.
fn field<'a>(step: &[&'a str], key: &str) -> Option<(usize, &'a str)> {
    let depth = indent(step[0]) + 2;
    for (i, line) in step.iter().enumerate() {
        let text = line.trim_start();
        let text = if i == 0 { text.trim_start_matches("- ") } else { text };
        if (i == 0 || indent(line) == depth)
            && let Some(value) = text.strip_prefix(key).and_then(|rest| rest.strip_prefix(':'))
        {
            return Some((i, value.trim()));
        }
    }
    None
}

/// The script of a step's `run:`, its block or its one line, empty if the step runs none.
fn script(step: &[&str]) -> String {
    let Some((at, first)) = field(step, "run") else { return String::new() };
    if !first.starts_with('|') && !first.starts_with('>') {
        return first.to_owned();
    }
    let depth = indent(step[0]) + 2;
    let mut lines = Vec::new();
    for line in &step[at + 1..] {
        if !line.trim().is_empty() && indent(line) <= depth {
            break;
        }
        lines.push(line.trim());
    }
    lines.join("\n")
}

/// The action a step uses, `owner/repo`, if any.
fn action<'a>(step: &[&'a str]) -> Option<&'a str> {
    field(step, "uses").map(|(_, spec)| spec.split_once('@').map_or(spec, |(name, _)| name))
}

/// Every `uses:` names a full commit SHA and says in a comment which version that is, and each
/// action is at the same commit wherever it is used.
#[test]
fn every_action_is_pinned_by_commit() {
    let mut pins: BTreeMap<String, String> = BTreeMap::new();
    for file in ["ci.yml", "rotate.yml"] {
        let text = workflow(file);
        let mut found = 0;
        for line in text.lines() {
            let spec = line.trim_start().trim_start_matches("- ");
            let Some(spec) = spec.strip_prefix("uses:") else { continue };
            found += 1;
            let (name, rest) = spec.trim().split_once('@').unwrap_or_else(|| panic!("{file}: {line}: no @ref"));
            let (sha, comment) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            assert!(
                sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit()),
                "{file}: {name} is not pinned by a full commit SHA: {line}"
            );
            let comment = comment.trim();
            assert!(
                comment.starts_with('#') && comment.len() > 2,
                "{file}: {name}@{sha} does not say its version: {line}"
            );
            let pinned = pins.entry(name.to_owned()).or_insert_with(|| sha.to_owned());
            assert_eq!(pinned.as_str(), sha, "{file}: {name} is pinned at two commits");
        }
        assert!(found >= 3, "{file}: only {found} uses: lines found");
    }
}

/// The CI job sees every failure: setup-terraform's wrapper, which reports the exit code 2 of
/// `plan -detailed-exitcode` as success, is off; and a step that pipes a command into another
/// runs with pipefail (`shell: bash` runs `bash -eo pipefail`; the default shell, `bash -e`).
#[test]
fn no_step_hides_a_failure() {
    let mut setups = 0;
    for file in ["ci.yml", "rotate.yml"] {
        let text = workflow(file);
        let all = steps(&text);
        assert!(all.len() >= 5, "{file}: only {} steps found", all.len());
        for step in &all {
            let run = script(step);
            let piped = run.lines().any(|l| !l.starts_with('#') && l.replace("||", "").contains(" | "));
            let pipefail = field(step, "shell").is_some_and(|(_, shell)| shell == "bash")
                || run.lines().any(|l| l.starts_with("set -") && l.contains("pipefail"));
            assert!(!piped || pipefail, "{file}: a step pipes without pipefail:\n{}", step.join("\n"));
            if action(step) == Some("hashicorp/setup-terraform") {
                setups += 1;
                assert!(
                    step.iter().any(|l| l.trim() == "terraform_wrapper: false"),
                    "{file}: setup-terraform's wrapper turns plan's exit 2 into success:\n{}",
                    step.join("\n")
                );
            }
        }
    }
    assert!(setups >= 1, "no hashicorp/setup-terraform step found");
}

/// The scheduled rotation builds the CLI before it holds the rotator's credentials, and its
/// header says which OIDC subject the rotator role must trust.
#[test]
fn rotation_gets_its_credentials_last_and_says_whom_the_role_trusts() {
    let text = workflow("rotate.yml");
    let all = steps(&text);
    let install = all.iter().position(|s| script(s).contains("cargo install")).expect("a cargo install step");
    let credentials = all
        .iter()
        .position(|s| action(s) == Some("aws-actions/configure-aws-credentials"))
        .expect("a configure-aws-credentials step");
    assert!(install < credentials, "cargo install runs with the rotator's credentials in the environment");

    // With an `environment:`, GitHub's OIDC subject is repo:ORG/REPO:environment:NAME.
    let header = text.lines().take_while(|l| l.starts_with('#')).collect::<Vec<_>>().join("\n");
    for claim in
        ["token.actions.githubusercontent.com:sub", "token.actions.githubusercontent.com:aud", "sts.amazonaws.com"]
    {
        assert!(header.contains(claim), "the header does not name {claim}:\n{header}");
    }
    let environment = text.lines().find_map(|l| l.trim().strip_prefix("environment:")).map(str::trim);
    let subject = environment.map_or_else(|| ":ref:refs/heads/".to_owned(), |name| format!(":environment:{name}"));
    assert!(header.contains(&subject), "the header does not give the OIDC subject {subject}:\n{header}");
}
