// Mints one JWT with `jose` (npm), an implementation independent of Moat and of PyJWT, for
// tests/integration/test_token.py. Reads {alg, key, secret_b64, kid, claims} as JSON on
// stdin (key: a PKCS#8 private key PEM; secret_b64: the HMAC secret) and prints the token.
import { SignJWT, importPKCS8 } from 'jose';

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', async () => {
  const req = JSON.parse(input);
  const key = req.alg.startsWith('HS')
    ? Buffer.from(req.secret_b64, 'base64')
    : await importPKCS8(req.key, req.alg);
  const header = { alg: req.alg, typ: 'JWT' };
  if (req.kid) header.kid = req.kid;
  const token = await new SignJWT(req.claims).setProtectedHeader(header).sign(key);
  process.stdout.write(token);
});
