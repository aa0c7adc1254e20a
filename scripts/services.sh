#!/usr/bin/env bash
# Start the services the test suite needs if they are not running: PostgreSQL on 127.0.0.1:5432
# (the machine's cluster, see scripts/apt.sh) and Redis on 127.0.0.1:6379 (keeping nothing on
# disk). Safe to run again: it only starts what is down.
set -euo pipefail
if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
if command -v redis-cli >/dev/null 2>&1 && ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null || true
fi
if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  echo "services: PostgreSQL is up on 127.0.0.1:5432"
else
  echo "services: PostgreSQL is not reachable; tests marked 'postgres' will fail" >&2
fi
if redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
  echo "services: Redis is up on 127.0.0.1:6379"
else
  echo "services: Redis is not reachable; the shared rate-limit tests will fail" >&2
fi
