"""``GET /metrics``: the shop in Prometheus' text format.

Two sources, chosen so that several web processes and workers can be scraped through any one
web process (docs/operations.md, "Metrics and health"):

- **from the database, at scrape time** — sales, revenue, stock per account, the warm pool,
  jobs, buyer-webhook events, worker heartbeats and the price in force (``orders/ops.py``). The
  database is what all processes share, so every web process answers the same exact figures,
  whichever process made the sale, and a restart loses nothing;
- **counted by each process** — Venice and payment calls (latency and errors by route) and
  webhook delivery attempts (:mod:`cheaptokens.metrics`), added up over every process of the
  host in ``prometheus_client``'s multiprocess mode when ``PROMETHEUS_MULTIPROC_DIR`` is set.

Protected by ``CHEAPTOKENS_METRICS_TOKEN`` (a bearer token) when it is set, and moved off the
shop's port by ``cheaptokens serve --metrics-port`` (:func:`metrics_app`).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Iterator
from datetime import timedelta

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from cheaptokens import __version__, metrics
from cheaptokens.orders import flows, ops
from cheaptokens.shop import Shop

router = APIRouter()


def _gauge(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


def shop_families(shop: Shop) -> list[Metric]:
    """The database's figures as metric families (read now, in a handful of queries)."""
    price = _price_families(shop)  # first: the day's first look opens its capacity
    now = shop.clock()
    snap = ops.read_snapshot(db=shop.db, now=now)
    stale = timedelta(seconds=shop.settings.worker_stale_seconds)
    beats = ops.read_heartbeats(db=shop.db, now=now, fresh_within=stale)
    out: list[Metric] = []

    info = InfoMetricFamily("cheaptokens_build", "The shop's version")
    info.add_metric([], {"version": __version__})
    out.append(info)

    sales = _gauge(
        "cheaptokens_sales_today",
        "Sales paid today (UTC): orders and top-ups, refunded ones excluded",
        ["kind"],
    )
    sales.add_metric(["order"], snap.orders_sold)
    sales.add_metric(["topup"], snap.topups_sold)
    revenue = _gauge(
        "cheaptokens_revenue_cents_today", "What today's sales were paid, in cents", ["kind"]
    )
    revenue.add_metric(["order"], snap.revenue_cents)
    revenue.add_metric(["topup"], snap.topup_revenue_cents)
    credit = _gauge(
        "cheaptokens_credit_sold_cents_today", "Credit sold today, in cents (DIEM cents)", ["kind"]
    )
    credit.add_metric(["order"], snap.credit_sold_cents)
    credit.add_metric(["topup"], snap.topup_credit_cents)
    orders = _gauge("cheaptokens_orders_today", "Today's orders by status", ["status"])
    for status, n in sorted(snap.orders.items()):
        orders.add_metric([status], n)
    failed = _gauge(
        "cheaptokens_orders_failed",
        "Orders whose refund failed, any day: an operator must look",
    )
    failed.add_metric([], snap.orders_failed)
    out += [sales, revenue, credit, orders, failed]

    stock = {
        name: _gauge(f"cheaptokens_stock_{name}_cents", doc, ["account"])
        for name, doc in (
            ("capacity", "Today's sellable capacity of the account"),
            ("sold", "Credit sold on the account today"),
            ("held", "Credit held by open quotes and unpaid checkouts"),
            ("withheld", "Credit kept off sale because the live balance cannot cover it"),
            ("liability", "What the account's live keys may still spend (cap minus usage)"),
            ("available", "What may still be sold: capacity - sold - held - withheld"),
        )
    }
    for s in snap.stock:
        for name, value in (
            ("capacity", s.capacity),
            ("sold", s.sold),
            ("held", s.held),
            ("withheld", s.withheld),
            ("liability", s.liability),
            ("available", s.available),
        ):
            stock[name].add_metric([s.account], value)
    out += list(stock.values())

    pool = _gauge(
        "cheaptokens_pool_keys",
        "Today's warm-pool keys by account and status",
        ["account", "status"],
    )
    for (account, status), n in sorted(snap.pool.items()):
        pool.add_metric([account, status], n)
    out.append(pool)

    queued = _gauge("cheaptokens_jobs_queued", "Jobs waiting to run (due or later)", ["kind"])
    failing = _gauge(
        "cheaptokens_jobs_failed",
        "Jobs whose last attempt failed (queued again with backoff) or that were given up",
        ["kind"],
    )
    for j in snap.jobs:
        queued.add_metric([j.kind], j.queued)
        failing.add_metric([j.kind], j.failed)
    waited = _gauge("cheaptokens_jobs_oldest_due_seconds", "How long the oldest due job has waited")
    waited.add_metric([], snap.oldest_due_seconds)
    out += [queued, failing, waited]

    workers = _gauge(
        "cheaptokens_workers_fresh",
        "Workers whose heartbeat is younger than CHEAPTOKENS_WORKER_STALE_SECONDS",
    )
    workers.add_metric([], beats.fresh)
    out.append(workers)
    age = beats.age_seconds(now)
    if age is not None:
        last = _gauge(
            "cheaptokens_worker_heartbeat_age_seconds", "Seconds since any worker's last heartbeat"
        )
        last.add_metric([], age)
        out.append(last)

    if snap.webhook_events is not None:
        events = _gauge(
            "cheaptokens_webhook_events", "Buyer-webhook events by delivery status", ["status"]
        )
        for status, n in sorted(snap.webhook_events.items()):
            events.add_metric([status], n)
        out.append(events)

    return out + price


def _price_families(shop: Shop) -> list[Metric]:
    view = flows.pricing_now(db=shop.db, rules=shop.rules, now=shop.clock())
    fraction = _gauge(
        "cheaptokens_price_fraction",
        "The price in force: what a dollar of credit costs, as a fraction of list",
    )
    fraction.add_metric([], float(view.fraction))
    per_dollar = _gauge(
        "cheaptokens_price_cents_per_dollar", "The price in force, in cents per dollar of credit"
    )
    per_dollar.add_metric([], float(view.fraction * view.params.list_cents))
    params = InfoMetricFamily(
        "cheaptokens_price_params", "The published parameter set in force (GET /api/pricing)"
    )
    params.add_metric([], {"params_hash": view.params_hash})
    unsold = _gauge("cheaptokens_unsold_cents", "Today's pooled capacity not yet sold")
    unsold.add_metric([], view.unsold_cents)
    return [fraction, per_dollar, params, unsold]


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def exposition(shop: Shop) -> bytes:
    """The whole ``/metrics`` text: the database's figures and the processes' counts."""
    registry = metrics.process_registry()
    registry.register(_Families(shop_families(shop)))
    return generate_latest(registry)


def authorized(shop: Shop, header: str | None) -> bool:
    """No token configured, or ``Authorization: Bearer <token>`` naming it (constant time)."""
    token = shop.settings.metrics_token.get_secret_value()
    if not token:
        return True
    scheme, _, given = (header or "").partition(" ")
    expected = token.encode()
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected)


def serve_metrics(request: Request) -> Response:
    shop: Shop = request.app.state.shop
    if not authorized(shop, request.headers.get("authorization")):
        return Response(
            "metrics need Authorization: Bearer <CHEAPTOKENS_METRICS_TOKEN>\n",
            status_code=401,
            media_type="text/plain",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"', "Cache-Control": "no-store"},
        )
    return Response(
        exposition(shop), media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"}
    )


@router.get("/metrics", include_in_schema=False)
def metrics_route(request: Request) -> Response:
    """The shop's metrics (Prometheus text format)."""
    return serve_metrics(request)


def metrics_app(shop: Shop) -> FastAPI:
    """``/metrics`` alone, for ``cheaptokens serve --metrics-port`` (a port only the monitoring
    network reaches); the shop's own port then answers 404 there."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.shop = shop
    app.include_router(router)
    return app
