"""Fixtures shared by every test level."""

from __future__ import annotations

import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def artifacts_dir() -> pathlib.Path:
    """Where tests leave files worth keeping (screenshots, logs): ``test-artifacts/``."""
    path = ROOT / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path
