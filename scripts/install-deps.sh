#!/usr/bin/env bash
# Installs what Grantline's tests and `grantline dev` need and a fresh Debian machine may lack: the
# PostgreSQL server binaries (initdb, pg_ctl). Nothing is started here; the tests start their own
# throwaway cluster. Safe to run again.
set -euo pipefail

have_postgres() {
  [ -n "${GRANTLINE_PG_BINDIR:-}" ] && [ -x "$GRANTLINE_PG_BINDIR/initdb" ] && return 0
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

if have_postgres; then
  echo "PostgreSQL server binaries: present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "PostgreSQL server binaries are missing; install them with: sudo apt-get install -y postgresql" >&2
  exit 1
fi
echo "Installing the PostgreSQL server binaries from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends postgresql >/dev/null
have_postgres
