"""The digest page: a physician's weekly digest exactly as Telegram will show it (its messages
and charts), for this week and the weeks before."""

from __future__ import annotations

import base64

from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.services import digest_preview
from bot.services.accounts import Area, Principal
from bot.web.guard import page_for, refused
from bot.web.pages import deps_of, render


@page_for(Area.DIGESTS)
async def digest_page(request: Request, principal: Principal) -> Response:
    """This week's digest as it will be sent, or an earlier week's."""
    deps = deps_of(request)
    raw = request.query_params.get("physician", "")
    found = await run_in_threadpool(
        lambda: digest_preview.preview(
            deps.ctx,
            principal=principal,
            physician_id=int(raw) if raw.isdigit() else None,
            week=request.query_params.get("week"),
        )
    )
    if found is None:
        return refused(request, principal, 404)
    messages: list[Markup] = []
    charts: list[str] = []
    if found.digest is not None:
        from bot.present.digest.text import render_digest

        rendered = await run_in_threadpool(render_digest, found.digest, deps.renderer)
        # The messages are rendered from our own autoescaped templates (Telegram's HTML).
        messages = [Markup(part) for part in rendered.messages]  # noqa: S704
        charts = [
            "data:image/png;base64," + base64.b64encode(chart.png).decode()
            for chart in rendered.charts
        ]
    return render(
        request,
        "digests.html.j2",
        principal=principal,
        found=found,
        messages=messages,
        charts=charts,
    )


ROUTES = [Route("/digests", digest_page, methods=["GET"])]
