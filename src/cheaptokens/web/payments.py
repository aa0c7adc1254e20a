"""Payment edges: the sandbox checkout page, provider webhooks and the success redirect."""

from __future__ import annotations

import json
import logging
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from cheaptokens.errors import InvalidInput, NotFound
from cheaptokens.money import format_usd
from cheaptokens.orders import flows
from cheaptokens.orders.ids import is_order_id
from cheaptokens.payments import (
    InvalidCheckout,
    PaymentEvent,
    SandboxPayments,
    WebhookSignatureError,
)
from cheaptokens.payments.errors import PaymentError, WebhookPayloadError
from cheaptokens.shop import Shop
from cheaptokens.web.deps import ShopDep
from cheaptokens.web.render import render

log = logging.getLogger(__name__)
router = APIRouter(tags=["payments"])
_SESSION_ID = re.compile(r"[A-Za-z0-9_]{1,255}")


def _apply(shop: Shop, event: PaymentEvent) -> None:
    flows.apply_payment_event(
        db=shop.db, provider=shop.payments.name, event=event, now=shop.clock()
    )


def _sandbox(shop: Shop) -> SandboxPayments:
    if not isinstance(shop.payments, SandboxPayments):
        raise NotFound("sandbox payments are not enabled on this shop")
    return shop.payments


@router.get("/checkout/sandbox/{token}", response_class=HTMLResponse, include_in_schema=False)
def sandbox_checkout_page(token: str, request: Request, shop: ShopDep) -> Response:
    provider = _sandbox(shop)
    try:
        checkout = provider.read_checkout(token)
    except InvalidCheckout:
        raise NotFound("this checkout link is not valid; start again from the shop") from None
    return render(
        request,
        "checkout_sandbox.html",
        amount=format_usd(checkout.amount_cents),
        buys=checkout.description,
        order_id=checkout.order_id,
        expires_at=checkout.expires_at,
        expired=checkout.is_expired(shop.clock()),
    )


def _is_json(request: Request) -> bool:
    return request.headers.get("content-type", "").startswith("application/json")


async def checkout_outcome(request: Request) -> Literal["paid", "declined"]:
    """The buyer's choice on the sandbox checkout: a form field (the page) or JSON (scripts)."""
    outcome: Any
    if _is_json(request):
        try:
            body: Any = json.loads(await request.body())
        except ValueError:
            raise InvalidInput(
                'the body must be JSON like {"outcome": "paid"}', field="outcome"
            ) from None
        outcome = body.get("outcome") if isinstance(body, dict) else None
    else:
        outcome = (await request.form()).get("outcome")
    if outcome == "paid":
        return "paid"
    if outcome == "declined":
        return "declined"
    raise InvalidInput('outcome must be "paid" or "declined"', field="outcome")


@router.post("/checkout/sandbox/{token}", include_in_schema=False)
def sandbox_checkout_submit(
    token: str,
    request: Request,
    shop: ShopDep,
    outcome: Annotated[Literal["paid", "declined"], Depends(checkout_outcome)],
) -> Response:
    provider = _sandbox(shop)
    try:
        event = provider.outcome(token, outcome, shop.clock())
    except InvalidCheckout:
        raise NotFound("this checkout link is not valid; start again from the shop") from None
    _apply(shop, event)
    if _is_json(request):
        return JSONResponse({"order_id": event.order_id, "result": event.kind})
    order_id = flows.order_paid_for(db=shop.db, payment_for=event.order_id)
    return RedirectResponse(f"/orders/{order_id}?checkout={event.kind}", status_code=303)


async def raw_body(request: Request) -> bytes:
    return await request.body()


@router.post("/webhooks/{provider_name}", include_in_schema=False)
def webhook(
    provider_name: str,
    request: Request,
    shop: ShopDep,
    payload: Annotated[bytes, Depends(raw_body)],
) -> Response:
    """Provider events, verified over the raw body before anything is parsed."""
    if provider_name != shop.payments.name:
        raise NotFound("no such webhook endpoint")
    try:
        event = shop.payments.parse_webhook(
            payload=payload, headers=dict(request.headers), now=shop.clock()
        )
    except WebhookSignatureError:
        return JSONResponse(
            {"error": {"code": "bad_signature", "message": "signature check failed"}},
            status_code=400,
        )
    except WebhookPayloadError:
        return JSONResponse(
            {"error": {"code": "bad_payload", "message": "unreadable event"}}, status_code=400
        )
    if event is not None:
        _apply(shop, event)
    return JSONResponse({"received": True})


@router.get("/checkout/return", include_in_schema=False)
def checkout_return(order: str, session_id: str, shop: ShopDep) -> Response:
    """Stripe's success redirect: confirm with the provider in case the webhook is late.

    Anyone can call this URL with anything in it, so the ids are checked before they go to the
    provider or into the ``Location`` header, and a provider that cannot answer (an unknown
    session, Stripe down) only skips the early confirmation: the webhook still comes.
    """
    if not is_order_id(order):
        return RedirectResponse("/", status_code=303)
    if _SESSION_ID.fullmatch(session_id) is not None:
        try:
            event = shop.payments.confirm(reference=session_id)
        except PaymentError as exc:
            log.info("checkout return for %s not confirmed: %s", order, type(exc).__name__)
            event = None
        if event is not None and event.order_id == order:
            _apply(shop, event)
    return RedirectResponse(f"/orders/{order}", status_code=303)
