"""Application factory of the clinic web app: routes, security headers, static files, and
(in webhook mode) the Telegram endpoint, all from the context it is given."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from bot.context import AppContext
from bot.present.render import Renderer, default_renderer
from bot.services.accounts import Principal
from bot.web import (
    audit_page,
    digest_page,
    enroll_pages,
    export_page,
    lab_pages,
    patient_pages,
    sign_in,
    staff_page,
)
from bot.web.guard import page_for, refused
from bot.web.pages import WebDeps
from bot.web.security import SecurityHeaders

STATIC_DIR = Path(__file__).resolve().parent / "static"


@page_for(None)
async def home(request: Request, principal: Principal) -> Response:
    """Sends each person to the first part of the app their role opens."""
    areas = principal.areas
    if not areas:
        return refused(request, principal, 403)
    return RedirectResponse(f"/{areas[0].value}", status_code=303)


async def not_found(request: Request, exc: Exception) -> Response:
    """Unknown paths get the same plain page as a patient one may not see."""
    return refused(request, None, 404)


def create_app(
    ctx: AppContext,
    *,
    renderer: Renderer | None = None,
    extra_routes: list[BaseRoute] | None = None,
) -> Starlette:
    """Builds the web app on `ctx`; `extra_routes` carries the Telegram webhook when the bot
    runs in the same process (see `bot.telegram.web_route`)."""
    routes: list[BaseRoute] = [
        Route("/", home, methods=["GET"]),
        *sign_in.ROUTES,
        *patient_pages.ROUTES,
        *lab_pages.ROUTES,
        *enroll_pages.ROUTES,
        *staff_page.ROUTES,
        *audit_page.ROUTES,
        *digest_page.ROUTES,
        *export_page.ROUTES,
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
        *(extra_routes or []),
    ]
    handlers: dict[Any, Any] = {404: not_found}
    app = Starlette(
        routes=routes, middleware=[Middleware(SecurityHeaders)], exception_handlers=handlers
    )
    app.state.deps = WebDeps(ctx=ctx, renderer=renderer or default_renderer())
    return app
