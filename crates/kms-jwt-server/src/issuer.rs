//! The token issuer as `serve` runs it: the policy read from a file (and again on SIGHUP), STS
//! proofs, and the set's current key, followed through rotations.

use std::path::{Path, PathBuf};
use std::sync::Arc;
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
}

/// Reads `path` as a token policy for keys whose tokens live at most `longest`.
fn read_policy(path: &Path, longest: Option<Duration>) -> Result<TokenPolicy> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    TokenPolicy::from_toml(&text, longest).with_context(|| format!("{} is not a valid token policy", path.display()))
}

/// The issuer and what keeps it current.
pub(crate) struct Running {
    pub(crate) issuer: Arc<Issuer<StsProofs>>,
    config: TokenConfig,
    regions: Vec<KmsClient>,
    key: String,
    longest: Option<Duration>,
}

impl Running {
    /// Reads the policy and resolves the signing key (the first `--key`: a set's current key);
    /// any problem stops the server at start-up.
    pub(crate) async fn start(config: &TokenConfig, issuer: &str, key: &str, regions: &[KmsClient]) -> Result<Running> {
        // What can be checked offline first: a bad file or endpoint is refused before any
        // call to KMS.
        read_policy(&config.policy, None)?;
        let sts_region = match &config.sts_region {
            Some(region) => region.clone(),
            None => regions.first().and_then(KmsClient::region).context("no STS region: pass --sts-region")?.to_owned(),
        };
        let rules = ProofRules { server_id: config.server_id.clone().unwrap_or_else(|| issuer.to_owned()), sts_region };
        let proofs = StsProofs::new(rules, config.sts_endpoint.as_deref()).context("--sts-endpoint-url")?;
        let signer = FailoverSigner::builder(regions.to_vec(), key).build().await?;
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
        let issuer = Issuer::new(settings, proofs, policy, Arc::new(signer))?;
        Ok(Running {
            issuer: Arc::new(issuer),
            config: config.clone(),
            regions: regions.to_vec(),
            key: key.to_owned(),
            longest,
        })
    }

    /// Re-reads the policy file; a bad one keeps the policy in force and says so.
    fn reload(&self) {
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
            match self.issuer.set_signer(Arc::new(fresh)) {
                Ok(true) => crate::say(&format!("{} now names {arn}; POST /token signs with it", self.key)),
                Ok(false) => {}
                Err(e) => crate::say(&format!("cannot sign with {arn}, signing with the last key: {e}")),
            }
        }
    }

    /// Reloads the policy on every SIGHUP.
    pub(crate) async fn reload_on(self: Arc<Self>, mut hup: tokio::signal::unix::Signal) {
        while hup.recv().await.is_some() {
            self.reload();
        }
    }
}
