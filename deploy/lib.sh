# Shared by deploy/up.sh and deploy/down.sh: paths, rendering, running a unit's commands.
# shellcheck shell=bash
DEPLOY_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
APP_DIR="${APP_DIR:-$(dirname "$DEPLOY_SRC")}"
PY="${PY:-$APP_DIR/.venv/bin/python}"
PATH="$PATH:/usr/sbin:/sbin"

say() { printf 'deploy: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# render SRC DEST: copy SRC with every @NAME@ replaced by the value of $R_NAME (which must be
# exported, even if empty); a field without a value stops the script.
render() {
  "$PY" - "$1" "$2" <<'PYEOF'
import os, re, sys
src, dest = sys.argv[1], sys.argv[2]
text = open(src, encoding="utf-8").read()
def value(m):
    key = "R_" + m.group(1)
    if key not in os.environ:
        sys.exit(f"deploy: {src}: no value for @{m.group(1)}@")
    return os.environ[key]
with open(dest, "w", encoding="utf-8") as out:
    out.write(re.sub(r"@([A-Z][A-Z0-9_]*)@", value, text))
PYEOF
}

# unit_values UNIT KEY: the values of the unit's KEY= lines, in order.
unit_values() { sed -n "s/^$2=//p" "$1"; }

# A unit's commands run as systemd would run them: with its EnvironmentFile= (and nothing
# of systemd's own), in its WorkingDirectory=, "%i" being the instance.
unit_env() { unit_values "$1" EnvironmentFile; }
unit_dir() { unit_values "$1" WorkingDirectory; }

# run_oneshot UNIT: ExecStartPre= lines, then ExecStart=, in the foreground.
run_oneshot() {
  local unit=$1 line
  (
    set -a; . "$(unit_env "$unit")"; set +a
    cd "$(unit_dir "$unit")"
    while IFS= read -r line; do bash -c "$line"; done < <(unit_values "$unit" ExecStartPre)
    while IFS= read -r line; do bash -c "$line"; done < <(unit_values "$unit" ExecStart)
  )
}

# start_service UNIT INSTANCE NAME DIR: ExecStart= in the background, its own session, its
# output in DIR/log/NAME.log and its pid in DIR/run/NAME.pid.
start_service() {
  local unit=$1 instance=$2 name=$3 dir=$4 cmd
  cmd="$(unit_values "$unit" ExecStart)"
  cmd="${cmd//%i/$instance}"
  (
    set -a; . "$(unit_env "$unit")"; set +a
    cd "$(unit_dir "$unit")"
    setsid bash -c "exec $cmd" >>"$dir/log/$name.log" 2>&1 </dev/null &
    echo $! >"$dir/run/$name.pid"
  )
}

# stop_pid NAME DIR: TERM the process in DIR/run/NAME.pid, KILL it after 20 s.
stop_pid() {
  local pidfile="$2/run/$1.pid" pid
  [ -f "$pidfile" ] || return 0
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
random_hex() { "$PY" -c "import secrets; print(secrets.token_hex($1))"; }
