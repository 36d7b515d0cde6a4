"""A button press sends a known number of SQL statements, so that number cannot grow unseen.

Each press is one transaction with its update's claim; every statement in it costs a round of
SQLAlchemy's work (and on PostgreSQL a round trip). The lists below are the statements of a
press today, by kind and table: a new statement fails the test and must be justified here.
"""

from __future__ import annotations

import re
from typing import Any

from tests.bot.e2e import RunningBot
from tests.bot.test_press_plans import captured_statements
from tests.factories import make_active_patient, make_physician

ANSWER_PRESS = [
    "INSERT processedupdate",  # the update's claim (and whether its patient is unreachable)
    "SELECT patient",  # the pressing patient (by their chat link), the questionnaire named
    # and its answers so far, in one query
    "UPDATE administration",  # the compare-and-set move to the next question
    "INSERT answer",
    "INSERT auditevent",
]
"""The statements of an answer press, in order."""

CONFIRM_PRESS = [
    "INSERT processedupdate",
    "SELECT patient",  # the patient, the questionnaire and its answers
    "UPDATE administration",  # the compare-and-set completion
    "SELECT labresult",  # the CRP and the ESR nearest the questionnaire (spec §6), in one
    "INSERT scorerecord",  # scores stored once, whatever the route (an upsert)
    "UPDATE patient",  # the baseline date, on the first questionnaire only
    "INSERT auditevent",
    "SELECT administration",  # the previous questionnaire and its scores, for the comparison
    # Whether its physician could be alerted (alerts on, Telegram linked; clinical spec §3,
    # §6): only then is the completion looked at again for an alert, in a unit of work of its
    # own. A check-in questionnaire, as here, is followed by no safety check-in (spec §8), so
    # nothing is read for one.
    "SELECT patient",
]
"""The statements of the press that confirms a first questionnaire (a check-in), in order."""

CHECKIN_COMMAND = [
    "INSERT processedupdate",
    "SELECT patient",  # the patient of the account, locked; no reading of the account before
    "SELECT administration",  # an open questionnaire to resume
    "SELECT administration",  # how many check-ins today (one a day)
    "SAVEPOINT ?",  # the questionnaire inserted at its first question, unless the slot is taken
    "INSERT administration",
    "RELEASE sa_savepoint_1",
    # After the question is sent, which message shows it, in a unit of work of its own.
    "UPDATE administration",
]
"""The statements of `/checkin` that opens a new questionnaire, in order."""

_FIRST_TABLE = re.compile(r"\bFROM\s+(\w+)", re.I)


def _named(statement: str) -> str:
    """`<KIND> <table>` of a statement: the table written, or the first one read."""
    words = statement.split()
    kind = words[0].upper()
    if kind == "SELECT":
        found = _FIRST_TABLE.search(statement)
        return f"SELECT {found.group(1) if found else '?'}"
    if kind == "INSERT":
        return f"INSERT {words[2]}"
    if kind == "UPDATE":
        return f"UPDATE {words[1]}"
    return f"{kind} {words[2] if len(words) > 2 else '?'}"


async def _patient_at_first_question(bot: RunningBot) -> Any:
    doctor = make_physician(bot.ctx)
    user = bot.api.new_user("Ana", language_code="en", user_id=42)
    make_active_patient(bot.ctx, physician_id=doctor.physician_id, telegram_user_id=user.id)
    user.send_command("/checkin")
    await bot.settle()
    return user


class TestPressStatements:
    async def test_an_answer_press_sends_five_statements(self, running_bot: RunningBot) -> None:
        """Answering a question claims the update, reads the patient with the questionnaire
        and its answers in one query, and writes the move, the answer and its audit entry:
        nothing more."""
        user = await _patient_at_first_question(running_bot)
        with captured_statements() as statements:
            user.press_button("4")
            await running_bot.settle()
        assert "Question 2 of 7" in user.last_message()["text"]
        assert [_named(statement) for statement, _ in statements] == ANSWER_PRESS

    async def test_a_later_answer_press_sends_as_many(self, running_bot: RunningBot) -> None:
        """Answering the next question costs the same: no statement grows with the answers."""
        user = await _patient_at_first_question(running_bot)
        for label in ("4", "5", "0"):
            user.press_button(label)
            await running_bot.settle()
        with captured_statements() as statements:
            user.press_button("3")
            await running_bot.settle()
        assert "Question 5 of 7" in user.last_message()["text"]
        assert [_named(statement) for statement, _ in statements] == ANSWER_PRESS

    async def test_the_confirming_press_sends_its_listed_statements(
        self, running_bot: RunningBot
    ) -> None:
        """Confirming reads the questionnaire and its answers once, stores the scores and the
        audit entry, compares with earlier weeks and sees whether the physician takes alerts,
        all in its one transaction."""
        user = await _patient_at_first_question(running_bot)
        for label in ("4", "5", "0", "3", "4", "1 h", "5"):
            user.press_button(label)
            await running_bot.settle()
        with captured_statements() as statements:
            user.press_button("✅ Confirm")
            await running_bot.settle()
        assert any("Your BASDAI today is" in str(m.get("text", "")) for m in user.messages())
        assert [_named(statement) for statement, _ in statements] == CONFIRM_PRESS

    async def test_checkin_opens_a_questionnaire_in_one_unit_of_work(
        self, running_bot: RunningBot
    ) -> None:
        """`/checkin` reads its patient once, in the transaction that opens the questionnaire
        (with the update's claim), then stores which message shows the question."""
        doctor = make_physician(running_bot.ctx)
        user = running_bot.api.new_user("Ana", language_code="en", user_id=42)
        make_active_patient(
            running_bot.ctx, physician_id=doctor.physician_id, telegram_user_id=user.id
        )
        with captured_statements() as statements:
            user.send_command("/checkin")
            await running_bot.settle()
        assert "Question 1 of 7" in user.last_message()["text"]
        assert [_named(statement) for statement, _ in statements] == CHECKIN_COMMAND
