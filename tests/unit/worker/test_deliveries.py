"""The webhook sender against real receivers on 127.0.0.1, as an attacker would set them up:
one that hangs, one that trickles its answer, one that redirects to a private address, one
that answers 50 MB, a name that resolves elsewhere at send time (DNS rebinding), and a
captured delivery replayed later."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from cheaptokens.orders import events, webhooks
from cheaptokens.worker.deliveries import MAX_ANSWER, Sender, webhook_client
from support.receiver import receiver

SECRET = events.new_secret()
SANDBOX = webhooks.UrlPolicy(allow_private=True, require_https=False)
BODY = json.dumps(
    {"type": "key.ready", "timestamp": "2026-11-25T12:00:00.000Z", "data": {"order_id": "ord_1"}},
    separators=(",", ":"),
)


def outgoing(url: str, attempt: int = 1) -> events.Outgoing:
    return events.Outgoing("msg_test1", "ord_1", BODY, attempt, url, b"")


def sender(seconds: float = 2.0, policy: webhooks.UrlPolicy = SANDBOX, **kw: object) -> Sender:
    return Sender(policy=policy, http=webhook_client(seconds=seconds, parallel=2), **kw)  # type: ignore[arg-type]


def test_a_delivery_is_signed_following_standard_webhooks() -> None:
    with receiver() as rec:
        result = sender().send(outgoing(rec.url), SECRET)
        [got] = rec.wait_for(1)
    assert (result.status_code, result.error) == (204, None)
    assert got.headers["webhook-id"] == "msg_test1"
    assert got.headers["content-type"] == "application/json"
    assert got.headers["host"] == rec.url.split("/")[2]
    payload = Webhook(SECRET).verify(got.body, got.headers)
    assert payload["type"] == "key.ready" and payload["data"]["order_id"] == "ord_1"
    with pytest.raises(WebhookVerificationError):  # another order's secret does not verify
        Webhook(events.new_secret()).verify(got.body, got.headers)


def test_a_retry_keeps_the_id_and_signs_again() -> None:
    with receiver() as rec:
        s = sender()
        s.send(outgoing(rec.url, 1), SECRET)
        s.send(outgoing(rec.url, 2), SECRET)
        first, second = rec.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == "msg_test1"
    assert first.body == second.body
    Webhook(SECRET).verify(second.body, second.headers)


@pytest.mark.parametrize("mode", ["status:500", "status:404", "status:410"])
def test_an_error_answer_is_a_failed_attempt(mode: str) -> None:
    with receiver(mode) as rec:
        result = sender().send(outgoing(rec.url), SECRET)
    assert result.status_code == int(mode.split(":")[1]) and "answered" in (result.error or "")


@pytest.mark.parametrize("mode", ["hang", "trickle"])
def test_a_receiver_that_hangs_or_trickles_is_cut_off_at_the_deadline(mode: str) -> None:
    with receiver(mode) as rec:
        started = time.monotonic()
        result = sender(seconds=1.0).send(outgoing(rec.url), SECRET)
        took = time.monotonic() - started
    assert result.status_code is None or mode == "trickle"
    # The receiver would hold the sender for ever: it was let go, with an error, within a few
    # deadlines (a loose bound: this asserts the cut-off, not the machine's speed).
    assert result.error is not None and took < 10.0, (result, took)


def test_a_redirect_to_a_private_address_is_not_followed() -> None:
    with receiver() as inside, receiver(f"redirect:{inside.url}") as rec:
        result = sender().send(outgoing(rec.url), SECRET)
        time.sleep(0.2)
        assert inside.received == []
    assert result.status_code == 302 and result.error == "redirects are not followed"


def test_an_enormous_answer_is_not_read() -> None:
    with receiver("huge") as rec:
        result = sender(seconds=5.0).send(outgoing(rec.url), SECRET)
        sent = rec.huge_sent
    # the receiver streams 50 MB: the sender hung up after its first MiB, it did not read on
    assert result.status_code == 200 and result.error is None
    assert sent < 20 * 1024 * 1024 and MAX_ANSWER < 1 << 20


def test_a_name_that_resolves_to_loopback_at_send_time_is_refused() -> None:
    """DNS rebinding: public when registered, 127.0.0.1 when the shop sends."""
    answers = [["93.184.215.14"], ["127.0.0.1"]]

    def resolve(host: str, port: int) -> list[str]:
        return answers.pop(0) if len(answers) > 1 else answers[0]

    live = webhooks.UrlPolicy(allow_private=False, require_https=False, resolve=resolve)
    with receiver() as rec:
        url = f"http://rebind.example:{rec.url.split(':')[2]}"
        assert webhooks.check(url, live).address == "93.184.215.14"  # at registration
        result = sender(policy=live).send(outgoing(url), SECRET)
        time.sleep(0.2)
        assert rec.received == []
    assert result.status_code is None and "loopback" in (result.error or "")


def test_the_sender_connects_to_the_address_it_checked_not_a_fresh_lookup() -> None:
    """The name is resolved once per send, and the connection goes to that address."""
    calls: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"]

    policy = webhooks.UrlPolicy(allow_private=True, require_https=False, resolve=resolve)
    with receiver() as rec:
        port = rec.url.split(":")[2].split("/")[0]
        result = sender(policy=policy).send(outgoing(f"http://buyer.invalid:{port}/hook"), SECRET)
        [got] = rec.wait_for(1)
    assert result.status_code == 204 and calls == ["buyer.invalid"]
    assert got.headers["host"] == f"buyer.invalid:{port}"


def test_a_replayed_delivery_is_refused_by_the_receivers_check() -> None:
    """A delivery captured and sent again later fails the Standard Webhooks time check, and
    its timestamp cannot be refreshed without the secret."""
    old = lambda: datetime.now(UTC) - timedelta(minutes=10)  # noqa: E731
    with receiver() as rec:
        sender(wall=old).send(outgoing(rec.url), SECRET)
        sender().send(outgoing(rec.url, 2), SECRET)
        stale, fresh = rec.wait_for(2)
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(SECRET).verify(stale.body, stale.headers)
    forged = {**stale.headers, "webhook-timestamp": fresh.headers["webhook-timestamp"]}
    with pytest.raises(WebhookVerificationError, match="signature"):
        Webhook(SECRET).verify(stale.body, forged)
    tampered = fresh.body.replace(b"key.ready", b"key.gone!")
    with pytest.raises(WebhookVerificationError, match="signature"):
        Webhook(SECRET).verify(tampered, fresh.headers)
