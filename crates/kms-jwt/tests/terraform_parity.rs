//! `infra/`: every Terraform file parses, and the signing-key module agrees with the
//! library on what a key set is (key usage, default spec, tags, alias names, rotator rights).

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::path::{Path, PathBuf};

use hcl::{Block, Body, Expression};
use kms_jwt::keyset::{
    DEFAULT_KEY_SPEC, DEFAULT_MAX_TOKEN_TTL, KEY_USAGE, KeySetName, ROTATE_ACCOUNT_ACTIONS, ROTATE_KEY_ACTIONS,
    TAG_CREATED_AT, TAG_KEY_SET, TAG_MAX_TOKEN_TTL,
};

fn infra() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra")
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
fn the_module_matches_the_library() {
    let module = infra().join("modules/signing-key");
    let variables = parse(&module.join("variables.tf"));
    let main = parse(&module.join("main.tf"));

    let ttl = block(&variables, "variable", &["max_token_ttl"]);
    let Expression::String(ttl) = attr(ttl.body(), "default") else { panic!("max_token_ttl default is not a string") };
    assert_eq!(humantime_secs(ttl), DEFAULT_MAX_TOKEN_TTL.as_secs(), "the module's default lifetime is the library's");

    let key_spec = block(&variables, "variable", &["key_spec"]);
    assert_eq!(attr(key_spec.body(), "default"), &Expression::String(DEFAULT_KEY_SPEC.into()));

    let key = block(&main, "resource", &["aws_kms_key", "this"]);
    assert_eq!(attr(key.body(), "key_usage"), &Expression::String(KEY_USAGE.into()));
    assert_eq!(attr(key.body(), "enable_key_rotation"), &Expression::Bool(false));

    let locals = block(&main, "locals", &[]);
    let tags = source(attr(locals.body(), "tags"));
    for tag in [TAG_KEY_SET, TAG_CREATED_AT, TAG_MAX_TOKEN_TTL] {
        assert!(tags.contains(&format!("\"{tag}\"")), "module tags {tags} lack {tag}");
    }
    // alias/NAME, alias/NAME/previous, alias/NAME/next, spelled as the library spells them.
    let name = KeySetName::parse("NAME").unwrap();
    let render = |template: &str| {
        let full = if template == "local.alias_name" { "${local.alias_name}" } else { template };
        full.replace("${var.name}", "NAME").replace("${local.alias_name}", &name.current())
    };
    let alias_name = source(attr(locals.body(), "alias_name"));
    assert_eq!(render(alias_name.trim_matches('"')), name.current());
    let Expression::Array(set) = attr(locals.body(), "set_aliases") else { panic!("set_aliases is not a list") };
    let rendered: Vec<String> = set.iter().map(|e| render(source(e).trim_matches('"'))).collect();
    assert_eq!(rendered, [name.current(), name.previous(), name.next()]);

    let alias = block(&main, "resource", &["aws_kms_alias", "this"]);
    let lifecycle = block(alias.body(), "lifecycle", &[]);
    assert_eq!(source(attr(lifecycle.body(), "ignore_changes")).replace([' ', '\n'], ""), "[target_key_id]");

    // The rotator statement grants exactly what kms_jwt::keyset calls.
    let policy = block(&main, "data", &["aws_iam_policy_document", "key"]);
    let rotate = policy
        .body()
        .blocks()
        .filter(|b| b.identifier() == "dynamic")
        .find(|b| source(attr(b.body(), "for_each")).contains("rotator_principals"))
        .expect("a rotator statement");
    let content = block(rotate.body(), "content", &[]);
    let Expression::Array(actions) = attr(content.body(), "actions") else { panic!("actions is not a list") };
    let mut granted: Vec<String> = actions.iter().map(|a| source(a).trim_matches('"').to_owned()).collect();
    let mut expected: Vec<String> = ROTATE_KEY_ACTIONS.iter().map(|a| (*a).to_owned()).collect();
    granted.sort();
    expected.sort();
    assert_eq!(granted, expected);

    // The rotator's IAM policy: the account-level actions, and the key-level ones on the set's keys.
    let rotator = block(&main, "data", &["aws_iam_policy_document", "rotator"]);
    let actions_of = |sid: &str| -> Vec<String> {
        let statement = rotator
            .body()
            .blocks()
            .find(|b| b.identifier() == "statement" && source(attr(b.body(), "sid")).trim_matches('"') == sid)
            .unwrap_or_else(|| panic!("no statement {sid}"));
        let Expression::Array(actions) = attr(statement.body(), "actions") else { panic!("{sid}: actions") };
        let mut actions: Vec<String> = actions.iter().map(|a| source(a).trim_matches('"').to_owned()).collect();
        actions.sort();
        actions
    };
    let mut account = actions_of("CreateTaggedKeys");
    account.extend(actions_of("FindTheLocksAge"));
    account.sort();
    let mut expected_account: Vec<String> = ROTATE_ACCOUNT_ACTIONS.iter().map(|a| (*a).to_owned()).collect();
    expected_account.sort();
    assert_eq!(account, expected_account);
    assert_eq!(actions_of("ManageTheSetsKeys"), expected);
}

/// Seconds in a Terraform duration such as "1h" (the module's validation allows s, m, h, d).
fn humantime_secs(text: &str) -> u64 {
    let (number, unit) = text.split_at(text.len() - 1);
    let number: u64 = number.parse().unwrap();
    number
        * match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            other => panic!("unit {other}"),
        }
}
