#!/usr/bin/env bash
# Buy through the shop at URL as a new buyer would, then wait for /readyz to say ready:
#   deploy/smoke.sh http://127.0.0.1:8080
# The purchase is examples/buy_credit.py: quote, order, sandbox payment, the key used with
# the openai SDK. Prints its JSON line; fails if the purchase or the readiness check fails.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
URL="${1:?usage: deploy/smoke.sh SHOP_URL}"
"$PY" - "$URL/readyz" <<'PYEOF' || die "$URL/readyz never said ready"
import sys, time, httpx
last = None
for _ in range(600):
    try:
        last = httpx.get(sys.argv[1], timeout=5)
        if last.status_code == 200:
            sys.exit(0)
    except httpx.HTTPError as exc:
        last = exc
    time.sleep(0.2)
print(f"deploy: /readyz: {getattr(last, 'text', last)}", file=sys.stderr)
sys.exit(1)
PYEOF
"$PY" "$APP_DIR/examples/buy_credit.py" --shop "$URL" --credit-cents 500
say "bought through $URL; /readyz says ready"
