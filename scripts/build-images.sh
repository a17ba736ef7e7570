#!/usr/bin/env bash
# Builds Grantline's container images from the static binaries in bin/ (make binaries), FROM scratch:
# nothing is pulled, so this works on a machine that reaches no registry.
#
#   grantline/<service>:TAG   intake policy approval fulfilment revoker query console notifier checkpointer
#   grantline/grantline:TAG   the CLI (stream provisioning, audit tools)
#   grantline/nats:TAG        nats-server built from its Go module
#   grantline/postgres:TAG    this machine's PostgreSQL 15 with the libraries it links, for compose
#
# Every image runs as a non-root user and carries the CA roots and the time-zone database. Usage:
#   scripts/build-images.sh [TAG]      (default: dev)
set -euo pipefail
cd "$(dirname "$0")/.."

tag="${1:-dev}"
revision="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
services=(intake policy approval fulfilment revoker query console notifier checkpointer)
# 65532 is the conventional "nonroot" user of distroless images; nothing on a host runs as it.
nonroot=65532

for f in /etc/ssl/certs/ca-certificates.crt /usr/share/zoneinfo/UTC; do
  [ -e "$f" ] || { echo "missing $f: install Debian's ca-certificates and tzdata (make deps)" >&2; exit 1; }
done
for b in grantline nats-server "${services[@]/#/grantline-}"; do
  [ -x "bin/$b" ] || { echo "missing bin/$b: run make binaries first" >&2; exit 1; }
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The root file system every image shares: CA roots, zoneinfo, and a passwd naming the user so that
# tools inside (and ps on the host) show a name rather than a bare number.
base="$work/base"
mkdir -p "$base/etc/ssl/certs" "$base/usr/share" "$base/tmp"
cp /etc/ssl/certs/ca-certificates.crt "$base/etc/ssl/certs/"
cp -r /usr/share/zoneinfo "$base/usr/share/zoneinfo"
printf 'root:x:0:0:root:/:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/:/sbin/nologin\n' $nonroot $nonroot >"$base/etc/passwd"
printf 'root:x:0:\nnonroot:x:%d:\n' $nonroot >"$base/etc/group"
chmod 1777 "$base/tmp"

# build IMAGE CONTEXT, quietly: the engine's legacy builder needs nothing pulled, and its notice that
# it is deprecated is noise here.
build() {
  docker build -q -t "$1" "$2" 2> >(grep -v -e 'legacy builder' -e buildx -e 'docs.docker.com/go/buildx' -e '^\s*$' >&2) >/dev/null
}

# image NAME BINARY [EXPOSE [DATADIR]]: one static binary as the entrypoint on the shared root file
# system, with DATADIR owned by the non-root user (a named volume mounted there starts with that owner).
image() {
  local name="$1" binary="$2" expose="${3:-}" datadir="${4:-}"
  local ctx="$work/$name"
  mkdir -p "$ctx/owned"
  cp -a "$base" "$ctx/rootfs"
  cp "bin/$binary" "$ctx/$binary"
  [ -n "$datadir" ] && mkdir -p "$ctx/owned$datadir"
  {
    echo "FROM scratch"
    echo "COPY rootfs/ /"
    [ -n "$datadir" ] && echo "COPY --chown=$nonroot:$nonroot owned/ /"
    echo "COPY $binary /$binary"
    echo "USER $nonroot:$nonroot"
    [ -n "$expose" ] && echo "EXPOSE $expose"
    echo "LABEL org.opencontainers.image.title=\"$name\" org.opencontainers.image.revision=\"$revision\""
    echo "ENTRYPOINT [\"/$binary\"]"
  } >"$ctx/Dockerfile"
  echo "==> grantline/$name:$tag"
  build "grantline/$name:$tag" "$ctx"
}

declare -A ports=([intake]=8081 [policy]=8082 [approval]=8083 [fulfilment]=8084 [revoker]=8085 [query]=8086 [console]=8087 [notifier]=8088 [checkpointer]=8089)
# The checkpointer writes its directory witness under this path when a volume is mounted there.
declare -A datadirs=([checkpointer]=/var/lib/grantline/witness)
for s in "${services[@]}"; do
  image "$s" "grantline-$s" "${ports[$s]}" "${datadirs[$s]:-}"
done
image grantline grantline
image nats nats-server "4222 6222 8222" /data/jetstream

# PostgreSQL is not a static binary: the image carries the server, initdb and the shared libraries
# they link (found with ldd), plus dash as /bin/sh, which initdb needs to run the bootstrap backend.
pg_bindir="$(dirname "$(compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -V | tail -1)")"
pg_version="$(basename "$(dirname "$pg_bindir")")"
ctx="$work/postgres"
mkdir -p "$ctx"
cp -a "$base" "$ctx/rootfs"
root="$ctx/rootfs"
mkdir -p "$root$pg_bindir" "$root/usr/share/postgresql" "$root/bin" "$root/var/lib/postgresql/data"
for b in postgres initdb pg_ctl pg_isready psql; do cp "$pg_bindir/$b" "$root$pg_bindir/"; done
# The server's loadable modules (text search, encodings, libpqwalreceiver), without the JIT, which
# would drag in LLVM.
pg_libdir="$(dirname "$pg_bindir")/lib"
mkdir -p "$root$pg_libdir"
find "$pg_libdir" -maxdepth 1 -name '*.so' ! -name 'llvmjit*' -exec cp {} "$root$pg_libdir/" \;
cp -r "/usr/share/postgresql/$pg_version" "$root/usr/share/postgresql/"
cp /bin/dash "$root/bin/sh"
for b in "$root$pg_bindir"/* "$root$pg_libdir"/*.so "$root/bin/sh"; do
  ldd "$b" | awk '/=>/ {print $3} /^\s*\/lib/ {print $1}'
done | sort -u | while read -r lib; do
  [ -e "$lib" ] || continue
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
# The dynamic loader itself, at the path the binaries name.
interp="$(readelf -l "$pg_bindir/postgres" | sed -n 's/.*interpreter: \(.*\)]/\1/p')"
mkdir -p "$root$(dirname "$interp")"
cp -L "$interp" "$root$interp"
printf 'postgres:x:999:999:postgres:/var/lib/postgresql:/bin/sh\n' >>"$root/etc/passwd"
printf 'postgres:x:999:\n' >>"$root/etc/group"
cp deploy/images/postgres-entrypoint.sh "$root/entrypoint.sh"
cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM scratch
COPY rootfs/ /
COPY --chown=999:999 rootfs/var/lib/postgresql /var/lib/postgresql
USER 999:999
ENV PATH=$pg_bindir:/bin PGDATA=/var/lib/postgresql/data
EXPOSE 5432
LABEL org.opencontainers.image.title="postgres" org.opencontainers.image.version="$pg_version"
ENTRYPOINT ["/bin/sh", "/entrypoint.sh"]
DOCKERFILE
echo "==> grantline/postgres:$tag (PostgreSQL $pg_version from this machine)"
build "grantline/postgres:$tag" "$ctx"

docker images --filter reference='grantline/*' --format '{{.Repository}}:{{.Tag}}\t{{.Size}}' | grep ":$tag" | sort
