#!/usr/bin/env bash
# Generates Moat's development / test PKI into OUTDIR (EC P-256, ~1 s).
#
#   usage: gen_certs.sh [--force] OUTDIR
#
# Idempotent: when OUTDIR already holds a complete, still-valid set, nothing is regenerated
# (a running demo keeps its CA); --force regenerates everything. Prints nothing on success;
# on failure prints the openssl output and exits non-zero.
#
# Layout (every client NAME has NAME.pem and NAME.key):
#   ca.pem ca.key                 development CA ("Moat Dev CA")
#   server.pem server.key         CN=localhost, SAN DNS:localhost IP:127.0.0.1 IP:::1, serverAuth
#   server-expiring.pem/.key      like server.pem but expires in 10 days (audit / expiry metric)
#   device1                       CN=device1, SAN DNS:device1.devices.example,
#                                 URI:spiffe://moat/device1, email:device1@example.com
#   device2                       CN=device2 (no SAN)
#   operator1                     CN=ops-console
#   expired                       CN=expired1, validity entirely in the past
#   revoked                       CN=revoked1, listed in ca.crl
#   noclientauth                  CN=noclientauth1, EKU serverAuth only (wrong purpose)
#   rogue                         CN=device1 signed by rogue-ca.pem (not trusted): spoofing
#   intermediate.pem/.key         intermediate CA signed by ca.pem
#   device3                       CN=device3 signed by the intermediate;
#                                 device3-chain.pem = device3 + intermediate (leaf first)
#   ca.crl                        CRL of ca.pem listing revoked.pem
#   ca-empty.crl                  CRL of ca.pem listing nothing
#   ca-stale.crl                  CRL of ca.pem whose nextUpdate is in the past
#   intermediate.crl              empty CRL of the intermediate
#   ca-bundle.crl                 ca.crl + intermediate.crl (CRL_CHECK needs one per issuer)
set -euo pipefail

force=0
if [[ "${1:-}" == "--force" ]]; then
    force=1
    shift
fi
if [[ $# -ne 1 ]]; then
    echo "usage: $0 [--force] OUTDIR" >&2
    exit 2
fi
out=$1
mkdir -p "$out"
out=$(cd "$out" && pwd)

clients=(device1 device2 operator1 expired revoked noclientauth rogue device3)
expected=(ca.pem ca.key server.pem server.key server-expiring.pem server-expiring.key
    rogue-ca.pem rogue-ca.key intermediate.pem intermediate.key device3-chain.pem
    ca.crl ca-empty.crl ca-stale.crl intermediate.crl ca-bundle.crl)
for c in "${clients[@]}"; do expected+=("$c.pem" "$c.key"); done

complete() {
    local f
    for f in "${expected[@]}"; do [[ -s "$out/$f" ]] || return 1; done
    # Regenerate when the server certificate is within a day of expiry, or the CRL is stale.
    openssl x509 -in "$out/server.pem" -noout -checkend 86400 >/dev/null 2>&1 || return 1
    local next
    next=$(openssl crl -in "$out/ca.crl" -noout -nextupdate 2>/dev/null) || return 1
    [[ $(date -u -d "${next#nextUpdate=}" +%s) -gt $(( $(date -u +%s) + 86400 )) ]]
}
if [[ $force -eq 0 ]] && complete; then
    exit 0
fi

# Build in a private staging directory, then move into place: a half-written set is never
# visible, and concurrent runs on different OUTDIRs do not interfere.
work=$(mktemp -d "$out/.gen.XXXXXX")
log=$work/openssl.log
trap 'rc=$?; if [[ $rc -ne 0 ]]; then cat "$log" >&2; fi; rm -rf "$work"' EXIT
cd "$work"

cat >openssl.cnf <<'CNF'
[ req ]
distinguished_name = dn
prompt             = no
[ dn ]
CN = unused

[ ca ]
default_ca = dev_ca
[ dev_ca ]
dir              = .
database         = ./index.txt
new_certs_dir    = ./newcerts
serial           = ./serial
crlnumber        = ./crlnumber
certificate      = ./ca.pem
private_key      = ./ca.key
default_md       = sha256
default_crl_days = 3650
policy           = policy_any
unique_subject   = no
copy_extensions  = none
[ policy_any ]
organizationName = optional
commonName       = supplied

[ v3_ca ]
basicConstraints       = critical, CA:true
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
[ v3_intermediate ]
basicConstraints       = critical, CA:true, pathlen:0
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
[ server_ext ]
basicConstraints       = critical, CA:false
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectAltName         = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
[ client_ext ]
basicConstraints       = critical, CA:false
keyUsage               = critical, digitalSignature
extendedKeyUsage       = clientAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
[ device1_ext ]
basicConstraints       = critical, CA:false
keyUsage               = critical, digitalSignature
extendedKeyUsage       = clientAuth
subjectAltName         = DNS:device1.devices.example, URI:spiffe://moat/device1, email:device1@example.com
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
[ noclientauth_ext ]
basicConstraints       = critical, CA:false
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
[ crl_ext ]
authorityKeyIdentifier = keyid:always
CNF

export OPENSSL_CONF=$work/openssl.cnf
keyopts=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)

# self_signed NAME CN EXT DAYS
self_signed() {
    openssl req -x509 -new "${keyopts[@]}" -config openssl.cnf -extensions "$3" \
        -subj "/O=Moat/CN=$2" -days "$4" -keyout "$1.key" -out "$1.pem" >>"$log" 2>&1
}
# issue NAME CN EXT DAYS ISSUER  (key + certificate signed by ISSUER.pem/ISSUER.key)
issue() {
    openssl req -x509 -new "${keyopts[@]}" -config openssl.cnf -extensions "$3" \
        -subj "/O=Moat/CN=$2" -days "$4" -CA "$5.pem" -CAkey "$5.key" \
        -keyout "$1.key" -out "$1.pem" >>"$log" 2>&1
}

self_signed ca "Moat Dev CA" v3_ca 3650
self_signed rogue-ca "Moat Rogue CA" v3_ca 3650
issue intermediate "Moat Dev Intermediate CA" v3_intermediate 3650 ca

issue server localhost server_ext 825 ca
issue server-expiring localhost server_ext 10 ca
issue device1 device1 device1_ext 825 ca
issue device2 device2 client_ext 825 ca
issue operator1 ops-console client_ext 825 ca
issue revoked revoked1 client_ext 825 ca
issue noclientauth noclientauth1 noclientauth_ext 825 ca
issue rogue device1 client_ext 825 rogue-ca
issue device3 device3 client_ext 825 intermediate
cat device3.pem intermediate.pem >device3-chain.pem

mkdir newcerts
: >index.txt
echo 1000 >serial
echo 1000 >crlnumber

# Expired: `openssl ca` is the only OpenSSL 3.0 signer that takes explicit validity dates.
openssl req -new "${keyopts[@]}" -config openssl.cnf -subj "/O=Moat/CN=expired1" \
    -keyout expired.key -out expired.csr >>"$log" 2>&1
openssl ca -batch -config openssl.cnf -extensions client_ext -notext \
    -startdate 20200101000000Z -enddate 20210101000000Z \
    -in expired.csr -out expired.pem >>"$log" 2>&1

openssl ca -config openssl.cnf -gencrl -crlexts crl_ext -out ca-empty.crl >>"$log" 2>&1
openssl ca -config openssl.cnf -gencrl -crlexts crl_ext \
    -crl_lastupdate 20200101000000Z -crl_nextupdate 20200201000000Z \
    -out ca-stale.crl >>"$log" 2>&1
openssl ca -config openssl.cnf -revoke revoked.pem -crl_reason keyCompromise >>"$log" 2>&1
openssl ca -config openssl.cnf -gencrl -crlexts crl_ext -out ca.crl >>"$log" 2>&1

# The intermediate's own (empty) CRL: a second CA database signed with its key.
mkdir int && (
    cd int
    mkdir newcerts
    : >index.txt
    echo 1000 >crlnumber
    openssl ca -config ../openssl.cnf -cert ../intermediate.pem -keyfile ../intermediate.key \
        -gencrl -crlexts crl_ext -out ../intermediate.crl >>"$log" 2>&1
)
cat ca.crl intermediate.crl >ca-bundle.crl

chmod 600 ./*.key
for f in "${expected[@]}"; do mv -f "$f" "$out/$f"; done
