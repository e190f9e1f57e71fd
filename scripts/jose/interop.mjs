// jose (npm) as an independent verifier and signer for kms-jwt's tests. Reads one JSON object
// on stdin and prints one on stdout:
//   {"verify": [{"token", "jwk", "alg"}], "sign": ["ML-DSA-44", ...]}
//   -> {"verified": [{"claims", "thumbprint"} | {"err"}], "signed": [{"alg", "token", "jwk"}]}
// Claims are checked for exp by jose; the thumbprint is jose's RFC 7638 / RFC 9964 one.
import * as jose from 'jose';

const input = JSON.parse(await new Promise((done) => {
  let text = '';
  process.stdin.on('data', (chunk) => { text += chunk; });
  process.stdin.on('end', () => done(text));
}));

const verified = [];
for (const { token, jwk, alg } of input.verify ?? []) {
  try {
    const key = await jose.importJWK(jwk, alg);
    const { payload } = await jose.jwtVerify(token, key, { algorithms: [alg] });
    verified.push({ claims: payload, thumbprint: await jose.calculateJwkThumbprint(jwk) });
  } catch (e) {
    verified.push({ err: `${e.code ?? e.name}: ${e.message}` });
  }
}

const signed = [];
for (const alg of input.sign ?? []) {
  const { publicKey, privateKey } = await jose.generateKeyPair(alg, { extractable: true });
  const jwk = await jose.exportJWK(publicKey);
  const kid = await jose.calculateJwkThumbprint(jwk);
  const token = await new jose.SignJWT({ sub: 'from-jose', iss: 'jose' })
    .setProtectedHeader({ alg, kid, typ: 'JWT' })
    .setExpirationTime('1h')
    .sign(privateKey);
  signed.push({ alg, token, jwk: { ...jwk, kid, alg } });
}

process.stdout.write(JSON.stringify({ verified, signed }));
