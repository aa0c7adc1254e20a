"""Resources left unclosed by a test, found by collecting garbage (see ``tests/conftest.py``)."""

from __future__ import annotations

import gc
import tracemalloc
import warnings


def leaks_collected() -> list[str]:
    """Collect garbage now and describe every resource it found unclosed (a ResourceWarning).

    Other warnings the collection shows are shown again through the run's filters, as if this
    collection had not caught them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        gc.collect()
    leaks = []
    for w in caught:
        if not issubclass(w.category, ResourceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
            continue
        leak = f"- {w.message}"
        allocated = tracemalloc.get_object_traceback(w.source) if w.source is not None else None
        if allocated is not None:
            leak += "\n  allocated at (most recent call last):\n    " + "\n    ".join(
                line for frame in allocated.format() for line in frame.splitlines()
            )
        leaks.append(leak)
    return leaks
