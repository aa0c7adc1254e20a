"""The sandbox provider: signed stateless tokens, button-chosen outcomes, signed webhooks."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from cheaptokens.payments import (
    InvalidCheckout,
    PaymentProvider,
    RefundFailed,
    SandboxPayments,
    WebhookPayloadError,
    WebhookSignatureError,
)

SECRET = b"sandbox-secret-FAKE-0123456789abcdef"
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
EXPIRES = NOW + timedelta(minutes=15)


@pytest.fixture
def sandbox() -> SandboxPayments:
    return SandboxPayments(SECRET, "http://shop.test/")


def _checkout(sandbox: SandboxPayments, order_id: str = "ord_1", amount: int = 1234) -> str:
    checkout = sandbox.create_checkout(
        order_id=order_id,
        amount_cents=amount,
        currency="USD",
        description="credit",
        success_url="http://shop.test/orders/ord_1",
        cancel_url="http://shop.test/",
        expires_at=EXPIRES,
    )
    assert checkout.provider == "sandbox"
    assert checkout.expires_at == EXPIRES
    return checkout.checkout_url.rsplit("/", 1)[1]


def test_is_a_payment_provider(sandbox: SandboxPayments) -> None:
    provider: PaymentProvider = sandbox
    assert provider.name == "sandbox"


def test_checkout_url_is_the_sandbox_page(sandbox: SandboxPayments) -> None:
    token = _checkout(sandbox)
    checkout = sandbox.create_checkout(
        order_id="ord_1",
        amount_cents=1234,
        currency="usd",
        description="credit",
        success_url="http://shop.test/orders/ord_1",
        cancel_url="http://shop.test/",
        expires_at=EXPIRES,
    )
    assert checkout.checkout_url == f"http://shop.test/checkout/sandbox/{token}"
    assert checkout.reference == sandbox.read_checkout(token).reference


def test_token_round_trip_in_another_instance(sandbox: SandboxPayments) -> None:
    token = _checkout(sandbox)
    other_process = SandboxPayments(SECRET, "http://elsewhere.test")
    read = other_process.read_checkout(token)
    assert (read.order_id, read.amount_cents, read.currency) == ("ord_1", 1234, "usd")
    assert read.expires_at == EXPIRES
    assert read.reference.startswith("sbcs_")
    assert not read.is_expired(NOW)
    assert read.is_expired(EXPIRES)


def test_tampered_token_is_rejected(sandbox: SandboxPayments) -> None:
    token = _checkout(sandbox, amount=1234)
    body_b64, mac = token.split(".")
    fields = json.loads(base64.urlsafe_b64decode(body_b64 + "=" * (-len(body_b64) % 4)))
    fields["a"] = 1
    forged = base64.urlsafe_b64encode(json.dumps(fields).encode()).rstrip(b"=").decode()
    for bad in (f"{forged}.{mac}", token[:-2] + "AA", "no-dot", f"{body_b64}.!!!", ""):
        with pytest.raises(InvalidCheckout):
            sandbox.read_checkout(bad)


def test_token_from_another_secret_is_rejected(sandbox: SandboxPayments) -> None:
    token = _checkout(SandboxPayments(b"another-FAKE-secret-0123456789", "http://x"))
    with pytest.raises(InvalidCheckout):
        sandbox.read_checkout(token)


def test_paid_outcome_is_deterministic_per_token(sandbox: SandboxPayments) -> None:
    token = _checkout(sandbox)
    first = sandbox.outcome(token, "paid", NOW)
    double_click = sandbox.outcome(token, "paid", NOW + timedelta(seconds=1))
    assert first.kind == "paid"
    assert first.event_id == double_click.event_id
    assert first.payment_ref is not None and first.payment_ref.startswith("sbpay_")
    assert first.payment_ref == double_click.payment_ref
    assert (first.order_id, first.amount_cents, first.currency) == ("ord_1", 1234, "usd")
    assert first.reference == sandbox.read_checkout(token).reference
    other = sandbox.outcome(_checkout(sandbox, order_id="ord_2"), "paid", NOW)
    assert other.event_id != first.event_id
    assert other.payment_ref != first.payment_ref


def test_declined_outcome_is_a_failed_event_with_its_own_id(sandbox: SandboxPayments) -> None:
    token = _checkout(sandbox)
    declined = sandbox.outcome(token, "declined", NOW)
    assert declined.kind == "failed"
    assert declined.payment_ref is None
    assert declined.event_id != sandbox.outcome(token, "paid", NOW).event_id


def test_outcome_after_expiry_is_expired(sandbox: SandboxPayments) -> None:
    token = _checkout(sandbox)
    assert sandbox.outcome(token, "paid", EXPIRES).kind == "expired"


def test_outcome_rejects_a_tampered_token(sandbox: SandboxPayments) -> None:
    with pytest.raises(InvalidCheckout):
        sandbox.outcome(_checkout(sandbox) + "x", "paid", NOW)


def test_non_positive_amount_is_refused(sandbox: SandboxPayments) -> None:
    with pytest.raises(InvalidCheckout):
        _checkout(sandbox, amount=0)


def test_confirm_has_nothing_to_report(sandbox: SandboxPayments) -> None:
    assert sandbox.confirm(reference="sbcs_anything") is None


def test_refund_is_idempotent_per_key(sandbox: SandboxPayments) -> None:
    ref = sandbox.outcome(_checkout(sandbox), "paid", NOW).payment_ref
    assert ref is not None
    first = sandbox.refund(payment_ref=ref, amount_cents=500, idempotency_key="r1")
    again = sandbox.refund(payment_ref=ref, amount_cents=500, idempotency_key="r1")
    other = sandbox.refund(payment_ref=ref, amount_cents=500, idempotency_key="r2")
    assert first == again
    assert (first.amount_cents, first.status) == (500, "succeeded")
    assert other.reference != first.reference


@pytest.mark.parametrize(("ref", "amount"), [("pi_123", 100), ("sbpay_x", 0), ("sbpay_x", -5)])
def test_refund_refuses_foreign_refs_and_bad_amounts(
    sandbox: SandboxPayments, ref: str, amount: int
) -> None:
    with pytest.raises(RefundFailed):
        sandbox.refund(payment_ref=ref, amount_cents=amount, idempotency_key="k")


def test_webhook_round_trip(sandbox: SandboxPayments) -> None:
    event = sandbox.outcome(_checkout(sandbox), "paid", NOW)
    body = sandbox.event_payload(event)
    header = sandbox.sign_webhook(body, int(NOW.timestamp()))
    parsed = sandbox.parse_webhook(payload=body, headers={"x-sandbox-signature": header}, now=NOW)
    assert parsed == event


def test_webhook_rejections(sandbox: SandboxPayments) -> None:
    event = sandbox.outcome(_checkout(sandbox), "paid", NOW)
    body = sandbox.event_payload(event)
    t = int(NOW.timestamp())
    good = sandbox.sign_webhook(body, t)
    foreign = SandboxPayments(b"another-FAKE-secret-0123456789", "http://x").sign_webhook(body, t)
    cases = [
        (body, {}),
        (body, {"X-Sandbox-Signature": foreign}),
        (body.replace(b"1234", b"1"), {"X-Sandbox-Signature": good}),
        (body, {"X-Sandbox-Signature": sandbox.sign_webhook(body, t - 301)}),
    ]
    for payload, headers in cases:
        with pytest.raises(WebhookSignatureError):
            sandbox.parse_webhook(payload=payload, headers=headers, now=NOW)


def test_webhook_unknown_type_is_ignored_and_garbage_is_refused(sandbox: SandboxPayments) -> None:
    t = int(NOW.timestamp())
    unknown = json.dumps({"id": "x", "type": "refund.created"}).encode()
    headers = {"X-Sandbox-Signature": sandbox.sign_webhook(unknown, t)}
    assert sandbox.parse_webhook(payload=unknown, headers=headers, now=NOW) is None
    event = sandbox.outcome(_checkout(sandbox), "paid", NOW)
    body = sandbox.event_payload(event).replace(b'"amount_cents":1234', b'"amount_cents":12.34')
    assert body != sandbox.event_payload(event)
    for bad in (b"not json", b"[]", body):
        headers = {"X-Sandbox-Signature": sandbox.sign_webhook(bad, t)}
        with pytest.raises(WebhookPayloadError):
            sandbox.parse_webhook(payload=bad, headers=headers, now=NOW)


def test_repr_and_errors_hide_the_secret(sandbox: SandboxPayments) -> None:
    assert SECRET.decode() not in repr(sandbox)
    with pytest.raises(InvalidCheckout) as caught:
        sandbox.read_checkout("a.b")
    assert SECRET.decode() not in str(caught.value)


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        SandboxPayments(b"short", "http://x")
