#!/usr/bin/env bash
# Development certificates for the compose demo (readable by the container's moat user).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/../../tests/certs/gen_certs.sh" "$here/secrets"
chmod 0644 "$here"/secrets/*
