"""The boto3 baseline for `cargo xtask bench`: the same job as `kms-jwt sign --batch`.

Fetches the public key once, then reads one JSON claims object per line, builds the JOSE
header and payload, hashes locally, calls KMS Sign (DIGEST) with CONCURRENCY threads sharing
one client, checks that the answer names the key and algorithm asked for, verifies the DER
ECDSA signature with the public key (as kms-jwt does before any token leaves), converts it to
R||S, and prints one token per line in input order.
"""
import base64, hashlib, json, sys, time
from concurrent.futures import ThreadPoolExecutor

import boto3
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import load_der_public_key

endpoint, key_arn, kid, concurrency = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
kms = boto3.client("kms", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id="test", aws_secret_access_key="test")
public_key = load_der_public_key(kms.get_public_key(KeyId=key_arn)["PublicKey"])

def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

header = b64url(json.dumps({"alg": "ES256", "typ": "JWT", "kid": kid}, separators=(",", ":")).encode())

def sign(line):
    claims = json.loads(line)
    now = int(time.time())
    claims.setdefault("iat", now)
    claims.setdefault("exp", now + 900)
    signing_input = header + "." + b64url(json.dumps(claims, separators=(",", ":")).encode())
    digest = hashlib.sha256(signing_input.encode()).digest()
    answer = kms.sign(KeyId=key_arn, Message=digest, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256")
    if answer["KeyId"] != key_arn or answer["SigningAlgorithm"] != "ECDSA_SHA_256":
        raise SystemExit("Sign answered for another key or algorithm")
    der = answer["Signature"]
    public_key.verify(der, signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return signing_input + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

with ThreadPoolExecutor(concurrency) as pool:
    for token in pool.map(sign, sys.stdin.read().splitlines()):
        sys.stdout.write(token + "\n")
