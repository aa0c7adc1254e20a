"""Fixtures shared by every test level."""

from __future__ import annotations

import os
import pathlib
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
#: ``make test`` installs and starts everything the suite needs, so a test that skips (no
#: Chromium, no nginx, no Redis, no npm package…) is a failure that says what is missing.
#: ``CHEAPTOKENS_ALLOW_SKIPS=1`` turns this off, for a machine that cannot have everything.
ALLOW_SKIPS = os.environ.get("CHEAPTOKENS_ALLOW_SKIPS", "") == "1"


def _fail_a_skip(report: pytest.CollectReport | pytest.TestReport) -> None:
    if ALLOW_SKIPS or not report.skipped or hasattr(report, "wasxfail"):
        return
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    report.outcome = "failed"
    report.longrepr = f"skipped, and the suite allows no skip (CHEAPTOKENS_ALLOW_SKIPS=1): {reason}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    _fail_a_skip(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    report = yield
    _fail_a_skip(report)
    return report


def pytest_collection_finish(session: pytest.Session) -> None:
    """Keep the objects that exist before the first test out of every later collection.

    A full ``gc.collect()`` walks every object the imports made (the shop, SQLAlchemy, openai,
    langchain…): ~0.17 s of CPU, more than most tests, paid after each one. ``gc.freeze()``
    moves them to a generation the collector never walks, so the collection after each test
    walks only what the tests made since. The price: a resource made at import or collection
    time and later dropped in a reference cycle is never collected, so never reported."""
    import gc

    gc.collect()
    gc.freeze()


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    """Fail the test that leaked a socket, file, subprocess or event loop, at its teardown.

    Left to the garbage collector, an unclosed resource's ResourceWarning comes out inside
    whichever test runs when it collects. Collecting after each teardown (``trylast``: after
    every fixture this test tore down, before pytest reports unraisable exceptions) puts it on
    the test that made it. A collection during the test itself raises it there too, as an
    unraisable exception, since nothing older is left to collect."""
    from support.leaks import leaks_collected

    # CHEAPTOKENS_LEAK_CHECK=0 turns it off (e.g. to time a run without it)
    if os.environ.get("CHEAPTOKENS_LEAK_CHECK") == "0":
        return
    leaks = leaks_collected()
    if not leaks:
        return
    where = (
        ""
        if tracemalloc.is_tracing()
        else "\n(run with PYTHONTRACEMALLOC=20 or -X tracemalloc=20 to see where each was made)"
    )
    pytest.fail(
        f"{item.nodeid} (or a fixture torn down after it) left {len(leaks)} resource(s) "
        f"unclosed, found by the garbage collector:\n" + "\n".join(leaks) + where,
        pytrace=False,
    )


@pytest.fixture(scope="session")
def artifacts_dir() -> pathlib.Path:
    """Where tests leave files worth keeping (screenshots, logs): ``test-artifacts/``."""
    path = ROOT / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[str]:
    """A freshly migrated database URL, once on SQLite and once on PostgreSQL."""
    from support.databases import database

    with database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A freshly migrated PostgreSQL database."""
    from support.databases import postgres_database

    with postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def localstripe(artifacts_dir: pathlib.Path) -> Iterator[Any]:
    """``localstripe`` (PyPI) as a subprocess on a free port, for the whole session."""
    from support.stripe_fakes import LocalStripe

    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")  # one localstripe per xdist worker
    with LocalStripe(log_path=artifacts_dir / f"localstripe-{worker}.log") as server:
        yield server


@pytest.fixture
def fake_stripe(localstripe: Any) -> Iterator[Any]:
    """Stripe Checkout Sessions (which localstripe lacks) in front of localstripe."""
    from support.stripe_fakes import FakeStripe
    from support.stripe_fakes.localstripe import TEST_API_KEY

    with FakeStripe(upstream=localstripe.base_url, api_key=TEST_API_KEY) as fake:
        yield fake


@pytest.fixture(autouse=True)
def _close_stripe_http_clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Close every HTTP client the stripe SDK made during the test.

    A ``StripeClient`` offers no way to close the ``httpx``/``requests`` client it holds; left
    to the garbage collector, its socket's ResourceWarning fails whichever test runs then
    (warnings are errors), so each test closes what it opened."""
    import stripe

    made: list[Any] = []
    for cls in (stripe.HTTPXClient, stripe.RequestsClient):
        original = cls.__init__

        def init(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> None:
            _original(self, *args, **kwargs)
            made.append(self)

        monkeypatch.setattr(cls, "__init__", init)
    yield
    for client in made:
        client.close()
