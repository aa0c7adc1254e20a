"""Throughput of one machine: quotes/s, orders/s, pricing vs a trivial endpoint, and the
live price stream held open by many clients.

    .venv/bin/python bench/throughput/run.py [--db sqlite|postgres] [--procs 1|2]
                                             [--seconds 10] [--connections 32] [--sse 1000]
                                             [--profile DIR] [--no-baseline]

Starts the Venice sandbox and ``--procs`` ``cheaptokens serve --no-worker`` processes as
separate OS processes on this machine, then loads them with ``wrk`` (Debian package; the
script says so if it is missing: ``apt-get install wrk``) from the same machine, so the
load generator shares the cores with the servers. Rate limits are lifted for the run.
With ``--sse N`` (one process only) it opens N streams of ``/api/pricing/stream`` for 20 s
and reports the server's resident memory and CPU time per client.

Then the baseline (``baseline.py``): the SQL of one real quote and one real order, captured
from the shop, replayed through the bare driver (``sqlite3`` / ``psycopg``), one transaction
each, in ``--procs`` processes for ``--seconds``, on 1 and on 8 connections per process (the
better counts); quotes/s and orders/s are also given as a share of it. ``--profile DIR``
samples the first server with ``py-spy`` (``pip install py-spy``) while quotes and orders run
and prints where the time goes.
Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

sys.path.insert(0, str(ROOT / "bench" / "throughput"))

import baseline  # noqa: E402

from support.databases import postgres_database  # noqa: E402
from support.procs import cheaptokens, free_port, process, run, sandbox, wait_http  # noqa: E402

ADMIN = "VENICE_ADMIN_KEY_throughput_not_real"
POST_LUA = """wrk.method = "POST"
wrk.body = '{"credit_cents": 100}'
wrk.headers["Content-Type"] = "application/json"
"""


def wrk(urls: list[str], *, seconds: int, connections: int, lua: str | None) -> dict:
    script = None
    if lua:
        fd, script = tempfile.mkstemp(suffix=".lua")
        os.write(fd, lua.encode())
        os.close(fd)
    procs = []
    for url in urls:
        cmd = ["wrk", "-t1", f"-c{max(1, connections // len(urls))}", f"-d{seconds}s", "--latency"]
        if script:
            cmd += ["-s", script]
        procs.append(subprocess.Popen([*cmd, url], stdout=subprocess.PIPE, text=True))
    outs = [p.communicate()[0] for p in procs]
    total, errors, p99 = 0.0, 0, 0.0
    for out in outs:
        total += float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
        errors += int(m.group(1)) if m else 0
        m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
        if m:
            scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
            p99 = max(p99, float(m.group(1)) * scale)
    return {"rps": round(total, 1), "non_2xx": errors, "p99_ms": round(p99, 2)}


def proc_stats(pid: int) -> tuple[int, float]:
    """(resident bytes, CPU seconds) of a process, from /proc."""
    rss = 0
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss, (int(fields[11]) + int(fields[12])) / ticks


async def hold_streams(port: int, clients: int, seconds: float) -> int:
    """Open ``clients`` raw SSE connections, read for ``seconds``; returns events seen."""
    seen = 0

    async def one() -> None:
        nonlocal seen
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /api/pricing/stream HTTP/1.1\r\nHost: bench\r\n\r\n")
        await writer.drain()
        end = time.monotonic() + seconds
        try:
            while (left := end - time.monotonic()) > 0:
                try:
                    chunk = await asyncio.wait_for(reader.read(65536), timeout=left)
                except TimeoutError:
                    break
                if not chunk:
                    break
                seen += chunk.count(b"event: price")
        finally:
            writer.close()

    await asyncio.gather(*(one() for _ in range(clients)))
    return seen


#: where a sample's innermost frame lies, by path (first match wins)
PLACES = (
    ("price maths", ("cheaptokens/pricing/",)),
    ("the shop's own code", ("cheaptokens/",)),
    ("SQLAlchemy", ("sqlalchemy/",)),
    ("database driver", ("sqlite3/", "psycopg/", "psycopg_binary/", "<built-in", "_sqlite3")),
    ("pydantic / FastAPI / Starlette", ("pydantic", "fastapi/", "starlette/")),
    ("event loop, threads, uvicorn, h11", ("asyncio/", "anyio/", "threading", "uvicorn/", "h11/")),
)


def profiler(pid: int, args: argparse.Namespace, name: str) -> subprocess.Popen | None:
    """py-spy sampling the server while wrk runs (``--profile DIR``); None without it."""
    if args.profile is None:
        return None
    spy = shutil.which("py-spy") or str(pathlib.Path(sys.executable).with_name("py-spy"))
    args.profile.mkdir(parents=True, exist_ok=True)
    # --gil: only the thread holding the GIL, i.e. Python's own CPU, not threads waiting
    cmd = [spy, "record", "-p", str(pid), "-d", str(args.seconds), "-r", "250", "-f", "raw"]
    cmd += ["--gil", "--nonblocking", "-o", str(args.profile / f"{name}.txt")]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def profile_summary(path: pathlib.Path, top: int = 12) -> dict:
    """Shares of the samples: by where the innermost frame is, and the functions most often
    on the stack (collapsed stacks as py-spy's ``raw`` format writes them)."""
    places: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        frames = stack.split(";")
        total += n
        leaf = frames[-1]
        place = next((p for p, marks in PLACES if any(m in leaf for m in marks)), "other")
        places[place] = places.get(place, 0) + n
        for f in set(frames):
            inclusive[f] = inclusive.get(f, 0) + n
    share = {k: round(v / total, 3) for k, v in sorted(places.items(), key=lambda kv: -kv[1])}
    hot = sorted(inclusive.items(), key=lambda kv: -kv[1])
    ours = [(f, v) for f, v in hot if "cheaptokens/" in f or "sqlalchemy/orm" in f][:top]
    return {
        "samples": total,
        "innermost_frame_in": share,
        "on_stack": {f: round(v / total, 3) for f, v in ours},
    }


#: connections per process the bare replay tries (one serial connection leaves PostgreSQL
#: waiting on each commit's flush; several let it group commits, as the shop's pool does)
BARE_CONNECTIONS = (1, 8)


def bare_driver(db_url: str, tmp: pathlib.Path, venice: str, args: argparse.Namespace) -> dict:
    """Quotes and orders a second through the bare driver (:mod:`baseline`), ``--procs``
    processes for ``--seconds``, on the same database."""
    from cheaptokens.config import Settings
    from cheaptokens.shop import build_shop
    from cheaptokens.web.app import create_app

    settings = Settings(
        database_url=db_url,
        data_dir=tmp,
        venice_base_url=venice,
        venice_admin_keys=f"main={ADMIN}",
        quotes_per_minute=100_000_000,
        orders_per_minute=100_000_000,
        max_order_cents=100_000,
    )
    shop = build_shop(settings)
    try:
        captured = baseline.capture(shop, create_app(shop))
    finally:
        shop.close()
    out: dict = {
        "statements_per_quote": len(captured.quote),
        "statements_per_order": len(captured.order),
    }
    for name, statements in (("quotes", captured.quote), ("orders", captured.order)):
        rates = {
            n: baseline.replay(
                db_url, statements, procs=args.procs, seconds=args.seconds, connections=n
            )
            for n in BARE_CONNECTIONS
        }
        out[f"{name}_by_connections"] = {n: round(r, 1) for n, r in rates.items()}
        out[name] = round(max(rates.values()), 1)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--procs", type=int, choices=[1, 2], default=1)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--sse", type=int, default=0, help="SSE clients to hold (one process only)")
    ap.add_argument(
        "--profile",
        type=pathlib.Path,
        help="sample the (first) server with py-spy during quotes and orders; stacks go here",
    )
    ap.add_argument(
        "--no-baseline", action="store_true", help="skip the bare-driver replay of the same SQL"
    )
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="tput-"))
    results: dict = {
        "db": args.db,
        "procs": args.procs,
        "seconds": args.seconds,
        "connections": args.connections,
    }
    with sandbox(f"{ADMIN}:10000000", log=tmp / "sandbox.log") as venice:
        if args.db == "postgres":
            db_cm = postgres_database()
        else:
            from contextlib import nullcontext

            db_cm = nullcontext(f"sqlite:///{tmp / 'shop.db'}")
        with db_cm as db_url:
            env = {
                **os.environ,
                "DATABASE_URL": db_url,
                "CHEAPTOKENS_DATA_DIR": str(tmp),
                "CHEAPTOKENS_VENICE_BASE_URL": venice,
                "CHEAPTOKENS_VENICE_ADMIN_KEYS": f"main={ADMIN}",
                "CHEAPTOKENS_QUOTES_PER_MINUTE": "100000000",
                "CHEAPTOKENS_ORDERS_PER_MINUTE": "100000000",
                "CHEAPTOKENS_MAX_ORDER_CENTS": "100000",
            }
            assert run(cheaptokens("db", "upgrade"), env).returncode == 0
            assert run(cheaptokens("accounts", "refresh"), env).returncode == 0
            ports = [free_port() for _ in range(args.procs)]
            servers = [
                process(
                    cheaptokens(
                        "serve",
                        "--no-worker",
                        "--no-migrate",
                        "--port",
                        str(p),
                        "--log-level",
                        "warning",
                    ),
                    env={**env, "CHEAPTOKENS_PUBLIC_URL": f"http://127.0.0.1:{p}"},
                    log=tmp / f"web-{p}.log",
                )
                for p in ports
            ]
            with servers[0] as first, servers[1] if len(servers) > 1 else _null() as _:
                for p in ports:
                    wait_http(f"http://127.0.0.1:{p}/healthz")
                base = [f"http://127.0.0.1:{p}" for p in ports]
                for u in base:  # warm up: open the day, publish the curve
                    run(["curl", "-s", "-o", "/dev/null", f"{u}/api/pricing"], env)
                kw = {"seconds": args.seconds, "connections": args.connections}
                results["trivial"] = wrk([f"{u}/healthz" for u in base], lua=None, **kw)
                results["pricing"] = wrk([f"{u}/api/pricing" for u in base], lua=None, **kw)
                results["pricing_vs_trivial"] = round(
                    results["pricing"]["rps"] / results["trivial"]["rps"], 3
                )
                for name, path in (("quotes", "/api/quotes"), ("orders", "/api/orders")):
                    spy = profiler(first.pid, args, name)
                    results[name] = wrk([f"{u}{path}" for u in base], lua=POST_LUA, **kw)
                    if spy is not None:
                        spy.wait()
                        results[f"{name}_profile"] = profile_summary(args.profile / f"{name}.txt")
                if args.sse and args.procs == 1:
                    time.sleep(1)
                    rss0, cpu0 = proc_stats(first.pid)
                    hold = 20.0
                    events = asyncio.run(hold_streams(ports[0], args.sse, hold))
                    rss1, cpu1 = proc_stats(first.pid)
                    results["sse"] = {
                        "clients": args.sse,
                        "held_seconds": hold,
                        "events_received": events,
                        "rss_before_mb": round(rss0 / 2**20, 1),
                        "rss_with_clients_mb": round(rss1 / 2**20, 1),
                        "kb_per_client": round((rss1 - rss0) / 1024 / args.sse, 1),
                        "cpu_seconds": round(cpu1 - cpu0, 2),
                        "cpu_ms_per_client_per_minute": round(
                            (cpu1 - cpu0) * 1000 / args.sse * 60 / hold, 2
                        ),
                    }
            if not args.no_baseline:  # the servers have stopped: the cores are the driver's
                results["baseline"] = bare_driver(db_url, tmp, venice, args)
                for name in ("quotes", "orders"):
                    results[name]["share_of_bare"] = round(
                        results[name]["rps"] / results["baseline"][name], 3
                    )
    print(
        f"{args.db}, {args.procs} process(es), {args.connections} connections, "
        f"{args.seconds} s each"
    )
    for name in ("trivial", "pricing", "quotes", "orders"):
        r = results[name]
        print(
            f"  {name:8} {r['rps']:9.1f} req/s   p99 {r['p99_ms']:8.2f} ms   non-2xx {r['non_2xx']}"
        )
    print(f"  pricing / trivial = {results['pricing_vs_trivial']}")
    if "baseline" in results:
        b = results["baseline"]
        print(
            f"  bare driver, same SQL ({b['statements_per_quote']} statements a quote, "
            f"{b['statements_per_order']} an order, best of {BARE_CONNECTIONS} connections): "
            f"{b['quotes']:.1f} quotes/s, {b['orders']:.1f} orders/s"
        )
        for name in ("quotes", "orders"):
            print(f"  {name} share of bare driver: {results[name]['share_of_bare']:.1%}")
    for name in ("quotes", "orders"):
        prof = results.get(f"{name}_profile")
        if prof:
            print(f"  profile of {name} ({prof['samples']} samples), innermost frame in:")
            for place, share in prof["innermost_frame_in"].items():
                print(f"    {share:6.1%}  {place}")
            print("  on the stack (the shop's functions and the ORM's):")
            for frame, share in prof["on_stack"].items():
                print(f"    {share:6.1%}  {frame}")
    if "sse" in results:
        s = results["sse"]
        print(
            f"  SSE: {s['clients']} clients for {s['held_seconds']} s, {s['events_received']} "
            f"events; {s['kb_per_client']} KiB and {s['cpu_ms_per_client_per_minute']} ms CPU "
            f"per client per minute"
        )
    print(json.dumps(results))
    return 0


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":
    raise SystemExit(main())
