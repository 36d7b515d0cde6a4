"""`spondybot demo`: the whole conversation in a terminal, driven by typed lines."""

from __future__ import annotations

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
        assert "您今天的 BASDAI 为 3.3" in result.output
        assert chart.exists()

    def test_quit(self, tmp_path: Path) -> None:
        """Typing quit leaves the demo with a non-zero exit code and no chart."""
        chart = tmp_path / "never.png"
        result = runner.invoke(app, ["demo", "--chart", str(chart)], input="quit\n")
        assert result.exit_code == 1
        assert not chart.exists()
