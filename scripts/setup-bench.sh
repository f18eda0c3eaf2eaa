#!/usr/bin/env bash
# setup-bench.sh — install what `make bench` needs beyond `make setup`:
# pgbouncer (the comparison target) and pgbench (postgresql-contrib).
# Idempotent: installs nothing that is already there. Needs root or sudo.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
need=()
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || need+=(pgbouncer)
[ -x /usr/lib/postgresql/15/bin/pgbench ] || need+=(postgresql-contrib)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup-bench: installing ${need[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "setup-bench: pgbouncer and pgbench already installed" >&2
fi
