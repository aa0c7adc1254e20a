"""The wallet is the identity: sign in with x402's sign-in-with-x (the SDK's client) to list
purchases, see an unconfirmed key again and reissue a lost one; replayed, expired, forged or
misdirected sign-ins are refused."""

from __future__ import annotations

import asyncio
import base64
import json

from x402.extensions.sign_in_with_x import create_siwx_payload, encode_siwx_header

from support.agents import agent_get, agent_post, fund, new_wallet
from support.shopkit import make_kit

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
        r = agent_post(kit, wallet, f"/api/wallet/orders/{mine['order_id']}/reissue", {})
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "replacing"
        kit.worker.drain()
        after = agent_get(kit, wallet, f"/api/wallet/orders/{mine['order_id']}").json()
        assert after["status"] == "fulfilled"
        assert after["key"]["api_key"] not in (None, mine["key"]["api_key"])
        assert live_keys(kit) == 2  # one per order: the old key of mine is gone


def test_replayed_expired_forged_and_misdirected_sign_ins_are_refused(tmp_path):
    with make_kit(tmp_path) as kit:
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
        assert r.status_code == 401 and "invalid_siwx" in r.json()["error"]["message"]
        # Its expiry is signed (and in the nonce's MAC): moving it is refused too.
        payload = json.loads(base64.b64decode(signed(kit, wallet, path)))
        payload["expirationTime"] = "2099-01-01T00:00:00.000Z"
        moved = base64.b64encode(json.dumps(payload).encode()).decode()
        assert kit.web.get(path, headers={"SIGN-IN-WITH-X": moved}).status_code == 401
