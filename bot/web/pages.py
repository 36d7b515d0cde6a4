"""Renders the pages of `templates/web/` with the project's Jinja environment and catalogues."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse

from bot.context import AppContext
from bot.present.formats import clock_text, weekday_name
from bot.present.render import Renderer
from bot.present.screens import answer_value, lab_refusal, measured, rounded
from bot.services.accounts import Principal


@dataclass(frozen=True)
class WebDeps:
    """What every page needs, stored once on the application's state."""

    ctx: AppContext
    renderer: Renderer


def deps_of(request: Request) -> WebDeps:
    value = request.app.state.deps
    assert isinstance(value, WebDeps)
    return value


def language_of(request: Request, principal: Principal | None) -> str:
    """The signed-in person's language; before sign-in, `?lang=`, then the browser's
    Accept-Language, then the clinic's language."""
    if principal is not None:
        return principal.language
    languages = deps_of(request).renderer.languages
    asked = request.query_params.get("lang", "")
    if asked in languages:
        return asked
    for part in request.headers.get("accept-language", "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in languages:
            return tag
    return deps_of(request).ctx.settings.clinic_language


def render(
    request: Request,
    template: str,
    *,
    principal: Principal | None,
    status_code: int = 200,
    form_token: str | None = None,
    **values: Any,
) -> HTMLResponse:
    """A page of `templates/web/` in the reader's language.

    `t("key")` in a template is the catalogue text `web.key` (already escaped by the catalogue,
    hence Markup); every form carries `csrf_token`, the session's or the pre-session one.
    Services hand over exact values: `rounded(score)` shows a score to one decimal (clinical
    spec §3), `measured(value)` a lab value as entered, `answer(value, minutes)` an answer.
    """
    renderer = deps_of(request).renderer
    language = language_of(request, principal)

    def t(key: str, **variables: Any) -> Markup:
        return Markup(renderer.text(f"web.{key}", language, **variables))  # noqa: S704

    def t_in(other_language: str, key: str, **variables: Any) -> Markup:
        """A web text in another language (the patient's, on their enrollment sheet)."""
        return Markup(renderer.text(f"web.{key}", other_language, **variables))  # noqa: S704

    def text(key: str, **variables: Any) -> Markup:
        """A text of another catalogue area shared with the bot (items, digest flags)."""
        return Markup(renderer.text(key, language, **variables))  # noqa: S704

    zone = ZoneInfo(deps_of(request).ctx.settings.clinic_timezone)

    def when(moment: datetime | None) -> str:
        """A moment in the clinic's time zone, to the minute."""
        return "" if moment is None else moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")

    def day(moment: datetime | None) -> str:
        """The date of a moment in the clinic's time zone."""
        return "" if moment is None else moment.astimezone(zone).strftime("%Y-%m-%d")

    html = renderer.render_file(
        f"web/{template}",
        t=t,
        text=text,
        t_in=t_in,
        when=when,
        day=day,
        weekday=lambda number: weekday_name(number, language),
        clock=lambda value: clock_text(value, language),
        rounded=rounded,
        measured=measured,
        lab_refusal=lambda code, params: Markup(lab_refusal(renderer, language, code, params)),  # noqa: S704
        answer=answer_value,
        lang=language,
        principal=principal,
        csrf_token=form_token or (principal.csrf_token if principal else ""),
        path=request.url.path,
        **values,
    )
    return HTMLResponse(html, status_code=status_code)
