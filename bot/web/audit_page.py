"""The admin's audit trail page: every change and every patient page opened."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.services import audit_trail
from bot.services.accounts import Area, Principal
from bot.web.guard import page_for
from bot.web.pages import deps_of, render


@page_for(Area.AUDIT)
async def audit_page(request: Request, principal: Principal) -> Response:
    """The newest events first, optionally of one patient; older pages by link."""
    before = request.query_params.get("before", "")
    page = await run_in_threadpool(
        lambda: audit_trail.recent(
            deps_of(request).ctx,
            clinic_ref=request.query_params.get("ref", ""),
            before_id=int(before) if before.isdigit() else None,
        )
    )
    return render(request, "audit.html.j2", principal=principal, page=page)


ROUTES = [Route("/audit", audit_page, methods=["GET"])]
