#!/usr/bin/env bash
# setup-browser.sh — install the headless browser the /ui/ integration test
# (integration/ui_test.go, chromedp) drives: Debian's chromium and
# chromium-driver. Idempotent: does nothing when chromium is already there.
# Needs root (apt); when not root it uses sudo if present.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
echo "setup-browser: installing chromium chromium-driver" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
