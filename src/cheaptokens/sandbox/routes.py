"""The Venice routes under ``/api/v1``.

Every route goes through :meth:`VeniceApi.endpoint`, which authenticates the bearer
key, applies the error budget, turns :class:`~.errors.SandboxError` into Venice's
bodies and adds the common headers. Handlers run under the ledger lock; inference
handlers only *admit* the call there and return a response from :mod:`.metering` that
runs and bills it after the lock is released.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import catalogue, errors, inference, validation
from .budget import Breach, ErrorBudget, ModelRateLimits, RateLimitLog
from .clock import Clock
from .errors import SandboxError
from .ledger import Account, Key, Ledger, epoch_start
from .metering import (
    DEFAULT_SECONDS_PER_MILLION_TOKENS,
    MeteredResponse,
    MeteredStream,
    Ticket,
    run_seconds,
)
from .render import created_key_json, decimal_text, iso, json_bytes, json_response, key_json

VENICE_VERSION = "20260821.193530"  # info.version of the SPEC snapshot
#: docs/venice-facts.md §4.4: 200 "unsupported feature" rejections per 30 s.
DEFAULT_UNSUPPORTED_FEATURE_THRESHOLD = 200
_NO_BODY = object()


@dataclass(slots=True)
class Call:
    """One authenticated request as a handler sees it."""

    request: Request
    key: Key | None
    account: Account | None
    body: Any
    now: datetime
    headers: dict[str, str]

    @property
    def authed(self) -> tuple[Key, Account]:
        assert self.key is not None and self.account is not None
        return self.key, self.account


Handler = Callable[[Call], Response]


def x402_body(url: str) -> dict[str, Any]:
    """The no-credentials 402 (docs/venice-facts.md §4.3): an x402 discovery body. The sandbox
    offers no wallet payment, so ``accepts`` is empty."""
    return {
        "x402Version": 2,
        "resource": {
            "url": url,
            "description": "Venice API (sandbox)",
            "mimeType": "application/json",
        },
        "accepts": [],
        "authOptions": {
            "apiKey": {
                "header": "Authorization",
                "getKey": "https://venice.ai/settings/api",
                "docs": "https://docs.venice.ai/api-reference/api-spec",
            },
            "x402Wallet": {
                "header": "X-Sign-In-With-X",
                "legacyHeader": "X-Wallet-Auth",
                "topUp": "https://venice.ai/settings/api",
                "docs": "https://docs.venice.ai/overview/x402",
            },
        },
    }


class VeniceApi:
    """Venice's routes over one :class:`Ledger`."""

    def __init__(
        self,
        ledger: Ledger,
        clock: Clock,
        *,
        failed_request_threshold: int,
        unsupported_feature_threshold: int = DEFAULT_UNSUPPORTED_FEATURE_THRESHOLD,
        seconds_per_million_tokens: float = DEFAULT_SECONDS_PER_MILLION_TOKENS,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.ledger, self.clock = ledger, clock
        self.budget = ErrorBudget(failed_request_threshold)
        #: requests asking a model for a feature it lacks (docs/venice-facts.md §4.4)
        self.unsupported = ErrorBudget(
            unsupported_feature_threshold, "UNSUPPORTED_FEATURE_REQUESTS"
        )
        self.rate = ModelRateLimits()
        self.breaches = RateLimitLog()
        if seconds_per_million_tokens < 0:
            raise ValueError("seconds_per_million_tokens must not be negative")
        self.seconds_per_million_tokens = seconds_per_million_tokens
        #: called after every request that may have changed the ledger (persistence)
        self.on_change = on_change

    def routes(self, prefix: str = "/api/v1") -> list[Route]:
        ep = self.endpoint
        return [
            Route(f"{prefix}/api_keys", ep(self.list_keys, admin=True), methods=["GET"]),
            Route(f"{prefix}/api_keys", ep(self.create_key, admin=True), methods=["POST"]),
            Route(f"{prefix}/api_keys", ep(self.update_key, admin=True), methods=["PATCH"]),
            Route(f"{prefix}/api_keys", ep(self.delete_key, admin=True), methods=["DELETE"]),
            Route(f"{prefix}/api_keys/rate_limits", ep(self.rate_limits), methods=["GET"]),
            Route(
                f"{prefix}/api_keys/rate_limits/log",
                ep(self.rate_limit_log, admin=True),
                methods=["GET"],
            ),
            Route(f"{prefix}/api_keys/{{id}}", ep(self.get_key, admin=True), methods=["GET"]),
            Route(f"{prefix}/billing/balance", ep(self.balance, admin=True), methods=["GET"]),
            Route(f"{prefix}/models", ep(self.models, optional_auth=True), methods=["GET"]),
            Route(
                f"{prefix}/models/traits",
                ep(self.model_traits, optional_auth=True),
                methods=["GET"],
            ),
            Route(
                f"{prefix}/models/compatibility_mapping",
                ep(self.compatibility_mapping, optional_auth=True),
                methods=["GET"],
            ),
            Route(f"{prefix}/chat/completions", ep(self.chat), methods=["POST"]),
            Route(f"{prefix}/embeddings", ep(self.embeddings), methods=["POST"]),
        ]

    # -- the common wrapper ---------------------------------------------------------------
    def endpoint(
        self, handler: Handler, *, admin: bool = False, optional_auth: bool = False
    ) -> Callable[[Request], Any]:
        async def run(request: Request) -> Response:
            raw = await request.body()
            common = {"cf-ray": f"{secrets.token_hex(8)}-SBX", "x-venice-version": VENICE_VERSION}
            with self.ledger.lock:
                response = self._dispatch(request, raw, handler, admin, optional_auth, common)
            self.on_change()
            return response

        return run

    def _dispatch(
        self,
        request: Request,
        raw: bytes,
        handler: Handler,
        admin: bool,
        optional_auth: bool,
        common: dict[str, str],
    ) -> Response:
        now = self.clock.now()
        auth = request.headers.get("authorization")
        try:
            if auth is None and not optional_auth:
                # docs/venice-facts.md §4.3: no credentials at all → 402 x402 discovery body.
                return json_response(x402_body(str(request.url)), 402, common)
            key = account = None
            if auth is not None:
                scheme, _, token = auth.partition(" ")
                if scheme.lower() != "bearer" or not token.strip():
                    raise errors.standard(401, errors.AUTH_FAILED)
                key, account = self.ledger.authenticate(token.strip(), now)
                common.update(_balance_headers(account))
            body = _parse_body(raw)
        except SandboxError as exc:  # never counted against the error budget
            return _error(exc, common)
        bucket = None
        if key is not None:
            model = body.get("model") if isinstance(body, dict) else None
            user = body.get("user") if isinstance(body, dict) else None
            bucket = (
                key.id,
                model if isinstance(model, str) else None,
                user if isinstance(user, str) else None,
            )
        try:
            if bucket is not None:
                self.budget.check(bucket, now)
                self.unsupported.check(bucket, now)
            if admin and key is not None and key.api_key_type != "ADMIN":
                raise errors.standard(401, errors.ADMIN_REQUIRED)
            return handler(Call(request, key, account, body, now, common))
        except SandboxError as exc:
            if bucket is not None and 400 <= exc.status < 500 and exc.status != 429:
                budget = self.unsupported if exc.unsupported_feature else self.budget
                budget.record(bucket, now)
            if exc.rate_limit is not None and key is not None and account is not None:
                kind, model_id = exc.rate_limit
                if not model_id:
                    model_id = _log_model_id(bucket[1] if bucket else None, request.url.path)
                self.breaches.record(account.id, Breach(key.id, model_id, kind, now))
            return _error(exc, common)

    # -- key management -----------------------------------------------------------------
    def list_keys(self, call: Call) -> Response:
        _, account = call.authed
        keys = sorted(account.active_keys(call.now), key=lambda k: k.created_at, reverse=True)
        data = [key_json(k, call.now, with_usage=True) for k in keys]
        return json_response({"object": "list", "data": data}, headers=call.headers)

    def create_key(self, call: Call) -> Response:
        _, account = call.authed
        fields = validation.parse_create(_json_body(call))
        key, secret = self.ledger.create_key(account, fields, call.now)
        return json_response(
            {"success": True, "data": created_key_json(key, secret)}, headers=call.headers
        )

    def get_key(self, call: Call) -> Response:
        _, account = call.authed
        key = self.ledger.live_key(
            account, call.request.path_params["id"], call.now, errors.KEY_NOT_FOUND
        )
        return json_response(
            {"data": key_json(key, call.now, with_usage=True)}, headers=call.headers
        )

    def update_key(self, call: Call) -> Response:
        _, account = call.authed
        fields = validation.parse_patch(_json_body(call))
        key = self.ledger.update_key(account, fields, call.now)
        return json_response(
            {"success": True, "data": key_json(key, call.now, with_usage=False)},
            headers=call.headers,
        )

    def delete_key(self, call: Call) -> Response:
        _, account = call.authed
        key_id = call.request.query_params.get("id")
        if key_id is None and isinstance(call.body, dict):  # SK-KEYS: a JSON body works too
            key_id = call.body.get("id")
        if not isinstance(key_id, str) or not key_id:
            raise validation.fail(["id"], "Required")
        self.ledger.delete_key(account, key_id)
        return json_response({"success": True}, headers=call.headers)

    def rate_limits(self, call: Call) -> Response:
        key, account = call.authed
        try:
            self.ledger.choose_currency(key, account, call.now)
            permitted = True
        except SandboxError:
            permitted = False
        limits = [
            {
                "apiModelId": m.id,
                "rateLimits": [
                    {"type": "RPM", "amount": m.tier.rpm},
                    {"type": "TPM", "amount": m.tier.tpm},
                ],
            }
            for m in catalogue.models_by_id().values()
            if m.type in ("text", "embedding")
        ]
        data = {
            "accessPermitted": permitted,
            "apiTier": {"id": "paid", "isCharged": True},
            "balances": self.ledger.key_balances(key, account, call.now),
            "keyExpiration": iso(key.expires_at),
            "nextEpochBegins": iso(epoch_start(call.now) + timedelta(days=1)),
            "rateLimits": limits,
        }
        return json_response({"data": data}, headers=call.headers)

    def rate_limit_log(self, call: Call) -> Response:
        """The account's last 50 breaches, newest first (docs/venice-facts.md §1.5; SK-KEYS):
        the sandbox's own 429s for RPM/TPM, the key-creation limit and both error budgets."""
        _, account = call.authed
        data = [
            {
                "apiKeyId": b.api_key_id,
                "modelId": b.model_id,
                "rateLimitTier": "paid",
                "rateLimitType": b.kind,
                "timestamp": iso(b.at),
            }
            for b in self.breaches.newest_first(account.id)
        ]
        return json_response({"object": "list", "data": data}, headers=call.headers)

    def balance(self, call: Call) -> Response:
        _, account = call.authed
        diem, usd = account.diem, account.usd
        currency = "DIEM" if diem > 0 else "USD" if usd > 0 else None
        return json_response(
            {
                # SK-BILL: canConsume when the spendable total is at least $0.10.
                "canConsume": max(diem, Decimal(0)) + max(usd, Decimal(0)) >= Decimal("0.1"),
                "consumptionCurrency": currency,
                "balances": {"diem": diem, "usd": usd},
                "diemEpochAllocation": account.diem_allocation,
            },
            headers=call.headers,
        )

    # -- models and inference -------------------------------------------------------------
    def models(self, call: Call) -> Response:
        model_type = call.request.query_params.get("type", "text")
        if model_type not in (*catalogue.MODEL_TYPES, "all", "code"):
            raise validation.fail(["type"], "Invalid enum value")
        privacy = call.key.model_privacy if call.key is not None else "ALL"
        return json_response(
            {
                "object": "list",
                "type": model_type,
                "data": catalogue.list_models(model_type, privacy),
            },
            headers=call.headers,
        )

    def model_traits(self, call: Call) -> Response:
        """``GET /models/traits?type=``: trait → model id from the catalogue."""
        return self._model_map(call, catalogue.traits)

    def compatibility_mapping(self, call: Call) -> Response:
        """``GET /models/compatibility_mapping?type=``: alias → model id."""
        return self._model_map(call, catalogue.compatibility_mapping)

    def _model_map(self, call: Call, source: Callable[[str, str], dict[str, str]]) -> Response:
        model_type = call.request.query_params.get("type", "text")
        if model_type not in catalogue.MODEL_TYPES:  # the SPEC's enum for these two routes
            options = " | ".join(f"'{t}'" for t in catalogue.MODEL_TYPES)
            raise errors.detailed(
                [
                    errors.issue(
                        ["type"],
                        f"Invalid enum value. Expected {options}, received '{model_type}'",
                        "invalid_enum_value",
                        options=list(catalogue.MODEL_TYPES),
                    )
                ]
            )
        privacy = call.key.model_privacy if call.key is not None else "ALL"
        return json_response(
            {"object": "list", "type": model_type, "data": source(model_type, privacy)},
            headers=call.headers,
        )

    def chat(self, call: Call) -> Response:
        """Admit (under the lock), then run and bill in the response (outside it)."""
        key, account = call.authed
        plan = inference.plan_chat(_json_body(call))
        inference.check_privacy(plan.model, key.model_privacy)
        headers = {
            **call.headers,
            **self.rate.admit(account.id, plan.model, call.now),
            "x-venice-model-id": plan.model.id,
        }
        currency = self.ledger.admit(key, account, call.now)
        ticket = Ticket(key, account, currency, plan.model, plan.prompt_tokens)
        ident, created = inference.chat_id(plan, call.now), int(call.now.timestamp())
        rate = self.seconds_per_million_tokens
        if not plan.stream:
            body = inference.chat_response(plan, ident=ident, created=created, currency=currency)
            return MeteredResponse(
                json_bytes(body),
                ticket=ticket,
                completion_tokens=plan.completion_tokens,
                seconds=run_seconds(plan.prompt_tokens + plan.completion_tokens, rate),
                bill=self.bill,
                headers=headers,
            )
        chunks = inference.chat_chunks(plan, ident=ident, created=created, currency=currency)
        return MeteredStream(
            ticket=ticket,
            head=b"".join(_sse_event(c) for c in chunks.head),
            pieces=[_sse_event(c) for c, _ in chunks.pieces],
            weights=[tokens for _, tokens in chunks.pieces],
            tail=[*(_sse_event(c) for c in chunks.tail), b"data: [DONE]\n\n"],
            prompt_seconds=run_seconds(plan.prompt_tokens, rate),
            token_seconds=run_seconds(1, rate),
            bill=self.bill,
            headers=headers,
        )

    def embeddings(self, call: Call) -> Response:
        key, account = call.authed
        plan = inference.plan_embeddings(_json_body(call))
        inference.check_privacy(plan.model, key.model_privacy)
        headers = {
            **call.headers,
            **self.rate.admit(account.id, plan.model, call.now),
            "x-venice-model-id": plan.model.id,
        }
        currency = self.ledger.admit(key, account, call.now)
        return MeteredResponse(
            json_bytes(inference.embeddings_response(plan)),
            ticket=Ticket(key, account, currency, plan.model, plan.prompt_tokens),
            completion_tokens=0,
            seconds=run_seconds(plan.prompt_tokens, self.seconds_per_million_tokens),
            bill=self.bill,
            headers=headers,
        )

    def bill(self, ticket: Ticket, completion_tokens: int) -> Decimal:
        """Charge a finished (or abandoned) call at the sandbox's *current* time, to the
        currency chosen at admission (docs/venice-facts.md §2.3); once per ticket."""
        with self.ledger.lock:
            if ticket.billed is not None:
                return ticket.billed
            now = self.clock.now()
            amount = ticket.model.cost(ticket.prompt_tokens, completion_tokens)
            ticket.account.refresh(now)  # a call that ran past 00:00 UTC bills the new day
            self.ledger.charge(ticket.key, ticket.account, ticket.currency, amount, now)
            self.rate.add_tokens(
                ticket.account.id, ticket.model, ticket.prompt_tokens + completion_tokens, now
            )
            ticket.billed = amount
        self.on_change()
        return amount


def _log_model_id(model: str | None, path: str) -> str:
    """How the rate-limit log names the model of a budget breach (SK-KEYS): the resolved
    model id, ``model:unknown`` when the name resolves to none, and
    ``endpoint:api/v1/...`` for a request that names no model."""
    if model is None:
        return "endpoint:" + path.lstrip("/")
    kind = "embedding" if path.endswith("/embeddings") else "text"
    found = catalogue.resolve_model(model.partition(":")[0], kind)
    return found.id if found is not None else "model:unknown"


def _sse_event(chunk: dict[str, Any]) -> bytes:
    return b"data: " + json_bytes(chunk) + b"\n\n"


def _balance_headers(account: Account) -> dict[str, str]:
    """Account balances before the request was processed (docs/venice-facts.md §5.1), as
    plain decimal text; negative after a call overshot (billed after it ran, §2.3)."""
    return {
        "x-venice-balance-usd": decimal_text(account.usd),
        "x-venice-balance-diem": decimal_text(account.diem),
    }


def _parse_body(raw: bytes) -> Any:
    if not raw.strip():
        return _NO_BODY
    try:
        return json.loads(raw, parse_float=Decimal)
    except ValueError:
        raise errors.standard(400, "Invalid JSON in request body") from None


def _json_body(call: Call) -> Any:
    if call.body is _NO_BODY:
        raise validation.fail([], "Expected object, received undefined")
    return call.body


def _error(exc: SandboxError, headers: dict[str, str]) -> Response:
    return json_response(exc.body, exc.status, {**headers, **exc.headers})
