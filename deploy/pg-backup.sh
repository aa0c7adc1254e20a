#!/usr/bin/env bash
# Back up the shop's PostgreSQL database, online (pg_dump takes a consistent snapshot while
# the shop runs):
#   deploy/pg-backup.sh /etc/cheaptokens/cheaptokens.env /var/backups/cheaptokens-$(date +%F).dump
# Reads CHEAPTOKENS_DATABASE_URL from the env file; writes pg_dump's custom format (compressed,
# restorable table by table). The password goes to pg_dump in its environment, not its
# command line. Keep CHEAPTOKENS_DATA_KEY with the backups (elsewhere): without it the stored
# keys cannot be read and order links do not open.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ENV_FILE="${1:?usage: deploy/pg-backup.sh ENV_FILE OUT.dump}"
OUT="${2:?usage: deploy/pg-backup.sh ENV_FILE OUT.dump}"
URL="$(set -a; . "$ENV_FILE"; printf '%s' "${CHEAPTOKENS_DATABASE_URL:?not set in $ENV_FILE}")"
eval "$("$PY" "$(dirname "${BASH_SOURCE[0]}")/pgenv.py" "$URL")"
pg_dump --format=custom --no-owner --no-privileges --file "$OUT"
say "backed up $PGDATABASE to $OUT"
