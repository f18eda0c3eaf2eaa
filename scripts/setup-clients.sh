#!/usr/bin/env bash
# setup-clients.sh — install the real clients the compatibility suite
# (integration/compat_*_test.go), the MCP TypeScript tests
# (integration/mcp_ts_test.go) and the example notebook drive, idempotently.
#
#   Debian packages: psycopg 3, psycopg2, SQLAlchemy, nbconvert + ipykernel
#   (used by /usr/bin/python3, Debian's interpreter — not whatever python3 is
#   first on PATH), psql/pgbench (installed by scripts/setup.sh).
#   npm packages: node-postgres (`pg`) and `pgvector`, pinned by the committed
#   integration/testdata/compat/node/package-lock.json, and the MCP TypeScript
#   SDK (`@modelcontextprotocol/sdk`, integration/mcp_ts_test.go), pinned by
#   integration/testdata/mcp/node/package-lock.json (npm ci).
#
# Each step checks first, so a second run installs nothing. Needs root (apt);
# when not root it uses sudo if present.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
NODE_DIRS=("${ROOT}/integration/testdata/compat/node" "${ROOT}/integration/testdata/mcp/node")
PY=/usr/bin/python3
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi

log() { printf 'setup-clients: %s\n' "$*" >&2; }

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# 1. Debian packages.
need=()
for p in python3 python3-psycopg python3-psycopg2 python3-sqlalchemy python3-nbformat \
         python3-nbclient python3-ipykernel jupyter-nbconvert nodejs npm; do
  case "$p" in
    nodejs) command -v node >/dev/null && continue ;;
    npm) command -v npm >/dev/null && continue ;;
  esac
  installed "$p" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  log "Debian client packages already installed"
fi

# The notebook kernel must be Debian's interpreter (it has psycopg).
if ! "$PY" -c 'import psycopg, psycopg2, sqlalchemy, nbconvert, ipykernel' 2>/dev/null; then
  log "error: ${PY} cannot import the client modules" 
  exit 1
fi

# 2. The npm projects, exactly as locked.
for dir in "${NODE_DIRS[@]}"; do
  if [ -f "${dir}/node_modules/.package-lock.json" ] && \
     cmp -s "${dir}/package-lock.json" "${dir}/.installed-lock.json" 2>/dev/null; then
    log "node packages already installed in ${dir#"$ROOT"/}"
  else
    log "installing node packages (npm ci) in ${dir#"$ROOT"/}"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    cp "${dir}/package-lock.json" "${dir}/.installed-lock.json"
  fi
done
