"""The leak check that ``tests/conftest.py`` runs after every test (``tests/support/leaks.py``)."""

from __future__ import annotations

import gc
import socket
import tracemalloc
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from support.leaks import leaks_collected


@contextmanager
def _no_automatic_collection() -> Iterator[None]:
    """So that only ``leaks_collected`` can find the garbage these tests make."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _leak_a_socket_in_a_cycle() -> int:
    """An open socket that only a reference cycle holds: freed by the collector, not on return."""
    holder: dict[str, Any] = {"socket": socket.socket()}
    holder["self"] = holder
    return int(holder["socket"].fileno())


def test_an_unclosed_socket_in_garbage_is_reported_with_where_it_was_made() -> None:
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start(5)
    try:
        with _no_automatic_collection():
            fd = _leak_a_socket_in_a_cycle()
            leaks = leaks_collected()
    finally:
        if not was_tracing:
            tracemalloc.stop()
    assert len(leaks) == 1
    assert leaks[0].startswith(f"- unclosed <socket.socket fd={fd},")
    assert "allocated at (most recent call last):" in leaks[0]
    assert "_leak_a_socket_in_a_cycle" in leaks[0]


def test_closed_resources_in_garbage_are_not_leaks() -> None:
    with _no_automatic_collection():
        holder: dict[str, Any] = {"socket": socket.socket()}
        holder["self"] = holder
        holder["socket"].close()
        del holder
        assert leaks_collected() == []


def test_other_warnings_from_the_collection_still_go_through_the_filters() -> None:
    class Noisy:
        def __del__(self) -> None:
            warnings.warn("from a finalizer", UserWarning, stacklevel=1)

    with _no_automatic_collection():
        noisy = Noisy()
        noisy.self = noisy  # type: ignore[attr-defined]
        del noisy
        with pytest.warns(UserWarning, match="from a finalizer"):
            assert leaks_collected() == []
