"""The HTTP client for one Venice account's key-management and billing routes.

:class:`VeniceClient` implements :class:`~cheaptokens.venice.types.VeniceGateway` over an
injected :class:`httpx.Client` (a real one in production, an ``httpx.MockTransport`` in unit
tests, the sandbox ASGI app in integration tests). Shapes follow docs/venice-facts.md §1–2:
requests send ``consumptionLimit``, list/get/patch answers carry ``consumptionLimits``; amounts
are parsed to :class:`~decimal.Decimal` (``parse_float=Decimal``), never float.

Retries: 429, 5xx and transport errors are retried with capped exponential backoff and jitter,
honouring ``Retry-After`` and the ``x-ratelimit-reset-requests`` / ``x-ratelimit-resets``
headers (Unix ms, docs/venice-facts.md §5.1). ``POST /api_keys`` is *not* idempotent and is
retried only when Venice provably did not act (see :meth:`VeniceClient.create_key`).

Only the method, path, status and attempt number are ever logged; the admin key and key
secrets never reach logs or exceptions.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any, Final, TypeVar, cast
from urllib.parse import quote

import httpx

from cheaptokens import metrics
from cheaptokens.times import iso_z
from cheaptokens.venice.errors import (
    NotFound,
    OutcomeUnknown,
    Unavailable,
    UnexpectedResponse,
    VeniceError,
    error_for_status,
    redact,
)
from cheaptokens.venice.types import (
    ApiKey,
    Balance,
    ConsumptionLimit,
    CreatedKey,
    KeyType,
    LimitPeriod,
    ModelPrivacy,
    VeniceGateway,
)

__all__ = ["DEFAULT_BASE_URL", "ModelRateLimits", "RateLimits", "VeniceClient"]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

DEFAULT_BASE_URL: Final = "https://api.venice.ai/api/v1"
DEFAULT_TIMEOUT: Final = httpx.Timeout(10.0, connect=5.0)
#: the SPEC's consumptionLimit maximum (docs/venice-facts.md §1.2)
_MAX_LIMIT: Final = Decimal(9_999_999_999)
_KEY_TYPES: Final = ("INFERENCE", "ADMIN")
_PERIODS: Final = ("EPOCH", "MONTH", "LIFETIME")
_PRIVACY: Final = ("ALL", "PRIVATE_TEXT", "PRIVATE_ONLY")

# Errors raised before a byte of the request left this machine: safe to retry anything.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
# Statuses after which a create may still have happened behind the gateway: 500 "unknown
# error", 502 and 504 from the proxy in front of Venice. 429 and 503 are refusals.
_CREATE_AMBIGUOUS_STATUSES = frozenset({500, 502, 504})


@dataclass(frozen=True, slots=True)
class ModelRateLimits:
    """One model's limits from ``rate_limits``: ``{"RPM": 500, "TPM": 5000000, ...}``."""

    model_id: str
    limits: Mapping[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RateLimits:
    """``GET /api_keys/rate_limits`` for the calling key (docs/venice-facts.md §1.5).

    ``access_permitted`` is Venice's real admission check for that key; the balances are the
    account balances clamped to the key's remaining limit.
    """

    access_permitted: bool
    api_tier: str
    is_charged: bool
    balance_usd: Decimal | None
    balance_diem: Decimal | None
    key_expiration: datetime | None
    next_epoch_begins: datetime
    models: tuple[ModelRateLimits, ...] = ()


class VeniceClient:
    """Key management and balance for one Venice account, reached with its ADMIN key.

    ``sleep`` and ``clock`` are injectable so tests can observe the backoff without waiting;
    ``jitter`` returns a number in ``[0, 1)`` and scales each computed backoff to
    between half and all of it ("equal jitter").

    A server hint (``Retry-After`` or a reset header) is honoured when it is at most
    ``max_retry_after`` seconds; a longer one ends the retries at once so that the caller can
    reschedule instead of blocking.
    """

    def __init__(
        self,
        http: httpx.Client,
        admin_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        max_retries: int = 4,
        backoff_base: float = 0.5,
        backoff_cap: float = 8.0,
        max_retry_after: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        if not admin_key:
            raise ValueError("admin_key is required")
        self._http = http
        self._admin_key = admin_key
        self._base_url = base_url.rstrip("/")
        self._max_retries = max_retries
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._max_retry_after = max_retry_after
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"VeniceClient(base_url={self._base_url!r})"

    # -- keys ------------------------------------------------------------------------------

    def create_key(
        self,
        *,
        description: str,
        consumption_limit: ConsumptionLimit,
        limit_period: LimitPeriod = "EPOCH",
        expires_at: datetime | None = None,
        key_type: KeyType = "INFERENCE",
        model_privacy: ModelPrivacy | None = None,
    ) -> CreatedKey:
        """Create a key with ``POST /api_keys`` and return it with its one-time secret.

        ``model_privacy`` (``ALL`` | ``PRIVATE_TEXT`` | ``PRIVATE_ONLY``) is sent only when
        given; Venice's default is ``ALL`` (docs/venice-facts.md §1.2). A restricted key gets
        403 on anonymized models (§4.3).

        Not idempotent, so it is retried only when Venice provably did not act: connection
        failures before the request was sent, and 429/503 answers. After a read/write
        timeout, a dropped connection, a 500/502/504 or an unreadable 2xx body the key may
        exist anyway; :class:`~cheaptokens.venice.errors.OutcomeUnknown` (an
        ``Unavailable``) is raised and the caller must reconcile by listing keys and
        matching the ``description`` it sent before creating again.
        """
        if key_type not in _KEY_TYPES:
            raise ValueError(f"unknown key type {key_type!r}")
        if limit_period not in _PERIODS:
            raise ValueError(f"unknown limit period {limit_period!r}")
        body: dict[str, Any] = {
            "apiKeyType": key_type,
            "description": description,
            "consumptionLimit": _limit_body(consumption_limit),
            "limitPeriod": limit_period,
        }
        if expires_at is not None:
            body["expiresAt"] = format_expires_at(expires_at)
        if model_privacy is not None:
            body["modelPrivacy"] = _privacy(model_privacy)
        data = self._request("POST", "/api_keys", body=body, idempotent=False)
        try:
            return _parse_created(_data(data))
        except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
            raise OutcomeUnknown(
                "key creation answered with an unreadable body", method="POST", path="/api_keys"
            ) from exc

    def list_keys(self) -> list[ApiKey]:
        """Active (non-expired) keys, newest first as Venice lists them
        (docs/venice-facts.md §1.3)."""
        data = self._request("GET", "/api_keys")
        return self._parse("GET", "/api_keys", lambda: [_parse_key(k) for k in _list(data)])

    def get_key(self, key_id: str) -> ApiKey:
        """One key; an unknown or expired id raises :class:`NotFound`."""
        path = f"/api_keys/{quote(key_id, safe='')}"
        data = self._request("GET", path)
        return self._parse("GET", path, lambda: _parse_key(_data(data)))

    def update_key(
        self,
        key_id: str,
        *,
        description: str | None = None,
        consumption_limit: ConsumptionLimit | None = None,
        limit_period: LimitPeriod | None = None,
        expires_at: datetime | None = None,
        model_privacy: ModelPrivacy | None = None,
    ) -> ApiKey:
        """``PATCH /api_keys``: change only the given fields (docs/venice-facts.md §1.4).

        The answer carries no usage figures, so ``period_usage_*`` come back ``None``.
        """
        body: dict[str, Any] = {"id": key_id}
        if description is not None:
            body["description"] = description
        if consumption_limit is not None:
            body["consumptionLimit"] = _limit_body(consumption_limit)
        if limit_period is not None:
            if limit_period not in _PERIODS:
                raise ValueError(f"unknown limit period {limit_period!r}")
            body["limitPeriod"] = limit_period
        if expires_at is not None:
            body["expiresAt"] = format_expires_at(expires_at)
        if model_privacy is not None:
            body["modelPrivacy"] = _privacy(model_privacy)
        data = self._request("PATCH", "/api_keys", body=body)
        return self._parse("PATCH", "/api_keys", lambda: _parse_key(_data(data)))

    def delete_key(self, key_id: str) -> None:
        """Revoke a key with ``DELETE /api_keys?id=<id>``; an unknown id raises :class:`NotFound`.

        If an earlier attempt's outcome was unknown (timeout after sending) and the retry
        says "not found", the first attempt deleted it: that counts as success.
        """
        self._request("DELETE", "/api_keys", params={"id": key_id}, gone_is_done=True)

    def rate_limits(self, *, api_key: str | None = None) -> RateLimits:
        """``GET /api_keys/rate_limits`` for the admin key, or for ``api_key`` when given.

        Any key may call this route (docs/venice-facts.md §1.5), so the shop can ask whether a sold
        INFERENCE key is still admitted (``access_permitted``).
        """
        path = "/api_keys/rate_limits"
        data = self._request("GET", path, key=api_key)
        return self._parse("GET", path, lambda: _parse_rate_limits(_data(data)))

    # -- billing ---------------------------------------------------------------------------

    def balance(self) -> Balance:
        """``GET /billing/balance``: DIEM left this epoch, the epoch allocation and USD."""
        path = "/billing/balance"
        data = self._request("GET", path)
        return self._parse("GET", path, lambda: _parse_balance(data))

    # -- transport -------------------------------------------------------------------------

    def _parse(self, method: str, path: str, parse: Callable[[], _T]) -> _T:
        try:
            return parse()
        except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
            raise UnexpectedResponse(
                f"unexpected response shape ({type(exc).__name__})", method=method, path=path
            ) from exc

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        idempotent: bool = True,
        key: str | None = None,
        gone_is_done: bool = False,
    ) -> Any:
        """Send one logical request with retries; return the decoded JSON body.

        ``gone_is_done``: a :class:`NotFound` after an attempt whose outcome is unknown means
        that attempt succeeded (used by delete); return ``None`` then.
        """
        secrets = (self._admin_key, key or "")
        headers = {
            "Authorization": f"Bearer {key or self._admin_key}",
            "Accept": "application/json",
        }
        content = None
        if body is not None:
            content = dump_json(body).encode()
            headers["Content-Type"] = "application/json"
        unknown_outcome = False
        attempt = 0
        while True:
            attempt += 1
            hint: float | None = None
            cause: BaseException | None = None
            try:
                response = self._send(method, path, params=params, content=content, headers=headers)
            except _NOT_SENT as exc:
                log.warning("venice %s %s attempt %d: %s", method, path, attempt, _kind(exc))
                error: VeniceError = Unavailable(
                    f"could not connect ({_kind(exc)})", method=method, path=path
                )
                cause = exc
            except httpx.TransportError as exc:
                log.warning("venice %s %s attempt %d: %s", method, path, attempt, _kind(exc))
                if not idempotent:
                    raise OutcomeUnknown(
                        f"no answer after sending ({_kind(exc)}); the request may have "
                        "taken effect",
                        method=method,
                        path=path,
                    ) from exc
                unknown_outcome = True
                error = Unavailable(f"no answer ({_kind(exc)})", method=method, path=path)
                cause = exc
            else:
                status = response.status_code
                log.info("venice %s %s attempt %d: %d", method, path, attempt, status)
                if 200 <= status < 300:
                    return self._decode(response, method, path, idempotent=idempotent)
                hint = self._server_hint(response)
                error = self._error(response, method, path, secrets, hint)
                if gone_is_done and unknown_outcome and isinstance(error, NotFound):
                    log.info("venice %s %s: already gone after an unanswered attempt", method, path)
                    return None
                if status != 429 and status < 500:
                    raise error
                if not idempotent and status in _CREATE_AMBIGUOUS_STATUSES:
                    raise OutcomeUnknown(
                        f"{error.message} (the request may have taken effect)",
                        status=status,
                        method=method,
                        path=path,
                    )
            delay = self._delay(attempt, hint)
            if attempt > self._max_retries or delay is None:
                raise error from cause
            log.info("venice %s %s: retrying in %.2fs", method, path, delay)
            self._sleep(delay)

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None,
        content: bytes | None,
        headers: Mapping[str, str],
    ) -> httpx.Response:
        """One attempt, timed and counted for ``/metrics`` by route and outcome (the status,
        or the transport error's class)."""
        started = time.perf_counter()
        outcome = "error"
        try:
            response = self._http.request(
                method,
                self._base_url + path,
                params=params,
                content=content,
                headers=headers,
                timeout=self._timeout,
            )
            outcome = str(response.status_code)
            return response
        except httpx.TransportError as exc:
            outcome = _kind(exc)
            raise
        finally:
            metrics.venice_request(method, route_of(path), outcome, time.perf_counter() - started)

    def _delay(self, attempt: int, hint: float | None) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``; ``None`` if the hint is too long."""
        backoff = min(self._backoff_cap, self._backoff_base * 2.0 ** (attempt - 1))
        backoff *= 0.5 + 0.5 * self._jitter()
        if hint is None:
            return backoff
        if hint > self._max_retry_after:
            return None
        return max(hint, backoff)

    def _server_hint(self, response: httpx.Response) -> float | None:
        """Seconds Venice asks us to wait, from its headers (docs/venice-facts.md §5.1),
        or ``None``.

        ``Retry-After`` is relative, so it wins when present; the reset headers are absolute
        Unix times and depend on our clock agreeing with Venice's.
        """
        retry_after = _retry_after(response.headers.get("retry-after"), self._clock)
        if retry_after is not None:
            return retry_after
        hints = [
            _reset_at(response.headers.get("x-ratelimit-reset-requests"), self._clock),
            _reset_at(response.headers.get("x-ratelimit-resets"), self._clock),
        ]
        found = [h for h in hints if h is not None]
        return max(found) if found else None

    def _error(
        self,
        response: httpx.Response,
        method: str,
        path: str,
        secrets: tuple[str, ...],
        hint: float | None,
    ) -> VeniceError:
        message, fields = _error_body(response)
        message = redact(message, secrets)
        return error_for_status(
            response.status_code,
            message,
            method=method,
            path=path,
            fields=fields,
            retry_after=hint,
        )

    def _decode(self, response: httpx.Response, method: str, path: str, *, idempotent: bool) -> Any:
        try:
            return json.loads(response.content, parse_float=Decimal)
        except ValueError as exc:
            if not idempotent:
                raise OutcomeUnknown(
                    "the answer is not JSON; the request may have taken effect",
                    status=response.status_code,
                    method=method,
                    path=path,
                ) from None
            raise UnexpectedResponse(
                "response is not JSON", status=response.status_code, method=method, path=path
            ) from exc


_: type[VeniceGateway] = VeniceClient


# -- wire helpers ----------------------------------------------------------------------------


def dump_json(value: Any) -> str:
    """JSON text for a request body, writing :class:`Decimal` as an exact number (no float)."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("amount must be finite")
        return format(value, "f")
    if isinstance(value, Mapping):
        items = (f"{json.dumps(str(k))}:{dump_json(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dump_json(v) for v in value) + "]"
    if isinstance(value, float):
        raise TypeError("floats are not sent to Venice; use Decimal")
    return json.dumps(value)


def format_expires_at(when: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.sssZ`` in UTC, the form Venice echoes (docs/venice-facts.md §1.2)."""
    if when.tzinfo is None:
        raise ValueError("expires_at must be timezone-aware")
    return iso_z(when, "milliseconds")


def parse_time(value: Any) -> datetime | None:
    """Parse Venice's ISO time (``…T00:00:00.000Z`` or without ms); ``None``/``""`` → None."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TypeError("time must be a string")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _decimal(value: Any) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool | float):
        raise TypeError("expected an exact number")
    if isinstance(value, Decimal | int | str):
        return Decimal(value)
    raise TypeError("expected a number")


def _required_decimal(value: Any) -> Decimal:
    parsed = _decimal(value)
    if parsed is None:
        raise TypeError("expected a number, got null")
    return parsed


def _privacy(value: str) -> str:
    if value not in _PRIVACY:
        raise ValueError(f"unknown model privacy {value!r}")
    return value


def _optional_privacy(value: Any) -> ModelPrivacy | None:
    """``modelPrivacy`` from an answer; absent → ``None`` (a value Venice may add later is
    passed through as it is)."""
    return None if value is None else cast(ModelPrivacy, _str(value))


def _limit_body(limit: ConsumptionLimit) -> dict[str, Decimal | None]:
    for amount in (limit.usd, limit.diem):
        if amount is not None and not (0 <= amount <= _MAX_LIMIT):
            raise ValueError(f"consumption limit must be between 0 and {_MAX_LIMIT}")
    return {"usd": limit.usd, "diem": limit.diem}


def _parse_limit(raw: Any) -> ConsumptionLimit:
    if raw is None:
        return ConsumptionLimit()
    return ConsumptionLimit(usd=_decimal(raw.get("usd")), diem=_decimal(raw.get("diem")))


def _data(body: Any) -> Mapping[str, Any]:
    data = body["data"]
    if not isinstance(data, Mapping):
        raise TypeError("data is not an object")
    return data


def _list(body: Any) -> list[Mapping[str, Any]]:
    data = body["data"]
    if not isinstance(data, list):
        raise TypeError("data is not a list")
    return data


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def _parse_key(raw: Mapping[str, Any]) -> ApiKey:
    # List/get/patch use the plural; accept the singular too (the naming trap,
    # docs/venice-facts.md §1.3).
    limits = raw["consumptionLimits"] if "consumptionLimits" in raw else raw["consumptionLimit"]
    usage = raw.get("currentPeriodUsage") or {}
    return ApiKey(
        id=_str(raw["id"]),
        api_key_type=cast(KeyType, _str(raw["apiKeyType"])),
        description=_str(raw.get("description") or ""),
        created_at=_required_time(raw["createdAt"]),
        expires_at=parse_time(raw.get("expiresAt")),
        last_used_at=parse_time(raw.get("lastUsedAt")),
        last6=_str(raw["last6Chars"]),
        consumption_limits=_parse_limit(limits),
        limit_period=cast(LimitPeriod, _str(raw["limitPeriod"])),
        period_usage_usd=_decimal(usage.get("usd")),
        period_usage_diem=_decimal(usage.get("diem")),
        model_privacy=_optional_privacy(raw.get("modelPrivacy")),
    )


def _parse_created(raw: Mapping[str, Any]) -> CreatedKey:
    limits = raw["consumptionLimit"] if "consumptionLimit" in raw else raw["consumptionLimits"]
    return CreatedKey(
        id=_str(raw["id"]),
        api_key=_str(raw["apiKey"]),
        api_key_type=cast(KeyType, _str(raw["apiKeyType"])),
        description=_str(raw.get("description") or ""),
        expires_at=parse_time(raw.get("expiresAt")),
        consumption_limits=_parse_limit(limits),
        limit_period=cast(LimitPeriod, _str(raw["limitPeriod"])),
        model_privacy=_optional_privacy(raw.get("modelPrivacy")),
    )


def _required_time(value: Any) -> datetime:
    parsed = parse_time(value)
    if parsed is None:
        raise ValueError("missing time")
    return parsed


def _parse_balance(raw: Any) -> Balance:
    balances = raw["balances"]
    return Balance(
        can_consume=bool(raw["canConsume"]),
        diem=_decimal(balances.get("diem")),
        usd=_decimal(balances.get("usd")),
        diem_epoch_allocation=_required_decimal(raw["diemEpochAllocation"]),
    )


def _parse_rate_limits(raw: Mapping[str, Any]) -> RateLimits:
    tier = raw["apiTier"]
    balances = raw.get("balances") or {}
    models = tuple(
        ModelRateLimits(
            model_id=_str(entry.get("apiModelId") or ""),
            limits={_str(r["type"]): _required_decimal(r["amount"]) for r in entry["rateLimits"]},
        )
        for entry in raw["rateLimits"]
    )
    return RateLimits(
        access_permitted=bool(raw["accessPermitted"]),
        api_tier=_str(tier["id"]),
        is_charged=bool(tier["isCharged"]),
        balance_usd=_decimal(balances.get("USD")),
        balance_diem=_decimal(balances.get("DIEM")),
        key_expiration=parse_time(raw.get("keyExpiration")),
        next_epoch_begins=_required_time(raw["nextEpochBegins"]),
        models=models,
    )


def _error_body(response: httpx.Response) -> tuple[str, tuple[str, ...]]:
    """Venice's message and the field names of a DetailedError (docs/venice-facts.md §4.1)."""
    fallback = response.reason_phrase or f"HTTP {response.status_code}"
    try:
        body = json.loads(response.content, parse_float=Decimal)
    except ValueError:
        return fallback, ()
    if not isinstance(body, Mapping):
        return fallback, ()
    error = body.get("error")
    if isinstance(error, Mapping):  # OpenAI-style {"error": {"message": ...}}
        error = error.get("message")
    message = error if isinstance(error, str) and error else fallback
    details = body.get("details")
    fields: tuple[str, ...] = ()
    if isinstance(details, Mapping):
        fields = tuple(str(k) for k in details if k != "_errors")
    return message, fields


def _retry_after(value: str | None, clock: Callable[[], float]) -> float | None:
    """``Retry-After``: seconds (Venice, docs/venice-facts.md §5.1) or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - clock())


def _reset_at(value: str | None, clock: Callable[[], float]) -> float | None:
    """A reset header as seconds from now.

    SK-ERR says Unix milliseconds, INTRO "a Unix timestamp" and, for tokens, seconds until
    reset (docs/venice-facts.md §5.1), so the magnitude decides: ms, s since the epoch, or a delta.
    """
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    if number > 1e11:
        return max(0.0, number / 1000 - clock())
    if number > 1e9:
        return max(0.0, number - clock())
    return max(0.0, number)


def route_of(path: str) -> str:
    """A request path as a route template for metrics: ids never become labels."""
    if path.startswith("/api_keys/") and path != "/api_keys/rate_limits":
        return "/api_keys/{id}"
    return path


def _kind(exc: BaseException) -> str:
    """A transport error's class name: its text could carry a URL or other detail."""
    return type(exc).__name__
