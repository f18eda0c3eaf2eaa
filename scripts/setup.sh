#!/usr/bin/env bash
# setup.sh — install what pgwarden's dev stack and tests need, idempotently.
#
#   PostgreSQL 15 (server, contrib, client, pgbench) from the system's apt sources;
#   pgvector 0.8 built from Debian trixie's *source* package against PG 15.
#
# Each step checks first and does nothing when already done, so running it
# twice installs nothing twice. Needs root (apt, make install); when not root
# it uses sudo if present.
set -euo pipefail

PG_MAJOR=15
PG_BIN=/usr/lib/postgresql/${PG_MAJOR}/bin
PG_CONFIG=${PG_BIN}/pg_config
TOOLS_DIR=${TOOLS_DIR:-$(cd "$(dirname "$0")/.." && pwd)/.tools}
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi

log() { printf 'setup: %s\n' "$*" >&2; }

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then
    $SUDO apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# 1. PostgreSQL 15 server + contrib + client, and build tools for pgvector.
need=()
[ -x "${PG_BIN}/postgres" ] || need+=("postgresql-${PG_MAJOR}")
[ -x "${PG_BIN}/pgbench" ] || need+=("postgresql-contrib")
command -v psql >/dev/null || need+=("postgresql-client-${PG_MAJOR}")
[ -f "/usr/include/postgresql/${PG_MAJOR}/server/postgres.h" ] || need+=("postgresql-server-dev-${PG_MAJOR}")
command -v make >/dev/null || need+=(make)
command -v gcc >/dev/null || need+=(gcc)
command -v dpkg-source >/dev/null || need+=(dpkg-dev)
command -v haproxy >/dev/null || need+=(haproxy)   # the cluster test's load balancer (integration/cluster_test.go)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt_install "${need[@]}"
else
  log "PostgreSQL ${PG_MAJOR} already installed"
fi

# 2. pgvector 0.8 from Debian trixie's source package.
if [ -f "/usr/share/postgresql/${PG_MAJOR}/extension/vector.control" ] && \
   grep -q "default_version = '0.8" "/usr/share/postgresql/${PG_MAJOR}/extension/vector.control"; then
  log "pgvector already installed"
else
  log "building pgvector from trixie's source package"
  src_list=/etc/apt/sources.list.d/pgwarden-trixie-src.sources
  if [ ! -f "$src_list" ]; then
    # Derive a deb-src entry from the system's own sources: same mirror, trixie suite.
    uri="" key=""
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then   # deb822 (bookworm and later)
      uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
      key=$(awk '/^Signed-By:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
    elif [ -f /etc/apt/sources.list ]; then                  # one-line format
      uri=$(awk '$1 == "deb" { o = 0; for (i = 2; i <= NF; i++) { if ($i ~ /^\[/) o = 1; if (!o) { print $i; exit } if ($i ~ /\]$/) o = 0 } }' /etc/apt/sources.list)
    fi
    if [ -z "$uri" ]; then
      log "cannot find the Debian mirror in /etc/apt/sources.list(.d); add a deb-src line for trixie and rerun"
      exit 1
    fi
    # The trixie archive key ships in debian-archive-keyring on bookworm and later.
    [ -n "$key" ] || key=/usr/share/keyrings/debian-archive-keyring.gpg
    printf 'Types: deb-src\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: %s\n' "$uri" "$key" | $SUDO tee "$src_list" >/dev/null
    apt_updated=""
  fi
  [ -n "$apt_updated" ] || { $SUDO apt-get update -qq; apt_updated=1; }
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && apt-get source --download-only pgvector >/dev/null 2>&1 && dpkg-source -x --no-check ./*.dsc src >/dev/null)
  make -s -C "$work/src" PG_CONFIG="$PG_CONFIG" OPTFLAGS="" >/dev/null
  $SUDO make -s -C "$work/src" install PG_CONFIG="$PG_CONFIG" >/dev/null
  log "pgvector $(awk -F"'" '/default_version/ {print $2}' /usr/share/postgresql/${PG_MAJOR}/extension/vector.control) installed"
fi

# 3. Make the default cluster from the apt package not hold port 5432 (we run our own).
if command -v pg_lsclusters >/dev/null && pg_lsclusters -h 2>/dev/null | grep -q online; then
  log "note: a system PostgreSQL cluster is running; pgwarden uses its own private clusters on other ports"
fi
command -v go >/dev/null || log "note: Go 1.26 or newer is needed to build pgwarden and is not on PATH"
log "done"
