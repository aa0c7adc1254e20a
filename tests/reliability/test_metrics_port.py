"""``cheaptokens serve --metrics-port``: /metrics leaves the shop's port (404 there, so a proxy
in front never exposes it) and answers on its own port, still behind the token when one is
set; /healthz and /readyz stay on the shop's port."""

from __future__ import annotations

import httpx

from reliability.webprocs import ADMIN, shop_env, web
from support.procs import free_port, sandbox

TOKEN = "metrics-port-token-for-tests-42"


def test_metrics_on_their_own_port(tmp_path):
    port = free_port()
    with sandbox(f"{ADMIN}:100", log=tmp_path / "sb.log") as venice:
        env = shop_env(tmp_path, venice, metrics_token=TOKEN)
        with web(env, tmp_path / "web.log", "--metrics-port", str(port)) as base:
            assert httpx.get(f"{base}/metrics", timeout=30).status_code == 404
            assert httpx.get(f"{base}/healthz", timeout=30).json() == {"status": "ok"}
            assert httpx.get(f"{base}/readyz", timeout=30).status_code in (200, 503)
            metrics = f"http://127.0.0.1:{port}/metrics"
            assert httpx.get(metrics, timeout=30).status_code == 401
            r = httpx.get(metrics, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
            assert r.status_code == 200
            assert 'cheaptokens_stock_capacity_cents{account="main"} 8900.0' in r.text
            assert httpx.get(f"http://127.0.0.1:{port}/api/pricing").status_code == 404
