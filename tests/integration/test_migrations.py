"""Migrations: from an empty database and from the previous revision, on both databases."""

from __future__ import annotations

from datetime import date

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from cheaptokens import migrate
from cheaptokens.db import make_engine
from cheaptokens.models import Base
from support.databases import database


def schema_diff(url: str) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()


def test_empty_to_head_matches_the_models(tmp_path):
    for kind in ("sqlite", "postgres"):
        with database(kind, tmp_path, migrated=False) as url:
            assert migrate.current(url) is None
            migrate.upgrade(url)
            assert migrate.current(url) == "0016"
            assert schema_diff(url) == [], kind


def test_previous_revision_with_data_upgrades_and_downgrades(tmp_path):
    for kind in ("sqlite", "postgres"):
        with database(kind, tmp_path, migrated=False) as url:
            migrate.upgrade(url, "0001")
            engine = make_engine(url)
            with engine.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO accounts (name, enabled, diem_allocation_cents) "
                        "VALUES ('main', true, 10000)"
                    )
                )
                conn.execute(
                    text(
                        "INSERT INTO account_days (account, day, allocation_cents, "
                        "capacity_cents, sold_cents, reserved_cents) "
                        "VALUES ('main', :d, 10000, 8900, 500, 0)"
                    ),
                    {"d": date(2026, 11, 25)},
                )
            migrate.upgrade(url)
            assert "pool_keys" in inspect(engine).get_table_names()
            with engine.connect() as conn:
                assert conn.execute(text("SELECT sold_cents FROM account_days")).scalar() == 500
            migrate.downgrade(url, "0001")
            assert "pool_keys" not in inspect(engine).get_table_names()
            with engine.connect() as conn:
                assert (
                    conn.execute(text("SELECT capacity_cents FROM account_days")).scalar() == 8900
                )
            migrate.upgrade(url)
            assert schema_diff(url) == []
            engine.dispose()
