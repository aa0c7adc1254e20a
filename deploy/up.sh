#!/usr/bin/env bash
# Bring up the production layout on this machine, as systemd would run it, and buy through it:
#
#   deploy/up.sh DIR       (deploy/down.sh DIR stops it all and drops its database)
#
# PostgreSQL (the machine's server, started if down; a database and a role of its own),
# Redis (an instance of its own), the Venice sandbox standing in for Venice, the units of
# deploy/systemd/ — migrate, two `cheaptokens serve --no-worker`, one `cheaptokens worker` —
# with the settings of deploy/cheaptokens.env, and nginx with the site deploy/nginx.conf in
# front, trusted through CHEAPTOKENS_TRUSTED_PROXIES. The files are rendered into DIR/etc and
# DIR/systemd; the commands run are the units' own ExecStart= lines. Then deploy/smoke.sh
# buys $5 of credit through nginx (quote, order, sandbox payment, a chat with the key through
# the openai SDK) and waits for /readyz to say ready.
#
# Ports are free ones unless given: DEPLOY_HTTP_PORT (nginx), DEPLOY_WEB_PORTS ("8000 8002"),
# DEPLOY_SANDBOX_PORT, DEPLOY_REDIS_PORT. DEPLOY_PG_ADMIN: a superuser's URL of the server
# (postgresql://postgres@127.0.0.1:5432/postgres). DEPLOY_EXTRA_ENV: more settings lines for
# the env file. DEPLOY_SMOKE=0 skips the purchase. DIR/deploy.env says where everything is.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DIR="${1:?usage: deploy/up.sh DIR}"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
[ -x "$PY" ] || die "no $PY: run make install first"
mkdir -p "$DIR/etc" "$DIR/systemd" "$DIR/run" "$DIR/log" "$DIR/state"
[ -e "$DIR/deploy.env" ] && die "$DIR is already up (deploy/down.sh $DIR first)"

# -- what this machine needs: nginx (Debian's), PostgreSQL running ------------------------------
bash "$APP_DIR/scripts/proxy.sh"
command -v nginx >/dev/null || die "nginx is not installed (scripts/proxy.sh)"
bash "$APP_DIR/scripts/services.sh" >&2

HTTP_PORT="${DEPLOY_HTTP_PORT:-$(free_port)}"
read -r WEB1 WEB2 <<<"${DEPLOY_WEB_PORTS:-$(free_port) $(free_port)}"
SANDBOX_PORT="${DEPLOY_SANDBOX_PORT:-$(free_port)}"
REDIS_PORT="${DEPLOY_REDIS_PORT:-$(free_port)}"
PG_ADMIN="${DEPLOY_PG_ADMIN:-postgresql://postgres@127.0.0.1:5432/postgres}"
SUFFIX="$(random_hex 4)"
PG_ROLE="cheaptokens_$SUFFIX"
PG_DB="cheaptokens_$SUFFIX"
PG_PASSWORD="$(random_hex 16)"
ADMIN_KEY="VENICE_ADMIN_KEY_deploy_sandbox_not_real"

# Written first, so that deploy/down.sh can undo whatever part comes up.
cat >"$DIR/deploy.env" <<ENV
HTTP_PORT=$HTTP_PORT
WEB_PORTS="$WEB1 $WEB2"
SANDBOX_PORT=$SANDBOX_PORT
REDIS_PORT=$REDIS_PORT
PG_ADMIN=$PG_ADMIN
PG_ROLE=$PG_ROLE
PG_DB=$PG_DB
SHOP_URL=http://127.0.0.1:$HTTP_PORT
ENV_FILE=$DIR/etc/cheaptokens.env
ENV

# -- PostgreSQL: a role and a database for the shop ---------------------------------------------
PG_HOSTPORT="$("$PY" -c 'import sys
from sqlalchemy.engine import make_url
url = make_url(sys.argv[1])
print((url.host or "127.0.0.1") + ":" + str(url.port or 5432))' "$PG_ADMIN")"
psql "$PG_ADMIN" -v ON_ERROR_STOP=1 -q \
  -c "CREATE ROLE $PG_ROLE LOGIN PASSWORD '$PG_PASSWORD'" \
  -c "CREATE DATABASE $PG_DB OWNER $PG_ROLE" >&2
say "PostgreSQL: database $PG_DB on $PG_HOSTPORT"

# -- Redis: an instance of its own, keeping nothing on disk --------------------------------------
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --daemonize yes --save "" --appendonly no \
  --dir "$DIR/state" --pidfile "$DIR/run/redis.pid" --logfile "$DIR/log/redis.log"
for _ in $(seq 1 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
say "Redis on 127.0.0.1:$REDIS_PORT"

# -- the Venice sandbox, standing in for Venice -------------------------------------------------
setsid "$APP_DIR/.venv/bin/cheaptokens" sandbox --port "$SANDBOX_PORT" \
  --account "$ADMIN_KEY:100" --state "$DIR/state/sandbox.json" \
  >>"$DIR/log/sandbox.log" 2>&1 </dev/null &
echo $! >"$DIR/run/sandbox.pid"
VENICE_URL="http://127.0.0.1:$SANDBOX_PORT/api/v1"

# -- the settings and the units -----------------------------------------------------------------
export R_PUBLIC_URL="http://127.0.0.1:$HTTP_PORT"
export R_DATABASE_URL="postgresql+psycopg://$PG_ROLE:$PG_PASSWORD@$PG_HOSTPORT/$PG_DB"
export R_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
export R_STATE_DIR="$DIR/state"
export R_CONF_DIR="$DIR/etc"
export R_APP_DIR="$APP_DIR"
export R_USER="$(id -un)"
R_DATA_KEY="$("$PY" -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')"
export R_DATA_KEY
export R_VENICE_MODE=sandbox R_VENICE_ADMIN_KEYS="main=$ADMIN_KEY" R_VENICE_BASE_URL="$VENICE_URL"
export R_PAYMENTS=sandbox R_STRIPE_SECRET_KEY="" R_STRIPE_WEBHOOK_SECRET="" R_ADMIN_PASSWORD=""
export R_OPERATOR_CONTACT=""
R_METRICS_TOKEN="$(random_hex 24)"
export R_METRICS_TOKEN
export R_LISTEN="127.0.0.1:$HTTP_PORT" R_SERVER_NAME="localhost" R_WEB_PORT_1="$WEB1" R_WEB_PORT_2="$WEB2"

(umask 077 && render "$DEPLOY_SRC/cheaptokens.env" "$DIR/etc/cheaptokens.env")
if [ -n "${DEPLOY_EXTRA_ENV:-}" ]; then printf '%s\n' "$DEPLOY_EXTRA_ENV" >>"$DIR/etc/cheaptokens.env"; fi
for unit in "$DEPLOY_SRC"/systemd/*; do render "$unit" "$DIR/systemd/$(basename "$unit")"; done
render "$DEPLOY_SRC/nginx.conf" "$DIR/etc/nginx-site.conf"

"$PY" - "$VENICE_URL/models" <<'PYEOF' || die "the Venice sandbox did not come up (log/sandbox.log)"
import sys, time, httpx
for _ in range(300):
    try:
        httpx.get(sys.argv[1], timeout=1).raise_for_status()
        sys.exit(0)
    except httpx.HTTPError:
        time.sleep(0.1)
sys.exit(1)
PYEOF
say "Venice sandbox on $VENICE_URL"

# -- the shop: migrate, two web processes, a worker ---------------------------------------------
run_oneshot "$DIR/systemd/cheaptokens-migrate.service" >>"$DIR/log/migrate.log" 2>&1 \
  || die "migration failed (log/migrate.log)"
start_service "$DIR/systemd/cheaptokens-web@.service" "$WEB1" "web-$WEB1" "$DIR"
start_service "$DIR/systemd/cheaptokens-web@.service" "$WEB2" "web-$WEB2" "$DIR"
start_service "$DIR/systemd/cheaptokens-worker.service" "" worker "$DIR"
say "web on 127.0.0.1:$WEB1 and 127.0.0.1:$WEB2, one worker"

# -- nginx in front: Debian's binary, the site above inside a minimal main configuration ---------
mkdir -p "$DIR/run/nginx"
cat >"$DIR/etc/nginx-main.conf" <<NGINX
# deploy/up.sh's stand-in for /etc/nginx/nginx.conf: the same site, this directory's files.
daemon on;
pid $DIR/run/nginx.pid;
error_log $DIR/log/nginx-error.log warn;
worker_processes 1;
events { worker_connections 512; }
http {
    client_body_temp_path $DIR/run/nginx/body;
    proxy_temp_path $DIR/run/nginx/proxy;
    fastcgi_temp_path $DIR/run/nginx/fastcgi;
    uwsgi_temp_path $DIR/run/nginx/uwsgi;
    scgi_temp_path $DIR/run/nginx/scgi;
    include $DIR/etc/nginx-site.conf;
}
NGINX
nginx -q -t -e "$DIR/log/nginx-error.log" -p "$DIR/run/nginx" -c "$DIR/etc/nginx-main.conf" \
  || die "nginx refused its configuration (log/nginx-error.log)"
nginx -e "$DIR/log/nginx-error.log" -p "$DIR/run/nginx" -c "$DIR/etc/nginx-main.conf"
say "nginx on http://127.0.0.1:$HTTP_PORT/"

if [ "${DEPLOY_SMOKE:-1}" != 0 ]; then
  bash "$DEPLOY_SRC/smoke.sh" "http://127.0.0.1:$HTTP_PORT"
fi
say "up: http://127.0.0.1:$HTTP_PORT/ (deploy/down.sh $DIR stops it)"
