"""Dates, numbers and weekday names follow the reader's language through CLDR."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path

from bot.present.formats import clock_text, day_text, number_text, weekday_name
from bot.present.render import Renderer


class TestNumbers:
    def test_german_writes_a_decimal_comma(self) -> None:
        """The published case's CRP reads 7,59 in German and 7.59 in English and Chinese."""
        assert number_text("7.59", "de") == "7,59"
        assert number_text("7.59", "en") == "7.59"
        assert number_text("7.59", "zh") == "7.59"

    def test_the_displayed_decimals_are_kept(self) -> None:
        """Clinical rounding has already chosen the decimals: 4.0 keeps its one decimal."""
        assert number_text(Decimal("4.0"), "de") == "4,0"
        assert number_text("12", "de") == "12"

    def test_text_that_is_not_a_number_is_left_alone(self) -> None:
        """A detection-limit value keeps its sign; a dash stays a dash."""
        assert number_text("<0.5", "de") == "<0,5"
        assert number_text("–", "de") == "–"


class TestDates:
    def test_month_names_come_from_cldr_in_the_reader_language(self) -> None:
        """The same pattern gives English and German month names, whatever the server locale."""
        day = date(2026, 3, 2)
        assert day_text(day, "dd MMM y", "en") == "02 Mar 2026"
        assert day_text(day, "d. MMMM y", "de") == "2. März 2026"
        assert day_text(datetime(2026, 3, 2, 9, 0), "y-MM-dd", "zh") == "2026-03-02"

    def test_weekday_names_come_from_cldr(self) -> None:
        """Monday is Monday, Montag and 星期一."""
        assert [weekday_name(0, language) for language in ("en", "de", "zh")] == [
            "Monday",
            "Montag",
            "星期一",
        ]

    def test_an_unknown_language_formats_as_english(self) -> None:
        """A made-up language code still gets dates and numbers (English conventions)."""
        assert weekday_name(6, "xx") == "Sunday"
        assert clock_text(time(18, 0), "xx") == "18:00"


class TestMessagesUseTheReaderNotation:
    def test_a_decimal_variable_is_written_in_the_language_notation(self, tmp_path: Path) -> None:
        """A score handed to a message as "3.9" reads 3,9 to a German reader."""
        (tmp_path / "messages").mkdir()
        (tmp_path / "messages" / "t.toml").write_text(
            'score = "{% trans value %}ASDAS {{ value }}{% endtrans %}"\n', encoding="utf-8"
        )
        catalog = tmp_path / "locale" / "de" / "LC_MESSAGES"
        catalog.mkdir(parents=True)
        (catalog / "messages.po").write_text(
            'msgid ""\nmsgstr ""\n"Language: de\\n"\n'
            '"Content-Type: text/plain; charset=utf-8\\n"\n\n'
            'msgctxt "t.score"\nmsgid "ASDAS %(value)s"\nmsgstr "ASDAS-Wert %(value)s"\n',
            encoding="utf-8",
        )
        renderer = Renderer(tmp_path)
        assert renderer.languages == ("en", "de")
        assert renderer.text("t.score", "de", value="3.9") == "ASDAS-Wert 3,9"
        assert renderer.text("t.score", "en", value="3.9") == "ASDAS 3.9"
        assert renderer.text("t.score", "de", value="MRN-0042") == "ASDAS-Wert MRN-0042"
