//! `MiniStack`: the second KMS emulator, the one here that signs with Ed25519 keys (`LocalStack`
//! 4.14 refuses `ECC_NIST_EDWARDS25519`, its issue 13886). `scripts/ministack.sh` runs it.

use kms_jwt::kms::{KmsClient, KmsOptions};

/// The `MiniStack` endpoint from `KMS_JWT_TEST_MINISTACK_ENDPOINT`. A test that needs it fails,
/// loudly, without it.
pub fn ministack_endpoint() -> String {
    std::env::var("KMS_JWT_TEST_MINISTACK_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "this test needs MiniStack (KMS with Ed25519) and none is configured: run `cargo xtask ci`; or \
             `bash scripts/ministack.sh up` and export KMS_JWT_TEST_MINISTACK_ENDPOINT=http://127.0.0.1:4567"
        )
    })
}

/// Client options for `MiniStack` (its dummy credentials are `LocalStack`'s).
pub fn ministack_options() -> KmsOptions {
    KmsOptions::endpoint(ministack_endpoint(), "us-east-1")
}

/// A kms-jwt KMS client for `MiniStack`.
pub async fn ministack_kms() -> KmsClient {
    ministack_options().connect().await.expect("KMS client")
}
