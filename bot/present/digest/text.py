"""Turns a `Digest` into what is sent: Telegram messages, charts, an HTML document, an e-mail.

All words come from `templates/digests/<lang>/` and the `digest.*` messages.
Telegram allows 4096 characters a message: the digest is split between lines (a line never
straddles two messages, and every patient is one line), and a digest that would take more
than `MAX_MESSAGES` messages is sent as a short summary plus the full digest as an HTML file.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

from bot.domain import scoring
from bot.present.course import CourseWords, rendered
from bot.present.digest.charts import ChartPanel, batches, panel_image
from bot.present.formats import day_text, number_text
from bot.present.render import TELEGRAM_TEXT_LIMIT, Renderer
from bot.present.screens import percent
from bot.services.digest import Digest, TreatmentKind
from bot.services.physician_panel import ChartPoint

MAX_MESSAGES = 4
"""Beyond this many messages the digest goes as a summary and an HTML document."""

CHART_CID_DOMAIN = "spondybot.digest"
_TAG = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class Chart:
    """One chart image and the range of attention patients (by number) it shows."""

    png: bytes
    first: int
    last: int
    caption: str

    @property
    def content_id(self) -> str:
        return f"chart-{self.first}-{self.last}@{CHART_CID_DOMAIN}"


@dataclass(frozen=True)
class RenderedDigest:
    """Everything needed to send one digest on every channel.

    `messages` are the Telegram texts in order; when `document` is set, `messages` holds the
    short summary only and the document (`document_html`, charts embedded) carries the full
    digest.
    """

    messages: tuple[str, ...]
    document: bytes | None
    document_html: str
    document_name: str
    document_caption: str
    subject: str
    email_html: str
    email_text: str
    charts: tuple[Chart, ...] = field(default=())


def local_date(value: datetime, timezone: str) -> date:
    """The calendar day a moment falls on in the physician's time zone."""
    return value.astimezone(ZoneInfo(timezone)).date()


def number(value: Decimal, language: str = "en") -> str:
    """A score shown to one decimal, half away from zero (clinical spec §3), with the
    language's decimal separator."""
    return number_text(scoring.display_round(value), language)


def signed(value: Decimal, language: str = "en") -> str:
    """A change shown with its sign, e.g. "+1.2", "−0.4" (a true minus sign) or "±0.0"."""
    shown = scoring.display_decimal(value)
    magnitude = number_text(abs(shown), language)
    if shown > 0:
        return f"+{magnitude}"
    if shown < 0:
        return f"\u2212{magnitude}"
    return f"\u00b1{magnitude}"


def split_message(text: str, limit: int = TELEGRAM_TEXT_LIMIT) -> list[str]:
    """Splits a text into messages of at most `limit` characters, only between lines.

    Paragraphs (separated by a blank line) are kept together when they fit, so a section
    heading stays with its first lines. Each line must be self-contained HTML, which the
    digest templates guarantee; a single line longer than `limit` is a template bug.
    """
    messages: list[str] = []
    current: list[str] = []

    def size(lines: Sequence[str]) -> int:
        return sum(len(line) for line in lines) + max(len(lines) - 1, 0)

    def flush() -> None:
        while current and not current[-1].strip():
            current.pop()
        if current:
            messages.append("\n".join(current))
        current.clear()

    for paragraph in text.strip().split("\n\n"):
        lines = paragraph.split("\n")
        for line in lines:
            if len(line) > limit:
                raise ValueError(f"a digest line is longer than {limit} characters")
        candidate = [*current, "", *lines] if current else lines
        if size(candidate) <= limit:
            current[:] = candidate
            continue
        flush()
        for line in lines:
            if current and size([*current, line]) > limit:
                flush()
            current.append(line)
    flush()
    return messages


def html_to_text(telegram_html: str) -> str:
    """Plain text of Telegram HTML: tags dropped, entities decoded."""
    return html.unescape(_TAG.sub("", telegram_html))


def _panels(digest: Digest) -> list[ChartPanel]:
    return [
        ChartPanel(
            number=position,
            title=line.identifier,
            fallback_title=line.clinic_ref,
            points=[ChartPoint(obs.at, obs.basdai, obs.asdas) for obs in line.history],
        )
        for position, line in enumerate(digest.attention, start=1)
        if line.history
    ]


def render_charts(digest: Digest, renderer: Renderer) -> list[Chart]:
    """The attention patients' charts, each with its caption in the physician's language."""
    charts = []
    for batch in batches(_panels(digest)):
        first, last = batch[0].number, batch[-1].number
        # The end in local time, so the date labels are the physician's calendar days.
        end = digest.week.end(digest.timezone).astimezone(ZoneInfo(digest.timezone))
        png = panel_image(batch, end=end, weeks=digest.chart_weeks)
        caption = renderer.text(
            "digest.chart_caption",
            digest.language,
            first=first,
            last=last,
            total=len(digest.attention),
            weeks=digest.chart_weeks,
        )
        charts.append(Chart(png=png, first=first, last=last, caption=caption))
    return charts


def treatment_lines(digest: Digest, renderer: Renderer) -> list[str]:
    """The treatment section (clinical spec §7): one line per episode's news of the week, with
    the numbers, in the physician's language."""
    words = CourseWords(renderer, digest.language)
    lines: list[str] = []
    for note in digest.treatment:
        reading = note.reading
        detail: str
        if note.kind in (TreatmentKind.ASSESSED, TreatmentKind.NO_RESPONSE):
            assert reading.assessment is not None
            detail = rendered("; ").join(words.assessment(reading.assessment, reading.judgement))
        else:  # the loss, or when the assessment is due: the reading's last statement
            detail = words.reading(reading)[-1]
        lines.append(
            rendered(
                renderer.text(
                    "therapy.digest.line",
                    digest.language,
                    identifier=note.identifier,
                    kind=renderer.text(f"therapy.digest.kind_{note.kind.value}", digest.language),
                    drug=note.therapy.drug,
                    detail=detail,
                )
            )
        )
    return lines


def safety_lines(digest: Digest, renderer: Renderer) -> list[str]:
    """The week's "yes" answers of safety check-ins with their dates (clinical spec §8)."""
    return [
        rendered(
            renderer.text(
                "therapy.digest.safety_line",
                digest.language,
                identifier=note.identifier,
                day=local_date(note.answered_at, digest.timezone).isoformat(),
                question=renderer.text(f"safety.short.{note.question}", digest.language),
                note=note.note,
                alerted=note.alerted_now,
            )
        )
        for note in digest.safety
    ]


def _variables(digest: Digest, renderer: Renderer) -> dict[str, object]:
    """What the digest templates are rendered with. The dates and numbers of a panel repeat
    from patient to patient (the same lab days, the same scores), so each is worded once per
    digest."""
    language, timezone = digest.language, digest.timezone
    return {
        "d": digest,
        "t": lambda key: rendered(renderer.text(key, language)),
        "treatment": treatment_lines(digest, renderer),
        "safety": safety_lines(digest, renderer),
        "num": cache(lambda value: number(value, language)),
        "signed": cache(lambda value: signed(value, language)),
        "percent": percent,
        # A day in a CLDR pattern ("d MMM y"): month names from CLDR, in the digest's language.
        "date": cache(lambda value, pattern: day_text(value, pattern, language)),
        "local": cache(lambda value: local_date(value, timezone)),
        "this_week": lambda value: (
            value is not None and digest.first_day <= local_date(value, timezone) <= digest.last_day
        ),
    }


def render_text(
    digest: Digest, renderer: Renderer, variables: dict[str, object] | None = None
) -> str:
    """The whole digest as Telegram HTML, before splitting (`variables`: `_variables`, when
    the caller renders more than one part of the digest)."""
    return renderer.render_file(
        f"digests/{digest.language}/digest.txt.j2", **(variables or _variables(digest, renderer))
    ).strip()


def render_html(
    digest: Digest,
    renderer: Renderer,
    images: Sequence[str],
    variables: dict[str, object] | None = None,
) -> str:
    """The whole digest as an HTML document; `images` are the chart sources (cid: or data:)."""
    return renderer.render_file(
        f"digests/{digest.language}/digest.html.j2",
        images=list(images),
        **(variables or _variables(digest, renderer)),
    )


def render_summary(
    digest: Digest, renderer: Renderer, variables: dict[str, object] | None = None
) -> str:
    """The short message that goes with the HTML document: header and as many attention
    lines as fit in one message, then how many more are in the document.

    Lines differ in length, so the number that fits is estimated from their average and then
    settled by rendering: the fewest renders that still give the most lines."""
    words = variables or _variables(digest, renderer)

    def summary(shown: int) -> str:
        return renderer.render_file(
            f"digests/{digest.language}/summary.txt.j2", shown=shown, **words
        ).strip()

    total = len(digest.attention)
    text = summary(total)
    if len(text) <= TELEGRAM_TEXT_LIMIT:
        return text
    bare = summary(0)
    per_line = max(1.0, (len(text) - len(bare)) / total)
    shown = min(total - 1, max(0, int((TELEGRAM_TEXT_LIMIT - len(bare)) / per_line)))
    text = summary(shown)
    while len(text) > TELEGRAM_TEXT_LIMIT and shown > 0:
        shown = max(0, shown - math.ceil((len(text) - TELEGRAM_TEXT_LIMIT) / per_line))
        text = summary(shown)
    while shown + 1 < total and len(longer := summary(shown + 1)) <= TELEGRAM_TEXT_LIMIT:
        shown, text = shown + 1, longer
    return text


_CHART_MARKER = re.compile(r"<chart (\d+)>")


def _with_sources(marked_html: str, sources: Sequence[str]) -> str:
    """The HTML document with each chart's marker replaced by its source."""
    return _CHART_MARKER.sub(lambda marker: escape(sources[int(marker[1])]), marked_html)


def render_digest(digest: Digest, renderer: Renderer, *, charts: bool = True) -> RenderedDigest:
    """Renders a digest for every channel; charts can be left out (e.g. for a quick preview)."""
    drawn = render_charts(digest, renderer) if charts else []
    variables = _variables(digest, renderer)
    text = render_text(digest, renderer, variables)
    parts = split_message(text)
    # The document and the e-mail differ only in where their images come from: rendered
    # once, with markers the escaping of patient text can never produce, filled in for each.
    marked = render_html(
        digest, renderer, [Markup("<chart {}>").format(n) for n in range(len(drawn))], variables
    )
    document_html = _with_sources(
        marked,
        [f"data:image/png;base64,{base64.b64encode(chart.png).decode()}" for chart in drawn],
    )
    document: bytes | None = None
    if len(parts) > MAX_MESSAGES:
        parts = [render_summary(digest, renderer, variables)]
        document = document_html.encode("utf-8")
    return RenderedDigest(
        messages=tuple(parts),
        document=document,
        document_html=document_html,
        document_name=f"digest-{digest.week}.html",
        document_caption=renderer.text(
            "digest.document_caption", digest.language, week=str(digest.week)
        ),
        subject=renderer.text("digest.subject", digest.language, week=str(digest.week)),
        email_html=_with_sources(marked, [f"cid:{chart.content_id}" for chart in drawn]),
        email_text=html_to_text(text),
        charts=tuple(drawn),
    )
