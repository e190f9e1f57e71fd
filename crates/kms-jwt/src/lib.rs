//! JWTs signed by AWS KMS keys that never leave KMS, and a strict verifier for them.
//!
//! - [`JwtSigner`] builds the JOSE header and claims, hashes locally and asks a [`Signer`]
//!   for the signature; [`kms::KmsSigner`] signs with KMS `Sign`, [`LocalSigner`] in memory.
//! - [`Verifier`] checks tokens against a JWKS or PEM with every key pinned to one algorithm.
//! - [`jwk`] converts between SPKI, PEM and JWK, computes RFC 7638 thumbprints and JWKS.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use kms_jwt::{Algorithm, Claims, JwtSigner, LocalSigner, Verifier, VerifyingKey};
//!
//! let signer = JwtSigner::new(LocalSigner::generate(Algorithm::ES256)?)?;
//! let token = signer.sign(&Claims::new().subject("alice").expires_at(4_102_444_800)).await?;
//! let verifier = Verifier::new(vec![VerifyingKey::from_jwk(&signer.jwk(), None)?]);
//! assert_eq!(verifier.verify(&token)?.get("sub").unwrap(), "alice");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

pub mod alg;
pub mod b64;
pub mod cache;
pub mod claims;
pub mod ecdsa;
mod error;
mod json;
pub mod jwk;
pub mod jws;
pub mod keyset;
pub mod kms;
pub mod publish;
pub mod signer;
pub mod verify;

pub use alg::Algorithm;
pub use cache::TokenCache;
pub use claims::Claims;
pub use error::{Error, Result, TokenError};
pub use jwk::{Jwk, Jwks, PublicKey};
pub use jws::{JwtSigner, KeyIdMode};
pub use signer::{LocalSigner, Signer};
pub use verify::{Verifier, VerifyingKey};
