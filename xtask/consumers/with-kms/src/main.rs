//! Uses what a signing service uses, up to the first call to AWS: options, a client, the signer
//! and the token cache types.

use kms_jwt::kms::{KmsClient, KmsOptions, KmsSigner};
use kms_jwt::{JwtSigner, TokenCache};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let options = KmsOptions::endpoint("http://127.0.0.1:9", "us-east-1");
    let config = options.load().await.expect("an explicit region and endpoint");
    let kms = KmsClient::from_conf(&config);
    let _builder = KmsSigner::builder(&kms, "jwt-signer");
    let _cache: Option<TokenCache<KmsSigner>> = None;
    let _signer: Option<JwtSigner<KmsSigner>> = None;
}
