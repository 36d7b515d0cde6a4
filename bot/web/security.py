"""Security headers on every response, and the cookies and CSRF tokens of the web app."""

from __future__ import annotations

import hmac
import secrets
from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SESSION_COOKIE: Final = "spondybot_session"
PRE_SESSION_COOKIE: Final = "spondybot_form"
"""Holds the CSRF token of forms shown before sign-in (double-submit: cookie and field agree)."""
CSRF_FIELD: Final = "csrf_token"

CONTENT_SECURITY_POLICY: Final = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)
"""No inline script or style anywhere, nothing from another origin, never inside a frame."""

_HEADERS: Final = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    # Set-password links carry their token in the path: never leak it to another site.
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
)


class SecurityHeaders:
    """ASGI middleware that adds the security headers to every HTTP response; pages (not the
    vendored static files) are never cached, since they show health data."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(_HEADERS)
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                if https:
                    headers.append((b"strict-transport-security", b"max-age=31536000"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def is_https(request: Request) -> bool:
    """Whether the browser talks HTTPS (behind a proxy: as its X-Forwarded-Proto says, which
    uvicorn honours for the addresses in --forwarded-allow-ips)."""
    return request.url.scheme == "https"


def set_cookie(request: Request, response: Response, name: str, value: str) -> None:
    """A cookie script cannot read, sent only to this site, and only over HTTPS when served
    over HTTPS. No max-age: the server decides when a session ends."""
    response.set_cookie(
        name, value, httponly=True, samesite="strict", secure=is_https(request), path="/"
    )


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(
        name, httponly=True, samesite="strict", secure=is_https(request), path="/"
    )


def new_form_token() -> str:
    return secrets.token_urlsafe(32)


def tokens_match(expected: str | None, given: object) -> bool:
    """Constant-time comparison of a CSRF token; a missing one never matches."""
    if not expected or not isinstance(given, str) or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())
