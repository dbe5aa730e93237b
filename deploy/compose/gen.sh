#!/usr/bin/env bash
# Development certificates for the compose demos (readable by the container's moat user),
# and the Redis password and cluster key of compose-replicas.yaml.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/../../tests/certs/gen_certs.sh" "$here/secrets"
chmod 0644 "$here"/secrets/*
# The Redis password the replicas and Redis share (cluster.password_file in moat-replicas.yaml).
[[ -s "$here/secrets/redis.pass" ]] || openssl rand -hex 24 >"$here/secrets/redis.pass"
chmod 0644 "$here/secrets/redis.pass"
# The fleet's cluster key (cluster.key_file in moat-replicas.yaml): signs events and records.
[[ -s "$here/secrets/cluster.key" ]] || openssl rand -hex 32 >"$here/secrets/cluster.key"
chmod 0644 "$here/secrets/cluster.key"
