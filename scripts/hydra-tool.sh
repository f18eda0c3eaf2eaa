#!/usr/bin/env bash
# hydra-tool.sh — build ORY Hydra (the OAuth 2.0 / OpenID Connect server) as a
# Go tool into the project-local, gitignored .tools/bin/hydra, once, and reuse
# it afterwards.
#
# integration/hydra_test.go starts this binary as `hydra serve all --dev` with
# an in-memory SQLite store on 127.0.0.1 to test machine identities (OAuth 2.0
# client credentials) through the gateway. The module in tools/hydra pins
# Hydra with a `tool` directive plus the pop replace Hydra's own go.mod
# carries (a plain `go install` ignores replaces, which is why this is a
# module). The sqlite tags give the in-memory store ("dsn: memory").
#
# Idempotent: if .tools/bin/hydra exists and reports the pinned version, it
# does nothing. A clean build takes ~1.5 minutes, so it runs niced and with
# limited parallelism (HYDRA_BUILD_P, default 2).
set -euo pipefail

HYDRA_VERSION=v2.3.0
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOLS_DIR=${TOOLS_DIR:-$ROOT/.tools}
BIN=$TOOLS_DIR/bin/hydra

log() { printf 'hydra-tool: %s\n' "$*" >&2; }

if [ -x "$BIN" ] && "$BIN" version 2>/dev/null | grep -q "${HYDRA_VERSION}"; then
  log "hydra ${HYDRA_VERSION} already built at $BIN"
  exit 0
fi

mkdir -p "$TOOLS_DIR/bin"
cd "$ROOT/tools/hydra"
log "building hydra ${HYDRA_VERSION} into $BIN (~1.5 min)"
tmp="$BIN.tmp.$$"
trap 'rm -f "$tmp"' EXIT
GOFLAGS="-mod=mod -buildvcs=false" nice -n "${HYDRA_BUILD_NICE:-19}" \
  go build -p "${HYDRA_BUILD_P:-2}" -trimpath -tags sqlite,sqlite_omit_load_extension \
  -ldflags "-X github.com/ory/hydra/v2/driver/config.Version=${HYDRA_VERSION}" \
  -o "$tmp" github.com/ory/hydra/v2
mv "$tmp" "$BIN"
trap - EXIT
"$BIN" version >&2
