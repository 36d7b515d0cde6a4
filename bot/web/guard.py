"""The signed-in person through one wrapper, so no page forgets a check: session, stage of
sign-in, the role's areas, and the CSRF token of every POST."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from bot.services import accounts
from bot.services.accounts import Area, Principal, SessionStage
from bot.web.pages import deps_of, render
from bot.web.security import CSRF_FIELD, SESSION_COOKIE, tokens_match

Handler = Callable[[Request, Principal], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]

_STAGE_PAGES = {
    SessionStage.SECOND_FACTOR: "/login/code",
    SessionStage.SETUP_SECOND_FACTOR: "/account/second-factor",
}


async def principal_of(request: Request) -> Principal | None:
    """The person whose live session the request's cookie names, or None."""
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token:
        return None
    ctx = deps_of(request).ctx
    return await run_in_threadpool(accounts.authenticate, ctx, token=token)


def refused(request: Request, principal: Principal | None, status_code: int) -> Response:
    """The same plain page for "not allowed", "not found" and "form expired": it says no more."""
    key = {403: "forbidden", 404: "not_found", 400: "bad_form"}.get(status_code, "forbidden")
    return render(request, "refused.html.j2", principal=principal, status_code=status_code, key=key)


def page_for(
    area: Area | None, *, stages: tuple[SessionStage, ...] = (SessionStage.FULL,)
) -> Callable[[Handler], Endpoint]:
    """Wraps a page handler: no session → the sign-in page; a sign-in not finished → its next
    step; a role outside `area` → 403; a POST without this session's CSRF token → 403.
    `area=None` is for pages every signed-in person may open (their own account)."""

    def wrap(handler: Handler) -> Endpoint:
        @wraps(handler)
        async def endpoint(request: Request) -> Response:
            principal = await principal_of(request)
            if principal is None:
                if request.method == "GET":
                    target = quote(request.url.path, safe="/")
                    return RedirectResponse(f"/login?next={target}", status_code=303)
                return RedirectResponse("/login", status_code=303)
            if principal.stage not in stages:
                return RedirectResponse(_STAGE_PAGES.get(principal.stage, "/"), status_code=303)
            if area is not None and not principal.may_open(area):
                return refused(request, principal, 403)
            if request.method == "POST":
                form = await request.form()
                if not tokens_match(principal.csrf_token, form.get(CSRF_FIELD)):
                    return refused(request, principal, 403)
            return await handler(request, principal)

        return endpoint

    return wrap
