#!/usr/bin/env bash
# Writes what deploy/compose.yaml mounts, once, into deploy/.secrets: a signing key per service and the
# trust file, an NKey per NATS user and the broker's auth.conf (both by `grantline deploy secrets`),
# the key that encrypts issued credentials until they are retrieved, the HTTP witness's key and state
# (its verifier key listed in the trust file), and the directory where the gateway's development OIDC
# issuer keeps its key. An existing deploy/.secrets is left alone: delete it
# (and the compose volumes, whose events were signed with the old keys) to start afresh.
set -euo pipefail
cd "$(dirname "$0")/.."

out=deploy/.secrets
# The containers run as this user and must read their own files.
nonroot=65532

if [ -e "$out/trust.json" ]; then
  echo "secrets: $out exists, kept"
  exit 0
fi
[ -x bin/grantline ] || { echo "missing bin/grantline: run make binaries first" >&2; exit 1; }
witness_key="$(bin/grantline witness init --name grantline-compose-witness --state "$out/witness" | tail -1)"
bin/grantline deploy secrets --out "$out" --integrations examples/integrations.yaml --witness "$witness_key"
mkdir -p "$out/dev"
umask 077
printf 'GRANTLINE_CREDENTIAL_KEY=%s\n' "$(head -c 32 /dev/urandom | base64)" >"$out/credential.env"
if [ "$(id -u)" -eq 0 ]; then
  chown -R "$nonroot:$nonroot" "$out"
else
  # Without root the files cannot be given to the containers' user; let it read them instead. These are
  # development secrets on a development machine.
  chmod -R a+rX "$out"
  chmod a+rwx "$out/dev" "$out/witness"
fi
echo "secrets: written to $out"
