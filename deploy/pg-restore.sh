#!/usr/bin/env bash
# Restore a backup of deploy/pg-backup.sh into an empty database, then point the shop at it:
#   createdb -O cheaptokens cheaptokens_restored      (as the postgres user)
#   deploy/pg-restore.sh backup.dump postgresql+psycopg://cheaptokens:PASSWORD@127.0.0.1/cheaptokens_restored
# One transaction: a restore that fails leaves the database empty. The objects belong to the
# user of the URL. Then set CHEAPTOKENS_DATABASE_URL to that URL, run `cheaptokens db upgrade`
# (a backup of older code is brought up to this one) and start the shop.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
DUMP="${1:?usage: deploy/pg-restore.sh DUMP DATABASE_URL}"
URL="${2:?usage: deploy/pg-restore.sh DUMP DATABASE_URL}"
eval "$("$PY" "$(dirname "${BASH_SOURCE[0]}")/pgenv.py" "$URL")"
pg_restore --no-owner --no-privileges --single-transaction --exit-on-error \
  --dbname "$PGDATABASE" "$DUMP"
say "restored $DUMP into $PGDATABASE"
