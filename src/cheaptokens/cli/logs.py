"""Redaction of secrets from the logs, by rule, whatever logged them.

Some URLs are capabilities: whoever holds a sandbox checkout URL can pay or decline that
order, and a buyer may paste an order token into a query string. uvicorn's access log writes
every path and query; an error message may quote a header. :class:`RedactingFilter` rewrites
each record before any handler formats it, replacing the secret part of every known shape
with ``[redacted]``:

- ``/checkout/sandbox/<token>``
- ``token=…``, ``order_token=…``, ``session_id=…``, ``csrf_token=…``, ``api_key=…``,
  ``password=…``, ``secret=…``, ``private_key=…`` and ``…refund_key=…`` (the x402 refund
  wallet's key, ``CHEAPTOKENS_X402_REFUND_KEY=…``) in queries, forms, fragments and
  environment listings (and ``"token": "…"`` in JSON)
- ``Bearer …`` and ``Basic …`` credentials
- Venice keys (``VENICE_INFERENCE_KEY_…``, ``VENICE_ADMIN_KEY_…``), order tokens (``ot_…``),
  operator session ids (``ctop_…``), Stripe secrets (``sk_live_…``, ``rk_test_…``,
  ``whsec_…``)
- a password in a URL (``redis://:pw@host``, ``postgresql://user:pw@host``)
- x402's payment and sign-in headers (``PAYMENT-SIGNATURE``, ``X-PAYMENT``,
  ``SIGN-IN-WITH-X``: a signed authorization, a sign-in proof) and ``"signature": "0x…"``

:func:`install` puts the filter on the root, ``uvicorn``, ``uvicorn.error`` and
``uvicorn.access`` loggers and on every handler they have (a logger's filter sees only its own
records; a handler's sees the ones that propagate to it too). ``cheaptokens serve`` installs
it after uvicorn has configured its loggers; every command installs it on the root logger.
A new secret shape gets a rule in :data:`RULES` and a case in
``tests/reliability/test_log_redaction.py``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from cheaptokens.operators import SESSION_PREFIX

REDACTED = "[redacted]"
_VALUE = r"[^&\s#\"'<>;,]+"

#: (pattern, replacement) pairs applied in order to every message, argument and traceback.
RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(/checkout/sandbox/)[^\s?#\"'<>]+"), rf"\1{REDACTED}"),
    (
        re.compile(
            r"(?i)\b([\w-]*(?:token|session_id|secret|password|passwd|api_key|private_key"
            r"|refund_key))=" + _VALUE
        ),
        rf"\1={REDACTED}",
    ),
    (
        re.compile(
            r"(?i)(\"[\w-]*(?:token|secret|password|api_key|private_key|refund_key)\"\s*:\s*\")"
            r"[^\"]*\""
        ),
        rf'\1{REDACTED}"',
    ),
    (re.compile(r"(?i)\b(Bearer|Basic)(\s+)[A-Za-z0-9._~+/=-]+"), rf"\1\2{REDACTED}"),
    (re.compile(r"\b(VENICE_[A-Z]+_KEY_)[A-Za-z0-9_-]+"), rf"\1{REDACTED}"),
    (re.compile(r"\b(ot_)[A-Za-z0-9_-]{16,}"), rf"\1{REDACTED}"),
    (re.compile(rf"\b({re.escape(SESSION_PREFIX)})[A-Za-z0-9_-]{{16,}}"), rf"\1{REDACTED}"),
    # Webhook signing secrets are standard base64 (buyers' webhooks: "+", "/" and "=" too).
    (re.compile(r"\b(whsec_)[A-Za-z0-9+/]+=*"), rf"\1{REDACTED}"),
    (re.compile(r"\b((?:sk|rk)_(?:live|test)_|whsec_)[A-Za-z0-9]+"), rf"\1{REDACTED}"),
    (re.compile(r"([a-z][a-z0-9+.-]*://)[^/\s:@]*:[^/\s@]+@"), rf"\1{REDACTED}@"),
    (
        re.compile(
            r"(?i)\b(payment-signature|x-payment|sign-in-with-x)([\"']?\s*[:=,]\s*(?:b?[(\"']\s*)*)"
            r"[A-Za-z0-9+/=_-]{8,}"
        ),
        rf"\1\2{REDACTED}",
    ),
    (re.compile(r"(?i)(\"signature\"\s*:\s*\")[^\"]*\""), rf'\1{REDACTED}"'),
)


def redact(text: str) -> str:
    """``text`` with the secret part of every known shape replaced."""
    for pattern, replacement in RULES:
        text = pattern.sub(replacement, text)
    return text


def _arg(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    text = str(value)
    cleaned = redact(text)
    return value if cleaned == text else cleaned


class RedactingFilter(logging.Filter):
    """Rewrites a record's message, arguments, traceback and stack in place; never drops
    one. The arguments keep their number and order (uvicorn's access formatter unpacks
    them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        elif record.msg is not None and not isinstance(record.msg, bool | int | float):
            record.msg = _arg(record.msg)
        if isinstance(record.args, Mapping):
            record.args = {k: _arg(v) for k, v in record.args.items()}
        elif isinstance(record.args, tuple):
            record.args = tuple(_arg(a) for a in record.args)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


#: The loggers whose records and handlers :func:`install` covers by default.
LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access")


def install(names: Iterable[str] = LOGGERS) -> RedactingFilter:
    """Put one :class:`RedactingFilter` on each named logger and each of its handlers (once;
    calling again after a logging reconfiguration covers the new handlers)."""
    shared = RedactingFilter()
    for name in names:
        logger = logging.getLogger(name)
        for target in (logger, *logger.handlers):
            if not any(isinstance(f, RedactingFilter) for f in target.filters):
                target.addFilter(shared)
    return shared
