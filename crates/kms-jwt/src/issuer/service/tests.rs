use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::issuer::authenticate::Precheck;
use crate::{Algorithm, LocalSigner, Verifier, VerifyingKey};

/// A credential as a test names it: the caller's ARN, the access key, the single-use value.
#[derive(Clone)]
struct Fake {
    arn: &'static str,
    key: &'static str,
    nonce: String,
    /// Whether it passes the offline checks.
    valid: bool,
    /// Whether STS accepts its signature.
    signed: bool,
}

/// Authenticates [`Fake`] credentials and counts the calls that stand for STS.
#[derive(Default)]
struct Counting {
    authenticated: AtomicUsize,
}

impl Authenticator for Counting {
    type Credential = Fake;
    type Checked = Fake;

    fn precheck(&self, c: &Fake, now: SystemTime) -> std::result::Result<(Precheck, Fake), Refusal> {
        if !c.valid {
            return Err(Refusal::new(RefusalKind::Unauthenticated, "bad proof"));
        }
        let precheck = Precheck {
            access_key_id: Some(c.key.to_owned()),
            single_use: Some((c.nonce.clone(), now + Duration::from_secs(300))),
        };
        Ok((precheck, c.clone()))
    }

    async fn authenticate(&self, c: &Fake) -> std::result::Result<Caller, Refusal> {
        self.authenticated.fetch_add(1, Ordering::SeqCst);
        if !c.signed {
            return Err(Refusal::new(RefusalKind::Unauthenticated, "sts rejected the proof"));
        }
        let principal = match c.arn.split_once(":assumed-role/") {
            Some((head, rest)) => {
                format!("{}:role/{}", head.replace(":sts:", ":iam:"), rest.split('/').next().unwrap())
            }
            None => c.arn.to_owned(),
        };
        Ok(Caller { arn: c.arn.to_owned(), account: "111122223333".into(), principal })
    }
}

const POLICY: &str = r#"
[[rule]]
principals = ["arn:aws:iam::111122223333:role/ci-*"]
audiences  = ["api"]
max_ttl    = "30m"
claims     = { team = "platform" }
"#;

static NONCE: AtomicUsize = AtomicUsize::new(0);

fn credential(arn: &'static str, key: &'static str) -> Fake {
    Fake { arn, key, nonce: format!("n{}", NONCE.fetch_add(1, Ordering::SeqCst)), valid: true, signed: true }
}

fn session() -> Fake {
    credential("arn:aws:sts::111122223333:assumed-role/ci-build/run-7", "ASIAKEY")
}

fn issuer(config: IssuerConfig) -> (Issuer<Counting>, Arc<dyn Signer>) {
    let signer: Arc<dyn Signer> = Arc::new(LocalSigner::generate(Algorithm::ES256).unwrap());
    let policy = TokenPolicy::from_toml(POLICY, None).unwrap();
    (Issuer::new(config, Counting::default(), policy, signer.clone()).unwrap(), signer)
}

fn client(address: &str) -> ClientInfo {
    ClientInfo { address: Some(address.parse().unwrap()), request_id: "req-1".into() }
}

fn ask(audience: &str, ttl: Option<&str>) -> TokenAsk {
    TokenAsk { audience: audience.into(), ttl: ttl.map(str::to_owned) }
}

fn kind(outcome: &Outcome) -> Option<RefusalKind> {
    outcome.result.as_ref().err().map(|r| r.kind)
}

/// As a transport asks: the address first, then the request.
async fn transport(issuer: &Issuer<Counting>, ask: &TokenAsk, c: &Fake, client: &ClientInfo) -> Option<RefusalKind> {
    if let Err((refusal, _)) = issuer.admit(client) {
        return Some(refusal.kind);
    }
    kind(&issuer.issue(ask, c, client).await)
}

/// A proof made up by someone without the credentials: it passes the offline checks (they
/// cannot check a signature), and STS refuses it.
fn forged(key: &'static str) -> Fake {
    Fake { signed: false, ..credential("arn:aws:sts::111122223333:assumed-role/ci-build/x", key) }
}

#[tokio::test]
async fn an_allowed_request_gets_a_token_and_an_audit_record_naming_the_session() {
    let (issuer, signer) = issuer(IssuerConfig::new("https://issuer.example"));
    let outcome = issuer.issue(&ask("api", Some("10m")), &session(), &client("192.0.2.7")).await;
    let token = outcome.result.unwrap();
    let verifier = Verifier::new(vec![VerifyingKey::new(signer.public_key().clone(), Algorithm::ES256, None).unwrap()])
        .with_audience("api");
    let claims = verifier.verify::<crate::Claims>(&token.token).map(|v| v.claims).unwrap();
    assert_eq!(claims.get("sub").unwrap(), "arn:aws:iam::111122223333:role/ci-build");
    assert_eq!(claims.get("team").unwrap(), "platform");
    assert_eq!(claims.get("aws_account").unwrap(), "111122223333");
    assert_eq!(claims.get("exp").unwrap().as_i64().unwrap() - claims.get("iat").unwrap().as_i64().unwrap(), 600);
    let audit = outcome.audit;
    assert_eq!(audit.decision, AuditDecision::Allow);
    assert_eq!(audit.arn.as_deref(), Some("arn:aws:sts::111122223333:assumed-role/ci-build/run-7"));
    assert_eq!(audit.principal.as_deref(), Some("arn:aws:iam::111122223333:role/ci-build"));
    assert_eq!(audit.access_key_id.as_deref(), Some("ASIAKEY"));
    assert_eq!(audit.client.as_deref(), Some("192.0.2.7"));
    assert_eq!((audit.request_id.as_str(), audit.rule), ("req-1", Some(0)));
    assert_eq!(audit.jti.as_deref(), claims.get("jti").and_then(|j| j.as_str()));
    assert_eq!(audit.exp, Some(token.expires_at));
    let line = serde_json::to_string(&audit).unwrap();
    assert!(!line.contains('\n'), "{line}");
}

#[tokio::test]
async fn each_refusal_has_its_kind() {
    let (issuer, _) = issuer(IssuerConfig::new("https://issuer.example"));
    let c = client("192.0.2.7");
    let other = credential("arn:aws:iam::999999999999:user/x:iam::111122223333:role/ci-build", "AKIAOTHER");
    assert_eq!(kind(&issuer.issue(&ask("api", None), &other, &c).await), Some(RefusalKind::Forbidden));
    assert_eq!(kind(&issuer.issue(&ask("other", None), &session(), &c).await), Some(RefusalKind::Forbidden));
    assert_eq!(kind(&issuer.issue(&ask("api", Some("31m")), &session(), &c).await), Some(RefusalKind::Forbidden));
    for ttl in ["59s", "0s", "90s 500ms", "soon", "-1m"] {
        let outcome = issuer.issue(&ask("api", Some(ttl)), &session(), &c).await;
        assert_eq!(kind(&outcome), Some(RefusalKind::Malformed), "{ttl}");
        assert!(outcome.audit.reason.contains("ttl must be a whole number of seconds"), "{}", outcome.audit.reason);
    }
    let forged = Fake { valid: false, ..session() };
    let outcome = issuer.issue(&ask("api", None), &forged, &c).await;
    assert_eq!(kind(&outcome), Some(RefusalKind::Unauthenticated));
    assert_eq!(outcome.audit.decision, AuditDecision::Deny);
}

#[tokio::test]
async fn lifetimes_are_granted_in_whole_minutes() {
    let (issuer, _) = issuer(IssuerConfig::new("https://issuer.example"));
    for (asked, granted) in [("60s", 60), ("90s", 60), ("119s", 60), ("2m", 120), ("29m 59s", 1740)] {
        let outcome = issuer.issue(&ask("api", Some(asked)), &session(), &client("192.0.2.7")).await;
        let token = outcome.result.unwrap();
        let now = crate::claims::now();
        let lifetime = token.expires_at - now;
        assert!((granted - 2..=granted).contains(&lifetime), "{asked}: {lifetime}");
    }
}

#[tokio::test]
async fn a_credential_is_used_once_unless_the_issuer_failed() {
    let (issuer, _) = issuer(IssuerConfig::new("https://issuer.example"));
    let c = client("192.0.2.7");
    let once = session();
    assert!(issuer.issue(&ask("api", None), &once, &c).await.result.is_ok());
    let again = issuer.issue(&ask("api", None), &once, &c).await;
    assert_eq!(again.result.unwrap_err(), Refusal::new(RefusalKind::Unauthenticated, "proof already used"));
    // Refused by the policy: used all the same.
    let denied = session();
    assert_eq!(kind(&issuer.issue(&ask("other", None), &denied, &c).await), Some(RefusalKind::Forbidden));
    let outcome = issuer.issue(&ask("api", None), &denied, &c).await;
    assert_eq!(outcome.result.unwrap_err().message, "proof already used");
}

#[tokio::test]
async fn a_full_replay_cache_refuses_with_unavailable() {
    let (issuer, _) = issuer(IssuerConfig { replay_capacity: 2, ..IssuerConfig::new("https://issuer.example") });
    let c = client("192.0.2.7");
    for _ in 0..2 {
        assert!(issuer.issue(&ask("api", None), &session(), &c).await.result.is_ok());
    }
    let outcome = issuer.issue(&ask("api", None), &session(), &c).await;
    let refusal = outcome.result.unwrap_err();
    assert_eq!(
        (refusal.kind, refusal.message.as_str()),
        (RefusalKind::Unavailable, "the issuer is busy, retry shortly")
    );
    assert!(refusal.retry_after.is_some());
}

#[tokio::test]
async fn limits_apply_before_sts_by_address_and_access_key_and_after_by_principal() {
    let config = IssuerConfig { rate_limit: 5, address_rate_limit: 20, ..IssuerConfig::new("https://issuer.example") };
    let (issuer, _) = issuer(config);
    let here = client("192.0.2.7");
    // One access key, denied by the policy every time: STS hears of it five times only.
    let mut kinds = std::collections::BTreeMap::new();
    for _ in 0..12 {
        let outcome = transport(&issuer, &ask("other", None), &session(), &here).await;
        *kinds.entry(format!("{outcome:?}")).or_insert(0) += 1;
    }
    assert_eq!(issuer.authenticator.authenticated.load(Ordering::SeqCst), 5, "{kinds:?}");
    assert_eq!(kinds["Some(Limited)"], 7);
    // The same address is limited at 20 whatever the credentials, before they are looked at.
    let mut limited = 0;
    for _ in 0..12 {
        let malformed = Fake { valid: false, ..session() };
        if transport(&issuer, &ask("api", None), &malformed, &here).await == Some(RefusalKind::Limited) {
            limited += 1;
        }
    }
    assert_eq!(limited, 4, "12 + 8 requests reach the limit of 20");
    // Another address and key, same principal: the principal's limit (after STS) holds.
    let fresh = credential("arn:aws:sts::111122223333:assumed-role/ci-build/run-8", "ASIAOTHER");
    assert_eq!(
        transport(&issuer, &ask("api", None), &fresh, &client("198.51.100.1")).await,
        Some(RefusalKind::Limited)
    );
    assert_eq!(issuer.authenticator.authenticated.load(Ordering::SeqCst), 6);
}

/// Review 2, finding 1: forged proofs cost an STS call each, but hold no place in the replay
/// set nor lock anyone out, however many key ids they claim.
#[tokio::test]
async fn forged_proofs_with_made_up_key_ids_do_not_fill_the_replay_set() {
    const KEYS: [&str; 4] = ["AKIAFORGED1", "AKIAFORGED2", "AKIAFORGED3", "AKIAFORGED4"];
    let config =
        IssuerConfig { replay_capacity: 10, address_rate_limit: 0, ..IssuerConfig::new("https://issuer.example") };
    let (issuer, _) = issuer(config);
    for i in 0..100 {
        let from = client(&format!("203.0.113.{}", i % 50));
        let outcome = issuer.issue(&ask("api", None), &forged(KEYS[i % 4]), &from).await;
        assert_eq!(kind(&outcome), Some(RefusalKind::Unauthenticated), "{i}");
    }
    let outcome = issuer.issue(&ask("api", None), &session(), &client("192.0.2.7")).await;
    assert!(outcome.result.is_ok(), "{:?}", outcome.result);
}

/// Review 2, finding 2: a key id is not a secret, so forged proofs that claim it must not
/// spend its owner's quota from elsewhere.
#[tokio::test]
async fn a_victims_key_id_cannot_be_locked_out_from_another_address() {
    let (issuer, _) = issuer(IssuerConfig { rate_limit: 5, ..IssuerConfig::new("https://issuer.example") });
    let attacker = client("203.0.113.9");
    for _ in 0..20 {
        let refused = transport(&issuer, &ask("api", None), &forged("ASIAKEY"), &attacker).await;
        assert!(matches!(refused, Some(RefusalKind::Unauthenticated | RefusalKind::Limited)));
    }
    let victim = transport(&issuer, &ask("api", None), &session(), &client("192.0.2.7")).await;
    assert_eq!(victim, None, "the owner of ASIAKEY, from its own address");
}

/// Review 2, finding 14: a rotation to a key that allows shorter tokens than the policy does
/// is refused, and signing goes on with the key in use.
#[tokio::test]
async fn a_new_key_with_a_shorter_lifetime_than_the_policy_is_not_taken() {
    /// A local key with a lifetime policy.
    struct Limited(LocalSigner, Duration);
    impl Signer for Limited {
        fn algorithm(&self) -> Algorithm {
            self.0.algorithm()
        }
        fn public_key(&self) -> &crate::PublicKey {
            self.0.public_key()
        }
        fn sign_message<'a>(&'a self, message: &'a [u8]) -> crate::SignatureFuture<'a> {
            self.0.sign_message(message)
        }
        fn max_token_ttl(&self) -> Option<Duration> {
            Some(self.1)
        }
    }
    let (issuer, _) = issuer(IssuerConfig::new("https://issuer.example"));
    let kid = issuer.kid();
    let short = Arc::new(Limited(LocalSigner::generate(Algorithm::ES256).unwrap(), Duration::from_secs(600)));
    let err = issuer.set_signer(short).unwrap_err().to_string();
    assert!(err.contains("at most 10m, less than the policy's max_ttl of 30m"), "{err}");
    assert_eq!(issuer.kid(), kid, "the key in use stays");
    assert!(issuer.issue(&ask("api", None), &session(), &client("192.0.2.7")).await.result.is_ok());
    let long = Arc::new(Limited(LocalSigner::generate(Algorithm::ES256).unwrap(), Duration::from_secs(3600)));
    assert!(issuer.set_signer(long).unwrap());
}

#[tokio::test]
async fn tokens_are_cached_by_claims_and_lifetime() {
    let (issuer, _) = issuer(IssuerConfig::new("https://issuer.example"));
    let c = client("192.0.2.7");
    let first = issuer.issue(&ask("api", Some("10m")), &session(), &c).await.result.unwrap();
    let again = issuer.issue(&ask("api", Some("10m")), &session(), &c).await.result.unwrap();
    assert_eq!(first, again);
    let other = issuer.issue(&ask("api", Some("11m")), &session(), &c).await.result.unwrap();
    assert_ne!(first, other);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotating_while_minting_from_many_tasks_answers_every_request() {
    let config = IssuerConfig {
        rate_limit: 1_000_000,
        address_rate_limit: 0,
        cache_capacity: 8,
        ..IssuerConfig::new("https://issuer.example")
    };
    let (issuer, _) = issuer(config);
    let issuer = Arc::new(issuer);
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let issuer = issuer.clone();
            tokio::spawn(async move {
                for n in 0..200 {
                    let ttl = format!("{}m", 1 + (i + n) % 29);
                    let outcome = issuer.issue(&ask("api", Some(&ttl)), &session(), &client("192.0.2.7")).await;
                    assert!(outcome.result.is_ok(), "{:?}", outcome.result);
                }
            })
        })
        .collect();
    let mut kids = std::collections::HashSet::new();
    for _ in 0..50 {
        let signer: Arc<dyn Signer> = Arc::new(LocalSigner::generate(Algorithm::ES256).unwrap());
        assert!(issuer.set_signer(signer.clone()).unwrap());
        assert!(!issuer.set_signer(signer).unwrap(), "the same key is no rotation");
        kids.insert(issuer.kid());
        tokio::task::yield_now().await;
    }
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(60), task).await.expect("a task hung").unwrap();
    }
    assert_eq!(kids.len(), 50);
}

#[tokio::test]
async fn cache_stats_add_up_across_rotations() {
    let (issuer, _) = issuer(IssuerConfig::new("https://issuer.example"));
    let c = client("192.0.2.9");
    issuer.issue(&ask("api", None), &session(), &c).await.result.unwrap();
    issuer.issue(&ask("api", None), &session(), &c).await.result.unwrap();
    assert_eq!(issuer.cache_stats(), CacheStats { hits: 1, misses: 1 });
    let signer: Arc<dyn Signer> = Arc::new(LocalSigner::generate(Algorithm::ES256).unwrap());
    assert!(issuer.set_signer(signer).unwrap());
    issuer.issue(&ask("api", None), &session(), &c).await.result.unwrap();
    assert_eq!(issuer.cache_stats(), CacheStats { hits: 1, misses: 2 }, "a rotation keeps the counts");
}
