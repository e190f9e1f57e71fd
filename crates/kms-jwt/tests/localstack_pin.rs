//! The pinned LocalStack (scripts/localstack-requirements.txt) has what the project builds on
//! beyond single-region KMS: multi-Region keys whose replicas share the primary's public key, and
//! STS `GetCallerIdentity` and `AssumeRole` (the issuer's proof of identity). A newer pin that lost
//! either fails here, not in a suite that happens to need it.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use kms_jwt::kms::KmsOptions;
use kms_jwt_test_support as support;

use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use kms_jwt::aws_sdk_kms;

#[tokio::test]
async fn a_multi_region_replica_has_the_primarys_key_id_and_public_key() {
    let primary = support::client().await;
    let created = primary
        .create_key()
        .key_usage(KeyUsageType::SignVerify)
        .key_spec(KeySpec::EccNistP256)
        .multi_region(true)
        .send()
        .await
        .unwrap();
    let meta = created.key_metadata.unwrap();
    assert!(meta.key_id().starts_with("mrk-"), "a multi-Region key id starts with mrk-: {}", meta.key_id());
    let replica = primary
        .replicate_key()
        .key_id(meta.key_id())
        .replica_region("eu-west-1")
        .send()
        .await
        .unwrap()
        .replica_key_metadata
        .unwrap();
    assert_eq!(replica.key_id(), meta.key_id());
    assert!(replica.arn().unwrap().contains(":eu-west-1:"), "{:?}", replica.arn());

    let west = KmsOptions::endpoint(support::endpoint(), "eu-west-1").connect().await.unwrap();
    let from_primary = primary.get_public_key().key_id(meta.key_id()).send().await.unwrap();
    let from_replica = west.sdk().get_public_key().key_id(meta.key_id()).send().await.unwrap();
    assert_eq!(from_replica.public_key, from_primary.public_key);
    // The library sees one key, whichever region it asks.
    let info = west.describe_signing_key(meta.key_id()).await.unwrap();
    let public = kms_jwt::PublicKey::from_spki_der(from_primary.public_key.unwrap().as_ref()).unwrap();
    assert_eq!(info.public_key.thumbprint(), public.thumbprint());
}

#[test]
fn sts_names_the_caller_and_an_assumed_roles_session() {
    let script = r#"
import json, sys, boto3
endpoint = sys.argv[1]
kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
sts, iam = boto3.client("sts", **kw), boto3.client("iam", **kw)
me = sts.get_caller_identity()
trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
         "Principal": {"AWS": f"arn:aws:iam::{me['Account']}:root"}}]}
name = sys.argv[2]
iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
creds = sts.assume_role(RoleArn=f"arn:aws:iam::{me['Account']}:role/{name}", RoleSessionName="pin-check")["Credentials"]
assumed = boto3.client("sts", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                       aws_session_token=creds["SessionToken"]).get_caller_identity()
print(json.dumps({"me": me["Arn"], "account": me["Account"], "assumed": assumed["Arn"]}))
"#;
    let role = support::unique("pin-role");
    let out = std::process::Command::new(support::python())
        .args(["-c", script, &support::endpoint(), &role])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let account = answer["account"].as_str().unwrap();
    assert_eq!(answer["me"], format!("arn:aws:iam::{account}:root"));
    assert_eq!(answer["assumed"], format!("arn:aws:sts::{account}:assumed-role/{role}/pin-check"));
}
