#!/usr/bin/env bash
# vault-tool.sh — build the HashiCorp Vault server as a Go tool into the
# project-local, gitignored .tools/bin/vault, once, and reuse it afterwards.
#
# The integration tests of the credentials/vault provider start this binary as
# `vault server -dev` on 127.0.0.1. The module in tools/vault pins Vault with a
# `tool` directive plus the two replace lines Vault's own go.mod carries (a
# plain `go install` ignores replaces, which is why this is a module).
#
# Idempotent: if .tools/bin/vault exists and reports the pinned version, it
# does nothing. A clean build takes ~10+ minutes and ~6 GB of memory, so it runs
# niced and with limited parallelism (VAULT_BUILD_P, default 1).
set -euo pipefail

VAULT_VERSION=v1.21.0
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOLS_DIR=${TOOLS_DIR:-$ROOT/.tools}
BIN=$TOOLS_DIR/bin/vault

log() { printf 'vault-tool: %s\n' "$*" >&2; }

if [ -x "$BIN" ] && "$BIN" version 2>/dev/null | grep -q "^Vault ${VAULT_VERSION}\b"; then
  log "vault ${VAULT_VERSION} already built at $BIN"
  exit 0
fi

mkdir -p "$TOOLS_DIR/bin"
cd "$ROOT/tools/vault"
log "building vault ${VAULT_VERSION} into $BIN (slow: ~10+ min, ~6 GB RAM)"
tmp="$BIN.tmp.$$"
trap 'rm -f "$tmp"' EXIT
GOFLAGS="-mod=mod -buildvcs=false" nice -n "${VAULT_BUILD_NICE:-19}" \
  go build -p "${VAULT_BUILD_P:-1}" -trimpath -o "$tmp" github.com/hashicorp/vault
mv "$tmp" "$BIN"
trap - EXIT
"$BIN" version >&2
