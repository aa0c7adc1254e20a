"""Jinja2 rendering for the server-side pages."""

from __future__ import annotations

import pathlib
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

HERE = pathlib.Path(__file__).resolve().parent


def shop_context(request: Request) -> dict[str, Any]:
    """What every page may show about the shop itself: the operator's contact
    (``_operator.html`` renders it, or "the operator of this shop" without one)."""
    shop = getattr(request.app.state, "shop", None)
    return {"operator_contact": shop.settings.operator if shop is not None else None}


templates = Jinja2Templates(directory=str(HERE / "templates"), context_processors=[shop_context])


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, context, status_code=status_code)
