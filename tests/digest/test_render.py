"""Rendering a digest: both languages, Telegram's limits, the HTML document and the charts."""

from __future__ import annotations

import dataclasses
import io
import itertools
import math
import random
import re
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
from matplotlib.image import imread
from PIL import Image

from bot.config import SUPPORTED_LANGUAGES
from bot.present.digest import charts
from bot.present.digest import text as text_module
from bot.present.digest.charts import PANELS_PER_IMAGE
from bot.present.digest.text import (
    MAX_MESSAGES,
    html_to_text,
    render_digest,
    signed,
    split_message,
)
from bot.present.render import TELEGRAM_TEXT_LIMIT, default_renderer
from bot.services.physician_panel import ChartPoint
from tests.digest import samples
from tests.fake_telegram import format_text, image_size


def telegram_accepts(text: str) -> None:
    """Parses `text` as Telegram's HTML parse mode does; raises on invalid markup."""
    plain, _ = format_text(text, "HTML", None)
    assert 0 < len(plain) <= TELEGRAM_TEXT_LIMIT


class TestSplitMessage:
    def test_short_text_is_one_message(self) -> None:
        """A text within the limit is sent as it is."""
        assert split_message("a\nb\n\nc") == ["a\nb\n\nc"]

    def test_splits_only_between_lines(self) -> None:
        """Every message ends at a line end and the lines come out unchanged, in order."""
        lines = [f"line {i:03d} " + "x" * (i % 40) for i in range(400)]
        parts = split_message("\n".join(lines), limit=500)
        assert all(len(part) <= 500 for part in parts)
        assert [ln for part in parts for ln in part.split("\n")] == lines

    def test_keeps_a_paragraph_together_when_it_fits(self) -> None:
        """A heading is not left alone at the end of a message."""
        first = "\n".join(["x" * 50] * 5)
        second = "HEADING\n" + "\n".join(["y" * 50] * 3)
        parts = split_message(first + "\n\n" + second, limit=320)
        assert parts == [first, second]

    def test_exactly_at_the_limit(self) -> None:
        """A text of exactly the limit fits in one message; one character more does not."""
        text = "a" * 10 + "\n" + "b" * 9
        assert split_message(text, limit=20) == [text]
        assert split_message(text + "b", limit=20) == ["a" * 10, "b" * 10]

    def test_a_line_longer_than_the_limit_is_refused(self) -> None:
        """A single line that cannot fit is a template error, never cut mid-line."""
        with pytest.raises(ValueError, match="longer than"):
            split_message("a" * 21, limit=20)


class TestSigned:
    @pytest.mark.parametrize(
        ("value", "shown"),
        [("1.25", "+1.3"), ("-0.45", "\u22120.5"), ("0.04", "\u00b10.0"), ("-0.04", "\u00b10.0")],
    )
    def test_changes_show_their_sign(self, value: str, shown: str) -> None:
        """Changes are rounded half away from zero and carry a plus, a true minus or ±."""
        from decimal import Decimal

        assert signed(Decimal(value)) == shown


class TestRenderDigest:
    @pytest.mark.parametrize("language", SUPPORTED_LANGUAGES)
    def test_every_part_renders_in_both_languages(self, language: str) -> None:
        """Text, summary-free messages, HTML and subject render and are valid Telegram HTML."""
        rendered = render_digest(samples.mixed_panel(12, language=language), default_renderer())
        assert rendered.document is None
        for message in rendered.messages:
            telegram_accepts(message)
        assert "2026-W14" in rendered.subject
        assert rendered.email_html.startswith("<!DOCTYPE html>")
        assert "MRN-00005" in rendered.email_html
        assert "<b>" not in rendered.email_text
        assert "&lt;" not in rendered.email_text

    def test_english_wording(self) -> None:
        """The reasons name the state and the numbers, in the physician's language."""
        lines = [
            samples.line(1, basdai=["3.0", "5.5"], asdas=["2.0", "3.8"]),
            samples.line(2, unreachable=True, missed=3),
            samples.line(3, crp=False),
        ]
        text = "\n".join(render_digest(samples.digest(lines), default_renderer()).messages)
        assert "very high disease activity (ASDAS-CRP 3.8, lab 31 Mar 2026)" in text
        assert "clinically important worsening (ASDAS-CRP 2.0 → 3.8, +1.8, lab 31 Mar 2026)" in text
        assert "BASDAI up +2.5 (3.0 → 5.5)" in text
        assert "3 questionnaires missed in a row" in text
        assert "no CRP in the last 12 weeks, so no ASDAS" in text
        assert "Weekly digest · 2026-W14" in text
        assert "(30 Mar – 5 Apr 2026)" in text

    def test_chinese_wording(self) -> None:
        """The same digest in Simplified Chinese uses the Chinese terms throughout."""
        lines = [samples.line(1, basdai=["3.0", "5.5"], asdas=["2.0", "3.8"])]
        text = "\n".join(
            render_digest(samples.digest(lines, language="zh"), default_renderer()).messages
        )
        assert "极高疾病活动（ASDAS-CRP 3.8，化验于2026年3月31日）" in text
        assert "每周摘要 · 2026-W14" in text
        assert "very high" not in text

    def test_german_wording(self) -> None:
        """A German-speaking physician reads the digest in German: reasons, states from the
        German state table, the period with German (CLDR) month names, decimal commas, and the
        legend."""
        lines = [
            samples.line(1, basdai=["3.0", "5.5"], asdas=["2.0", "3.8"]),
            samples.line(2, unreachable=True, missed=3),
            samples.line(3, crp=False),
        ]
        rendered = render_digest(samples.digest(lines, language="de"), default_renderer())
        text = "\n".join(rendered.messages)
        assert "Wochenbericht · 2026-W14" in text
        assert "(30. März – 5. Apr. 2026)" in text
        assert "sehr hohe Krankheitsaktivität (ASDAS-CRP 3,8, Labor 31. März 2026)" in text
        assert (
            "klinisch relevante Verschlechterung (ASDAS-CRP 2,0 → 3,8, +1,8, Labor 31. März 2026)"
            in text
        )
        assert "BASDAI gestiegen um +2,5 (3,0 → 5,5)" in text
        assert "3 Fragebögen in Folge versäumt" in text
        assert "kein CRP in den letzten 12 Wochen, daher kein ASDAS" in text
        assert "ASDAS-Zustände: &lt;1,3 inaktive Erkrankung" in text
        assert '<html lang="de">' in rendered.document_html
        assert "Letzte 4 Wochen" in rendered.document_html
        for english in ("very high", "Weekly digest", "missed", "Needs attention"):
            assert english not in text, english

    @pytest.mark.parametrize(
        ("language", "shown"),
        [("en", "completion rate 67 %"), ("de", "Rücklaufquote 67 %"), ("zh", "完成率 67%")],
    )
    def test_completion_rate_is_a_whole_percent(self, language: str, shown: str) -> None:
        """The service's exact share (2 of 3) reads as a whole percent, rounded half up."""
        lines = [samples.line(1, basdai=["3.0", "5.5"], asdas=["2.0", "3.8"])]
        digest = dataclasses.replace(
            samples.digest(lines, language=language), completion_rate=Fraction(2, 3)
        )
        assert shown in "\n".join(render_digest(digest, default_renderer()).messages)

    def test_patient_text_is_escaped(self) -> None:
        """An identifier with markup characters is shown literally, not as HTML."""
        lines = [samples.line(1, identifier="<b>Ann & Bo</b>")]
        rendered = render_digest(samples.digest(lines), default_renderer())
        assert "&lt;b&gt;Ann &amp; Bo&lt;/b&gt;" in rendered.messages[0]
        assert "<b>Ann & Bo</b>" in rendered.email_text
        telegram_accepts(rendered.messages[0])

    def test_a_long_digest_is_split_at_patient_lines(self) -> None:
        """Forty patients take more than one message; every patient line arrives whole, once."""
        value = samples.mixed_panel(40)
        rendered = render_digest(value, default_renderer())
        assert 1 < len(rendered.messages) <= MAX_MESSAGES
        assert rendered.document is None
        for message in rendered.messages:
            telegram_accepts(message)
        every = "\n".join(rendered.messages)
        for patient in value.patients:
            lines = [
                ln for ln in every.split("\n") if ln.startswith(f"<code>{patient.identifier}<")
            ]
            assert len(lines) == 1, patient.identifier
            assert "ASDAS-CRP" in lines[0]

    def test_a_very_long_digest_becomes_a_summary_and_a_document(self) -> None:
        """Beyond four messages: one short summary message plus the full digest as HTML."""
        value = samples.mixed_panel(400)
        rendered = render_digest(value, default_renderer(), charts=False)
        assert len(rendered.messages) == 1
        telegram_accepts(rendered.messages[0])
        assert "more in the attached document" in rendered.messages[0]
        assert "every patient (400)" in rendered.messages[0]
        assert rendered.document is not None
        document = rendered.document.decode()
        assert all(f"<b>{line.identifier}</b>" in document for line in value.patients)
        assert rendered.document_name == "digest-2026-W14.html"

    @pytest.mark.parametrize("language", SUPPORTED_LANGUAGES)
    def test_the_summary_lists_as_many_attention_lines_as_fit(self, language: str) -> None:
        """The summary is one message holding the first attention lines, as many as fit, and
        says how many more the document has; it never claims that no one needs attention."""
        value = samples.mixed_panel(400, language=language)
        renderer = default_renderer()
        summary = render_digest(value, renderer, charts=False).messages[0]
        telegram_accepts(summary)
        numbers = [int(n) for n in re.findall(r"^(\d+)\. <b>", summary, re.MULTILINE)]
        shown = len(numbers)
        assert numbers == list(range(1, shown + 1))
        assert 0 < shown < len(value.attention)
        assert str(len(value.attention) - shown) in summary.splitlines()[-3]
        nobody = renderer.render_file(
            f"digests/{language}/summary.txt.j2",
            shown=0,
            **text_module._variables(
                samples.digest([samples.line(1)], language=language), renderer
            ),
        )
        assert nobody.strip().splitlines()[5] not in summary
        one_more = renderer.render_file(
            f"digests/{language}/summary.txt.j2",
            shown=shown + 1,
            **text_module._variables(value, renderer),
        )
        assert len(one_more.strip()) > TELEGRAM_TEXT_LIMIT

    def test_no_one_needs_attention(self) -> None:
        """A quiet week says so instead of listing nobody, and draws no chart."""
        rendered = render_digest(samples.digest([samples.line(1)]), default_renderer())
        assert "No one needs attention this week." in rendered.messages[0]
        assert rendered.charts == ()


class TestCharts:
    def test_one_panel_per_attention_patient(self) -> None:
        """Attention patients with scores get a panel each, eight to an image, in order."""
        value = samples.mixed_panel(60)
        with_history = [line for line in value.attention if line.history]
        rendered = render_digest(value, default_renderer())
        assert len(rendered.charts) == math.ceil(len(with_history) / PANELS_PER_IMAGE)
        first = rendered.charts[0]
        assert (first.first, first.last) == (1, PANELS_PER_IMAGE)
        size = image_size(first.png)
        assert size is not None
        width, height = size
        assert 600 <= width <= 1280
        assert height > width
        assert re.search(r"1–8 of \d+", first.caption)

    @pytest.mark.parametrize("language", SUPPORTED_LANGUAGES)
    def test_caption_in_the_physician_language(self, language: str) -> None:
        """The caption explaining lines and bands is in the physician's language."""
        lines = [samples.line(1, basdai=["3.0", "5.5"], asdas=["2.0", "3.8"])]
        rendered = render_digest(samples.digest(lines, language=language), default_renderer())
        assert len(rendered.charts) == 1
        caption = rendered.charts[0].caption
        assert ("very high" in caption) is (language == "en")
        assert ("极高" in caption) is (language == "zh")
        assert ("sehr hohe" in caption) is (language == "de")

    def test_images_do_not_carry_over_earlier_patients(self) -> None:
        """Drawing other patients in between leaves no trace: the same panels give the same
        image, and an odd panel count leaves the last place empty."""
        from datetime import timedelta
        from decimal import Decimal

        from bot.present.digest.charts import ChartPanel, panel_image

        def panel(number: int, asdas: str) -> ChartPanel:
            points = [
                ChartPoint(samples.END - timedelta(weeks=w, days=3), Decimal(w % 7), Decimal(asdas))
                for w in range(12)
            ]
            return ChartPanel(number=number, title=f"MRN-{number}", points=points)

        eight = [panel(n, "2.5") for n in range(1, 9)]
        three = [panel(n, "7.5") for n in range(1, 4)]  # above the 0–6 scale: drawn at the top
        first = panel_image(eight, end=samples.END, weeks=12)
        odd = panel_image(three, end=samples.END, weeks=12)
        assert panel_image(eight, end=samples.END, weeks=12) == first
        pixels = imread(io.BytesIO(odd), format="png")
        height, width = pixels.shape[:2]
        empty_place = pixels[int(height * 0.62) :, int(width * 0.55) :, :3]
        assert empty_place.min() == 1.0  # white: nothing of the earlier eight shows through
        left_place = pixels[int(height * 0.62) :, : int(width * 0.45), :3]
        assert left_place.min() < 1.0
        four = imread(io.BytesIO(panel_image([*three, panel(4, "2.5")], end=samples.END, weeks=12)))
        assert four[int(height * 0.62) :, int(width * 0.55) :, :3].min() < 1.0

    def test_names_the_font_cannot_draw_fall_back_to_the_reference(self) -> None:
        """A name in a script the chart font lacks is replaced by the clinic reference."""
        from bot.present.digest.charts import ChartPanel, _title, drawable

        assert drawable("MRN-00001")
        panel = ChartPanel(number=3, title="李伟", points=[], fallback_title="MRN-00001")
        assert _title(panel) == ("3. 李伟" if drawable("李伟") else "3. MRN-00001")

    def test_email_text_is_plain(self) -> None:
        """The e-mail's text part is the digest without any markup."""
        assert html_to_text("<b>A &amp; B</b> &lt;1.3") == "A & B <1.3"


class TestChartImages:
    @staticmethod
    def _panels(count: int, weeks: int) -> list[charts.ChartPanel]:
        points = [
            ChartPoint(samples.END - timedelta(weeks=w, days=3), Decimal(w % 7), Decimal("2.5"))
            for w in range(weeks)
        ]
        return [charts.ChartPanel(number=n, title=f"MRN-{n}", points=points) for n in range(count)]

    @pytest.mark.parametrize("weeks", [1, 4, 12, 13, 26, 52, 104])
    def test_date_labels_never_overlap(self, weeks: int) -> None:
        """Under every panel, and from one panel to the next, the date labels stand apart,
        at most five of them, whatever the number of weeks shown."""
        charts.panel_image(self._panels(2, weeks), end=samples.END, weeks=weeks)
        template = next(
            t for (rows, w, _), t in charts._templates.items() if (rows, w) == (1, weeks)
        )
        renderer = template.canvas.get_renderer()
        boxes = []
        for slot in template.slots:
            labels = [label for label in slot.axes.get_xticklabels() if label.get_text()]
            assert 2 <= len(labels) <= charts.MAX_DATE_LABELS
            boxes += [label.get_window_extent(renderer) for label in labels]
        boxes.sort(key=lambda box: box.x0)
        for left, right in itertools.pairwise(boxes):
            assert left.x1 + 4 < right.x0  # a few pixels of white between labels

    def test_png_holds_exactly_the_drawn_pixels(self) -> None:
        """The PNG written for an image decodes to the very pixels matplotlib drew."""
        png = charts.panel_image(self._panels(3, 12), end=samples.END, weeks=12)
        template = next(t for (rows, w, _), t in charts._templates.items() if (rows, w) == (2, 12))
        drawn = np.asarray(template.canvas.buffer_rgba())[:, :, :3]
        decoded = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        assert decoded.shape == drawn.shape
        assert (decoded == drawn).all()

    def test_titles_laid_out_in_pairs_are_laid_out_as_matplotlib_does(self) -> None:
        """Titles laid out from their characters and pairs of neighbours put every glyph
        where matplotlib's own layout of the whole title does; a title that shapes otherwise
        (a ligature) is left to that layout."""
        charts.panel_image(self._panels(1, 12), end=samples.END, weeks=12)
        template = next(t for (rows, w, _), t in charts._templates.items() if (rows, w) == (1, 12))
        renderer = template.canvas.get_renderer()
        prop = template.slots[0].title.get_fontproperties()
        font = renderer._prepare_font(prop)
        flags = charts._hinting_flag()
        key = (font.fname, prop.get_size_in_points(), renderer.dpi, flags)
        drawable = [chr(c) for c in range(0x20, 0x250) if charts.drawable(chr(c))]
        rng = random.Random(22)
        compared = 0
        for _ in range(2000):
            text = "".join(rng.choice(drawable) for _ in range(rng.randint(1, 30)))
            paired = charts._laid_out(font, text, key)
            whole = font._layout(text, flags=flags, features=None, language=None)
            if paired is not None:
                compared += 1
                assert [tuple(glyph) for glyph in paired] == [
                    (item.ft_object.fname, item.glyph_index, item.x, item.y) for item in whole
                ], text
        assert compared > 1000
        assert charts._laid_out(font, "Wafi", key) is None  # "fi" is one glyph

    def test_titles_are_the_same_without_glyph_images(self) -> None:
        """With the glyph images off (as after a matplotlib release that changed the private
        calls they need), every title goes through matplotlib's own text drawing, and the
        image is the same."""
        panels = [
            charts.ChartPanel(number=n, title=f"Åse Ølberg-{n}", points=[]) for n in range(1, 6)
        ]
        with_glyphs = charts.panel_image(panels, end=samples.END, weeks=12)
        charts.use_glyph_titles(False)
        try:
            without = charts.panel_image(panels, end=samples.END, weeks=12)
        finally:
            charts.use_glyph_titles(True)
        assert without == with_glyphs
        titled = [charts.ChartPanel(number=n, title="", points=[]) for n in range(1, 6)]
        assert charts.panel_image(titled, end=samples.END, weeks=12) != with_glyphs

    @pytest.mark.parametrize(
        "title",
        ["MRN-00123", "Jürgen Gjøl (p)", "Åse Ølberg-Çelik", "pseudo_1|2", "x", "Wafi Tøffi AV"],
    )
    def test_titles_are_the_pixels_matplotlib_draws(self, title: str) -> None:
        """Panel titles, written from glyph images rendered once, are the very pixels of
        matplotlib's own text drawing: letters above and below the line, accents, both
        columns, and characters reaching below the font's descender; the first time a glyph
        is drawn and again from the kept images."""
        panels = [charts.ChartPanel(number=n, title=f"{title}{n}", points=[]) for n in range(1, 4)]
        for _ in range(2):
            charts.panel_image(panels, end=samples.END, weeks=12)
            template = next(
                t for (rows, w, _), t in charts._templates.items() if (rows, w) == (2, 12)
            )
            written = np.asarray(template.canvas.buffer_rgba()).copy()
            template.canvas.restore_region(template.background)
            empty = np.asarray(template.canvas.buffer_rgba()).copy()
            for slot, panel in zip(template.slots, panels, strict=False):
                slot.title.set_text(charts._title(panel))
                slot.axes.draw_artist(slot.title)
                slot.title.set_text("")
            template.figure.draw_artist(template.blank)
            drawn = np.asarray(template.canvas.buffer_rgba())
            assert (written != drawn).any(axis=2).sum() == 0
            assert (written != empty).any()  # the titles are there at all
