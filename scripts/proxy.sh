#!/usr/bin/env bash
# Install the reverse proxy of the production layout (deploy/, tests/deploy): Debian's nginx,
# if it is missing. The package is kept from starting a system-wide nginx on port 80
# (scripts/apt.sh): deploy/up.sh runs its own, on its own ports.
exec bash "$(dirname "$0")/apt.sh" nginx=nginx
