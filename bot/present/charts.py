"""Trend charts as PNG: BASDAI over time, and ASDAS over its disease-activity bands.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no global state), so charts
can be drawn from worker threads. Everything a person reads is passed in (`ChartLabels`), so
the patient's `/history` and the physician's view share this module in any language.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from bot.present.formats import day_text
from bot.services.physician_panel import ChartPoint

# matplotlib is imported where a chart is drawn, not here: the constants and label types below
# are read by every command (through `bot.present.screens`), and importing matplotlib costs
# most of a second at start-up.

# ASDAS state thresholds (clinical spec §3) and band colours, mild to severe.
ASDAS_BANDS: Final = (
    (Decimal("0"), Decimal("1.3"), "#d9f0d3"),
    (Decimal("1.3"), Decimal("2.1"), "#fff2b3"),
    (Decimal("2.1"), Decimal("3.5"), "#fdd0a2"),
    (Decimal("3.5"), None, "#f4a6a6"),
)
BASDAI_ACTIVE: Final = 4.0
THERAPY_COLOURS: Final = ("#9ecae1", "#fdae6b", "#a1d99b", "#fc9272", "#bcbddc", "#d9d9d9")
WIDTH_INCHES: Final = 8.0
PANEL_HEIGHT_INCHES: Final = 3.2
DPI: Final = 140

# Fonts tried in order; matplotlib falls back glyph by glyph along the list, so Chinese labels
# render when one of the CJK fonts is installed (see `can_render`).
FONT_FAMILIES: Final = (
    "DejaVu Sans",
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Microsoft YaHei",
    "PingFang SC",
    "SimHei",
    "Droid Sans Fallback",
)


@dataclass(frozen=True)
class TherapyBar:
    """One therapy episode under the curves: its label, first day and last day (None while
    ongoing), drawn as a bar with a start mark and, once stopped, a stop mark (spec §7)."""

    label: str
    start: date
    stop: date | None = None


@dataclass(frozen=True)
class ChartLabels:
    """Every text on the chart, in the reader's language."""

    title: str
    basdai: str = "BASDAI"
    asdas: str = "ASDAS"
    lab: str = "lab value (CRP/ESR)"
    active_line: str = "BASDAI 4"
    inactive: str = "inactive disease"
    low: str = "low disease activity"
    high: str = "high disease activity"
    very_high: str = "very high disease activity"
    # A CLDR date pattern for the time axis, and the language whose month names it uses.
    date_pattern: str = "dd MMM"
    language: str = "en"

    def texts(self) -> list[str]:
        return [
            self.title,
            self.basdai,
            self.asdas,
            self.lab,
            self.active_line,
            self.inactive,
            self.low,
            self.high,
            self.very_high,
        ]


# File names of the CJK fonts of FONT_FAMILIES as Linux distributions, macOS and Windows install
# them (Debian: fonts-noto-cjk → NotoSansCJK-Regular.ttc, fonts-wqy-microhei → wqy-microhei.ttc).
CJK_FONT_FILE: Final = re.compile(
    r"NotoSans(Mono)?CJK|NotoSansSC|SourceHanSans|wqy-(zenhei|microhei)|msyh|PingFang|simhei"
    r"|DroidSansFallback",
    re.IGNORECASE,
)


def _use_agg_backend() -> None:
    """Selects the file-only Agg backend before any figure is made (no display on a server)."""
    import matplotlib

    matplotlib.use("Agg")


@cache
def _installed_fonts() -> tuple[tuple[str, frozenset[int]], ...]:
    """(family, code points) of each font of FONT_FAMILIES that is installed.

    matplotlib lists the system's fonts once, in a cache it never refreshes by itself, so a CJK
    font installed after the first chart would stay invisible. When the list has none, the CJK
    font files are looked for by name and added to this process's list.
    """
    _use_agg_backend()
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    found: list[tuple[str, frozenset[int]]] = []
    quiet = logging.getLogger("matplotlib.font_manager")
    previous = quiet.level
    quiet.setLevel(logging.ERROR)  # a missing family is expected here, not worth a warning
    try:
        for family in FONT_FAMILIES:
            try:
                path = font_manager.findfont(
                    font_manager.FontProperties(family=family), fallback_to_default=False
                )
                found.append((family, frozenset(FT2Font(path).get_charmap())))
            except (ValueError, OSError, RuntimeError):
                continue
        if not any(family != FONT_FAMILIES[0] for family, _ in found):
            found.extend(_unlisted_cjk_fonts())
    finally:
        quiet.setLevel(previous)
    return tuple(found)


def _unlisted_cjk_fonts() -> list[tuple[str, frozenset[int]]]:
    """CJK fonts installed after matplotlib's font list was built, found by file name."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    found: list[tuple[str, frozenset[int]]] = []
    for path in sorted(font_manager.findSystemFonts()):
        if not CJK_FONT_FILE.search(Path(path).name):
            continue
        try:
            font = FT2Font(path)
            font_manager.fontManager.addfont(path)
        except (OSError, RuntimeError, ValueError):
            continue
        if all(family != font.family_name for family, _ in found):
            found.append((font.family_name, frozenset(font.get_charmap())))
    return found


def installed_families() -> list[str]:
    """The families of FONT_FAMILIES installed here, in order (matplotlib falls back along
    them glyph by glyph)."""
    return [family for family, _ in _installed_fonts()] or ["sans-serif"]


def can_render(texts: Iterable[str]) -> bool:
    """Whether the installed fonts have a glyph for every character of `texts`.

    Without a CJK font, Chinese labels would come out as empty boxes; callers then fall back to
    English labels.
    """
    maps = [charmap for _, charmap in _installed_fonts()]
    for text in texts:
        for char in text:
            if char.isspace():
                continue
            if not any(ord(char) in charmap for charmap in maps):
                return False
    return True


def _local_naive(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone).replace(tzinfo=None)


def trend_chart_png(
    points: Sequence[ChartPoint],
    *,
    labels: ChartLabels,
    lab_dates: Sequence[datetime] = (),
    start: datetime | None = None,
    end: datetime | None = None,
    timezone: str = "UTC",
    therapies: Sequence[TherapyBar] = (),
) -> bytes:
    """A PNG of BASDAI (top) and, when any point has one, ASDAS over its state bands (bottom),
    with lab draws marked; readable on a phone (about 1100 px wide). Therapy episodes, when
    given, are bars underneath with start and stop marks: the picture of a course.

    Dates are shown in `timezone`; `start`/`end` fix the time axis (default: the points).
    """
    families = installed_families()
    from matplotlib.dates import AutoDateLocator, num2date
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter

    zone = ZoneInfo(timezone)
    ordered = sorted(points, key=lambda point: point.at)
    moments = [point.at for point in ordered] + list(lab_dates)
    first = start or (min(moments) if moments else datetime.now(UTC) - timedelta(weeks=12))
    last = end or (max(moments) if moments else datetime.now(UTC))
    if last <= first:
        first, last = first - timedelta(days=3), last + timedelta(days=3)
    margin = (last - first) * 0.03
    x_range = (_local_naive(first - margin, zone), _local_naive(last + margin, zone))

    with_asdas = [point for point in ordered if point.asdas is not None]
    panels = 2 if with_asdas else 1
    bar_height = 0.35 * len(therapies) + 0.5 if therapies else 0.0
    figure = Figure(
        figsize=(
            WIDTH_INCHES,
            PANEL_HEIGHT_INCHES * panels + (1.6 if panels == 2 else 0.6) + bar_height,
        ),
        dpi=DPI,
        layout="constrained",
    )
    ratios = [PANEL_HEIGHT_INCHES] * panels + ([bar_height] if therapies else [])
    all_axes = figure.subplots(
        len(ratios), 1, sharex=True, squeeze=False, gridspec_kw={"height_ratios": ratios}
    )[:, 0]
    axes = all_axes[:panels]
    for axis in all_axes:
        axis.grid(axis="y", color="#dddddd", linewidth=0.8)
        axis.set_xlim(*x_range)
        axis.tick_params(labelsize=11)
    figure.suptitle(labels.title, fontsize=15, fontfamily=families)

    basdai_axis = axes[0]
    with_basdai = [point for point in ordered if point.basdai is not None]
    basdai_axis.axhline(
        BASDAI_ACTIVE, color="#c0392b", linestyle="--", linewidth=1.2, label=labels.active_line
    )
    if with_basdai:
        basdai_axis.plot(
            [_local_naive(point.at, zone) for point in with_basdai],
            [float(point.basdai) for point in with_basdai if point.basdai is not None],
            marker="o",
            markersize=7,
            linewidth=2.2,
            color="#1f4e79",
            label=labels.basdai,
        )
    basdai_axis.set_ylim(0, 10)
    basdai_axis.set_ylabel(labels.basdai, fontsize=12, fontfamily=families)
    basdai_axis.legend(loc="upper left", fontsize=10, prop={"family": families})

    if with_asdas:
        asdas_axis = axes[1]
        values = [float(point.asdas) for point in with_asdas if point.asdas is not None]
        top = max(4.5, max(values) + 0.5)
        names = (labels.inactive, labels.low, labels.high, labels.very_high)
        handles = []
        for (low, high, colour), name in zip(ASDAS_BANDS, names, strict=True):
            asdas_axis.axhspan(float(low), top if high is None else float(high), color=colour)
            handles.append(Patch(color=colour, label=name))
        asdas_axis.plot(
            [_local_naive(point.at, zone) for point in with_asdas],
            values,
            marker="s",
            markersize=7,
            linewidth=2.2,
            color="#222222",
            label=labels.asdas,
        )
        if lab_dates:
            asdas_axis.plot(
                [_local_naive(moment, zone) for moment in lab_dates],
                [0.12 * top] * len(lab_dates),
                linestyle="none",
                marker="^",
                markersize=9,
                color="#6c3483",
                label=labels.lab,
            )
        asdas_axis.set_ylim(0, top)
        asdas_axis.set_ylabel(labels.asdas, fontsize=12, fontfamily=families)
        line_handles, _ = asdas_axis.get_legend_handles_labels()
        legend = {
            "handles": [*line_handles, *reversed(handles)],
            "ncol": 2,
            "fontsize": 10,
            "frameon": False,
            "prop": {"family": families},
        }
        if therapies:
            # Below the therapy bars, so the bars sit right under the curves.
            figure.legend(loc="outside lower center", **legend)
        else:
            asdas_axis.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), **legend)
    elif lab_dates:
        basdai_axis.plot(
            [_local_naive(moment, zone) for moment in lab_dates],
            [0.4] * len(lab_dates),
            linestyle="none",
            marker="^",
            markersize=9,
            color="#6c3483",
            label=labels.lab,
        )
        basdai_axis.legend(loc="upper left", fontsize=10, prop={"family": families})

    if therapies:
        _therapy_bars(all_axes[-1], therapies, last, zone, families, shown_from=x_range[0])
    bottom = all_axes[-1]
    bottom.xaxis.set_major_locator(AutoDateLocator(minticks=3, maxticks=7))  # type: ignore[no-untyped-call]
    # The tick dates are read as DateFormatter did (matplotlib's default zone); only the
    # words change: CLDR month names in the reader's language instead of strftime's C locale.
    bottom.xaxis.set_major_formatter(
        FuncFormatter(
            lambda value, _: day_text(
                num2date(value),  # type: ignore[no-untyped-call]
                labels.date_pattern,
                labels.language,
            )
        )
    )
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _therapy_bars(
    axis: Any,
    therapies: Sequence[TherapyBar],
    last: datetime,
    zone: ZoneInfo,
    families: list[str],
    *,
    shown_from: datetime,
) -> None:
    """One row per episode: a bar from start to stop (or the chart's end), ▶ at the start and
    a bar end mark at the stop; an episode begun before the chart has its label at the left."""
    for row, bar in enumerate(therapies):
        begin = datetime.combine(bar.start, time(0))
        end = (
            datetime.combine(bar.stop, time(23, 59))
            if bar.stop is not None
            else _local_naive(last, zone)
        )
        colour = THERAPY_COLOURS[row % len(THERAPY_COLOURS)]
        axis.barh(row, end - begin, left=begin, height=0.55, color=colour, alpha=0.85)
        axis.plot([begin], [row], marker=">", color="black", markersize=7)
        if bar.stop is not None:
            axis.plot([end], [row], marker="|", color="black", markersize=16)
        axis.annotate(
            bar.label,
            (max(begin, shown_from), row),
            xytext=(10, 0),
            textcoords="offset points",
            va="center",
            fontsize=10,
            fontfamily=families,
        )
    axis.set_yticks([])
    axis.set_ylim(len(therapies) - 0.4, -0.6)
