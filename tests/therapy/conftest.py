"""Fixtures for therapy tests: the labs' clinic, and questionnaires answered as a patient types."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.context import AppContext
from bot.domain import instruments
from tests.factories import make_completed_questionnaire
from tests.labs.conftest import Clinic, clinic

__all__ = ["Clinic", "clinic"]

runner = CliRunner()

# The published case (clinical spec §5) with q1, q4 and q5 chosen so that BASDAI is exactly
# 3.8 before and 1.4 after: (5 + 5 + 0 + 4 + (5 + 5) / 2) / 5 and (2 + 2 + 0 + 1 + (3 + 1) / 2) / 5,
# stiffness 60 min (5) and 12 min (1).
CASE_BEFORE = {
    "q1": "5", "q2": "5", "q3": "0", "q4": "4", "q5": "5", "q6": "60 min", "patient_global": "5",
}  # fmt: skip
CASE_AFTER = {
    "q1": "2", "q2": "2", "q3": "0", "q4": "1", "q5": "3", "q6": "12 min", "patient_global": "2",
}  # fmt: skip


def typed_questionnaire(
    ctx: AppContext, *, patient_id: int, completed_at: datetime, answers: dict[str, str]
) -> int:
    """A questionnaire answered by typing and completed at `completed_at`, stored and scored as
    the questionnaire service does it; returns the administration id."""
    parsed = {code: instruments.parse_typed_answer(code, text) for code, text in answers.items()}
    return make_completed_questionnaire(
        ctx, patient_id=patient_id, completed_at=completed_at, answers=parsed
    )


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, ctx: AppContext, clinic: Clinic, tmp_path: Path) -> Path:
    """The CLI pointed at the test database (clock: real time, so 2025 dates are past)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", ctx.settings.database_url)
    monkeypatch.setenv("CLINIC_TIMEZONE", "Europe/Berlin")
    return tmp_path


def invoke(*args: str) -> tuple[int, str, str]:
    """Runs `spondybot …` and returns exit code, stdout and stderr."""
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr
