//! kms-jwt's issuer as an AWS Lambda function. One binary, two modes (`KMS_JWT_MODE`):
//!
//! - `issuer`: `POST /token` and `GET /.well-known/*` behind a function URL with IAM auth (or
//!   API Gateway with IAM authorization), served by the same router and the same
//!   [`kms_jwt::issuer::Issuer`] as `kms-jwt serve`. The caller is the identity AWS verified
//!   and put in the invocation's request context ([`identity::IamInvocation`]): no proof, no
//!   STS call, no replay window. An invocation without that context is refused.
//! - `rotate`: an `EventBridge` Scheduler event (`{"kms_jwt":"rotate"}`) rotates the key set if
//!   its current key is old enough, as `kms-jwt keyset rotate --if-older-than` does (racing
//!   runs change it once), then publishes the documents to S3 ([`rotate`]).
//!
//! Configuration comes from environment variables ([`config::Config`]).

mod app;
pub mod config;
pub mod identity;
pub mod rotate;

pub use app::issuer_app;
