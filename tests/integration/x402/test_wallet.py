"""The wallet is the identity: sign in with x402's sign-in-with-x (the SDK's client) to list
purchases, see an unconfirmed key again and reissue a lost one; replayed, expired, forged or
misdirected sign-ins are refused."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from decimal import Decimal

from x402.extensions.sign_in_with_x import create_siwx_payload, encode_siwx_header

from support.agents import agent_get, agent_post, fund, new_wallet
from support.shopkit import chat, make_kit

from .conftest import live_keys


def bought(kit, wallet, credit_cents=500):
    r = agent_post(kit, wallet, "/api/buy", {"credit_cents": credit_cents})
    assert r.status_code == 200, r.text
    return r.json()


def signed(kit, wallet, path):
    """A SIGN-IN-WITH-X header for ``path``, made by the SDK from the shop's challenge."""
    r = kit.web.get(path)
    assert r.status_code == 402, r.text
    required = json.loads(base64.b64decode(r.headers["PAYMENT-REQUIRED"]))
    assert required["accepts"] == []
    ext = required["extensions"]["sign-in-with-x"]
    info = {**ext["info"], "chainId": ext["supportedChains"][0]["chainId"], "type": "eip191"}
    payload = asyncio.run(create_siwx_payload(info, wallet, f"http://testserver{path}"))
    return encode_siwx_header(payload)


def test_a_wallet_lists_its_purchases_sees_its_key_and_reissues_it(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url) as kit:
        wallet, other = new_wallet(), new_wallet()
        fund(kit.sandbox, wallet.address, "25.00")
        fund(kit.sandbox, other.address, "25.00")
        mine = bought(kit, wallet)
        theirs = bought(kit, other, 300)
        listing = agent_get(kit, wallet, "/api/wallet/orders")
        assert listing.status_code == 200, listing.text
        assert [o["order_id"] for o in listing.json()["orders"]] == [mine["order_id"]]
        assert listing.json()["wallet"] == wallet.address
        one = agent_get(kit, wallet, f"/api/wallet/orders/{mine['order_id']}")
        assert one.json()["key"]["api_key"] == mine["key"]["api_key"]
        assert agent_get(kit, wallet, f"/api/wallet/orders/{theirs['order_id']}").status_code == 404
        # Reissue: the old key deleted first, a new key for the unspent credit.
        old = mine["key"]["api_key"]
        assert chat(kit, old, tokens=80_000).status_code == 200
        r = agent_post(kit, wallet, f"/api/wallet/orders/{mine['order_id']}/reissue", {})
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "replacing"
        kit.worker.drain()
        after = agent_get(kit, wallet, f"/api/wallet/orders/{mine['order_id']}").json()
        assert after["status"] == "fulfilled"
        new = after["key"]["api_key"]
        assert new not in (None, old)
        spent = after["replacement"]["spent_before_cents"]
        assert 0 < spent < 500 and after["key"]["credit_cents"] == 500 - spent
        assert chat(kit, old).status_code == 401 and chat(kit, new).status_code == 200
        listed = kit.shop.gateways["sandbox-1"].list_keys()
        ours = [k for k in listed if k.description == f"cheaptokens:{mine['order_id']}"]
        assert len(ours) == 1 and ours[0].consumption_limits.diem == Decimal(500 - spent) / 100
        assert live_keys(kit) == 2  # one per order: the old key of mine is gone
        # Confirmed received: the wallet cannot reveal it again.
        token = {"Authorization": f"Bearer {mine['order_token']}"}
        assert kit.web.post(f"/api/orders/{mine['order_id']}/received", headers=token).is_success
        hidden = agent_get(kit, wallet, f"/api/wallet/orders/{mine['order_id']}").json()
        assert hidden["key"]["api_key"] is None


def test_replayed_expired_forged_and_misdirected_sign_ins_are_refused(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url) as kit:
        wallet, thief = new_wallet(), new_wallet()
        fund(kit.sandbox, wallet.address, "25.00")
        order = bought(kit, wallet)
        path = f"/api/wallet/orders/{order['order_id']}"
        header = signed(kit, wallet, path)
        assert kit.web.get(path, headers={"SIGN-IN-WITH-X": header}).status_code == 200
        replay = kit.web.get(path, headers={"SIGN-IN-WITH-X": header})
        assert replay.status_code == 401 and "already used" in replay.json()["error"]["message"]
        # Made for the listing, used to reissue: refused.
        listing = signed(kit, wallet, "/api/wallet/orders")
        r = kit.web.post(path + "/reissue", headers={"SIGN-IN-WITH-X": listing})
        assert r.status_code == 401 and "another request" in r.json()["error"]["message"]
        # Another wallet signing the victim's challenge reaches only its own (no) orders.
        assert (
            kit.web.get(path, headers={"SIGN-IN-WITH-X": signed(kit, thief, path)}).status_code
            == 404
        )
        # A forged signature (the payload's address swapped for the victim's).
        forged = json.loads(base64.b64decode(signed(kit, thief, path)))
        forged["address"] = wallet.address
        bad = base64.b64encode(json.dumps(forged).encode()).decode()
        assert kit.web.get(path, headers={"SIGN-IN-WITH-X": bad}).status_code == 401
        # A challenge the shop did not issue (nonce made up).
        made_up = json.loads(base64.b64decode(signed(kit, wallet, path)))
        made_up["nonce"] = "a" * 40
        fake = base64.b64encode(json.dumps(made_up).encode()).decode()
        assert kit.web.get(path, headers={"SIGN-IN-WITH-X": fake}).status_code == 401
        # Expired: a challenge issued (by the shop's clock) ten minutes ago, valid for 30 s.
        kit.shop.settings.siwx_seconds = 30
        kit.sandbox.clock.advance(-600)
        stale = signed(kit, wallet, path)
        kit.sandbox.clock.advance(600)
        r = kit.web.get(path, headers={"SIGN-IN-WITH-X": stale})
        assert r.status_code == 401, r.text
        message = r.json()["error"]["message"]
        assert "invalid_siwx_expired" in message or "invalid_siwx_issued_at_too_old" in message
        # Its expiry is signed (and in the nonce's MAC): moving it is refused too.
        payload = json.loads(base64.b64decode(signed(kit, wallet, path)))
        payload["expirationTime"] = "2099-01-01T00:00:00.000Z"
        moved = base64.b64encode(json.dumps(payload).encode()).decode()
        assert kit.web.get(path, headers={"SIGN-IN-WITH-X": moved}).status_code == 401


def test_one_sign_in_sent_twice_at_once_is_taken_once(tmp_path, db_url):
    with make_kit(tmp_path, database_url=db_url) as kit:
        wallet = new_wallet()
        fund(kit.sandbox, wallet.address, "25.00")
        bought(kit, wallet)
        header = signed(kit, wallet, "/api/wallet/orders")
        start = threading.Barrier(4)
        answers: list[int] = []

        def send() -> None:
            start.wait()
            r = kit.web.get("/api/wallet/orders", headers={"SIGN-IN-WITH-X": header})
            answers.append(r.status_code)

        threads = [threading.Thread(target=send) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(answers) == [200, 401, 401, 401]
