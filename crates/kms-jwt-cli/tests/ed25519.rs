//! The `kms-jwt` binary with Ed25519 keys in KMS, against `MiniStack` (`LocalStack` 4.14 refuses the
//! key spec): `keyset provision --key-spec ECC_NIST_EDWARDS25519`, `sign` with `EdDSA` and
//! `--alg Ed25519`, `verify` against the set's JWKS, a rotation from RSA to Ed25519 with
//! `keyset rotate --key-spec`, a spec that cannot sign refused with nothing changed, and `serve`
//! publishing the set and minting `EdDSA` tokens (STS at `LocalStack`) that `PyJWT` verifies.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use kms_jwt_test_support as support;

use std::process::Output;

use kms_jwt::Jwks;

fn stdout(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&stdout(out)).unwrap()
}

fn header(token: &str) -> serde_json::Value {
    serde_json::Value::Object(kms_jwt::decode_unverified(token).unwrap().0)
}

#[test]
fn an_ed25519_key_set_signs_and_verifies_from_the_command_line() {
    let cli = support::kms_jwt!().endpoint(support::ministack_endpoint());
    let set = support::unique("kms-jwt-ed");
    let provisioned = json(&cli.output(["keyset", "provision", "--key", &set, "--key-spec", "ECC_NIST_EDWARDS25519"]));
    assert_eq!(provisioned["key_spec"], "ECC_NIST_EDWARDS25519", "{provisioned}");

    let token = stdout(&cli.output(["sign", "--key", &set, "--sub", "alice"])).trim_end().to_owned();
    assert_eq!(header(&token)["alg"], "EdDSA");
    let named =
        stdout(&cli.output(["sign", "--key", &set, "--sub", "alice", "--alg", "Ed25519"])).trim_end().to_owned();
    assert_eq!(header(&named)["alg"], "Ed25519");

    let dir = tempfile::tempdir().unwrap();
    let jwks_path = dir.path().join("jwks.json");
    let jwks = stdout(&cli.output(["jwks", "--key", &set]));
    std::fs::write(&jwks_path, &jwks).unwrap();
    let key = &Jwks::parse(jwks.as_bytes()).unwrap().keys[0];
    assert_eq!(key.alg, Some(kms_jwt::Algorithm::EdDSA));
    let verified = json(&cli.output(["verify", "--jwks", jwks_path.to_str().unwrap(), &token]));
    assert_eq!(verified["sub"], "alice", "{verified}");
    // The JWKS pins the key to EdDSA: the same key's token under the other name is refused.
    let refused = cli.output(["verify", "--jwks", jwks_path.to_str().unwrap(), &named]);
    assert_eq!(refused.status.code(), Some(1), "{}", String::from_utf8_lossy(&refused.stderr));
    // A JWKS published for RFC 9864's name verifies those tokens (and only those).
    let named_jwks = dir.path().join("jwks-ed25519.json");
    std::fs::write(&named_jwks, stdout(&cli.output(["jwks", "--key", &set, "--alg", "Ed25519"]))).unwrap();
    assert_eq!(json(&cli.output(["verify", "--jwks", named_jwks.to_str().unwrap(), &named]))["sub"], "alice");
    assert_eq!(cli.output(["verify", "--jwks", named_jwks.to_str().unwrap(), &token]).status.code(), Some(1));
    // The PEM from KMS is an Ed25519 SPKI that openssl reads.
    let pem = stdout(&cli.output(["public-key", "--key", &set]));
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
    let pem_path = dir.path().join("public.pem");
    std::fs::write(&pem_path, &pem).unwrap();
    let text = std::process::Command::new("openssl")
        .args(["pkey", "-pubin", "-noout", "-text", "-in"])
        .arg(&pem_path)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("ED25519 Public-Key"), "{text:?}");
}

#[test]
fn a_set_rotates_from_rsa_to_ed25519_and_a_spec_that_cannot_sign_changes_nothing() {
    let cli = support::kms_jwt!().endpoint(support::ministack_endpoint());
    let set = support::unique("kms-jwt-ed");
    json(&cli.output(["keyset", "provision", "--key", &set]));
    let rsa = stdout(&cli.output(["sign", "--key", &set, "--sub", "alice"])).trim_end().to_owned();
    assert_eq!(header(&rsa)["alg"], "RS256");

    let refused = cli.output(["keyset", "rotate", "--key", &set, "--key-spec", "SYMMETRIC_DEFAULT"]);
    assert_eq!(refused.status.code(), Some(2));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(err.trim_end(), "kms-jwt: key spec SYMMETRIC_DEFAULT cannot sign JWTs");
    let status = json(&cli.output(["keyset", "status", "--key", &set, "--json"]));
    assert_eq!(status["keys"].as_array().unwrap().len(), 1, "a refused rotation made and moved nothing: {status}");

    let rotated = json(&cli.output(["keyset", "rotate", "--key", &set, "--key-spec", "ECC_NIST_EDWARDS25519"]));
    assert_eq!(rotated["rotated"], true, "{rotated}");
    let ed = stdout(&cli.output(["sign", "--key", &set, "--sub", "alice"])).trim_end().to_owned();
    assert_eq!(header(&ed)["alg"], "EdDSA");

    let dir = tempfile::tempdir().unwrap();
    let jwks_path = dir.path().join("jwks.json");
    std::fs::write(&jwks_path, stdout(&cli.output(["jwks", "--key", &set]))).unwrap();
    for token in [&rsa, &ed] {
        let verified = json(&cli.output(["verify", "--jwks", jwks_path.to_str().unwrap(), token]));
        assert_eq!(verified["sub"], "alice", "{verified}");
    }
}

#[test]
fn serve_publishes_an_ed25519_set_and_its_issuer_mints_eddsa_tokens_that_pyjwt_verifies_from_discovery() {
    // KMS at MiniStack (the Ed25519 key), STS at LocalStack (the caller's identity).
    let cli = support::kms_jwt!().endpoint(support::ministack_endpoint());
    let set = support::unique("kms-jwt-ed");
    json(&cli.output(["keyset", "provision", "--key", &set, "--key-spec", "ECC_NIST_EDWARDS25519"]));
    let mut policy = tempfile::NamedTempFile::new().unwrap();
    let rule =
        "[[rule]]\nprincipals = [\"arn:aws:iam::000000000000:root\"]\naudiences = [\"api\"]\nmax_ttl = \"30m\"\n";
    std::io::Write::write_all(&mut policy, rule.as_bytes()).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let mut cmd = cli.command();
    cmd.args(["serve", "--key", &set, "--issuer", &url, "--listen", &format!("127.0.0.1:{port}")])
        .args(["--token-policy", policy.path().to_str().unwrap()])
        .args(["--sts-region", "us-east-1", "--sts-endpoint-url", &support::endpoint()]);
    let server = support::serve::Serve::spawn(cmd);

    let get = |path: &str| -> serde_json::Value {
        let body = std::process::Command::new("curl").args(["-fsS", &format!("{url}{path}")]).output().unwrap();
        assert!(body.status.success(), "{path}: {}", String::from_utf8_lossy(&body.stderr));
        serde_json::from_slice(&body.stdout).unwrap()
    };
    let discovery = get("/.well-known/openid-configuration");
    assert_eq!(discovery["id_token_signing_alg_values_supported"], serde_json::json!(["EdDSA"]));
    let jwks = get("/.well-known/jwks.json");
    assert_eq!((jwks["keys"][0]["kty"].as_str(), jwks["keys"][0]["crv"].as_str()), (Some("OKP"), Some("Ed25519")));

    let mut token = support::kms_jwt!().region("us-east-1").command();
    token.args(["token", "--issuer", &server.url, "--aud", "api", "--ttl", "10m"]);
    token.env_remove("AWS_ENDPOINT_URL").env_remove("AWS_SESSION_TOKEN");
    let jwt = stdout(&token.output().unwrap()).trim_end().to_owned();
    assert_eq!(header(&jwt)["alg"], "EdDSA");

    let script = r#"
import json, sys, urllib.request, jwt
issuer, token = sys.argv[1:3]
config = json.load(urllib.request.urlopen(issuer + "/.well-known/openid-configuration"))
key = jwt.PyJWKClient(config["jwks_uri"]).get_signing_key_from_jwt(token)
print(json.dumps(jwt.decode(token, key.key, algorithms=config["id_token_signing_alg_values_supported"],
                            audience="api", issuer=issuer)))
"#;
    let out = std::process::Command::new(support::python()).args(["-c", script, &url, &jwt]).output().unwrap();
    assert!(out.status.success(), "PyJWT: {}", String::from_utf8_lossy(&out.stderr));
    let claims: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(claims["sub"], "arn:aws:iam::000000000000:root");
}
