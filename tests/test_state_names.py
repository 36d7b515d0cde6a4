"""ASDAS state names: one table per language, used by every text that names a state (spec §3)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from bot.domain.scoring import AsdasState
from bot.export.columns import dictionary_rows
from bot.present.digest.text import render_digest
from bot.present.history import chart_labels
from bot.present.render import TEMPLATES_DIR, default_renderer
from tests.digest import samples

LANGUAGES = ("en", "zh", "de")

SPEC_NAMES: dict[str, dict[AsdasState, str]] = {
    "en": {
        AsdasState.INACTIVE: "inactive disease",
        AsdasState.LOW: "low disease activity",
        AsdasState.HIGH: "high disease activity",
        AsdasState.VERY_HIGH: "very high disease activity",
    },
    "zh": {
        AsdasState.INACTIVE: "疾病非活动",
        AsdasState.LOW: "低疾病活动",
        AsdasState.HIGH: "高疾病活动",
        AsdasState.VERY_HIGH: "极高疾病活动",
    },
    "de": {
        AsdasState.INACTIVE: "inaktive Erkrankung",
        AsdasState.LOW: "niedrige Krankheitsaktivität",
        AsdasState.HIGH: "hohe Krankheitsaktivität",
        AsdasState.VERY_HIGH: "sehr hohe Krankheitsaktivität",
    },
}
"""Clinical spec §3: the 2018 ASAS names, their Chinese forms, and the German clinical terms."""

NOT_STATE_NAMES = (
    *("缓解", "remission", "疾病不活动", "低疾病活动度", "高疾病活动度", "moderate"),
    *("Remission", "mäßige Krankheitsaktivität", "moderate Krankheitsaktivität"),
)
"""Names a rheumatologist would correct: remission is not an ASDAS state, nor are older forms."""

STOP_REASON_WORDING = (
    "remission_or_taper",
    "remission or taper",
    "缓解或减量",
    "Remission oder Ausschleichen",
)
"""The therapy stop reason of clinical spec §7, whose words are no ASDAS state name."""

# One patient in each state: ASDAS 1.0, 1.5, 2.5 and 4.0.
ONE_PER_STATE = ["1.0", "1.5", "2.5", "4.0"]


def _digest_texts(language: str) -> list[str]:
    lines = [
        samples.line(index, basdai=["2.0", "2.0"], asdas=["1.0", value])
        for index, value in enumerate(ONE_PER_STATE, start=1)
    ]
    rendered = render_digest(samples.digest(lines, language=language), default_renderer())
    return ["\n".join(rendered.messages), rendered.document_html, rendered.email_text]


class TestStateTable:
    @pytest.mark.parametrize("language", LANGUAGES)
    def test_table_holds_the_names_of_the_spec(self, language: str) -> None:
        """The state table of each language has exactly the §3 names."""
        renderer = default_renderer()
        for state, name in SPEC_NAMES[language].items():
            assert renderer.asdas_state_name(state, language) == name

    def test_no_template_names_a_state_outside_the_table(self) -> None:
        """No template file spells a state in a form the spec rules out (e.g. 缓解)."""
        for path in TEMPLATES_DIR.rglob("*"):
            if path.suffix not in (".toml", ".j2", ".po", ".pot") or path.name == "states.toml":
                continue
            text = path.read_text(encoding="utf-8")
            for stop_reason in STOP_REASON_WORDING:
                text = text.replace(stop_reason, "")
            for wrong in NOT_STATE_NAMES:
                assert wrong not in text, f"{wrong!r} in {path.relative_to(TEMPLATES_DIR)}"


class TestEveryTextNamingAState:
    @pytest.mark.parametrize("language", LANGUAGES)
    def test_digest_text_html_and_email_name_each_state_from_the_table(self, language: str) -> None:
        """A digest with a patient in each state names all four from the table, in each form."""
        for text in _digest_texts(language):
            for name in SPEC_NAMES[language].values():
                assert name in text
            for wrong in NOT_STATE_NAMES:
                assert wrong not in text

    @pytest.mark.parametrize("language", LANGUAGES)
    def test_digest_chart_caption_names_the_bands_from_the_table(self, language: str) -> None:
        """The caption under the digest charts explains the colours with the table's names."""
        caption = default_renderer().text(
            "digest.chart_caption", language, first=1, last=2, total=2, weeks=12
        )
        for name in SPEC_NAMES[language].values():
            assert name in caption

    @pytest.mark.parametrize("language", LANGUAGES)
    def test_chart_bands_are_labelled_from_the_table(self, language: str) -> None:
        """The patient's and physician's trend charts label their bands with the table's names
        (in English where the server has no font for the language)."""
        labels = chart_labels(default_renderer(), language, 12)
        drawn = language if labels.inactive == SPEC_NAMES[language][AsdasState.INACTIVE] else "en"
        names = SPEC_NAMES[drawn]
        assert [labels.inactive, labels.low, labels.high, labels.very_high] == list(names.values())

    def test_german_chart_labels_need_no_extra_font(self) -> None:
        """German is drawn in German on any server: matplotlib's own fonts have its letters."""
        labels = chart_labels(default_renderer(), "de", 12)
        assert labels.very_high == "sehr hohe Krankheitsaktivität"
        assert labels.date_pattern == "dd.MM."

    @pytest.mark.parametrize("language", LANGUAGES)
    def test_physician_flags_name_states_from_the_table(self, language: str) -> None:
        """/patients flags "ASDAS high" and "ASDAS very high" with the table's names."""
        renderer = default_renderer()
        high = renderer.text("physician.flag.asdas_high", language, kind="CRP")
        very_high = renderer.text("physician.flag.asdas_very_high", language, kind="CRP")
        assert SPEC_NAMES[language][AsdasState.HIGH] in high
        assert SPEC_NAMES[language][AsdasState.VERY_HIGH] in very_high

    def test_export_dictionary_lists_the_english_names(self) -> None:
        """The export's data dictionary (English) allows exactly the §3 names as states."""
        rows = [row for row in dictionary_rows() if row["name"].endswith("_state")]
        assert rows
        for row in rows:
            for name in SPEC_NAMES["en"].values():
                assert name in row["allowed_values"]
            assert "remission" not in row["allowed_values"]


def test_state_names_of_a_digest_are_not_numbers() -> None:
    """Sanity: the sample ASDAS values really fall into four different states."""
    from bot.domain.scoring import asdas_category

    assert {asdas_category(Decimal(v)) for v in ONE_PER_STATE} == set(AsdasState)
    assert Path(TEMPLATES_DIR).is_dir()
