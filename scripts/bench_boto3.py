"""The boto3 baseline for `cargo xtask bench`: the same job as `kms-jwt sign --batch`.

Reads one JSON claims object per line, builds the JOSE header and payload, hashes locally,
calls KMS Sign (DIGEST) with CONCURRENCY threads sharing one client, converts the DER ECDSA
signature to R||S, and prints one token per line in input order.
"""
import base64, hashlib, json, sys, time
from concurrent.futures import ThreadPoolExecutor

import boto3
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

endpoint, key_arn, kid, concurrency = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
kms = boto3.client("kms", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id="test", aws_secret_access_key="test")

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
    der = kms.sign(KeyId=key_arn, Message=digest, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    r, s = decode_dss_signature(der)
    return signing_input + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

with ThreadPoolExecutor(concurrency) as pool:
    for token in pool.map(sign, sys.stdin.read().splitlines()):
        sys.stdout.write(token + "\n")
