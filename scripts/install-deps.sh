#!/usr/bin/env bash
# Installs what Grantline's tests, `grantline dev` and `make images` need and a fresh Debian machine may
# lack: the PostgreSQL server binaries (initdb, pg_ctl), the CA roots and time-zone database the
# images carry, and Chromium with a font for the console's browser tests (cmd/grantline, chromedp).
# Nothing is started here; the tests start their own throwaway cluster and browser. Safe to run again.
set -euo pipefail

have_postgres() {
  [ -n "${GRANTLINE_PG_BINDIR:-}" ] && [ -x "$GRANTLINE_PG_BINDIR/initdb" ] && return 0
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

missing=()
have_postgres || missing+=(postgresql)
[ -e /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
[ -e /usr/share/zoneinfo/UTC ] || missing+=(tzdata)
command -v chromium >/dev/null || missing+=(chromium)
# Without a font Chromium draws every letter of the console's screenshots as a box.
[ -d /usr/share/fonts/truetype/dejavu ] || missing+=(fonts-dejavu-core)

if [ ${#missing[@]} -eq 0 ]; then
  echo "PostgreSQL server binaries, CA roots, time-zone database, Chromium and a font: present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing: ${missing[*]}; install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "Installing from Debian's packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
have_postgres
command -v chromium >/dev/null
