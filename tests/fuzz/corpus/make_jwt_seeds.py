#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_jwt with PyJWT (python3-jwt): one token per algorithm
family, an HS256 token with the fuzz target's secret, a JWKS document and some JSON. The first
byte of each seed picks the target's mode (0 token, 1 JWKS, 2 base64url/JSON).
    /usr/bin/python3 tests/fuzz/corpus/make_jwt_seeds.py"""

import json
import os

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "jwt")
CLAIMS = {"sub": "dev1", "exp": 1700003600, "iat": 1700000000, "iss": "i", "aud": "a",
          "roles": ["device", "x"]}


def write(name, mode, data):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(bytes([mode]) + (data.encode() if isinstance(data, str) else data))


write("hs256", 0, jwt.encode(CLAIMS, "fuzz-secret-0123456789abcdef0123", algorithm="HS256"))
write("hs256_short", 0, jwt.encode(CLAIMS, "k", algorithm="HS256"))
write("rs256", 0, jwt.encode(CLAIMS, rsa.generate_private_key(65537, 2048), algorithm="RS256",
                             headers={"kid": "r1"}))
write("es256", 0, jwt.encode(CLAIMS, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256"))
write("eddsa", 0, jwt.encode(CLAIMS, ed25519.Ed25519PrivateKey.generate(), algorithm="EdDSA"))
write("none", 0, "eyJhbGciOiJub25lIn0.e30.")
key = ec.generate_private_key(ec.SECP256R1()).public_key()
jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key))
jwk.update(kid="e1", use="sig", alg="ES256")
rkey = rsa.generate_private_key(65537, 2048).public_key()
rjwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rkey))
rjwk.update(kid="r1")
write("jwks", 1, json.dumps({"keys": [jwk, rjwk, {"kty": "oct", "k": "AAAA"}]}))
write("json_dup", 2, '{"a":1,"a":2}')
write("b64", 2, "eyJhbGciOiJFUzI1NiJ9")
