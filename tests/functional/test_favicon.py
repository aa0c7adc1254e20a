"""Every page links an SVG icon, and ``/favicon.ico`` (what other clients ask for) is an icon."""

from __future__ import annotations

import re
import struct
import zlib
from datetime import UTC, datetime
from typing import Any

from support.shopkit import make_kit

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_pages_link_the_svg_icon_and_it_is_served(tmp_path: Any) -> None:
    with make_kit(tmp_path, now=NOON) as kit:
        for path in ("/", "/docs/", "/docs/faq", "/orders/ord_x", "/no-such-page"):
            html = kit.web.get(path, headers={"Accept": "text/html"}).text
            link = re.search(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', html)
            assert link, path
        svg = kit.web.get(link.group(1))
        assert svg.status_code == 200
        assert svg.headers["content-type"].startswith("image/svg+xml")
        assert svg.text.startswith("<svg") and "<script" not in svg.text
        assert len(svg.content) < 1024


def test_favicon_ico_is_a_small_icon_with_the_security_headers(tmp_path: Any) -> None:
    with make_kit(tmp_path, now=NOON) as kit:
        r = kit.web.get("/favicon.ico")
        assert r.status_code == 200
        assert r.headers["content-type"] == "image/x-icon"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "default-src 'self'" in r.headers["content-security-policy"]
        body = r.content
        assert len(body) < 1024
        reserved, kind, count = struct.unpack("<HHH", body[:6])
        assert (reserved, kind, count) == (0, 1, 1)
        width, height, _, _, _, _, size, offset = struct.unpack("<BBBBHHII", body[6:22])
        assert (width, height) == (32, 32) and offset + size == len(body)
        png = body[offset:]
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        # Every PNG chunk's CRC is right, so any image viewer can read it.
        at = 8
        while at < len(png):
            (length,) = struct.unpack(">I", png[at : at + 4])
            kind_and_data = png[at + 4 : at + 8 + length]
            (crc,) = struct.unpack(">I", png[at + 8 + length : at + 12 + length])
            assert zlib.crc32(kind_and_data) == crc
            at += 12 + length
        assert at == len(png)
