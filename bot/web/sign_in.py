"""Sign-in, the TOTP second factor, set-password links and sign-out."""

from __future__ import annotations

import segno
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bot.services import accounts
from bot.services.accounts import AccountError, Principal, SessionStage, SignIn
from bot.web.guard import page_for, principal_of, refused
from bot.web.pages import deps_of, render
from bot.web.security import (
    CSRF_FIELD,
    PRE_SESSION_COOKIE,
    SESSION_COOKIE,
    clear_cookie,
    new_form_token,
    set_cookie,
    tokens_match,
)

_NEXT_STEP = {
    SignIn.SIGNED_IN: "/",
    SignIn.SECOND_FACTOR: "/login/code",
    SignIn.SETUP_SECOND_FACTOR: "/account/second-factor",
}


def _safe_next(value: str | None) -> str:
    """Only a path of this site: never an open redirect to another one."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def _pre_session_form(
    request: Request, template: str, *, status_code: int = 200, **values: object
) -> Response:
    """A form shown before sign-in, with a double-submit CSRF token (cookie and field)."""
    token = request.cookies.get(PRE_SESSION_COOKIE) or new_form_token()
    response = render(
        request, template, principal=None, status_code=status_code, form_token=token, **values
    )
    set_cookie(request, response, PRE_SESSION_COOKIE, token)
    return response


async def _pre_session_form_ok(request: Request) -> bool:
    form = await request.form()
    return tokens_match(request.cookies.get(PRE_SESSION_COOKIE), form.get(CSRF_FIELD))


async def login_page(request: Request) -> Response:
    """The sign-in form; a person already signed in goes on to the app."""
    principal = await principal_of(request)
    if principal is not None and principal.stage is SessionStage.FULL:
        return RedirectResponse("/", status_code=303)
    return _pre_session_form(
        request,
        "login.html.j2",
        error=None,
        email="",
        next=_safe_next(request.query_params.get("next")),
    )


async def login(request: Request) -> Response:
    """Checks e-mail and password; a refusal never says which of the two was wrong."""
    if not await _pre_session_form_ok(request):
        return refused(request, None, 400)
    form = await request.form()
    email = str(form.get("email", ""))[:320]
    password = str(form.get("password", ""))[:1024]
    target = _safe_next(str(form.get("next", "/")))
    ctx = deps_of(request).ctx
    address = request.client.host if request.client else "unknown"
    result = await run_in_threadpool(
        accounts.sign_in, ctx, email=email, password=password, address=address
    )
    if result.session_token is None:
        status = 429 if result.outcome is SignIn.THROTTLED else 400
        return _pre_session_form(
            request,
            "login.html.j2",
            status_code=status,
            error=result.outcome.value,
            email=email,
            next=target,
        )
    step = _NEXT_STEP[result.outcome]
    response = RedirectResponse(target if step == "/" else step, status_code=303)
    set_cookie(request, response, SESSION_COOKIE, result.session_token)
    clear_cookie(request, response, PRE_SESSION_COOKIE)
    return response


@page_for(None, stages=(SessionStage.SECOND_FACTOR,))
async def second_factor_page(request: Request, principal: Principal) -> Response:
    """Asks for the code of the authenticator app."""
    return render(request, "second_factor.html.j2", principal=principal, error=None)


@page_for(None, stages=(SessionStage.SECOND_FACTOR,))
async def second_factor(request: Request, principal: Principal) -> Response:
    """Checks the authenticator app's code; throttled like the password."""
    form = await request.form()
    ctx = deps_of(request).ctx
    outcome = await run_in_threadpool(
        accounts.verify_second_factor,
        ctx,
        token=request.cookies.get(SESSION_COOKIE, ""),
        code=str(form.get("code", ""))[:16],
    )
    if outcome is SignIn.SIGNED_IN:
        return RedirectResponse("/", status_code=303)
    status = 429 if outcome is SignIn.THROTTLED else 400
    return render(
        request,
        "second_factor.html.j2",
        principal=principal,
        status_code=status,
        error=outcome.value,
    )


def _qr_data_uri(uri: str) -> str:
    return str(segno.make(uri, error="m").svg_data_uri(scale=4, border=2))


@page_for(None, stages=(SessionStage.SETUP_SECOND_FACTOR, SessionStage.FULL))
async def totp_setup_page(request: Request, principal: Principal) -> Response:
    """Shows a new TOTP secret as a QR code and as text, and asks for a first code."""
    return await _totp_setup_form(request, principal, request.cookies.get(SESSION_COOKIE, ""))


async def _totp_setup_form(
    request: Request, principal: Principal, token: str, *, wrong_code: bool = False
) -> Response:
    """A new TOTP secret as a QR code and as text, with the form for a first code (400 and
    a note when the code just given was wrong)."""
    setup = await run_in_threadpool(accounts.begin_totp_setup, deps_of(request).ctx, token=token)
    if setup is None:
        return refused(request, principal, 403)
    return render(
        request,
        "totp_setup.html.j2",
        principal=principal,
        status_code=400 if wrong_code else 200,
        secret=setup.secret,
        qr=_qr_data_uri(setup.uri),
        error=wrong_code,
    )


@page_for(None, stages=(SessionStage.SETUP_SECOND_FACTOR, SessionStage.FULL))
async def totp_setup(request: Request, principal: Principal) -> Response:
    """Turns the second factor on when the first code is right."""
    form = await request.form()
    ctx = deps_of(request).ctx
    token = request.cookies.get(SESSION_COOKIE, "")
    done = await run_in_threadpool(
        accounts.confirm_totp_setup, ctx, token=token, code=str(form.get("code", ""))[:16]
    )
    if done:
        return RedirectResponse("/", status_code=303)
    return await _totp_setup_form(request, principal, token, wrong_code=True)


@page_for(
    None,
    stages=(SessionStage.FULL, SessionStage.SECOND_FACTOR, SessionStage.SETUP_SECOND_FACTOR),
)
async def logout(request: Request, principal: Principal) -> Response:
    """Ends this browser's session on the server, not only its cookie."""
    ctx = deps_of(request).ctx
    await run_in_threadpool(accounts.sign_out, ctx, token=request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/login", status_code=303)
    clear_cookie(request, response, SESSION_COOKIE)
    return response


async def password_page(request: Request) -> Response:
    """The form behind a one-time set-password link, or why the link no longer works."""
    token = request.path_params["token"]
    ctx = deps_of(request).ctx
    if not await run_in_threadpool(accounts.password_link_is_open, ctx, token=token):
        return render(request, "password_link_used.html.j2", principal=None, status_code=410)
    return _pre_session_form(request, "password.html.j2", error=None)


async def set_password(request: Request) -> Response:
    """Sets the password; the link works once and every open session of the account ends."""
    if not await _pre_session_form_ok(request):
        return refused(request, None, 400)
    form = await request.form()
    password = str(form.get("password", ""))
    if password != str(form.get("password_again", "")):
        return _pre_session_form(request, "password.html.j2", status_code=400, error="mismatch")
    ctx = deps_of(request).ctx
    try:
        await run_in_threadpool(
            accounts.set_password, ctx, token=request.path_params["token"], password=password
        )
    except AccountError as error:
        if error.code == "link_used":
            return render(request, "password_link_used.html.j2", principal=None, status_code=410)
        return _pre_session_form(request, "password.html.j2", status_code=400, error=error.code)
    response = render(request, "password_set.html.j2", principal=None)
    clear_cookie(request, response, PRE_SESSION_COOKIE)
    return response


ROUTES = [
    Route("/login", login_page, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/login/code", second_factor_page, methods=["GET"]),
    Route("/login/code", second_factor, methods=["POST"]),
    Route("/account/second-factor", totp_setup_page, methods=["GET"]),
    Route("/account/second-factor", totp_setup, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/password/{token}", password_page, methods=["GET"]),
    Route("/password/{token}", set_password, methods=["POST"]),
]
