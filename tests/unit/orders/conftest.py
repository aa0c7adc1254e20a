"""The service-level shop of :mod:`support.unitkit` (a migrated SQLite file per test)."""

from support.unitkit import db, env, migrated_template

__all__ = ["db", "env", "migrated_template"]
