# Entry point of grantline/postgres (run by dash; the image has no other tools).
# On first start it creates the cluster with the password from POSTGRES_PASSWORD (scram-sha-256 for
# every network connection) and runs /initdb.sql if one is mounted; then it runs the server in the
# foreground, so the container stops with it.
set -eu
: "${POSTGRES_USER:=grantline}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=/tmp/pgpass
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb --pgdata="$PGDATA" --username="$POSTGRES_USER" --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --no-locale >/dev/null
  : >"$pwfile"
  printf 'host all all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
  if [ "$POSTGRES_DB" != postgres ]; then
    postgres --single -D "$PGDATA" postgres <<SQL >/dev/null
CREATE DATABASE "$POSTGRES_DB" OWNER "$POSTGRES_USER";
SQL
  fi
  if [ -r /initdb.sql ]; then
    postgres --single -j -D "$PGDATA" "$POSTGRES_DB" </initdb.sql >/dev/null
  fi
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/tmp
