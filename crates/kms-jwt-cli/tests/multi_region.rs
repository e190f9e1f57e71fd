//! Multi-Region key sets through the real binary against LocalStack: provision and rotate
//! across two and three regions with one JWKS and one kid per key everywhere, a rotation that
//! meets a region that is down, and a fallback key that is not a replica.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use kms_jwt_test_support as support;

use std::process::Output;

use kms_jwt::{Jwks, Verifier};
use support::proxy::{FaultProxy, Link};
use support::serve::Serve;

fn ok(out: &Output) -> serde_json::Value {
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

fn jwks_in(region: &str, name: &str) -> Vec<u8> {
    let out = support::kms_jwt!().localstack().region(region).output(["jwks", "--key", name]);
    ok(&out);
    out.stdout
}

/// A new ECC set in us-east-1 and eu-west-1, provisioned through the binary: its name and
/// the provision summary.
fn two_region_set(prefix: &str) -> (String, serde_json::Value) {
    let name = support::unique(prefix);
    let out = support::kms_jwt!()
        .localstack()
        .region("us-east-1")
        .command()
        .args(["keyset", "provision", "--key", &name, "--key-spec", "ECC_NIST_P256"])
        .args(["--regions", "us-east-1,eu-west-1"])
        .output()
        .unwrap();
    let summary = ok(&out);
    (name, summary)
}

fn kids(jwks: &[u8]) -> Vec<String> {
    Jwks::parse(jwks).unwrap().keys.iter().map(|k| k.kid.clone().unwrap()).collect()
}

#[test]
fn provision_and_rotate_across_two_and_three_regions() {
    for regions in [&["us-east-1", "eu-west-1"][..], &["us-east-1", "eu-west-1", "ap-southeast-2"]] {
        let name = support::unique("mr");
        let list = regions.join(",");
        let provision = || {
            support::kms_jwt!().localstack().region("us-east-1").output([
                "keyset",
                "provision",
                "--key",
                &name,
                "--key-spec",
                "ECC_NIST_P256",
                "--regions",
                &list,
            ])
        };
        let first = ok(&provision());
        assert_eq!(first["created"], true);
        assert!(first["key_id"].as_str().unwrap().starts_with("mrk-"), "{first}");
        assert_eq!(first["regions"], serde_json::json!(regions));
        // Idempotent: the same set again, and nothing new.
        let again = ok(&provision());
        assert_eq!((again["created"].clone(), again["key_id"].clone()), (false.into(), first["key_id"].clone()));

        for rotation in 0..2 {
            let jwks: Vec<Vec<u8>> = regions.iter().map(|r| jwks_in(r, &name)).collect();
            assert!(jwks.iter().all(|j| *j == jwks[0]), "rotation {rotation}: one JWKS in every region");
            assert_eq!(kids(&jwks[0]).len(), 1 + rotation.min(1), "rotation {rotation}");

            // A token signed in each region verifies with that JWKS and carries the same kid.
            let verifier = Verifier::from_jwks(&Jwks::parse(&jwks[0]).unwrap(), None).unwrap();
            let mut token_kids = Vec::new();
            for region in regions {
                let out =
                    support::kms_jwt!().localstack().region(*region).output(["sign", "--key", &name, "--sub", region]);
                assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
                let token = String::from_utf8(out.stdout).unwrap();
                assert_eq!(
                    verifier.verify::<kms_jwt::Claims>(token.trim()).map(|v| v.claims).unwrap().get("sub").unwrap(),
                    *region
                );
                token_kids.push(kms_jwt::decode_unverified(token.trim()).unwrap().0["kid"].clone());
            }
            assert!(token_kids.iter().all(|k| *k == token_kids[0]), "{token_kids:?}");

            // Rotation, asked in the last region: it is done from the primary's.
            let farthest = regions[regions.len() - 1];
            let rotated = support::kms_jwt!().localstack().region(farthest).output([
                "keyset",
                "rotate",
                "--key",
                &name,
                "--min-overlap",
                "0s",
                "--pending-window-days",
                "7",
            ]);
            assert_eq!(ok(&rotated)["rotated"], true);
        }

        let status =
            ok(&support::kms_jwt!().localstack().region(regions[1]).output(["keyset", "status", "--key", &name]));
        assert_eq!(status["region"], "us-east-1", "{status}");
        let current = status["keys"][0]["key_id"].clone();
        let replicas = status["replica_regions"].as_array().unwrap();
        assert_eq!(replicas.len(), regions.len() - 1, "{status}");
        for replica in replicas {
            assert_eq!(replica["current"], current, "{status}");
            assert_eq!(replica["previous"], status["keys"][1]["key_id"], "{status}");
            assert!(replica["next"].is_null(), "{status}");
        }
    }
}

#[test]
fn a_region_that_is_down_stops_the_rotation_before_any_current_alias_moves() {
    let (name, provisioned) = two_region_set("mr-down");
    let current = provisioned["key_id"].clone();
    let rotate = |region_endpoint: Option<&str>| {
        let mut cmd = support::kms_jwt!().localstack().command();
        if let Some(url) = region_endpoint {
            cmd.env("KMS_JWT_ENDPOINT_URL_EU_WEST_1", url).args(["--timeout", "2s", "--max-attempts", "1"]);
        }
        cmd.args(["keyset", "rotate", "--key", &name, "--min-overlap", "0s", "--pending-window-days", "7"]);
        cmd.output().unwrap()
    };
    // Nothing listens on port 9: eu-west-1 is out of reach.
    let down = rotate(Some("http://127.0.0.1:9"));
    let err = String::from_utf8_lossy(&down.stderr);
    assert_eq!(down.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot reach kms"), "{err}");
    let status = ok(&support::kms_jwt!().localstack().region("us-east-1").output(["keyset", "status", "--key", &name]));
    assert_eq!(status["keys"][0]["key_id"], current, "us-east-1 still signs with the old key: {status}");
    assert_eq!(status["replica_regions"][0]["current"], current, "so does eu-west-1: {status}");
    // With the region back, the staged key is promoted everywhere.
    let rotated = ok(&rotate(None));
    let new = rotated["current"]["key_id"].clone();
    assert_ne!(new, current);
    let status = ok(&support::kms_jwt!().localstack().region("us-east-1").output(["keyset", "status", "--key", &name]));
    assert_eq!(status["replica_regions"][0]["current"], new, "{status}");
    assert_eq!(jwks_in("us-east-1", &name), jwks_in("eu-west-1", &name));
}

#[test]
fn a_fallback_key_that_is_not_a_replica_is_refused() {
    // The same set name, provisioned separately in two regions: two unrelated keys.
    let name = support::unique("not-replica");
    for region in ["us-east-1", "eu-west-1"] {
        let out = support::kms_jwt!().localstack().region(region).output([
            "keyset",
            "provision",
            "--key",
            &name,
            "--key-spec",
            "ECC_NIST_P256",
        ]);
        ok(&out);
    }
    let out = support::kms_jwt!().localstack().region("us-east-1").output([
        "sign",
        "--key",
        &name,
        "--sub",
        "x",
        "--fallback-region",
        "eu-west-1",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(out.stdout.is_empty());
    assert!(err.contains("in eu-west-1 is not a replica of key") && err.lines().count() == 1, "{err}");

    // A single-region key named by its id has no namesake in the other region at all.
    let key_id = ok(&support::kms_jwt!().localstack().region("us-east-1").output(["keyset", "status", "--key", &name]))
        ["keys"][0]["key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = support::kms_jwt!().localstack().region("us-east-1").output([
        "sign",
        "--key",
        &key_id,
        "--sub",
        "x",
        "--fallback-region",
        "eu-west-1",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("was not found") && err.contains("(in eu-west-1)"), "{err}");
}

/// The body of `GET path` from `127.0.0.1:port`.
fn get(port: u16, path: &str) -> Vec<u8> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let start = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    answer[start..].to_vec()
}

#[test]
fn serve_keeps_refreshing_through_an_outage_of_its_region() {
    let (name, _) = two_region_set("mr-serve");
    // us-east-1 through a proxy the test can switch off; eu-west-1 straight to LocalStack.
    let (proxy, primary) = FaultProxy::switchable(&support::endpoint());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cmd = support::kms_jwt!().localstack().region("us-east-1").command();
    cmd.env("KMS_JWT_ENDPOINT_URL_US_EAST_1", &proxy.url)
        .args(["--timeout", "2s", "--max-attempts", "1", "serve", "--key", &name])
        .args(["--issuer", &format!("http://127.0.0.1:{port}"), "--listen", &format!("127.0.0.1:{port}")])
        .args(["--refresh", "1s", "--fallback-region", "eu-west-1"]);
    let guard = Serve::spawn(cmd);
    assert_eq!(kids(&get(port, "/.well-known/jwks.json")).len(), 1);

    primary.set(Link::Down);
    let rotated = support::kms_jwt!().localstack().region("us-east-1").output([
        "keyset",
        "rotate",
        "--key",
        &name,
        "--min-overlap",
        "0s",
        "--pending-window-days",
        "7",
    ]);
    ok(&rotated);
    let want = kids(&jwks_in("eu-west-1", &name));
    assert_eq!(want.len(), 2);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut served = Vec::new();
    while std::time::Instant::now() < deadline {
        served = kids(&get(port, "/.well-known/jwks.json"));
        if served == want {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let health: serde_json::Value = serde_json::from_slice(&get(port, "/healthz")).unwrap();
    drop(guard);
    assert_eq!(served, want, "the rotation reached the server through eu-west-1");
    assert_eq!(health["status"], "ok", "{health}");
}
