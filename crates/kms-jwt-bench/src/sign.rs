//! Signing: a bare aws-sdk-kms Sign loop, the SDK's own cost.

use anyhow::Result;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
use futures_util::StreamExt as _;

use crate::report;

/// Signs `count` SHA-256 digests with KMS Sign, `concurrency` at a time, with one SDK client;
/// prints how many were signed.
pub(crate) async fn sign_sdk(endpoint: String, key_arn: String, count: usize, concurrency: usize) -> Result<()> {
    let client = kms_jwt::kms::KmsOptions::endpoint(endpoint, "us-east-1").connect().await?.sdk().clone();
    let signed = futures_util::stream::iter(0..count)
        .map(|i| {
            let (client, key_arn) = (client.clone(), key_arn.clone());
            async move {
                let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, format!("{i}").as_bytes());
                client
                    .sign()
                    .key_id(key_arn)
                    .message(Blob::new(digest.as_ref()))
                    .message_type(MessageType::Digest)
                    .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
                    .send()
                    .await
                    .is_ok()
            }
        })
        .buffer_unordered(concurrency)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await;
    report::count(signed)
}
