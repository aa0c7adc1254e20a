"""The live price stream (server-sent events) over real HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx

from support.live import live_shop


def read_events(lines, n: int) -> list[dict]:
    events: list[dict] = []
    kind = None
    for line in lines:
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: ") and kind == "price":
            events.append(json.loads(line[6:]))
            if len(events) == n:
                break
    return events


def test_stream_sends_the_live_price_and_follows_sales(tmp_path):
    now = datetime.now(UTC).replace(hour=12, minute=0, second=0) + timedelta(days=1)
    with (
        live_shop(tmp_path, now=now) as live,
        httpx.Client(timeout=20) as http,
        http.stream("GET", f"{live.url}/api/pricing/stream") as a,
        http.stream("GET", f"{live.url}/api/pricing/stream") as b,
    ):
        assert a.headers["content-type"].startswith("text/event-stream")
        lines_a, lines_b = a.iter_lines(), b.iter_lines()
        [first] = read_events(lines_a, 1)
        [other] = read_events(lines_b, 1)
        assert first["params_hash"] == other["params_hash"]
        snapshot = http.get(f"{live.url}/api/pricing").json()
        assert first["remaining_cents"] == snapshot["remaining_cents"]
        assert 0 < float(first["price_fraction"]) <= 1
        assert "params" not in first
        live.buy(500)
        for event in read_events(lines_a, 3):
            if event["remaining_cents"] == snapshot["remaining_cents"] - 500:
                break
        else:
            raise AssertionError("the stream never showed the sale")
