"""Small-multiple charts for the digest: each attention patient's ASDAS and BASDAI over weeks.

One panel per patient: ASDAS-CRP on a fixed 0–6 scale over the four ASDAS disease activity
state bands (clinical spec §3), and BASDAI on its own 0–10 scale (labels on the right) with
its active-disease line at 4. Panels sit two abreast, eight to an image, so an image stays
readable on a phone; long lists go over several images. Every panel of a week looks the same
but for its lines and title, so the empty panels are drawn once and each image only adds those
(matplotlib's blitting): a digest with forty attention patients draws in well under a second.
The titles are written glyph by glyph from glyph images FreeType rendered once per process,
pixel for pixel what matplotlib's text drawing gives (`_write_title`).

The charts carry no words, only instrument names, numbers, dates and the patients'
identifiers, so one image serves every language and the caption that explains the bands comes
from the templates. An identifier the bundled font cannot draw (a name in Chinese script on a
server without CJK fonts) falls back to the clinic reference, then to the number alone.
"""

from __future__ import annotations

import itertools
import logging
import math
import struct
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, Literal, NamedTuple

import matplotlib

matplotlib.use("Agg")

import numpy as np
from isal import isal_zlib
from matplotlib import font_manager, ft2font
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg, get_hinting_flag
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.text import Text
from matplotlib.ticker import FixedFormatter, FixedLocator
from matplotlib.transforms import IdentityTransform

from bot.domain import scoring
from bot.present.charts import ASDAS_BANDS
from bot.services.physician_panel import ChartPoint

RenderMode: Any = getattr(ft2font, "RenderMode", None)
"""FreeType's render modes; the glyph path of `_write_title` needs matplotlib ≥ 3.10 for it."""

logger = logging.getLogger(__name__)

PANELS_PER_IMAGE = 8
COLUMNS = 2
PANEL_WIDTH_IN = 3.4
PANEL_HEIGHT_IN = 2.3
LEGEND_IN = 0.3
DPI = 110
ASDAS_TOP = 6
"""The ASDAS axis is 0–6 for every patient, so panels compare at a glance and their
background can be drawn once; a higher ASDAS (rare: CRP far above 100 mg/L) sits on the top
edge, and the digest's text gives its value."""
BASDAI_TOP = 10
MAX_DATE_LABELS = 5
"""Date labels per panel at most: five "MM-DD" labels fit under a panel with room between
them, whatever the number of weeks (labels every three weeks ran together on a year)."""
PNG_DEFLATE_LEVEL = 1
"""ISA-L's level 1 (of 0–3): the charts are flat colour, which it packs as well as zlib's
fastest level, in a fraction of the time."""

# The ASDAS state bands (clinical spec §3) in the colours of the patients' own trend charts,
# so a physician and a patient looking at the same weeks see the same picture.
BANDS: tuple[tuple[float, float | None, str], ...] = tuple(
    (float(low), None if high is None else float(high), colour) for low, high, colour in ASDAS_BANDS
)
ASDAS_COLOUR = "#08306b"
BASDAI_COLOUR = "#6a3d9a"


@dataclass(frozen=True)
class ChartPanel:
    """One patient's panel: their number in the digest's attention list, a title (their
    identifier, or `fallback_title` when the font cannot draw it) and their points, oldest
    first."""

    number: int
    title: str
    points: Sequence[ChartPoint]
    fallback_title: str = ""


@cache
def _drawable_characters() -> frozenset[int]:
    """Code points the default font can draw (titles with others fall back)."""
    from matplotlib.ft2font import FT2Font

    path = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans"))
    return frozenset(FT2Font(path).get_charmap())


def drawable(text: str) -> bool:
    """Whether every character of `text` can be drawn without a missing-glyph box."""
    available = _drawable_characters()
    return all(ord(ch) in available or ch.isspace() for ch in text)


def _title(panel: ChartPanel) -> str:
    for candidate in (panel.title, panel.fallback_title):
        if candidate and drawable(candidate):
            return f"{panel.number}. {candidate}"
    return f"{panel.number}."


@dataclass
class _Slot:
    """One panel position of a template: its axes and its title, which changes per patient."""

    axes: Axes
    title: Text
    title_at: tuple[float, float] = (0.0, 0.0)
    """Where the title's baseline starts, in display pixels (see `_write_title`)."""


@dataclass
class _Template:
    """A figure with `rows` × 2 empty panels and their date labels, drawn once; images are
    made by restoring its pixels and drawing only each patient's lines and title on top
    (blitting), since axes, bands, ticks and labels are nearly all of matplotlib's drawing
    time and are the same for every patient of a week."""

    figure: Figure
    canvas: Any  # FigureCanvasAgg; its blitting methods carry no type hints
    background: Any
    slots: list[_Slot]
    blank: Rectangle
    asdas: Line2D
    """Every panel's ASDAS line of an image, in pixels, one panel's points apart from the
    next by a gap (NaN): one line drawn per image instead of one per panel, since the
    drawing of a line costs matplotlib about the same whatever its points."""
    basdai: Line2D
    title_descender: float = 0.0


_GAP = np.full((1, 2), np.nan)
"""Between two panels' points in a line of an image: no line joins them."""
_templates: dict[tuple[int, int, tuple[str, ...]], _Template] = {}
_MAX_TEMPLATES = 8
# Templates are shared by every digest of the process and matplotlib figures are not
# thread-safe: one image is drawn at a time.
_lock = threading.Lock()


_GlyphKey = tuple[Any, ...]
_glyph_images: dict[_GlyphKey, tuple[np.ndarray[Any, Any], int, int]] = {}
"""Glyph images of panel titles by font file, size, dpi, load flags, antialiasing, glyph and
sub-pixel position, as FreeType rendered them once: (coverage, left, top), left and top for
the whole pixel 0."""
_MAX_GLYPH_IMAGES = 20_000
_hinting_flag: Any = get_hinting_flag
"""The FreeType load flags of rcParams["text.hinting"], as RendererAgg.draw_text takes them."""
_IDENTITY = np.array([[0x10000, 0], [0, 0x10000]], dtype=int)
_deep_characters: dict[tuple[str, float, float], bool] = {}
_glyph_titles = {"on": RenderMode is not None}
"""Whether titles are written from cached glyph images. That path uses matplotlib's private
text internals (pinned only by tests); should a matplotlib release change them, the first
failure switches every later title back to matplotlib's own `Text.draw`, so a digest is never
lost to an upgrade."""


def use_glyph_titles(on: bool) -> None:
    """Turns the glyph-image titles on or off (off: every title through `Text.draw`, the
    reference the glyph path must equal pixel for pixel)."""
    _glyph_titles["on"] = on and RenderMode is not None


"""Whether a character reaches below the font's descender line, by character and size."""


def _title_place(title: Text, renderer: Any) -> tuple[tuple[float, float], float]:
    """Where `Text.draw` puts the baseline of a title (display pixels, y upwards) whose
    characters all stay above the font's descender line, and that line's depth in pixels."""
    layout: Any = title
    assert title.get_text() == ""
    x, y = title.get_transform().transform(title.get_unitless_position())
    _, lines, _ = layout._get_layout(renderer)
    _, (_, _, descent), (line_x, line_y) = lines[0]
    return (line_x + x, line_y + y), float(descent)


def _deep(character: str, title: Text, renderer: Any, descender: float) -> bool:
    key = (character, title.get_fontproperties().get_size_in_points(), descender)
    if key not in _deep_characters:
        _, _, descent = renderer.get_text_width_height_descent(
            character, title.get_fontproperties(), False
        )
        _deep_characters[key] = descent > descender
    return _deep_characters[key]


def _write_title(template: _Template, slot: _Slot, text: str) -> None:
    """Draws a panel's title with the very pixels of `Text.draw` (its glyphs laid out by the
    same call, rendered by FreeType at the same sub-pixel positions), but each glyph image
    rendered once per process: titles differ from patient to patient while their glyphs
    repeat, and matplotlib measures, lays out and renders every glyph of every title anew,
    which was half of a digest's chart time. Text.draw places a title by its descent, which
    is the font's descender for any text without a character reaching below it; a title with
    such a character is left to Text.draw."""
    title: Any = slot.title
    renderer: Any = template.canvas.get_renderer()
    if _glyph_titles["on"] and not any(
        _deep(ch, title, renderer, template.title_descender) for ch in text
    ):
        try:
            _write_glyphs(template, slot, text)
            return
        except (AttributeError, TypeError, ValueError) as error:
            # Raised by the first private call, before any pixel is drawn.
            _glyph_titles["on"] = False
            logger.warning("digest chart titles fall back to Text.draw: %s", error)
    title.set_text(text)
    slot.axes.draw_artist(title)


class _Glyph(NamedTuple):
    """A glyph of a laid-out title: its font file, its index there and its position (pixels
    from the title's start), as `FT2Font._layout` gives them."""

    font_file: str
    glyph_index: int
    x: float
    y: float


_LayoutKey = tuple[str, float, float, Any]
"""Font file, size, dpi and load flags: what a layout depends on besides the text."""
_glyph_of: dict[tuple[_LayoutKey, str], tuple[str, int] | None] = {}
_pair_steps: dict[tuple[_LayoutKey, str], float | None] = {}
_MAX_LAYOUTS = 50_000


def _laid_out(font: Any, text: str, layout_key: _LayoutKey) -> list[_Glyph] | None:
    """The glyphs of `text` where `font._layout(text)` puts them, from the layouts of its
    characters one by one and of each pair of neighbours, kept per process.

    A title's layout (text shaping) took matplotlib about a millisecond each time, a sixth
    of a digest's chart time, while the characters and pairs of titles repeat. Laid out
    in pairs, each character's glyph is the one it has alone and stands after its left
    neighbour by the pair's step (advance and kerning), exactly the arithmetic of a layout
    that only kerns; a character or pair that shapes otherwise (a ligature, a mark, a
    vertical offset, a glyph from a fallback font) makes this None, and the title is laid
    out whole.
    """
    if len(_glyph_of) + len(_pair_steps) >= _MAX_LAYOUTS:
        _glyph_of.clear()
        _pair_steps.clear()
    glyphs: list[tuple[str, int]] = []
    for character in text:
        if (layout_key, character) not in _glyph_of:
            items = font._layout(character, flags=layout_key[3], features=None, language=None)
            # A character of a fallback font is shaped in a run of its own: laid out whole.
            alone = (
                len(items) == 1
                and items[0].ft_object.fname == layout_key[0]
                and items[0].x == 0
                and items[0].y == 0
            )
            _glyph_of[(layout_key, character)] = (
                (items[0].ft_object.fname, items[0].glyph_index) if alone else None
            )
        known = _glyph_of[(layout_key, character)]
        if known is None:
            return None
        glyphs.append(known)
    placed = [_Glyph(*glyphs[0], 0.0, 0.0)] if glyphs else []
    for (left, right), glyph in zip(itertools.pairwise(text), glyphs[1:], strict=True):
        if (layout_key, left + right) not in _pair_steps:
            items = font._layout(left + right, flags=layout_key[3], features=None, language=None)
            kerned = (
                len(items) == 2
                and [(item.ft_object.fname, item.glyph_index) for item in items]
                == [_glyph_of[(layout_key, left)], _glyph_of[(layout_key, right)]]
                and items[0].x == 0
                and items[0].y == 0
                and items[1].y == 0
            )
            _pair_steps[(layout_key, left + right)] = items[1].x if kerned else None
        step = _pair_steps[(layout_key, left + right)]
        if step is None:
            return None
        placed.append(_Glyph(*glyph, placed[-1].x + step, 0.0))
    return placed


def _write_glyphs(template: _Template, slot: _Slot, text: str) -> None:
    """`_write_title`'s glyph path: the title's glyphs laid out and rendered as `Text.draw`
    would, each glyph image rendered once per process."""
    renderer: Any = template.canvas.get_renderer()
    title: Any = slot.title
    prop = title.get_fontproperties()
    size = prop.get_size_in_points()
    flags = _hinting_flag()
    font = renderer._prepare_font(prop)
    items: list[Any] | None = None
    glyphs = _laid_out(font, text, (font.fname, size, renderer.dpi, flags))
    if glyphs is None:
        items = font._layout(text, flags=flags, features=None, language=None)
        glyphs = [_Glyph(i.ft_object.fname, i.glyph_index, i.x, i.y) for i in items]
    gc = renderer.new_gc()
    gc.set_foreground(to_rgba(title.get_color()), isRGBA=True)
    gc.set_alpha(title.get_alpha())
    gc.set_antialiased(title.get_antialiased())
    mode = RenderMode.NORMAL if gc.get_antialiased() else RenderMode.MONO
    # The same arithmetic as Text.draw and RendererAgg.draw_text, so the same positions.
    x, y = slot.title_at
    y = renderer.get_canvas_width_height()[1] - y
    height = int(renderer.height)
    for number, glyph in enumerate(glyphs):
        dx = round(0x40 * (x + glyph.x))
        dy = round(0x40 * (renderer.height - y + glyph.y))
        key = (
            glyph.font_file,
            size,
            renderer.dpi,
            flags,
            int(mode is RenderMode.NORMAL),
            glyph.glyph_index,
            dx & 0x3F,
            dy & 0x3F,
        )
        image = _glyph_images.get(key)
        if image is None:
            # Rendered by this thread's own font objects (matplotlib keeps them per thread),
            # at the sub-pixel part of the position; the whole pixels shift it.
            if items is None:
                items = font._layout(text, flags=flags, features=None, language=None)
            glyph_font = items[number].ft_object
            glyph_font.set_size(size, renderer.dpi)
            glyph_font._set_transform(_IDENTITY, [dx & 0x3F, dy & 0x3F])
            bitmap = glyph_font._render_glyph(glyph.glyph_index, flags, mode)
            coverage = np.array(bitmap.buffer, dtype=np.uint8)
            if mode is RenderMode.MONO:
                coverage *= 0xFF
            if len(_glyph_images) >= _MAX_GLYPH_IMAGES:
                _glyph_images.clear()
            image = _glyph_images[key] = (coverage, bitmap.left, bitmap.top)
        coverage, left, top = image
        renderer._renderer.draw_text_image(
            coverage, left + (dx >> 6), height - (top + (dy >> 6)) + coverage.shape[0], 0, gc
        )
    gc.restore()


def _marker_line(
    figure: Figure, colour: str, marker: str, style: Literal["-", "--"], width: float
) -> Line2D:
    """A line of the figure drawn in pixels (the panels' points are placed by their axes)."""
    line = Line2D(
        [],
        [],
        color=colour,
        marker=marker,
        markersize=4 if marker == "o" else 3,
        linewidth=width,
        linestyle=style,
        transform=IdentityTransform(),
        animated=True,
    )
    figure.add_artist(line)
    return line


def _build_template(rows: int, weeks: int, dates: tuple[str, ...]) -> _Template:
    width = PANEL_WIDTH_IN * COLUMNS
    height = PANEL_HEIGHT_IN * rows + LEGEND_IN
    figure = Figure(figsize=(width, height), dpi=DPI)
    canvas: Any = FigureCanvasAgg(figure)
    # Fixed margins in inches: the panels are all alike, so no layout engine is needed.
    figure.subplots_adjust(
        left=0.45 / width,
        right=1 - 0.45 / width,
        bottom=0.35 / height,
        top=1 - (0.3 + LEGEND_IN) / height,
        wspace=0.9 / PANEL_WIDTH_IN,
        hspace=0.75 / (PANEL_HEIGHT_IN),
    )
    step = date_step_days(weeks)
    date_ticks = [index * step for index in range(len(dates))]
    span = weeks * 7
    scale = ASDAS_TOP / BASDAI_TOP
    slots = []
    for position in range(1, rows * COLUMNS + 1):
        axes = figure.add_subplot(rows, COLUMNS, position)
        for low, high, colour in BANDS:
            axes.axhspan(
                low, ASDAS_TOP if high is None else high, color=colour, linewidth=0, zorder=0
            )
        axes.set_xlim(0, span)
        axes.set_ylim(0, ASDAS_TOP)
        axes.yaxis.set_major_locator(FixedLocator(list(range(ASDAS_TOP + 1))))
        axes.xaxis.set_major_locator(FixedLocator(date_ticks))
        axes.xaxis.set_major_formatter(FixedFormatter(list(dates)))
        axes.tick_params(labelsize=8)
        axes.tick_params(axis="y", colors=ASDAS_COLOUR)
        # BASDAI (0-10) is drawn on the same axes, scaled to the ASDAS range, with its own
        # labels on the right.
        for value in range(0, BASDAI_TOP + 1, 2):
            axes.text(
                1.02,
                value / BASDAI_TOP,
                str(value),
                transform=axes.transAxes,
                fontsize=8,
                color=BASDAI_COLOUR,
                va="center",
            )
        axes.axhline(
            float(scoring.BASDAI_ACTIVE_THRESHOLD) * scale,
            color=BASDAI_COLOUR,
            linestyle=":",
            linewidth=1,
            alpha=0.7,
        )
        slots.append(
            _Slot(
                axes=axes,
                title=axes.text(
                    0,
                    1.03,
                    "",
                    transform=axes.transAxes,
                    fontsize=10,
                    fontweight="bold",
                    va="bottom",
                    animated=True,
                ),
            )
        )
    figure.legend(
        handles=[
            Line2D([], [], color=ASDAS_COLOUR, marker="o", markersize=4, linewidth=2),
            Line2D(
                [],
                [],
                color=BASDAI_COLOUR,
                marker="s",
                markersize=3,
                linewidth=1.5,
                linestyle="--",
            ),
        ],
        labels=["ASDAS-CRP", "BASDAI"],
        loc="upper center",
        ncol=2,
        fontsize=8,
        frameon=False,
    )
    # Covers the last panel when an image has an odd number of patients.
    last = slots[-1].axes.get_position()
    blank = Rectangle(
        (0.5, 0),
        0.5,
        last.y1 + 0.35 / height,
        transform=figure.transFigure,
        facecolor="white",
        edgecolor="none",
        animated=True,
    )
    figure.add_artist(blank)
    canvas.draw()
    renderer = canvas.get_renderer()
    descender = 0.0
    if _glyph_titles["on"]:
        try:
            for slot in slots:
                slot.title_at, descender = _title_place(slot.title, renderer)
        except (AttributeError, TypeError, ValueError) as error:
            _glyph_titles["on"] = False
            logger.warning("digest chart titles fall back to Text.draw: %s", error)
    return _Template(
        figure,
        canvas,
        canvas.copy_from_bbox(figure.bbox),
        slots,
        blank,
        asdas=_marker_line(figure, ASDAS_COLOUR, "o", "-", 2.0),
        basdai=_marker_line(figure, BASDAI_COLOUR, "s", "--", 1.5),
        title_descender=descender,
    )


def _template(rows: int, weeks: int, dates: tuple[str, ...]) -> _Template:
    key = (rows, weeks, dates)
    if key not in _templates:
        if len(_templates) >= _MAX_TEMPLATES:
            # Another week (or time zone): the oldest templates are no longer needed.
            for old in list(_templates)[: _MAX_TEMPLATES // 2]:
                del _templates[old]
        _templates[key] = _build_template(rows, weeks, dates)
    return _templates[key]


def panel_image(panels: Sequence[ChartPanel], *, end: datetime, weeks: int) -> bytes:
    """One PNG image of up to `PANELS_PER_IMAGE` panels, two abreast.

    The x axis covers the `weeks` weeks before `end`, the same for every panel so patients
    can be compared at a glance; dates are labelled in the time zone of `end`.
    """
    if not 0 < len(panels) <= PANELS_PER_IMAGE:
        raise ValueError(f"an image holds 1 to {PANELS_PER_IMAGE} panels")
    start = end - timedelta(weeks=weeks)
    dates = tuple(
        f"{start + timedelta(days=day):%m-%d}"
        for day in range(0, weeks * 7 + 1, date_step_days(weeks))
    )

    def days(at: datetime) -> float:
        return (at - start) / timedelta(days=1)

    with _lock:
        template = _template(math.ceil(len(panels) / COLUMNS), weeks, dates)
        template.canvas.restore_region(template.background)
        scale = ASDAS_TOP / BASDAI_TOP
        asdas: list[np.ndarray[Any, Any]] = []
        basdai: list[np.ndarray[Any, Any]] = []
        for slot, panel in zip(template.slots, panels, strict=False):
            # Points outside the panel's weeks are left out, as its axes would clip them.
            shown = [(x, p) for p in panel.points if 0 <= (x := days(p.at)) <= weeks * 7]
            for pixels, points in (
                (
                    asdas,
                    [(x, min(float(p.asdas), ASDAS_TOP)) for x, p in shown if p.asdas is not None],
                ),
                (basdai, [(x, float(p.basdai) * scale) for x, p in shown if p.basdai is not None]),
            ):
                if points:
                    pixels += (slot.axes.transData.transform(points), _GAP)
            _write_title(template, slot, _title(panel))
        # A line without points draws nothing (most patients have an ASDAS only in the
        # weeks a CRP was drawn), so only lines with points are drawn.
        for line, pixels in ((template.basdai, basdai), (template.asdas, asdas)):
            if pixels:
                joined = np.concatenate(pixels)
                line.set_data(joined[:, 0], joined[:, 1])
                template.figure.draw_artist(line)
        if len(panels) % COLUMNS:
            template.figure.draw_artist(template.blank)
        png = _png(np.asarray(template.canvas.buffer_rgba()))
    return png


def date_step_days(weeks: int) -> int:
    """Days between date labels: whole weeks, so that `weeks` weeks carry at most
    `MAX_DATE_LABELS` labels (three weeks on the usual twelve)."""
    return 7 * max(1, math.ceil(weeks / (MAX_DATE_LABELS - 1)))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(rgba: np.ndarray[Any, Any]) -> bytes:
    """An RGBA PNG of the canvas's pixels, as they are.

    Written here rather than through matplotlib's `imsave` and Pillow, which copy the pixels
    twice and filter every row before compressing. The pixels go in unfiltered and with their
    (opaque) alpha, so each row is one straight copy behind its filter byte, and ISA-L's
    deflate packs them several times faster than zlib at the same size (docs/benchmarks.md,
    "Digest").
    """
    height, width = rgba.shape[:2]
    rows = np.empty((height, width * 4 + 1), dtype=np.uint8)
    rows[:, 0] = 0  # filter type "None" on every row
    rows[:, 1:] = rgba.reshape(height, width * 4)
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _png_chunk(b"IHDR", header),
            _png_chunk(b"IDAT", isal_zlib.compress(rows.data, PNG_DEFLATE_LEVEL)),
            _png_chunk(b"IEND", b""),
        )
    )


def batches(
    panels: Sequence[ChartPanel], per_image: int = PANELS_PER_IMAGE
) -> list[list[ChartPanel]]:
    """The panels grouped as they go on images, in order."""
    return [list(panels[i : i + per_image]) for i in range(0, len(panels), per_image)]
