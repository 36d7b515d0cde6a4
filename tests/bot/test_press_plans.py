"""A button press reads through indexes: no statement it runs scans a whole table.

The database holds a registry (patients with a year of weekly history, answers, scores, labs
and therapies, bulk-loaded and analysed) when a patient presses buttons through the real bot;
every statement the press sends is captured and explained by the database itself.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.engine import Engine

from benchmarks.registry import load_registry
from tests.bot.e2e import RunningBot
from tests.factories import make_active_patient, make_physician
from tests.statements import captured_statements

REGISTRY_PATIENTS = 300
SKIPPED = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|PRAGMA|SET|SELECT 1\b)", re.I)


def whole_table_scans(engine: Engine, statement: str, parameters: Any) -> list[str]:
    """The plan lines of `statement` that read a whole table.

    SQLite: a `SCAN <table>` step (with or without an index: either way every row is read).
    PostgreSQL: a `Seq Scan` with sequential scans priced out of reach, so one appears only
    where no index can serve the statement.
    """
    raw = engine.raw_connection()
    try:
        if engine.dialect.name == "sqlite":
            cursor = raw.cursor()
            cursor.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)
            details = [str(row[3]) for row in cursor.fetchall()]
            return [d for d in details if d.startswith("SCAN ") and "CONSTANT ROW" not in d]
        import psycopg

        driver = raw.driver_connection
        assert isinstance(driver, psycopg.Connection)
        with psycopg.ClientCursor(driver) as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(f"EXPLAIN {statement}", parameters)
            lines = [str(row[0]) for row in cursor.fetchall()]
        driver.rollback()
        return [line.strip() for line in lines if "Seq Scan" in line]
    finally:
        raw.close()


async def _patient_in_registry(bot: RunningBot) -> Any:
    """A linked patient with an open questionnaire, among a registry's patients."""
    load_registry(bot.ctx.engine, patients=REGISTRY_PATIENTS, physicians=20, weeks=52, seed=3)
    doctor = make_physician(bot.ctx)
    user = bot.api.new_user("Ana", language_code="en", user_id=42)  # below the registry's ids
    make_active_patient(bot.ctx, physician_id=doctor.physician_id, telegram_user_id=user.id)
    user.send_command("/checkin")
    await bot.settle()
    return user


def _assert_no_scans(bot: RunningBot, statements: list[tuple[str, Any]]) -> None:
    # The press's own transaction was seen (answers are stored through the administration).
    assert any("administration" in statement for statement, _ in statements), statements
    scans = {
        statement: found
        for statement, parameters in statements
        if (found := whole_table_scans(bot.ctx.engine, statement, parameters))
    }
    assert scans == {}


class TestPressPlans:
    async def test_an_answer_press_scans_no_whole_table(self, running_bot: RunningBot) -> None:
        """Answering a question reads and writes only through indexes and keys."""
        user = await _patient_in_registry(running_bot)
        with captured_statements(SKIPPED) as statements:
            user.press_button("4")
            await running_bot.settle()
        assert "Question 2 of 7" in user.last_message()["text"]
        _assert_no_scans(running_bot, statements)

    async def test_the_confirming_press_scans_no_whole_table(self, running_bot: RunningBot) -> None:
        """Confirming (scores, lab matching, the comparison with earlier weeks) uses indexes."""
        user = await _patient_in_registry(running_bot)
        for label in ("4", "5", "0", "3", "4", "1 h", "5"):
            user.press_button(label)
            await running_bot.settle()
        assert "Your answers" in user.last_message()["text"]
        with captured_statements(SKIPPED) as statements:
            user.press_button("✅ Confirm")
            await running_bot.settle()
        assert "Your BASDAI today is" in user.last_message()["text"]
        _assert_no_scans(running_bot, statements)
