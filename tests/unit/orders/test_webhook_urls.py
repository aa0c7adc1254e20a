"""Which webhook URLs the shop calls: an attacker's URL aimed at the shop itself, a cloud
metadata service, a private or loopback address (also behind a public-looking name) is refused
in live mode; the sandbox lets a buyer's own machine receive."""

from __future__ import annotations

import pytest

from cheaptokens.config import Settings
from cheaptokens.errors import InvalidInput
from cheaptokens.orders import webhooks

PUBLIC = "93.184.215.14"
NAMES = {
    "buyer.example": [PUBLIC],
    "shop.example": ["93.184.215.99", "2606:2800:220:1::99"],
    "sneaky.example": [PUBLIC, "10.0.0.5"],  # one bad address is enough
    "metadata.example": ["169.254.169.254"],
    "v6loop.example": ["::1"],
    "mapped.example": ["::ffff:127.0.0.1"],
}


def resolve(host: str, port: int) -> list[str]:
    if host in NAMES:
        return NAMES[host]
    try:
        import ipaddress

        return [str(ipaddress.ip_address(host))]
    except ValueError:
        raise OSError("no such host") from None


LIVE = webhooks.UrlPolicy(
    allow_private=False,
    require_https=True,
    shop_origin=("shop.example", 443),
    resolve=resolve,
)
SANDBOX = webhooks.UrlPolicy(
    allow_private=True, require_https=False, shop_origin=("127.0.0.1", 8000), resolve=resolve
)


def refused(url: str, policy: webhooks.UrlPolicy = LIVE) -> str:
    with pytest.raises(InvalidInput) as caught:
        webhooks.check(url, policy)
    assert caught.value.field == "webhook_url"
    return caught.value.message


def test_a_public_https_url_is_taken_with_the_address_to_connect_to() -> None:
    target = webhooks.check("https://buyer.example/hooks/ct?x=1", LIVE)
    assert (target.host, target.port, target.address) == ("buyer.example", 443, PUBLIC)
    assert target.connect_url == f"https://{PUBLIC}:443/hooks/ct?x=1"
    assert target.host_header == "buyer.example"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://127.0.0.1/hook", "loopback"),
        ("https://[::1]/hook", "loopback"),
        ("https://v6loop.example/hook", "loopback"),
        ("https://mapped.example/hook", "loopback"),
        ("https://2130706433/hook", "public host"),  # 127.0.0.1 as one number
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://metadata.example/latest/meta-data/", "link-local"),
        ("https://10.1.2.3/hook", "private"),
        ("https://192.168.1.1/hook", "private"),
        ("https://172.16.0.1/hook", "private"),
        ("https://100.64.0.1/hook", "private"),  # carrier-grade NAT
        ("https://0.0.0.0/hook", "private"),
        ("https://224.0.0.1/hook", "multicast"),
        ("https://[fe80::1]/hook", "link-local"),
        ("https://[fc00::1]/hook", "private"),
        ("https://sneaky.example/hook", "10.0.0.5"),
        ("https://localhost/hook", "public host"),
        ("https://printer.local/hook", "public host"),
        ("https://intranet/hook", "public host"),
        ("https://shop.example/api/orders", "this shop"),
        ("https://93.184.215.99:8443/x", "this shop"),  # the shop's own address, any port
        ("http://buyer.example/hook", "https"),
        ("ftp://buyer.example/hook", "https"),
        ("https://user:pw@buyer.example/hook", "user name or password"),
        ("https://nowhere.example/hook", "does not resolve"),
        ("https:///nohost", "host"),
        ("https://buyer.example/a b", "spaces"),
        ("https://buyer.example/#frag", "fragment"),
        ("https://buyer.example/" + "a" * 2000, "2000"),
    ],
)
def test_live_mode_refuses(url: str, why: str) -> None:
    assert why in refused(url)


def test_the_sandbox_allows_a_receiver_on_the_buyers_own_machine() -> None:
    assert webhooks.check("http://127.0.0.1:9999/hook", SANDBOX).address == "127.0.0.1"
    assert (
        webhooks.check(
            "http://localhost:9999/hook",
            SANDBOX.__class__(
                allow_private=True, require_https=False, resolve=lambda h, p: ["127.0.0.1"]
            ),
        ).port
        == 9999
    )
    # …but never the shop itself, nor anything but http(s)
    assert "this shop" in refused("http://127.0.0.1:8000/api/orders", SANDBOX)
    assert "https" in refused("file:///etc/passwd", SANDBOX)


def test_the_policy_follows_the_mode() -> None:
    live = webhooks.UrlPolicy.for_settings(
        Settings(venice_mode="live", public_url="https://shop.example")
    )
    assert (live.allow_private, live.require_https, live.shop_origin) == (
        False,
        True,
        ("shop.example", 443),
    )
    sandbox = webhooks.UrlPolicy.for_settings(Settings())
    assert sandbox.allow_private and not sandbox.require_https
    assert sandbox.shop_origin == ("127.0.0.1", 8000)


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.0.0.1", "169.254.169.254", "::1", "::ffff:10.0.0.1", "fd00::1", "ff02::1"],
)
def test_refused_addresses(address: str) -> None:
    assert webhooks.refused_address(address) is not None


def test_public_addresses_pass() -> None:
    assert webhooks.refused_address(PUBLIC) is None
    assert webhooks.refused_address("2606:4700:4700::1111") is None
