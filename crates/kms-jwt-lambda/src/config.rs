//! The function's configuration, from its environment variables.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use kms_jwt::kms::{KmsClient, KmsOptions};
use kms_jwt::publish::S3Target;

/// What the function does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `POST /token` and the documents (`KMS_JWT_MODE=issuer`, the default).
    Issuer,
    /// The scheduled rotation and publication (`KMS_JWT_MODE=rotate`).
    Rotate,
}

/// Where the token policy comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySource {
    /// The TOML itself (`KMS_JWT_TOKEN_POLICY`).
    Inline(String),
    /// An S3 object holding it (`KMS_JWT_TOKEN_POLICY_S3=s3://BUCKET/KEY`), read at start-up.
    S3 {
        /// The bucket.
        bucket: String,
        /// The object key.
        key: String,
    },
}

/// Everything the function reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// What the function does.
    pub mode: Mode,
    /// The key set (`KMS_JWT_KEY`): `NAME` or `alias/NAME`.
    pub key: String,
    /// The issuer URL, the tokens' `iss` (`KMS_JWT_ISSUER`).
    pub issuer: String,
    /// Regions to sign in when the function's own cannot (`KMS_JWT_FALLBACK_REGIONS`, comma-separated).
    pub fallback_regions: Vec<String>,
    /// The token policy (issuer mode).
    pub policy: Option<PolicySource>,
    /// Where the rotation publishes the documents (`KMS_JWT_PUBLISH_TO`, rotate mode).
    pub publish_to: Option<S3Target>,
    /// The documents' cache lifetime, in seconds (`KMS_JWT_MAX_AGE`, default 300).
    pub max_age: u64,
    /// Rotate only when the current key is at least this old (`KMS_JWT_ROTATE_IF_OLDER_THAN`,
    /// such as `90d`; rotate mode).
    pub rotate_if_older_than: Option<Duration>,
    /// Requests per access key and tokens per principal per minute, per container
    /// (`KMS_JWT_RATE_LIMIT`, default 60, as `serve --rate-limit`).
    pub rate_limit: u32,
}

impl Config {
    /// Reads the configuration through `var` (the environment, or a test's map); empty values
    /// count as unset.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Config> {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let mode = match var("KMS_JWT_MODE").as_deref() {
            None | Some("issuer") => Mode::Issuer,
            Some("rotate") => Mode::Rotate,
            Some(other) => bail!("KMS_JWT_MODE is {other:?}: expected issuer or rotate"),
        };
        let key = var("KMS_JWT_KEY").context("KMS_JWT_KEY (the key set) is not set")?;
        let issuer = var("KMS_JWT_ISSUER").context("KMS_JWT_ISSUER (the issuer URL) is not set")?;
        let policy = match (var("KMS_JWT_TOKEN_POLICY"), var("KMS_JWT_TOKEN_POLICY_S3")) {
            (Some(_), Some(_)) => bail!("KMS_JWT_TOKEN_POLICY and KMS_JWT_TOKEN_POLICY_S3 are both set: set one"),
            (Some(text), None) => Some(PolicySource::Inline(text)),
            (None, Some(url)) => {
                let target: S3Target = url.parse()?;
                if target.prefix.is_empty() {
                    bail!("KMS_JWT_TOKEN_POLICY_S3 {url:?} names no object: expected s3://BUCKET/KEY");
                }
                Some(PolicySource::S3 { bucket: target.bucket, key: target.prefix })
            }
            (None, None) => None,
        };
        if mode == Mode::Issuer && policy.is_none() {
            bail!("the issuer needs a token policy: set KMS_JWT_TOKEN_POLICY (TOML) or KMS_JWT_TOKEN_POLICY_S3");
        }
        let publish_to = var("KMS_JWT_PUBLISH_TO").map(|url| url.parse::<S3Target>()).transpose()?;
        if mode == Mode::Rotate && publish_to.is_none() {
            bail!("the rotation publishes the documents: set KMS_JWT_PUBLISH_TO=s3://BUCKET[/PREFIX]");
        }
        let max_age = match var("KMS_JWT_MAX_AGE") {
            None => 300,
            Some(secs) => secs.parse().ok().filter(|s| (1..=86_400).contains(s)).with_context(|| {
                format!("KMS_JWT_MAX_AGE is {secs:?}: expected a number of seconds from 1 to 86400")
            })?,
        };
        let rate_limit = match var("KMS_JWT_RATE_LIMIT") {
            None => 60,
            Some(n) => n.parse().ok().filter(|n| *n > 0).with_context(|| {
                format!("KMS_JWT_RATE_LIMIT is {n:?}: expected a number of requests a minute, at least 1")
            })?,
        };
        let rotate_if_older_than = var("KMS_JWT_ROTATE_IF_OLDER_THAN")
            .map(|d| humantime::parse_duration(&d).with_context(|| format!("KMS_JWT_ROTATE_IF_OLDER_THAN is {d:?}")))
            .transpose()?;
        let fallback_regions = var("KMS_JWT_FALLBACK_REGIONS")
            .map(|r| r.split(',').map(str::trim).filter(|r| !r.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default();
        Ok(Config {
            mode,
            key,
            issuer,
            fallback_regions,
            policy,
            publish_to,
            max_age,
            rotate_if_older_than,
            rate_limit,
        })
    }

    /// Reads the configuration from the process's environment.
    pub fn from_env() -> Result<Config> {
        Config::from_vars(|name| std::env::var(name).ok())
    }

    /// A KMS client for the function's region, then one per fallback region.
    pub async fn kms(&self, opts: &KmsOptions) -> Result<Vec<KmsClient>> {
        let primary = opts.connect().await?;
        let mut clients = vec![primary.clone()];
        clients.extend(self.fallback_regions.iter().map(|region| primary.in_region(region)));
        Ok(clients)
    }

    /// The token policy's TOML: the variable's, or the S3 object's.
    pub async fn policy_text(&self, opts: &KmsOptions) -> Result<String> {
        match &self.policy {
            None => bail!("no token policy is configured"),
            Some(PolicySource::Inline(text)) => Ok(text.clone()),
            Some(PolicySource::S3 { bucket, key }) => {
                let s3 = kms_jwt::publish::s3_client(&opts.load().await?);
                let object = s3
                    .get_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .with_context(|| format!("cannot read the token policy s3://{bucket}/{key}"))?;
                let bytes = object
                    .body
                    .collect()
                    .await
                    .with_context(|| format!("cannot read the token policy s3://{bucket}/{key}"))?
                    .into_bytes();
                String::from_utf8(bytes.to_vec()).with_context(|| format!("s3://{bucket}/{key} is not UTF-8 text"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Config::from_vars(|name| vars.get(name).cloned())
    }

    const BASE: [(&str, &str); 2] = [("KMS_JWT_KEY", "jwt-signer"), ("KMS_JWT_ISSUER", "https://issuer.example")];

    #[test]
    fn the_issuer_needs_a_policy_and_the_rotation_a_bucket() {
        let err = config(&BASE).unwrap_err().to_string();
        assert!(err.starts_with("the issuer needs a token policy"), "{err}");
        let issuer = config(&[BASE[0], BASE[1], ("KMS_JWT_TOKEN_POLICY", "[[rule]]")]).unwrap();
        assert_eq!((issuer.mode, issuer.max_age), (Mode::Issuer, 300));
        let err = config(&[BASE[0], BASE[1], ("KMS_JWT_MODE", "rotate")]).unwrap_err().to_string();
        assert!(err.starts_with("the rotation publishes the documents"), "{err}");
        let rotate = config(&[
            BASE[0],
            BASE[1],
            ("KMS_JWT_MODE", "rotate"),
            ("KMS_JWT_PUBLISH_TO", "s3://jwt-keys/prod"),
            ("KMS_JWT_ROTATE_IF_OLDER_THAN", "90d"),
            ("KMS_JWT_FALLBACK_REGIONS", "eu-west-1, eu-central-1"),
        ])
        .unwrap();
        assert_eq!(rotate.publish_to.unwrap().to_string(), "s3://jwt-keys/prod");
        assert_eq!(rotate.rotate_if_older_than, Some(Duration::from_secs(90 * 86_400)));
        assert_eq!(rotate.fallback_regions, ["eu-west-1", "eu-central-1"]);
    }

    #[test]
    fn bad_values_are_one_clear_error() {
        let with = |extra: (&str, &str)| config(&[BASE[0], BASE[1], ("KMS_JWT_TOKEN_POLICY", "x"), extra]);
        assert_eq!(
            with(("KMS_JWT_MODE", "serve")).unwrap_err().to_string(),
            "KMS_JWT_MODE is \"serve\": expected issuer or rotate"
        );
        assert!(with(("KMS_JWT_MAX_AGE", "0")).unwrap_err().to_string().starts_with("KMS_JWT_MAX_AGE is \"0\""));
        assert!(with(("KMS_JWT_RATE_LIMIT", "0")).unwrap_err().to_string().starts_with("KMS_JWT_RATE_LIMIT is \"0\""));
        assert!(with(("KMS_JWT_TOKEN_POLICY_S3", "s3://b/k")).unwrap_err().to_string().contains("both set"));
        let err = config(&[BASE[0], BASE[1], ("KMS_JWT_TOKEN_POLICY_S3", "s3://bucket")]).unwrap_err().to_string();
        assert!(err.contains("names no object"), "{err}");
        assert!(config(&[BASE[1]]).unwrap_err().to_string().starts_with("KMS_JWT_KEY"));
    }
}
