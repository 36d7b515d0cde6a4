"""Fixtures for therapy tests: the labs' clinic, and questionnaires answered as a patient types."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.context import AppContext
from bot.domain import instruments
from bot.services.scores import recompute_administration
from storage import administrations
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
    with ctx.session() as session:
        administration = administrations.create_administration(
            session=session,
            patient_id=patient_id,
            kind="scheduled",
            slot_at=completed_at - timedelta(hours=1),
            now=completed_at - timedelta(hours=1),
            expires_at=completed_at + timedelta(days=3),
            instrument_version=instruments.INSTRUMENT_VERSION,
            language="en",
            current_item="patient_global",
        )
        assert administration is not None
        assert administration.id is not None
        for code, text in answers.items():
            parsed = instruments.parse_typed_answer(code, text)
            assert parsed is not None, (code, text)
            administrations.save_answer(
                session=session,
                administration_id=administration.id,
                item_code=code,
                raw_value=parsed.raw_value,
                score=parsed.score,
                now=completed_at,
            )
        assert administrations.complete_administration(
            session=session,
            administration_id=administration.id,
            expected_item="patient_global",
            now=completed_at,
        )
        recompute_administration(
            session,
            administration_id=administration.id,
            window=timedelta(days=ctx.settings.lab_window_days),
            now=completed_at,
        )
        return administration.id


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
