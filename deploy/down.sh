#!/usr/bin/env bash
# Stop what deploy/up.sh DIR started — nginx, the web processes, the worker, the sandbox,
# Redis — and drop its PostgreSQL database and role (DEPLOY_KEEP_DB=1 keeps them). Logs stay
# in DIR/log. Safe on a half-started DIR, and to run twice.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
DIR="${1:?usage: deploy/down.sh DIR}"
DIR="$(cd "$DIR" && pwd)"
[ -f "$DIR/deploy.env" ] || { say "$DIR is not up"; exit 0; }
. "$DIR/deploy.env"

if [ -f "$DIR/run/nginx.pid" ]; then
  nginx -e "$DIR/log/nginx-error.log" -p "$DIR/run/nginx" -c "$DIR/etc/nginx-main.conf" -s quit 2>/dev/null || true
  for _ in $(seq 1 100); do [ -f "$DIR/run/nginx.pid" ] || break; sleep 0.1; done
  stop_pid nginx "$DIR"
fi
for pidfile in "$DIR"/run/web-*.pid; do
  [ -e "$pidfile" ] && stop_pid "$(basename "$pidfile" .pid)" "$DIR"
done
stop_pid worker "$DIR"
stop_pid sandbox "$DIR"
if [ -f "$DIR/run/redis.pid" ]; then
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  stop_pid redis "$DIR"
fi
if [ "${DEPLOY_KEEP_DB:-0}" != 1 ]; then
  psql "$PG_ADMIN" -q -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" \
    -c "DROP ROLE IF EXISTS $PG_ROLE" >&2 || say "could not drop $PG_DB / $PG_ROLE"
fi
rm -f "$DIR/deploy.env"
say "down: $DIR"
