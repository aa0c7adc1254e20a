#!/usr/bin/env bash
# Install the Debian packages the test suite uses, each only if it is missing:
#
#   scripts/apt.sh                  everything `make test` needs (the list below)
#   scripts/apt.sh COMMAND=PACKAGE  only these (a package is skipped when COMMAND is found;
#                                   ensurepip=python3-venv: when Python can make a venv)
#
# Needs apt-get and root (or sudo). The packages' own services are kept from starting during the
# install (a policy-rc.d for its length): scripts/services.sh starts PostgreSQL and Redis for
# the tests, deploy/up.sh runs its own nginx. A PostgreSQL cluster that this script creates
# (a new install) listens on 5432 and lets the tests in as `postgres` from 127.0.0.1 without a
# password, as CHEAPTOKENS_TEST_PG's default expects; an existing cluster is left as it is.
# Safe to run again: with everything there it only looks.
set -euo pipefail
PATH="$PATH:/usr/sbin:/sbin"

NEEDED=(
  pg_ctlcluster=postgresql # the tests' PostgreSQL (also pg_dump/psql for deploy/)
  redis-server=redis-server # the shared rate limits across processes
  chromium=chromium         # the browser tests, driven by Playwright
  node=nodejs               # the docs' Node samples
  npm=npm                   # their npm packages (tests/node)
  nginx=nginx               # the production layout's reverse proxy (tests/deploy)
  curl=curl                 # the docs' curl samples
)
[ "$#" -gt 0 ] && NEEDED=("$@")

present() {
  case "$1" in
    # a PostgreSQL that answers on the tests' port counts, however it was installed
    pg_ctlcluster) command -v pg_ctlcluster >/dev/null 2>&1 || pg_isready -q -h 127.0.0.1 2>/dev/null ;;
    # Debian's python3 makes no venv without python3-venv (PYTHON: the one make uses)
    ensurepip) "${PYTHON:-python3}" -c 'import ensurepip' >/dev/null 2>&1 ;;
    *) command -v "$1" >/dev/null 2>&1 ;;
  esac
}

missing=()
for pair in "${NEEDED[@]}"; do
  present "${pair%%=*}" || missing+=("${pair#*=}")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

# Where nothing can be installed, say so and go on: the tests that need it fail and say why.
if [ "$(id -u)" = 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  echo "apt: missing ${missing[*]}: install them as root (apt-get install ${missing[*]})" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "apt: missing ${missing[*]}, and there is no apt-get: install them by hand" >&2
  exit 0
fi

fresh_pg=""
if [[ " ${missing[*]} " == *" postgresql "* ]] && [ ! -d /etc/postgresql ]; then fresh_pg=1; fi

policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
  "${SUDO[@]}" chmod +x "$policy"
  trap '"${SUDO[@]}" rm -f "$policy"' EXIT
fi
echo "apt: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null

if [ -n "$fresh_pg" ]; then
  # The cluster the package just made: the tests connect as postgres over TCP from this machine,
  # on 5432 (the package takes the first free port from 5432 up, so a server that held 5432
  # while it installed, e.g. one outside this chroot or container, would move it elsewhere).
  for dir in /etc/postgresql/*/main; do
    "${SUDO[@]}" sed -i '1i host all postgres 127.0.0.1/32 trust  # scripts/apt.sh: for the tests\nhost all postgres ::1/128 trust  # scripts/apt.sh: for the tests' "$dir/pg_hba.conf"
    "${SUDO[@]}" sed -i -E 's/^port = [0-9]+/port = 5432/' "$dir/postgresql.conf"
  done
  echo "apt: new PostgreSQL cluster on port 5432: postgres may connect from 127.0.0.1 without a password"
fi
