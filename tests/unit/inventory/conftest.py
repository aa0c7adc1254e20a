"""The service-level shop of :mod:`support.unitkit` (a migrated SQLite file, emptied per test)."""

from support.unitkit import db, env, migrated_database

__all__ = ["db", "env", "migrated_database"]
