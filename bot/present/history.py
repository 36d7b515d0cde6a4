"""A patient's history: scores of recent weeks, and the labels of their trend chart."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bot.present import formats
from bot.present.charts import ChartLabels, can_render
from bot.present.render import TELEGRAM_TEXT_LIMIT, Renderer
from bot.present.screens import display, local_time
from bot.services.history import History
from bot.services.physician_panel import ChartPoint

# ---------------------------------------------------------------------------------------------
# History
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryScreens:
    """`/history`: the chart's caption and labels and the table, or the text for no data."""

    language: str
    caption: str
    table: str | None
    labels: ChartLabels
    points: list[ChartPoint] = field(default_factory=list)
    empty: str | None = None


def chart_labels(
    renderer: Renderer,
    language: str,
    weeks: int,
    title: Callable[[str], str] | None = None,
) -> ChartLabels:
    """Every text on a trend chart (the patient's `/history` and the physician's `/patient`),
    in `language`; English when no installed font can draw that language (a server without
    CJK fonts would otherwise draw empty boxes). `title(language)` replaces the patient's
    title, e.g. with the physician's one naming the patient."""
    labels = ChartLabels(
        title=(
            title(language)
            if title is not None
            else renderer.text("history.title", language, weeks=weeks)
        ),
        basdai=renderer.text("history.basdai", language),
        asdas=renderer.text("history.asdas", language),
        lab=renderer.text("history.lab", language),
        active_line=renderer.text("history.active_line", language),
        inactive=renderer.asdas_state_name("inactive", language),
        low=renderer.asdas_state_name("low", language),
        high=renderer.asdas_state_name("high", language),
        very_high=renderer.asdas_state_name("very_high", language),
        date_pattern=renderer.text("history.chart_date_format", language),
        language=language,
    )
    if language != "en" and not can_render(labels.texts()):
        return chart_labels(renderer, "en", weeks, title)
    return labels


def history_screens(renderer: Renderer, history: History) -> HistoryScreens:
    """The caption, table, chart labels and chart points of a patient's history."""
    lang = history.language
    weeks = round((history.until - history.since).days / 7)
    labels = chart_labels(renderer, lang, weeks)
    if not history.entries:
        return HistoryScreens(
            lang, "", None, labels, empty=renderer.text("history.empty", lang, weeks=weeks)
        )
    has_asdas = any(entry.asdas is not None for entry in history.entries)
    date_pattern = renderer.text("history.date_format", lang)
    lines = []
    for entry in history.entries:
        day = formats.day_text(local_time(entry.completed_at, history.timezone), date_pattern, lang)
        basdai = "–" if entry.basdai is None else display(entry.basdai, lang)
        asdas = "–"
        if entry.asdas is not None and entry.asdas_state is not None:
            state = renderer.asdas_state_name(entry.asdas_state, lang)
            asdas = f"{display(entry.asdas, lang)} {entry.asdas_kind} ({state})"
        lines.append(f"{day:<11} {basdai:>6}  {asdas}")
    header = renderer.text("history.header", lang)
    table = renderer.text("history.table", lang, header=header, rows=lines)
    # The newest rows are kept if the table would exceed Telegram's limit.
    while len(table) > TELEGRAM_TEXT_LIMIT and len(lines) > 1:
        lines = lines[1:]
        table = renderer.text("history.table", lang, header=header, rows=lines)
    points = [
        ChartPoint(at=entry.completed_at, basdai=entry.basdai, asdas=entry.asdas)
        for entry in history.entries
    ]
    return HistoryScreens(
        language=lang,
        caption=renderer.text("history.caption", lang, weeks=weeks, has_asdas=has_asdas),
        table=table,
        labels=labels,
        points=points,
    )
