"""The one-page course report for the clinic visit (clinical spec §7), as PDF, and its chart.

The chart is the picture a rheumatologist draws of a course: ASDAS over its disease-activity
bands, BASDAI and CRP above, and the therapies as bars underneath with start and stop marks.
Drawn with matplotlib's object API (no pyplot, no global state), so it runs in worker threads.
"""

from __future__ import annotations

import html
import io
import re
import textwrap
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Final
from zoneinfo import ZoneInfo

import matplotlib

matplotlib.use("Agg")

from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, DateFormatter, date2num
from matplotlib.figure import Figure

from bot.domain import scoring
from bot.domain.labs import display_value
from bot.present.charts import ASDAS_BANDS, can_render, installed_families
from bot.present.course import CourseWords
from bot.present.render import Renderer
from bot.services.therapy import Course, CourseReport, ScoreLine

A4_INCHES: Final = (8.27, 11.69)
BAR_COLOURS: Final = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860")
LAST_SCORES: Final = 4
WRAP_CHARACTERS: Final = 120
WIDE_SCRIPT_LANGUAGES: Final = frozenset({"zh"})
"""Languages whose characters are about twice as wide as Latin ones, so lines wrap at half."""
_TAG = re.compile(r"<[^>]+>")


def _plain(text: str) -> str:
    return html.unescape(_TAG.sub("", text))


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _x(day: date) -> float:
    """A day on matplotlib's date axis."""
    return float(date2num(day))  # type: ignore[no-untyped-call]


def _span(course: Course) -> tuple[date, date]:
    """The days the chart covers: every episode and every score, with a little margin."""
    days = [point.day for point in course.points]
    for item in course.episodes:
        days.append(item.therapy.start)
        days.append(item.therapy.stop or course.today)
    if not days:
        return course.today - timedelta(days=30), course.today
    first, last = min(days), max(days)
    margin = max(timedelta(days=7), (last - first) / 20)
    return first - margin, last + margin


def draw_course(top: Axes, bars: Axes, course: Course, words: CourseWords) -> None:
    """ASDAS (over its bands), BASDAI and CRP on `top`; therapies as bars on `bars`."""
    t = words.renderer
    lang = words.language
    first, last = _span(course)
    for low, high, colour in ASDAS_BANDS:
        top.axhspan(float(low), float(high) if high is not None else 6.0, color=colour, zorder=0)
    asdas = [
        (p.day, p.asdas_crp if p.asdas_crp is not None else p.asdas_esr) for p in course.points
    ]
    asdas_points = [(_x(day), float(value)) for day, value in asdas if value is not None]
    if asdas_points:
        top.plot(*zip(*asdas_points, strict=True), "o-", color="#b2182b", label="ASDAS", zorder=3)
        for day, value in asdas_points:
            top.annotate(
                scoring.display_round(Decimal(str(value))),
                (day, value),
                textcoords="offset points",
                xytext=(0, 6),
                ha="center",
                fontsize=7,
            )
    basdai = [(_x(p.day), float(p.basdai)) for p in course.points if p.basdai is not None]
    if basdai:
        top.plot(*zip(*basdai, strict=True), "s--", color="#2166ac", label="BASDAI", zorder=3)
    top.set_ylim(0, 10)
    asdas_label = t.text("therapy.report.chart_asdas", lang)
    top.set_ylabel(f"{asdas_label} / {t.text('therapy.report.chart_basdai', lang)}")
    crp = [(_x(p.day), float(p.crp_mg_l)) for p in course.points if p.crp_mg_l is not None]
    if crp:
        crp_axis = top.twinx()
        crp_axis.plot(*zip(*crp, strict=True), "^:", color="#4d4d4d", label="CRP", zorder=2)
        crp_axis.set_ylabel(t.text("therapy.report.chart_crp", lang))
        crp_axis.set_ylim(0, max(value for _, value in crp) * 1.25)
        for day, value in crp:
            crp_axis.annotate(
                display_value(Decimal(str(value))),
                (day, value),
                textcoords="offset points",
                xytext=(0, -12),
                ha="center",
                fontsize=7,
                color="#4d4d4d",
            )
    top.legend(loc="upper right", fontsize=7)
    top.set_xlim(_x(first), _x(last))
    top.grid(axis="y", alpha=0.3)

    episodes = list(course.episodes)
    for row, item in enumerate(episodes):
        therapy = item.therapy
        colour = BAR_COLOURS[row % len(BAR_COLOURS)]
        end = therapy.stop or course.today
        width = max((end - therapy.start).days, 1)
        bars.barh(row, width, left=_x(therapy.start), height=0.5, color=colour, alpha=0.85)
        bars.plot([_x(therapy.start)], [row], marker=">", color="black", markersize=6)
        if therapy.stop is not None:
            bars.plot([_x(therapy.stop)], [row], marker="|", color="black", markersize=14)
        label = therapy.drug if therapy.dose is None else f"{therapy.drug} {therapy.dose}"
        bars.annotate(
            label,
            (_x(therapy.start), row),
            textcoords="offset points",
            xytext=(8, 7),
            fontsize=7,
        )
    bars.set_yticks([])
    bars.set_ylim(len(episodes) - 0.4 if episodes else 0.6, -0.6)
    bars.set_xlim(_x(first), _x(last))
    bars.set_ylabel(t.text("therapy.report.chart_therapies", lang))
    bars.xaxis.set_major_locator(AutoDateLocator())  # type: ignore[no-untyped-call]
    bars.xaxis.set_major_formatter(DateFormatter("%Y-%m"))  # type: ignore[no-untyped-call]


def _score_line(words: CourseWords, line: ScoreLine, zone: ZoneInfo) -> str:
    t, lang = words.renderer, words.language

    def day(moment: datetime | None) -> str:
        return "" if moment is None else moment.astimezone(zone).date().isoformat()

    if line.asdas_crp is not None:
        variant, asdas, lab_day = "ASDAS-CRP", line.asdas_crp, line.crp_drawn_at
        key = (
            "floored"
            if line.crp_mg_l is not None
            and (line.crp_below_detection_limit or line.crp_mg_l < scoring.CRP_FLOOR_MG_L)
            else "value"
        )
        lab = t.text(
            f"therapy.report.crp_{key}",
            lang,
            value=("" if line.crp_mg_l is None else display_value(line.crp_mg_l)),
        )
    elif line.asdas_esr is not None:
        variant, asdas, lab_day = "ASDAS-ESR", line.asdas_esr, line.esr_drawn_at
        lab = t.text(
            "therapy.report.esr_value",
            lang,
            value="" if line.esr_mm_h is None else display_value(line.esr_mm_h),
        )
    else:
        variant, asdas, lab_day, lab = "", None, None, ""
    return _plain(
        t.text(
            "therapy.report.score_line",
            lang,
            day=day(line.completed_at),
            basdai="–" if line.basdai is None else scoring.display_round(line.basdai),
            variant=variant,
            asdas="" if asdas is None else scoring.display_round(asdas),
            state="" if asdas is None else words.state(scoring.asdas_category(asdas)),
            lab=lab,
            lab_day=day(lab_day),
        )
    )


def course_report_pdf(renderer: Renderer, report: CourseReport) -> bytes:
    """One A4 page: title, the course chart, every episode with its §7 reading, and the
    latest scores with their lab values and dates, in the physician's language."""
    lang = report.language
    if not can_render([renderer.text("therapy.report.title", lang, ref="")]):
        lang = "en"  # without a CJK font Chinese would print as empty boxes
    words = CourseWords(renderer, lang)
    zone = ZoneInfo(report.timezone)
    figure = Figure(figsize=A4_INCHES)
    with matplotlib.rc_context({"font.family": installed_families(), "font.size": 8}):
        top = figure.add_axes((0.1, 0.62, 0.78, 0.28))
        bars = figure.add_axes((0.1, 0.50, 0.78, 0.10), sharex=top)
        top.tick_params(labelbottom=False)
        draw_course(top, bars, report.course, words)
        figure.text(
            0.1,
            0.955,
            _plain(renderer.text("therapy.report.title", lang, ref=report.clinic_ref)),
            fontsize=14,
            weight="bold",
        )
        generated = report.generated_at.astimezone(zone).strftime("%Y-%m-%d %H:%M")
        figure.text(
            0.1, 0.935, _plain(renderer.text("therapy.report.generated", lang, at=generated))
        )
        lines: list[tuple[str, bool]] = [
            (_plain(renderer.text("therapy.report.episodes", lang)), True)
        ]
        if not report.course.episodes:
            lines.append((_plain(renderer.text("therapy.report.no_episodes", lang)), False))
        for item in report.course.episodes:
            lines.append((_plain(words.episode(item.therapy)), False))
            lines.extend(("    " + _plain(text), False) for text in words.reading(item.reading))
        lines.append(("", False))
        lines.append((_plain(renderer.text("therapy.report.last_scores", lang)), True))
        if not report.scores:
            lines.append((_plain(renderer.text("therapy.report.no_scores", lang)), False))
        for line in report.scores[-LAST_SCORES:][::-1]:
            lines.append((_score_line(words, line, zone), False))
        y = 0.42
        width = WRAP_CHARACTERS // 2 if lang in WIDE_SCRIPT_LANGUAGES else WRAP_CHARACTERS
        for text, heading in lines:
            indent = " " * (len(text) - len(text.lstrip()) + 4)
            for part in textwrap.wrap(text, width, subsequent_indent=indent) or [""]:
                figure.text(
                    0.08, y, part, fontsize=9 if heading else 7.5,
                    weight="bold" if heading else None,
                )  # fmt: skip
                y -= 0.022 if heading else 0.016
        buffer = io.BytesIO()
        figure.savefig(buffer, format="pdf")
    return buffer.getvalue()
