"""`spondybot demo`: the whole conversation in a terminal, driven by typed lines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def elsewhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The demo never needs the operator's database or token."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/never-used")
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)


class TestDemo:
    def test_typed_walk_through(self, tmp_path: Path) -> None:
        """Typed choices and answers lead through consent to BASDAI, ASDAS-CRP and the chart."""
        chart = tmp_path / "chart.png"
        lines = [
            "1",  # English
            "1",  # I agree
            "1",  # the clinic's time zone
            "1",  # Monday
            "5",  # 18:00
            "1",  # answer now
            "nonsense",  # a hint, the question stays
            "4",
            "5",
            "0",
            "3",
            "4",
            "1 h",
            "5",
            "1",  # Confirm
        ]
        result = runner.invoke(app, ["demo", "--chart", str(chart)], input="\n".join(lines) + "\n")
        assert result.exit_code == 0, result.output
        output = result.output
        assert "Before we start: your consent" in output
        assert "Please answer with a whole number from 0 to 10" in output
        assert "Question 7 of 7" in output
        assert "6. Morning stiffness (how long): 1 h" in output
        assert "Your BASDAI today is 3.3" in output
        assert "ASDAS-CRP: 3.9 (very high disease activity)." in output
        assert f"Your history chart was written to {chart}" in output
        assert chart.read_bytes().startswith(b"\x89PNG")
        assert "automatically" not in output
        assert "<b>" not in output  # Telegram markup is turned into plain text

    def test_piped_input_runs_out(self, tmp_path: Path) -> None:
        """Without input every step is answered automatically, in Chinese if asked."""
        chart = tmp_path / "zh.png"
        result = runner.invoke(app, ["demo", "--language", "zh", "--chart", str(chart)], input="")
        assert result.exit_code == 0, result.output
        assert "自动回答" in result.output
        assert "非正式译文" in result.output
        assert "您今天的 BASDAI 为 3.8" in result.output
        assert chart.exists()

    def test_german_typed_walk_through(self, tmp_path: Path) -> None:
        """A German patient picks Deutsch, types German durations and button words, and reads
        the informal-rendering label, the score and the ASDAS state in German."""
        chart = tmp_path / "de.png"
        # Deutsch is the second language button (English first, then by language code).
        lines = ["2", "1", "1", "1", "5", "1", "4", "5", "0", "3", "4", "1,5 Std.", "5"]
        lines.append("bestätigen")
        result = runner.invoke(
            app,
            ["demo", "--language", "de", "--chart", str(chart)],
            input="\n".join(lines) + "\n",
        )
        assert result.exit_code == 0, result.output
        output = result.output
        assert "Bevor wir beginnen: Ihre Einwilligung" in output
        assert "Frage 1 von 7" in output
        assert "informelle Übertragung" in output
        assert "6. Morgensteifigkeit (wie lange): 1½ Std." in output
        assert "Ihr BASDAI heute beträgt 3,6" in output
        assert "(sehr hohe Krankheitsaktivität)" in output
        assert "automatisch" not in output
        assert chart.read_bytes().startswith(b"\x89PNG")

    def test_quit(self, tmp_path: Path) -> None:
        """Typing quit leaves the demo with a non-zero exit code and no chart."""
        chart = tmp_path / "never.png"
        result = runner.invoke(app, ["demo", "--chart", str(chart)], input="quit\n")
        assert result.exit_code == 1
        assert not chart.exists()


SETUP = ["1", "1", "1", "1", "5", "1"]  # English, I agree, time zone, Monday, 18:00, now


def _demo(tmp_path: Path, lines: list[str]) -> str:
    chart = tmp_path / "chart.png"
    result = runner.invoke(app, ["demo", "--chart", str(chart)], input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    assert chart.read_bytes().startswith(b"\x89PNG")
    return result.output


class TestDemoInput:
    """The demo reads typed lines as the bot reads messages: one parser, one meaning."""

    def test_confirm_is_accepted_after_a_refused_line(self, tmp_path: Path) -> None:
        """A line that is no answer at the summary leaves Confirm there to press."""
        output = _demo(tmp_path, [*SETUP, "4", "5", "0", "3", "4", "1 h", "5", "what?", "confirm"])
        assert "Your BASDAI today is 3.3" in output
        assert "automatically" not in output

    def test_back_by_typing(self, tmp_path: Path) -> None:
        """`back` returns to the previous question; the new answer replaces the old one."""
        output = _demo(
            tmp_path, [*SETUP, "9", "back", "4", "5", "0", "3", "4", "1 h", "5", "confirm"]
        )
        assert "1. Fatigue: 4" in output
        assert "Your BASDAI today is 3.3" in output

    @pytest.mark.parametrize("word", ["zurück", "返回", "BACK"])
    def test_back_in_any_language(self, tmp_path: Path, word: str) -> None:
        """The word for Back in any of the catalogue's languages presses Back."""
        output = _demo(
            tmp_path, [*SETUP, "9", word, "4", "5", "0", "3", "4", "1 h", "5", "confirm"]
        )
        assert "1. Fatigue: 4" in output

    def test_a_number_on_item_6_means_minutes_as_in_telegram(self, tmp_path: Path) -> None:
        """`2` on the stiffness-duration question is 2 minutes, not the second button."""
        output = _demo(tmp_path, [*SETUP, "4", "5", "0", "3", "4", "2", "5", "confirm"])
        assert "6. Morning stiffness (how long): 2 min" in output

    def test_buttons_of_a_rating_question_are_listed_once(self, tmp_path: Path) -> None:
        """On a 0–10 question "[1]" is the answer 1 only; Back is listed by its label."""
        output = _demo(tmp_path, [*SETUP, "4"])
        question = output.split("Question 2 of 7")[1].split("> ")[0]
        assert question.count("[1]") == 1
        assert "[◀ Back]" in question

    def test_bad_input_only_still_finishes(self, tmp_path: Path) -> None:
        """Piped lines that are all refused, then the end of input: the demo answers the rest
        itself and ends with exit code 0 and a BASDAI."""
        output = _demo(tmp_path, ["garbage", "more garbage", "?", "-1", "11"])
        assert "Your BASDAI today is 3.8" in output
        assert output.count("> ") < 40

    def test_mixed_good_and_bad_input(self, tmp_path: Path) -> None:
        """Good answers, refusals and an exhausted input together end with the answers given."""
        output = _demo(tmp_path, [*SETUP, "7", "twelve", "6", "0", "eleven"])
        assert "1. Fatigue: 7" in output
        assert "2. Neck, back or hip pain: 6" in output
        assert "Your BASDAI today is" in output


class TestPublishedCase:
    def test_case_prints_the_published_figures(self, tmp_path: Path) -> None:
        """`demo --case` replays both visits of docs/clinical.md §5 and reports them exactly."""
        chart = tmp_path / "case.png"
        result = runner.invoke(app, ["demo", "--case", "--chart", str(chart)])
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert "BASDAI 3.8 → 1.4" in lines
        assert "CRP 64.6 → 7.59 mg/L" in lines
        assert (
            "ASDAS-CRP 3.9 (very high disease activity) → 1.8 (low disease activity): "
            "a major improvement"
        ) in lines
        assert "BASDAI50 (improvement of at least 50 %): met" in lines
        assert "ASAS/EULAR BASDAI response (at least 50 % or 2 points): met" in lines
        assert f"Your history chart was written to {chart}" in lines
        assert chart.read_bytes().startswith(b"\x89PNG")

    def test_case_replays_two_episodes_and_prints_the_course_reading(self, tmp_path: Path) -> None:
        """The case is treated as two episodes, adalimumab then upadacitinib added on the day
        of the first visit, and the §7 reading is printed with the case's exact numbers."""
        result = runner.invoke(app, ["demo", "--case", "--chart", str(tmp_path / "c.png")])
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        start = lines.index(
            "Treatment course (docs/clinical.md §7), as the physician's digest and course "
            "report read it:"
        )
        course = lines[start + 1 : start + 7]
        assert course[0].startswith("[1] adalimumab (TNF inhibitor), ")
        assert course[0].endswith(" → ongoing")
        assert course[1].strip().startswith("no baseline")
        assert course[2].startswith("[2] upadacitinib (JAK inhibitor), ")
        assert (
            course[3]
            .strip()
            .startswith("baseline ASDAS-CRP 3.9 (very high disease activity), BASDAI 3.8, ")
        )
        assert (
            course[4]
            .strip()
            .endswith(
                "ASDAS-CRP 3.9 → 1.8 (low disease activity), CRP 64.6 → 7.59 mg/L: major "
                "improvement, low disease activity target reached"
            )
        )
        # Week 24 (day 168); a daylight-saving change near midnight can make it day 167.
        assert re.match(r"week 2[34] \(", course[4].strip())
        assert course[5].strip() == "BASDAI 3.8 → 1.4: BASDAI50 met; ASAS/EULAR response met"

    def test_case_in_chinese(self, tmp_path: Path) -> None:
        """The case speaks the patient's language too."""
        result = runner.invoke(
            app, ["demo", "--case", "--language", "zh", "--chart", str(tmp_path / "c.png")]
        )
        assert result.exit_code == 0, result.output
        assert "BASDAI 3.8 → 1.4" in result.output
        assert "重大改善" in result.output
        assert "治疗疗程（docs/clinical.md §7）" in result.output

    def test_case_in_german_types_the_stiffness_duration_in_german(self, tmp_path: Path) -> None:
        """The case types item 6 (12 minutes, which no button offers) as a German patient
        would, and the scores read with a decimal comma, rounded as the spec says."""
        result = runner.invoke(
            app, ["demo", "--case", "--language", "de", "--chart", str(tmp_path / "c.png")]
        )
        assert result.exit_code == 0, result.output
        assert "BASDAI 3,8 → 1,4" in result.output
