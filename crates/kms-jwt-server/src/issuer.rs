//! The token issuer as `serve` runs it: the policy read from a file (and again on SIGHUP), STS
//! proofs, and the set's current key, followed through rotations.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use anyhow::{Context as _, Result};
use kms_jwt::Signer as _;
use kms_jwt::failover::FailoverSigner;
use kms_jwt::issuer::{Issuer, IssuerConfig, ProofRules, StsProofs, TokenPolicy};
use kms_jwt::kms::KmsClient;

/// How `POST /token` is configured.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// The policy file (TOML).
    pub policy: PathBuf,
    /// The id proofs must carry, signed (default: the issuer URL).
    pub server_id: Option<String>,
    /// The STS region proofs must name (default: the KMS region).
    pub sts_region: Option<String>,
    /// Where proofs are sent instead of the regional STS URL: https, or http on loopback.
    pub sts_endpoint: Option<String>,
    /// Tokens per principal per minute, and requests per access key id.
    pub rate_limit: u32,
    /// Requests per client address per minute; 0 for none.
    pub address_rate_limit: u32,
    /// Requests decided at once; more get 503.
    pub max_in_flight: usize,
}

/// Reads `path` as a token policy for keys whose tokens live at most `longest`.
fn read_policy(path: &Path, longest: Option<Duration>) -> Result<TokenPolicy> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    TokenPolicy::from_toml(&text, longest).with_context(|| format!("{} is not a valid token policy", path.display()))
}

/// The issuer and what keeps it current.
pub(crate) struct Running {
    pub(crate) issuer: Arc<Issuer<StsProofs>>,
    /// The signer the issuer signs with, for the metrics.
    signer: RwLock<Arc<FailoverSigner>>,
    config: TokenConfig,
    regions: Vec<KmsClient>,
    key: String,
    longest: Option<Duration>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").field("key", &self.key).finish_non_exhaustive()
    }
}

/// What the issuer needs that can be checked without KMS: the policy file, the STS endpoint.
/// A mistake there stops the server before it listens.
pub(crate) fn check(config: &TokenConfig, issuer: &str, regions: &[KmsClient]) -> Result<StsProofs> {
    read_policy(&config.policy, None)?;
    let sts_region = match &config.sts_region {
        Some(region) => region.clone(),
        None => regions.first().and_then(KmsClient::region).context("no STS region: pass --sts-region")?.to_owned(),
    };
    let rules = ProofRules { server_id: config.server_id.clone().unwrap_or_else(|| issuer.to_owned()), sts_region };
    StsProofs::new(rules, config.sts_endpoint.as_deref()).context("--sts-endpoint-url")
}

impl Running {
    /// Resolves the signing key (the first `--key`: a set's current key) and reads the policy
    /// against its lifetime limit; `proofs` is what [`check`] gave.
    pub(crate) async fn start(
        config: &TokenConfig,
        proofs: StsProofs,
        issuer: &str,
        key: &str,
        regions: &[KmsClient],
    ) -> Result<Running> {
        let signer = Arc::new(FailoverSigner::builder(regions.to_vec(), key).build().await?);
        let longest = signer.max_token_ttl();
        let policy = read_policy(&config.policy, longest)?;
        crate::say(&format!(
            "POST /token on, {} rules from {}, proofs for {:?} sent to {}",
            policy.len(),
            config.policy.display(),
            proofs.rules().server_id,
            proofs.endpoint()
        ));
        let settings = IssuerConfig {
            rate_limit: config.rate_limit.max(1),
            address_rate_limit: config.address_rate_limit,
            ..IssuerConfig::new(issuer)
        };
        let issuer = Issuer::new(settings, proofs, policy, signer.clone())?;
        Ok(Running {
            issuer: Arc::new(issuer),
            signer: RwLock::new(signer),
            config: config.clone(),
            regions: regions.to_vec(),
            key: key.to_owned(),
            longest,
        })
    }

    /// The signer in use.
    pub(crate) fn signer(&self) -> Arc<FailoverSigner> {
        self.signer.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Re-reads the policy file; a bad one keeps the policy in force and says so.
    pub(crate) fn reload(&self) {
        match read_policy(&self.config.policy, self.longest) {
            Ok(policy) => {
                crate::say(&format!("token policy reloaded, {} rules", policy.len()));
                self.issuer.set_policy(policy);
            }
            Err(e) => crate::say(&format!("token policy not reloaded, the old one stays in force: {e:#}")),
        }
    }

    /// Re-resolves the signing key every `every`: after a rotation, `/token` signs with the new
    /// current key (and mints afresh), long before the old one is retired, but not before this
    /// server's JWKS has carried the new key for its whole cache lifetime: a verifier that
    /// fetched the JWKS just before the key appeared must have had time to fetch it again.
    pub(crate) async fn follow_rotations(self: Arc<Self>, served: crate::Served, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let fresh = match FailoverSigner::builder(self.regions.clone(), &self.key).build().await {
                Ok(fresh) => fresh,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot re-resolve the signing key; signing with the last one");
                    continue;
                }
            };
            let kid = fresh.public_key().thumbprint();
            if kid == self.issuer.kid() {
                continue;
            }
            let published = served.published_for(&kid).unwrap_or_default();
            if published < served.max_age() {
                tracing::info!(%kid, ?published, "a new current key; signing with it once verifiers can have it");
                continue;
            }
            let arn = fresh.arn();
            let fresh = Arc::new(fresh);
            match self.issuer.set_signer(fresh.clone()) {
                Ok(true) => {
                    *self.signer.write().unwrap_or_else(PoisonError::into_inner) = fresh;
                    crate::say(&format!("{} now names {arn}; POST /token signs with it", self.key));
                }
                Ok(false) => {}
                Err(e) => crate::say(&format!("cannot sign with {arn}, signing with the last key: {e}")),
            }
        }
    }
}
