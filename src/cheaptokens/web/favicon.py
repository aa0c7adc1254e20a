"""The shop's icon: ``/static/favicon.svg`` for browsers that follow the page's
``<link rel="icon">``, and the same drawing as a 32×32 PNG inside an ICO for ``/favicon.ico``
(what every other client asks for). The ICO is drawn here rather than shipped as a binary.
"""

from __future__ import annotations

import functools
import math
import struct
import zlib

SIZE = 32
BLUE = (0x0B, 0x5C, 0xAD, 0xFF)  # --accent in site.css
WHITE = (0xFF, 0xFF, 0xFF, 0xFF)
CLEAR = (0, 0, 0, 0)


def _pixel(x: float, y: float) -> tuple[int, int, int, int]:
    """favicon.svg at one point: a rounded blue square with a white cent sign (¢)."""
    corner = 6.0
    dx = max(corner - x, 0.0, x - (SIZE - corner))
    dy = max(corner - y, 0.0, y - (SIZE - corner))
    if dx * dx + dy * dy > corner * corner:
        return CLEAR
    cx, cy = 16.0, 16.0
    r = math.hypot(x - cx, y - cy)
    angle = math.degrees(math.atan2(y - cy, x - cx))  # 0 points right, the C's opening
    if abs(r - 7.5) <= 1.6 and abs(angle) >= 45:
        return WHITE
    if abs(x - cx) <= 1.3 and 5.0 <= y <= 27.0:
        return WHITE
    return BLUE


def _png(width: int, height: int, rows: list[bytes]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8-bit RGBA
    raw = b"".join(b"\x00" + row for row in rows)  # filter 0 on every row
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


@functools.cache
def ico() -> bytes:
    """``favicon.ico``: one 32×32 PNG image in an ICO container."""
    rows = [b"".join(bytes(_pixel(x + 0.5, y + 0.5)) for x in range(SIZE)) for y in range(SIZE)]
    png = _png(SIZE, SIZE, rows)
    header = struct.pack("<HHH", 0, 1, 1)  # reserved, type 1 (icon), one image
    entry = struct.pack("<BBBBHHII", SIZE, SIZE, 0, 0, 1, 32, len(png), 6 + 16)
    return header + entry + png
