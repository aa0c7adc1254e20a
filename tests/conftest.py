"""Fixtures shared by every test level."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


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

    with LocalStripe(log_path=artifacts_dir / "localstripe.log") as server:
        yield server


@pytest.fixture
def fake_stripe(localstripe: Any) -> Iterator[Any]:
    """Stripe Checkout Sessions (which localstripe lacks) in front of localstripe."""
    from support.stripe_fakes import FakeStripe
    from support.stripe_fakes.localstripe import TEST_API_KEY

    with FakeStripe(upstream=localstripe.base_url, api_key=TEST_API_KEY) as fake:
        yield fake
