//! JWTs signed by AWS KMS keys that never leave KMS, and a strict verifier for them.
//!
//! - [`JwtSigner`] builds the JOSE header and claims, hashes locally and asks a [`Signer`]
//!   for the signature; `kms::KmsSigner` signs with KMS `Sign` (feature `kms`, on by
//!   default), [`LocalSigner`] in memory. Any of them fits behind an `Arc<dyn Signer>`.
//! - [`Verifier`] checks tokens against a JWKS or PEM with every key pinned to one algorithm.
//! - [`Jwk`], [`Jwks`] and [`PublicKey`] convert between SPKI, PEM and JWK and compute RFC 7638
//!   thumbprints.
//! - `keyset` provisions and rotates a key set behind three KMS aliases, in one region or as
//!   multi-Region keys in several (feature `kms`).
//! - `failover::FailoverSigner` signs with a multi-Region key in the first of several regions
//!   that answers (feature `kms`).
//! - `issuer` holds the token policy and the proof of an AWS identity that `kms-jwt serve`'s
//!   `POST /token` exchanges for a token (feature `kms`).
//!
//! With `default-features = false` the crate is the JOSE core and the verifier alone: no AWS
//! SDK is compiled, which is all a third party that only verifies tokens needs.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use kms_jwt::{Algorithm, Claims, JwtSigner, LocalSigner, Verifier, VerifyingKey};
//!
//! let signer = JwtSigner::new(LocalSigner::generate(Algorithm::ES256)?)?;
//! let token = signer.sign(&Claims::new().subject("alice").expires_at(4_102_444_800)).await?;
//! let verifier = Verifier::new(vec![VerifyingKey::from_jwk(&signer.jwk(), None)?]);
//! let claims = verifier.verify::<kms_jwt::Claims>(&token)?.claims;
//! assert_eq!(claims.get("sub").unwrap(), "alice");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! Typed claims go both ways: sign any `Serialize` type, and get a `Deserialize` type back
//! after every check has passed.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use kms_jwt::{Algorithm, JwtSigner, LocalSigner, Signer, Verifier, VerifyingKey};
//! use std::sync::Arc;
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Access {
//!     sub: String,
//!     exp: i64,
//!     scope: Vec<String>,
//! }
//!
//! // Any signer, chosen at run time: a local key here, a KMS key in production.
//! let signer: Arc<dyn Signer> = Arc::new(LocalSigner::generate(Algorithm::ES256)?);
//! let signer = JwtSigner::new(signer)?;
//! let token = signer.sign(&Access { sub: "alice".into(), exp: 4_102_444_800, scope: vec!["read".into()] }).await?;
//!
//! let verifier = Verifier::new(vec![VerifyingKey::from_jwk(&signer.jwk(), None)?]);
//! let verified = verifier.verify::<Access>(&token)?;
//! assert_eq!(verified.header["kid"], signer.kid());
//! assert_eq!(verified.claims.scope, ["read"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod alg;
#[cfg(feature = "axum")]
pub mod axum;
mod b64;
mod cache;
mod claims;
mod ecdsa;
mod error;
#[cfg(feature = "kms")]
pub mod failover;
#[cfg(feature = "http-client")]
mod http;
#[cfg(feature = "kms")]
pub mod issuer;
mod json;
mod jwk;
mod jws;
mod key;
#[cfg(feature = "kms")]
pub mod keyset;
#[cfg(feature = "kms")]
pub mod kms;
pub mod publish;
#[cfg(feature = "remote")]
pub mod remote;
mod signer;
mod verify;

/// The AWS SDK crates whose types are in this crate's API (`kms::KmsClient::from_conf` takes
/// an `aws_config::SdkConfig`, `kms::KmsClient::from_client` an `aws_sdk_kms::Client`):
/// re-exported so that a caller builds them with the very versions this crate was built with.
#[cfg(feature = "kms")]
pub use aws_config;
#[cfg(feature = "kms")]
pub use aws_sdk_kms;
/// The S3 client [`publish::publish_to_s3`] takes, re-exported for the same reason.
#[cfg(feature = "s3")]
pub use aws_sdk_s3;

pub use alg::{Algorithm, Curve, KeyFamily, MlDsaLevel, UnknownAlgorithm};
pub use cache::{CacheStats, MintedToken, TokenCache};
pub use claims::{Claims, now};
pub use error::{BoxError, Error, Result, TokenError};
pub use jwk::{Jwk, Jwks, MIN_RSA_BITS, PublicKey};
pub use jws::{JwtSigner, KeyIdMode, decode_unverified};
pub use key::VerifyingKey;
pub use signer::{LocalSigner, SignatureFuture, Signer};
pub use verify::{DEFAULT_LEEWAY_SECS, DEFAULT_MAX_TOKEN_LEN, Verified, Verifier};

/// Internals the fuzz targets and the tests reach (feature `fuzzing`): not part of the API,
/// no stability promised.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
#[allow(missing_docs)]
pub mod fuzzing {
    pub fn b64_encode(bytes: impl AsRef<[u8]>) -> String {
        crate::b64::encode(bytes)
    }

    #[must_use]
    pub fn b64_decode(text: impl AsRef<[u8]>) -> Option<Vec<u8>> {
        crate::b64::decode(text)
    }

    #[must_use]
    pub fn der_to_fixed(der: &[u8], scalar_len: usize) -> Option<Vec<u8>> {
        crate::ecdsa::der_to_fixed(der, scalar_len)
    }

    #[must_use]
    pub fn fixed_to_der(fixed: &[u8]) -> Option<Vec<u8>> {
        crate::ecdsa::fixed_to_der(fixed)
    }

    pub async fn sign_compact<S: crate::Signer>(signer: &S, header: &[u8], payload: &[u8]) -> crate::Result<String> {
        crate::jws::sign_compact(signer, header, payload).await
    }
}
