#!/usr/bin/env bash
# helm-tool.sh — build the Helm 3 client as a Go tool into the project-local,
# gitignored .tools/bin/helm, once, and reuse it afterwards.
#
# The tests of deploy/ (deploy/deploy_test.go) run `helm lint` and
# `helm template` on the chart in deploy/helm/pgwarden, and
# scripts/render-manifest.sh renders deploy/kubernetes/pgwarden.yaml with it.
# Helm needs no cluster for either. The module in tools/helm pins Helm with a
# `tool` directive and a go.sum (Helm's own go.mod carries no replaces; the
# module keeps the dependency set fixed and checked like tools/hydra's).
#
# The ldflags give `helm version` the pinned version and make the built-in
# Kubernetes version (.Capabilities.KubeVersion, and what `helm lint` checks
# deprecated APIs against) match the client-go Helm is built with, as
# Helm's own Makefile does.
#
# Idempotent: if .tools/bin/helm exists and reports the pinned version, it
# does nothing. A clean build takes ~1.5 minutes and ~1 GB of memory on 2
# cores (measured: 88 s with an empty build cache), so it runs niced
# and with limited parallelism (HELM_BUILD_P, default 2).
set -euo pipefail

HELM_VERSION=v3.21.4
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOLS_DIR=${TOOLS_DIR:-$ROOT/.tools}
BIN=$TOOLS_DIR/bin/helm

log() { printf 'helm-tool: %s\n' "$*" >&2; }

if [ -x "$BIN" ] && "$BIN" version --template '{{.Version}}' 2>/dev/null | grep -qx "${HELM_VERSION}"; then
  log "helm ${HELM_VERSION} already built at $BIN"
  exit 0
fi

mkdir -p "$TOOLS_DIR/bin"
cd "$ROOT/tools/helm"
# client-go vX.Y.Z is Kubernetes 1.Y (Helm's Makefile: major = X + 1).
kver=$(GOFLAGS="-mod=mod" go list -f '{{.Version}}' -m k8s.io/client-go)
kver=${kver#v}
kmajor=$(( ${kver%%.*} + 1 ))
kminor=$(printf '%s' "$kver" | cut -d. -f2)
log "building helm ${HELM_VERSION} (Kubernetes ${kmajor}.${kminor}) into $BIN (~1.5 min)"
tmp="$BIN.tmp.$$"
trap 'rm -f "$tmp"' EXIT
GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0 nice -n "${HELM_BUILD_NICE:-19}" \
  go build -p "${HELM_BUILD_P:-2}" -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION} \
-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=${kmajor} -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=${kminor} \
-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=${kmajor} -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=${kminor}" \
  -o "$tmp" helm.sh/helm/v3/cmd/helm
mv "$tmp" "$BIN"
trap - EXIT
"$BIN" version >&2
