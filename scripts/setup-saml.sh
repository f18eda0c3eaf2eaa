#!/usr/bin/env bash
# setup-saml.sh — install the SAML 2.0 IdP the SAML sign-in integration test
# (integration/saml_test.go) runs: Debian's simplesamlphp, served by PHP's
# built-in server (php-cli; php-xml for DOMDocument, php-mbstring).
# Idempotent: does nothing when they are already there. Needs root (apt);
# when not root it uses sudo if present.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
if [ -f /usr/share/simplesamlphp/www/saml2/idp/SSOService.php ] && command -v php >/dev/null \
  && php -r 'exit(class_exists("DOMDocument") && function_exists("mb_strlen") ? 0 : 1);'; then
  exit 0
fi
echo "setup-saml: installing simplesamlphp php-cli php-xml php-mbstring" >&2
$SUDO apt-get update -qq
# simplesamlphp pulls in apache2: keep the package scripts from starting it
# (the test serves the IdP itself, on loopback, with php -S).
policy=/usr/sbin/policy-rc.d
own_policy=""
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 755 "$policy"
  own_policy=1
fi
trap 'if [ -n "$own_policy" ]; then $SUDO rm -f "$policy"; fi' EXIT
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends simplesamlphp php-cli php-xml php-mbstring >/dev/null
