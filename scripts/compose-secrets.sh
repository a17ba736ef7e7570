#!/usr/bin/env bash
# Writes what deploy/compose.yaml mounts, once, into deploy/.secrets: a signing key per service and the
# trust file, an NKey per NATS user and the broker's auth.conf (both by `grantline deploy secrets`),
# the key that encrypts issued credentials until they are retrieved, the HTTP witness's key and state
# (its verifier key listed in the trust file), the directory where the gateway's development OIDC
# issuer keeps its key, and the notifier's notifier.env for the secrets only their owners can give (a
# Slack app's, an SMTP relay's, each webhook receiver's), every line commented out. An existing
# deploy/.secrets is left alone (only a missing notifier.env is added): delete it (and the compose
# volumes, whose events were signed with the old keys) to start afresh.
set -euo pipefail
cd "$(dirname "$0")/.."

out=deploy/.secrets
# The containers run as this user and must read their own files.
nonroot=65532

# notifier_env writes the notifier's env file (read by docker-compose, not by the container): nothing
# to generate, only where each secret goes.
notifier_env() {
  (umask 077 && cat >"$out/notifier.env") <<'ENV'
# The notifier's secrets (services/notifier/notifierd/config.go), each from whoever issues it.
# Slack: the app's bot token tells people on Slack; its signing secret turns on approving from Slack,
# which also needs the identity provider to let the notifier's client exchange its credentials for a
# person's token (RFC 8693), with this client secret. The gateway's development issuer does not.
#GRANTLINE_SLACK_TOKEN=xoxb-…
#GRANTLINE_SLACK_SIGNING_SECRET=…
#GRANTLINE_NOTIFIER_CLIENT_SECRET=…
# A real SMTP relay instead of the mail sink (set GRANTLINE_SMTP_HOST and GRANTLINE_SMTP_PORT too).
#GRANTLINE_SMTP_USERNAME=…
#GRANTLINE_SMTP_PASSWORD=…
# The HMAC secret of each webhook of examples/notifications.yaml, name=secret, comma-separated.
#GRANTLINE_WEBHOOK_SECRETS=siem=…
ENV
}

if [ -e "$out/trust.json" ]; then
  [ -e "$out/notifier.env" ] || { notifier_env; echo "secrets: wrote $out/notifier.env"; }
  echo "secrets: $out exists, kept"
  exit 0
fi
[ -x bin/grantline ] || { echo "missing bin/grantline: run make binaries first" >&2; exit 1; }
witness_key="$(bin/grantline witness init --name grantline-compose-witness --state "$out/witness" | tail -1)"
bin/grantline deploy secrets --out "$out" --integrations examples/integrations.yaml --witness "$witness_key"
mkdir -p "$out/dev"
umask 077
printf 'GRANTLINE_CREDENTIAL_KEY=%s\n' "$(head -c 32 /dev/urandom | base64)" >"$out/credential.env"
notifier_env
if [ "$(id -u)" -eq 0 ]; then
  chown -R "$nonroot:$nonroot" "$out"
else
  # Without root the files cannot be given to the containers' user; let it read them instead. These are
  # development secrets on a development machine.
  chmod -R a+rX "$out"
  chmod a+rwx "$out/dev" "$out/witness"
fi
echo "secrets: written to $out"
