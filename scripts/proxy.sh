#!/usr/bin/env bash
# Install the reverse proxy of the production layout (deploy/, tests/deploy): Debian's nginx,
# if it is missing. The package is kept from starting a system-wide nginx on port 80 (a
# policy-rc.d for the length of the install): deploy/up.sh runs its own, on its own ports.
# Safe to run again: it does nothing when nginx is there.
set -euo pipefail
PATH="$PATH:/usr/sbin:/sbin"
if command -v nginx >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
  echo "proxy: nginx is not installed (apt-get install nginx as root); tests/deploy will fail" >&2
  exit 0
fi
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  trap 'rm -f "$policy"' EXIT
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends nginx >/dev/null \
  || { apt-get update -qq && apt-get install -y -qq --no-install-recommends nginx >/dev/null; }
echo "proxy: installed $(nginx -v 2>&1)"
