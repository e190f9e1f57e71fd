//! Signing that survives a region outage: a multi-Region KMS key and its replicas share key
//! material, so a replica's signature verifies with the same public key and the same `kid`.
//!
//! [`FailoverSigner`] signs in the first of an ordered list of regions that answers. A region
//! that fails with an outage ([`Error::is_outage`]: unreachable, timed out, throttling or 5xx
//! after the client's retries) is set aside for a back-off period, during which calls go
//! straight to the next region: a cut costs the calls in flight at that moment one timeout,
//! not every later call. After the back-off one call at a time probes the region again, and
//! the first that succeeds brings signing back to it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use crate::kms::{KmsClient, KmsSigner};
use crate::signer::{SignatureFuture, Signer};
use crate::{Algorithm, Error, PublicKey, Result};

/// How long a region that failed is passed over before it is probed again.
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(30);

/// A [`Signer`] over one multi-Region key in several regions, in order of preference.
///
/// It never signs with a key that is not the same key: every region's key must have the
/// reference key's id (a multi-Region key's `mrk-` id is the same in every region) and its
/// public key. A region out of reach when the signer is built is checked when first used.
///
/// ```no_run
/// # async fn example() -> kms_jwt::Result<()> {
/// use kms_jwt::failover::FailoverSigner;
/// use kms_jwt::kms::KmsOptions;
/// use kms_jwt::{Claims, JwtSigner};
///
/// let mut clients = Vec::new();
/// for region in ["eu-west-1", "eu-central-1"] {
///     clients.push(KmsOptions { region: Some(region.into()), ..KmsOptions::default() }.connect().await?);
/// }
/// let signer = JwtSigner::new(FailoverSigner::builder(clients, "jwt-signer").build().await?)?;
/// let token = signer.sign(&Claims::new().subject("alice").expires_at(4_102_444_800)).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct FailoverSigner {
    regions: Vec<Region>,
    reference: Reference,
    backoff: Duration,
}

/// What every region's key must match: the first key resolved.
#[derive(Debug)]
struct Reference {
    region: String,
    key_id: String,
    public_key: PublicKey,
    alg: Algorithm,
    max_token_ttl: Option<Duration>,
}

#[derive(Debug)]
struct Region {
    name: String,
    kms: KmsClient,
    key: String,
    signer: OnceCell<KmsSigner>,
    health: Mutex<Health>,
}

#[derive(Debug, Default)]
struct Health {
    /// Set when the region failed: it is passed over until then.
    down_until: Option<Instant>,
    /// One call is trying the region after its back-off; the others still pass it over.
    probing: bool,
}

/// Options of a [`FailoverSigner`]: [`FailoverSigner::builder`].
#[derive(Debug)]
#[must_use]
pub struct FailoverSignerBuilder {
    clients: Vec<KmsClient>,
    key: String,
    alg: Option<Algorithm>,
    backoff: Duration,
}

impl FailoverSignerBuilder {
    /// Pins this algorithm (default: the key spec's).
    pub fn algorithm(mut self, alg: impl Into<Option<Algorithm>>) -> FailoverSignerBuilder {
        self.alg = alg.into();
        self
    }

    /// How long a region that failed is passed over (default [`DEFAULT_BACKOFF`]).
    pub fn backoff(mut self, backoff: Duration) -> FailoverSignerBuilder {
        self.backoff = backoff;
        self
    }

    /// Resolves the key in every region at once. The first region that answers gives the
    /// reference key; a region whose key is another key refuses the whole signer, and a
    /// region out of reach is checked when it is first needed.
    pub async fn build(self) -> Result<FailoverSigner> {
        if self.clients.is_empty() {
            return Err(Error::Config("a failover signer needs at least one region".into()));
        }
        let mut regions = Vec::with_capacity(self.clients.len());
        for kms in self.clients {
            let name = kms.region().unwrap_or("unknown").to_owned();
            let key = in_region(&self.key, &name);
            if regions.iter().any(|r: &Region| r.name == name) {
                return Err(Error::Config(format!("region {name} is given twice")));
            }
            regions.push(Region { name, kms, key, signer: OnceCell::new(), health: Mutex::default() });
        }
        let alg = self.alg;
        let resolved = futures_util::future::join_all(
            regions.iter().map(|r| Box::pin(KmsSigner::builder(&r.kms, r.key.clone()).algorithm(alg).build())),
        )
        .await;
        let mut reference: Option<Reference> = None;
        let mut first_error = None;
        for (region, result) in regions.iter().zip(resolved) {
            match result {
                Ok(signer) => {
                    if let Some(reference) = &reference {
                        reference.check(&region.name, &signer)?;
                    } else {
                        reference = Some(Reference {
                            region: region.name.clone(),
                            key_id: signer.key().key.key_id.clone(),
                            public_key: signer.public_key().clone(),
                            alg: signer.algorithm(),
                            max_token_ttl: signer.max_token_ttl(),
                        });
                    }
                    let _ = region.signer.set(signer);
                }
                Err(e) if e.is_outage() => {
                    region.mark_down(self.backoff);
                    tracing::warn!(region = region.name, error = %e, "kms is unavailable in this region; it is checked when first needed");
                    first_error.get_or_insert(e);
                }
                Err(e) => return Err(in_region_error(&region.name, e)),
            }
        }
        match reference {
            Some(reference) => Ok(FailoverSigner { regions, reference, backoff: self.backoff }),
            None => Err(first_error.unwrap_or_else(|| Error::Config("no region answered".into()))),
        }
    }
}

impl Reference {
    fn check(&self, region: &str, signer: &KmsSigner) -> Result<()> {
        let key = signer.key();
        if key.key.key_id != self.key_id || signer.public_key() != &self.public_key || signer.algorithm() != self.alg {
            return Err(Error::Refused(format!(
                "kms key {} in {region} is not a replica of key {} in {}: it has {}",
                key.key.arn,
                self.key_id,
                self.region,
                if key.key.key_id == self.key_id { "another public key or algorithm" } else { "another key id" }
            )));
        }
        Ok(())
    }
}

impl Region {
    fn mark_down(&self, backoff: Duration) {
        let mut health = self.health.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        health.down_until = Some(Instant::now() + backoff);
        health.probing = false;
    }

    fn mark_up(&self) -> bool {
        let mut health = self.health.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let was_down = health.down_until.take().is_some();
        health.probing = false;
        was_down
    }

    /// Whether a call may use this region now: it is healthy, or its back-off is over and no
    /// other call is probing it (this one becomes the probe).
    fn admit(&self) -> bool {
        let mut health = self.health.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match health.down_until {
            None => true,
            Some(until) if Instant::now() >= until && !health.probing => {
                health.probing = true;
                true
            }
            Some(_) => false,
        }
    }
}

impl FailoverSigner {
    /// A builder for a signer of `key` (an alias, `mrk-` key id or key ARN; an ARN is taken
    /// to each client's region) through `clients`, one per region, the preferred first.
    pub fn builder(clients: Vec<KmsClient>, key: impl Into<String>) -> FailoverSignerBuilder {
        FailoverSignerBuilder { clients, key: key.into(), alg: None, backoff: DEFAULT_BACKOFF }
    }

    /// The regions, in order of preference.
    pub fn regions(&self) -> impl Iterator<Item = &str> {
        self.regions.iter().map(|r| r.name.as_str())
    }

    /// Each region, in order of preference, and whether it is in use: `false` while it is
    /// passed over after an outage (until a call to it succeeds again).
    pub fn region_health(&self) -> impl Iterator<Item = (&str, bool)> {
        self.regions.iter().map(|r| {
            let health = r.health.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            (r.name.as_str(), health.down_until.is_none())
        })
    }

    /// When the key was created, as the preferred region that answered describes it.
    #[must_use]
    pub fn created(&self) -> Option<std::time::SystemTime> {
        let region = self.regions.iter().find(|r| r.name == self.reference.region);
        region.and_then(|r| r.signer.get()).and_then(|s| s.key().key.created)
    }

    /// The key id shared by every region (`mrk-...` for a multi-Region key).
    #[must_use]
    pub fn key_id(&self) -> &str {
        &self.reference.key_id
    }

    /// The key ARN in the preferred region that answered when the signer was built.
    #[must_use]
    pub fn arn(&self) -> String {
        let region = self.regions.iter().find(|r| r.name == self.reference.region);
        region.and_then(|r| r.signer.get()).map(|s| s.key().key.arn.clone()).unwrap_or_default()
    }

    async fn signer_in<'a>(&self, region: &'a Region) -> Result<&'a KmsSigner> {
        region
            .signer
            .get_or_try_init(|| async {
                let signer =
                    KmsSigner::builder(&region.kms, region.key.clone()).algorithm(self.reference.alg).build().await?;
                self.reference.check(&region.name, &signer)?;
                Ok(signer)
            })
            .await
    }

    async fn sign_input(&self, message: &[u8]) -> Result<Vec<u8>> {
        let mut last = None;
        let mut tried = false;
        // A region is admitted only as it is reached: one passed over because an earlier
        // region answered is not left marked as probing.
        for region in &self.regions {
            if !region.admit() {
                continue;
            }
            tried = true;
            match self.sign_in(region, message).await {
                Err(e) if e.is_outage() => last = Some(e),
                done => return done,
            }
        }
        if !tried {
            // Every region is set aside: try them all in order rather than fail untried.
            for region in &self.regions {
                match self.sign_in(region, message).await {
                    Err(e) if e.is_outage() => last = Some(e),
                    done => return done,
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::Config("no region to sign in".into())))
    }

    /// Signs in `region`, and records what that says about the region.
    async fn sign_in(&self, region: &Region, message: &[u8]) -> Result<Vec<u8>> {
        let signed = match self.signer_in(region).await {
            Ok(signer) => signer.sign_message(message).await,
            Err(e) => Err(e),
        };
        match signed {
            Ok(signature) => {
                if region.mark_up() {
                    tracing::info!(region = region.name, "kms answers again in this region; signing there");
                }
                Ok(signature)
            }
            Err(e) if e.is_outage() => {
                tracing::warn!(
                    region = region.name,
                    error = %e,
                    backoff = ?self.backoff,
                    "kms is unavailable in this region; signing in the next one"
                );
                region.mark_down(self.backoff);
                Err(e)
            }
            Err(e) => {
                // The region answered: it is up, whatever the answer.
                region.mark_up();
                Err(in_region_error(&region.name, e))
            }
        }
    }
}

impl Signer for FailoverSigner {
    fn algorithm(&self) -> Algorithm {
        self.reference.alg
    }

    fn public_key(&self) -> &PublicKey {
        &self.reference.public_key
    }

    fn sign_message<'a>(&'a self, message: &'a [u8]) -> SignatureFuture<'a> {
        Box::pin(self.sign_input(message))
    }

    fn max_token_ttl(&self) -> Option<Duration> {
        self.reference.max_token_ttl
    }
}

/// `key` as it is named in `region`: a key ARN names its region; aliases and key ids do not.
fn in_region(key: &str, region: &str) -> String {
    let parts: Vec<&str> = key.splitn(6, ':').collect();
    if parts.len() == 6 && parts[0] == "arn" && parts[2] == "kms" {
        format!("{}:{}:{}:{region}:{}:{}", parts[0], parts[1], parts[2], parts[4], parts[5])
    } else {
        key.to_owned()
    }
}

/// A refusal in a fallback region says which region: the same alias names other keys there.
fn in_region_error(region: &str, e: Error) -> Error {
    match e {
        Error::Refused(_) => e,
        Error::KeyNotFound(key) => Error::KeyNotFound(format!("{key} (in {region})")),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_move_to_the_region_and_names_stay() {
        assert_eq!(
            in_region("arn:aws:kms:eu-west-1:111122223333:key/mrk-1234", "eu-central-1"),
            "arn:aws:kms:eu-central-1:111122223333:key/mrk-1234"
        );
        assert_eq!(in_region("alias/jwt", "eu-central-1"), "alias/jwt");
        assert_eq!(in_region("mrk-1234", "eu-central-1"), "mrk-1234");
    }
}
