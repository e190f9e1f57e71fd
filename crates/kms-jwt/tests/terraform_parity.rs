//! `infra/`: every Terraform file parses, the module owns no key or alias (the CLI does), and
//! the IAM policies it writes grant exactly what the library does, on the keys tagged with the
//! set and nothing else.
//!
//! The policies are JSON templates (`infra/modules/signing-key/policies`): this test renders them
//! with values computed from the library, as Terraform's `templatefile` would, and reads them as
//! IAM would. `scripts/iam-lint.sh` lints the same templates with parliament.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use hcl::{Block, Body, Expression};
use kms_jwt::Algorithm;
use kms_jwt::keyset::{
    DEFAULT_KEY_SPEC, KEY_USAGE, KeySetName, ROTATE_ACCOUNT_ACTIONS, ROTATE_KEY_ACTIONS, TAG_KEY_SET, TAGS_ADDED_LATER,
    TAGS_AT_CREATION,
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

/// The values main.tf passes to the templates, computed from the library for set `jwt-signer`.
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
        ("creation_tag_keys", json!(TAGS_AT_CREATION).to_string()),
        ("later_tag_keys", json!(TAGS_ADDED_LATER).to_string()),
        ("alias_arns", json!(aliases.map(alias_arn)).to_string()),
        ("min_deletion_window_days", "7".to_owned()),
        ("multi_region", "true".to_owned()),
        ("replica_regions", json!(["eu-central-1"]).to_string()),
    ])
}

/// Renders a policy template as `templatefile` does for plain `${name}` values.
fn render(role: &str) -> Value {
    let path = module().join(format!("policies/{role}.json.tftpl"));
    let template = std::fs::read_to_string(&path).unwrap();
    assert!(!template.contains("%{"), "{role}: no template directives");
    let values = values();
    let mut out = String::new();
    let mut rest = template.as_str();
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').unwrap() + start;
        let key = &rest[start + 2..end];
        out.push_str(values.get(key).unwrap_or_else(|| panic!("{role}: no value for ${{{key}}}")));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{role} is not JSON once rendered: {e}"))
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

/// Account-level actions name no resource; every other statement is on the account's keys and
/// conditioned on the set's tag, or on the set's aliases.
fn check_scoping(role: &str, policy: &Value) {
    let account_level = set(&["kms:CreateKey", "kms:ListAliases", "kms:ListKeys"]);
    let keys = format!("arn:aws:kms:*:{ACCOUNT}:key/*");
    for s in statements(policy) {
        assert_eq!(s["Effect"], "Allow", "{role}: {s}");
        let resources = list(&s["Resource"]);
        if resources == ["*"] {
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
    // KmsSigner sends the SHA digest, never the message.
    assert_eq!(sign["Condition"]["StringEquals"]["kms:MessageType"], "DIGEST");
}

#[test]
fn the_rotator_may_do_what_keyset_does_and_nothing_else() {
    let rotator = render("rotator");
    let mut expected = set(&ROTATE_KEY_ACTIONS);
    expected.extend(set(&ROTATE_ACCOUNT_ACTIONS));
    assert_eq!(actions(&rotator), expected);
    check_scoping("rotator", &rotator);

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
fn admins_cannot_sign_or_grant_signing() {
    let admin = render("admin");
    check_scoping("admin", &admin);
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
