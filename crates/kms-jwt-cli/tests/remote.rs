//! The verifying side against the real `kms-jwt serve` over HTTP, LocalStack behind it and a
//! counting proxy in front: `RemoteJwks` (discovery, `ETag`, rotation, outages, refusals, a storm
//! of unknown `kid`s) and the axum layer (RFC 6750 answers, typed claims).

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use kms_jwt_test_support as support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kms_jwt::keyset::{KeySetName, KeySets};
use kms_jwt::kms::KmsSigner;
use kms_jwt::remote::RemoteJwks;
use kms_jwt::{Claims, Error, JwtSigner, TokenError};
use support::proxy::{Action, FaultProxy};
use support::serve::Serve;

const JWKS: &str = "/.well-known/jwks.json";

/// A key set served by `kms-jwt serve` behind a proxy whose URL is the issuer's, and the
/// proxy's hook switches.
struct Issuer {
    sets: KeySets,
    name: KeySetName,
    proxy: FaultProxy,
    _serve: Serve,
    /// While set, the proxy answers every request 503.
    down: Arc<AtomicBool>,
}

impl Issuer {
    async fn start() -> Issuer {
        Issuer::start_with(|_| None).await
    }

    /// With `hook` answering requests first (`None`: the usual behaviour).
    async fn start_with(hook: impl Fn(&support::proxy::Exchange) -> Option<Action> + Send + Sync + 'static) -> Issuer {
        let (sets, name) = support::key_set("ECC_NIST_P256").await;
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let cut = down.clone();
        let proxy = FaultProxy::start(&format!("http://127.0.0.1:{port}"), move |e| {
            if cut.load(Ordering::SeqCst) {
                return Action::Respond { status: 503, content_type: "text/plain", body: "down".into() };
            }
            hook(e).unwrap_or(Action::Forward)
        });
        let mut cmd = support::kms_jwt!().localstack().command();
        cmd.args(["--max-attempts", "1", "--timeout", "3s"]).args([
            "serve",
            "--key",
            name.name(),
            "--issuer",
            &proxy.url,
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--refresh",
            "1s",
        ]);
        Issuer { sets, name, _serve: Serve::spawn(cmd), proxy, down }
    }

    /// A token for `aud` from the set's current key.
    async fn token(&self, aud: &str) -> String {
        let signer =
            JwtSigner::new(KmsSigner::new(&support::kms().await, &self.name.current()).await.unwrap()).unwrap();
        let claims =
            Claims::new().issuer(&self.proxy.url).subject("svc").audience(aud).expires_at(kms_jwt::now() + 600);
        signer.sign(&claims).await.unwrap()
    }

    fn keys(&self) -> kms_jwt::remote::RemoteJwksBuilder {
        RemoteJwks::from_issuer(&self.proxy.url).unwrap().audience("api")
    }
}

async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_etag_revalidation_and_a_rotation_picked_up() {
    let issuer = Issuer::start().await;
    let keys = issuer
        .keys()
        .max_age_between(Duration::from_secs(1), Duration::from_secs(1))
        .cooldown(Duration::from_secs(1))
        .build()
        .unwrap();
    let first = issuer.token("api").await;
    let claims = keys.verify::<Claims>(&first).await.unwrap().claims;
    assert_eq!(claims.get("sub").unwrap(), "svc");
    assert_eq!((issuer.proxy.count_path("/.well-known/openid-configuration"), issuer.proxy.count_path(JWKS)), (1, 1));
    // Past its max-age the keys are revalidated in the background with If-None-Match: 304.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    keys.verify::<Claims>(&first).await.unwrap();
    eventually("a 304 for the JWKS", || issuer.proxy.answered(304) >= 1).await;
    let revalidation = issuer.proxy.seen().into_iter().rfind(|e| e.path == JWKS).unwrap();
    assert!(revalidation.headers.contains_key("if-none-match"), "{:?}", revalidation.headers);
    assert_eq!(issuer.proxy.count_path("/.well-known/openid-configuration"), 1, "discovery once");

    // A rotation: the server publishes the new key within its refresh; a token from it has an
    // unknown kid for the cached keys, which are fetched again at once (the cooldown is over).
    issuer.sets.rotate(&issuer.name, &support::rotation_policy(Some(Duration::ZERO), true)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let rotated = issuer.token("api").await;
    assert_ne!(
        kms_jwt::decode_unverified(&rotated).unwrap().0["kid"],
        kms_jwt::decode_unverified(&first).unwrap().0["kid"]
    );
    keys.verify::<Claims>(&rotated).await.unwrap();
    keys.verify::<Claims>(&first).await.unwrap();
    assert_eq!(
        keys.verify::<Claims>(&issuer.token("billing").await).await.unwrap_err().to_string(),
        "audience does not match"
    );
}

/// A token from a new key that arrives while a background refresh of stale keys is under way
/// waits for that refresh, which brings the key, rather than being refused as unknown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_key_met_during_a_background_refresh_waits_for_it() {
    let slow = Arc::new(AtomicBool::new(false));
    let delay = slow.clone();
    let issuer = Issuer::start_with(move |e| {
        if e.path == JWKS && delay.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(800));
        }
        None
    })
    .await;
    let keys = issuer
        .keys()
        .max_age_between(Duration::from_secs(1), Duration::from_secs(1))
        .cooldown(Duration::from_secs(1))
        .build()
        .unwrap();
    let first = issuer.token("api").await;
    keys.verify::<Claims>(&first).await.unwrap();
    issuer.sets.rotate(&issuer.name, &support::rotation_policy(Some(Duration::ZERO), true)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let rotated = issuer.token("api").await;
    // The keys are stale: this answers at once from them, and starts a refresh, which is slow.
    slow.store(true, Ordering::SeqCst);
    keys.verify::<Claims>(&first).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let fetches = issuer.proxy.count_path(JWKS);
    keys.verify::<Claims>(&rotated).await.expect("the refresh under way brings the new key");
    assert_eq!(issuer.proxy.count_path(JWKS), fetches, "no second fetch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_served_from_the_last_good_keys_until_they_are_too_old() {
    let issuer = Issuer::start().await;
    let keys = issuer
        .keys()
        .max_age_between(Duration::from_secs(1), Duration::from_secs(1))
        .cooldown(Duration::from_millis(500))
        .stale_for(Duration::from_secs(3))
        .build()
        .unwrap();
    let token = issuer.token("api").await;
    keys.verify::<Claims>(&token).await.unwrap();
    issuer.down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    keys.verify::<Claims>(&token).await.unwrap();
    eventually("a refresh tried and refused", || issuer.proxy.answered(503) >= 1).await;
    keys.verify::<Claims>(&token).await.expect("stale but within the limit");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let err = keys.verify::<Claims>(&token).await.unwrap_err();
    assert!(matches!(err, Error::KeysUnavailable(_)), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("old, over the limit of 3s") && message.contains("HTTP 503"), "{message}");
    // Back: the keys are fetched again and verify.
    issuer.down.store(false, Ordering::SeqCst);
    keys.verify::<Claims>(&token).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_oversized_documents_and_a_foreign_issuer_are_refused() {
    let redirect = Issuer::start_with(|e| {
        (e.path == JWKS).then(|| Action::Respond { status: 302, content_type: "text/plain", body: String::new() })
    })
    .await;
    let err = redirect.keys().build().unwrap().verify::<Claims>(&redirect.token("api").await).await.unwrap_err();
    assert!(err.to_string().contains("HTTP 302: redirects are not followed"), "{err}");

    let oversized = Issuer::start_with(|e| {
        (e.path == JWKS).then(|| Action::Respond {
            status: 200,
            content_type: "application/json",
            body: format!("{{\"keys\":[],\"pad\":\"{}\"}}", "x".repeat(600 * 1024)),
        })
    })
    .await;
    let err = oversized.keys().build().unwrap().verify::<Claims>(&oversized.token("api").await).await.unwrap_err();
    assert!(err.to_string().contains("unreadable answer"), "{err}");

    let foreign = Issuer::start_with(|e| {
        (e.path == "/.well-known/openid-configuration").then(|| Action::Respond {
            status: 200,
            content_type: "application/json",
            body: r#"{"issuer":"https://elsewhere.example","jwks_uri":"https://elsewhere.example/jwks"}"#.into(),
        })
    })
    .await;
    let err = foreign.keys().build().unwrap().verify::<Claims>(&foreign.token("api").await).await.unwrap_err();
    assert!(err.to_string().contains("names issuer \"https://elsewhere.example\""), "{err}");
    assert_eq!(foreign.proxy.count_path(JWKS), 0);
}

/// 10,000 tokens with made-up `kid`s, 32 at a time: one fetch per cooldown at most, and every
/// one answered "unknown key".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_unknown_kids_costs_one_fetch_per_cooldown() {
    let issuer = Issuer::start().await;
    let cooldown = Duration::from_secs(30);
    let keys = issuer.keys().cooldown(cooldown).build().unwrap();
    keys.verify::<Claims>(&issuer.token("api").await).await.unwrap();
    let before = issuer.proxy.count_path(JWKS);
    let signer = Arc::new(kms_jwt::LocalSigner::generate(kms_jwt::Algorithm::ES256).unwrap());
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (keys, next, signer) = (keys.clone(), next.clone(), signer.clone());
        tasks.push(tokio::spawn(async move {
            let mut unknown = 0;
            while next.fetch_add(1, Ordering::SeqCst) < 10_000 {
                let kid = support::unique("kid");
                let forged = JwtSigner::with_kid(signer.clone(), kms_jwt::KeyIdMode::Fixed(kid)).unwrap();
                let token = forged.sign(&Claims::new().subject("x").expires_at(kms_jwt::now() + 60)).await.unwrap();
                if matches!(keys.verify::<Claims>(&token).await, Err(Error::InvalidToken(TokenError::UnknownKid(_)))) {
                    unknown += 1;
                }
            }
            unknown
        }));
    }
    let mut unknown = 0;
    for task in tasks {
        unknown += task.await.unwrap();
    }
    let fetches = issuer.proxy.count_path(JWKS) - before;
    let allowed = 1 + usize::try_from(started.elapsed().as_secs() / cooldown.as_secs()).unwrap();
    assert_eq!(unknown, 10_000);
    assert!(fetches <= allowed, "{fetches} fetches in {:?}, at most {allowed} allowed", started.elapsed());
}

mod layer {
    use super::*;

    use axum::Router;
    use axum::routing::get;
    use kms_jwt::Verified;
    use kms_jwt::axum::BearerAuth;

    #[derive(Clone, serde::Deserialize)]
    struct Access {
        sub: String,
        aud: String,
    }

    async fn whoami(token: Verified<Access>) -> String {
        format!("{} for {} (kid {})", token.claims.sub, token.claims.aud, token.header["kid"].as_str().unwrap_or(""))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bearer_auth_answers_as_rfc_6750_says_and_hands_typed_claims_to_handlers() {
        let issuer = Issuer::start().await;
        let keys = RemoteJwks::from_issuer(&issuer.proxy.url).unwrap().build().unwrap();
        let app = Router::new().route("/whoami", get(whoami)).layer(BearerAuth::<Access>::new(keys).audience("api"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = format!("http://{}/whoami", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let http = reqwest::Client::new();
        let call = |auth: Option<String>| {
            let request = http.get(&api);
            let request = match auth {
                Some(value) => request.header("authorization", value),
                None => request,
            };
            async move {
                let response = request.send().await.unwrap();
                let challenge = response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
                (response.status().as_u16(), challenge, response.text().await.unwrap())
            }
        };
        let good = issuer.token("api").await;
        let (status, challenge, body) = call(Some(format!("Bearer {good}"))).await;
        assert_eq!((status, challenge), (200, None));
        let kid = kms_jwt::decode_unverified(&good).unwrap().0["kid"].as_str().unwrap().to_owned();
        assert_eq!(body, format!("svc for api (kid {kid})"));

        let invalid = Some("Bearer error=\"invalid_token\"".to_owned());
        let tampered = format!("{}x", &good[..good.len() - 1]);
        for (what, auth, expected) in [
            ("no credentials", None, (401, Some("Bearer".to_owned()))),
            ("another scheme", Some("Basic dXNlcjpwYXNz".to_owned()), (401, Some("Bearer".to_owned()))),
            ("another audience", Some(format!("Bearer {}", issuer.token("billing").await)), (401, invalid.clone())),
            ("a tampered signature", Some(format!("Bearer {tampered}")), (401, invalid.clone())),
            ("not a token", Some("Bearer a.b".to_owned()), (401, invalid.clone())),
            (
                "a malformed header",
                Some("Bearer a b".to_owned()),
                (400, Some("Bearer error=\"invalid_request\"".to_owned())),
            ),
        ] {
            let (status, challenge, body) = call(auth).await;
            assert_eq!((status, challenge), expected, "{what}");
            assert!(body.is_empty(), "{what}: the body says nothing: {body:?}");
        }
    }
}

/// `kms-jwt verify --issuer-url`: as a third party, from the issuer's URL alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_verifies_from_the_issuer_url() {
    let issuer = Issuer::start().await;
    let token = issuer.token("api").await;
    let verify = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_kms-jwt"))
            .args(["verify", &token, "--issuer-url", &issuer.proxy.url])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = verify(&["--aud", "api"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let claims: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(claims["iss"], issuer.proxy.url);
    let out = verify(&["--aud", "billing"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), "kms-jwt: invalid token: audience does not match");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kms-jwt"))
        .args(["verify", &token, "--issuer-url", "http://issuer.example", "--aud", "api"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not https"), "{}", String::from_utf8_lossy(&out.stderr));
}
