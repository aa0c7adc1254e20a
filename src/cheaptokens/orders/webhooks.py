"""Which webhook URLs the shop will call, and which address a delivery connects to.

A buyer's webhook URL is an instruction to make the shop send HTTP requests, so it is checked
like one (docs/alerts, "What the shop refuses"):

* ``http`` or ``https`` only (``https`` only in live mode), a host, no user or password in
  it, at most :data:`MAX_URL` characters;
* never the shop itself (its own public host and port);
* in live mode (``Settings.venice_mode == "live"``) the host must resolve, and **every**
  address it resolves to must be a global unicast address: loopback, private, link-local
  (the cloud metadata service at 169.254.169.254), shared (100.64/10), multicast, reserved
  and unspecified addresses are refused, IPv4 and IPv6 alike (IPv4-mapped IPv6 too). On the
  sandbox any address is allowed, so a receiver on the buyer's own machine works.

The check runs when the URL is registered and **again at each send**: the sender connects to
the address that passed the check (:class:`Target`), never re-resolving the name, so a name
that resolves to a public address at registration and to 127.0.0.1 later (DNS rebinding) is
refused at send time. The shop does not follow redirects.

Looking a name up is I/O: callers run :func:`check` outside any database transaction.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from cheaptokens.config import Settings
from cheaptokens.errors import InvalidInput

#: The longest webhook URL the shop keeps.
MAX_URL: Final = 2000
#: Names that are never a buyer's public receiver, whatever a resolver says of them.
_LOCAL_SUFFIXES: Final = (".localhost", ".local", ".internal", ".localdomain", ".home.arpa")

#: ``(host, port) -> addresses``; the default asks the system resolver.
Resolver = Callable[[str, int], Sequence[str]]


def system_resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (IPv4 and IPv6)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


@dataclass(frozen=True, slots=True)
class Target:
    """A checked URL and the address a delivery connects to."""

    url: str
    scheme: str
    host: str
    port: int
    address: str

    @property
    def connect_url(self) -> str:
        """The URL with the checked address in place of the name (the ``Host`` header and
        TLS server name stay the name's: see :func:`cheaptokens.worker.deliveries`)."""
        parts = urlsplit(self.url)
        ip = ipaddress.ip_address(self.address)
        host = f"[{ip}]" if ip.version == 6 else str(ip)
        path = parts.path or "/"
        query = f"?{parts.query}" if parts.query else ""
        return f"{self.scheme}://{host}:{self.port}{path}{query}"

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"


@dataclass(frozen=True, slots=True)
class UrlPolicy:
    """What :func:`check` allows. Built from the settings by :meth:`for_settings`."""

    #: allow private, loopback, … addresses (the sandbox); refused in live mode
    allow_private: bool = False
    #: refuse plain http (live mode)
    require_https: bool = True
    #: the shop's own (host, port): a webhook must not call the shop itself
    shop_origin: tuple[str, int] | None = None
    resolve: Resolver = field(default=system_resolve)

    @classmethod
    def for_settings(cls, settings: Settings, *, resolve: Resolver | None = None) -> UrlPolicy:
        live = settings.venice_mode == "live"
        shop = urlsplit(settings.public_url)
        origin = None
        if shop.hostname:
            origin = (shop.hostname.lower(), shop.port or _default_port(shop.scheme))
        return cls(
            allow_private=not live,
            require_https=live,
            shop_origin=origin,
            resolve=resolve or system_resolve,
        )


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _refuse(message: str) -> InvalidInput:
    return InvalidInput(message, field="webhook_url")


def refused_address(address: str) -> str | None:
    """Why the shop will not call ``address`` in live mode; None if it may."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "is a loopback address"
    if ip.is_link_local:
        return "is a link-local address (such as a cloud metadata service)"
    if ip.is_multicast:
        return "is a multicast address"
    if ip.is_private or ip.is_reserved or ip.is_unspecified or not ip.is_global:
        return "is a private or reserved address"
    return None


def parse(url: str, policy: UrlPolicy) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of a well-formed webhook URL (no look-up); raises
    :class:`InvalidInput` naming ``webhook_url`` for anything else."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        raise _refuse(f"webhook_url must be a URL of at most {MAX_URL} characters")
    if any(ch.isspace() or ord(ch) < 0x21 or ord(ch) == 0x7F for ch in url):
        raise _refuse("webhook_url must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _refuse("webhook_url is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise _refuse("webhook_url must start with https:// (or http:// on the sandbox)")
    if policy.require_https and scheme != "https":
        raise _refuse("webhook_url must use https://")
    if parts.username is not None or parts.password is not None:
        raise _refuse("webhook_url must not contain a user name or password")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise _refuse("webhook_url must name a host")
    if parts.fragment:
        raise _refuse("webhook_url must not contain a #fragment")
    return scheme, host, port or _default_port(scheme)


def check(url: str, policy: UrlPolicy) -> Target:
    """The URL, checked (syntax, the shop itself and, in live mode, every address its host
    resolves to); the :class:`Target` names the address to connect to. Raises
    :class:`InvalidInput` (``field="webhook_url"``) with the reason."""
    scheme, host, port = parse(url, policy)
    if policy.shop_origin is not None and (host, port) == policy.shop_origin:
        raise _refuse("webhook_url must not point at this shop")
    if not policy.allow_private and (
        host == "localhost" or host.endswith(_LOCAL_SUFFIXES) or "." not in host.strip("[]")
    ):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise _refuse("webhook_url must name a public host") from None
    try:
        addresses = list(policy.resolve(host, port))
    except (OSError, UnicodeError):
        addresses = []
    if not addresses:
        raise _refuse(f"the host of webhook_url ({host}) does not resolve")
    if not policy.allow_private:
        for address in addresses:
            why = refused_address(address)
            if why is not None:
                raise _refuse(
                    f"webhook_url resolves to {address}, which {why}: the shop calls only "
                    "public addresses"
                )
        if policy.shop_origin is not None:
            shop_host, shop_port = policy.shop_origin
            try:
                mine = set(policy.resolve(shop_host, shop_port))
            except (OSError, UnicodeError):
                mine = set()
            if mine & set(addresses):
                raise _refuse("webhook_url must not point at this shop")
    return Target(url=url, scheme=scheme, host=host, port=port, address=addresses[0])
