"""The patient's commands: history, status, settings, language, pause, stop, help."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from sqlmodel import select

from bot.services import labs
from storage.models import (
    Administration,
    Answer,
    AuditEvent,
    ChatLink,
    LabResult,
    Patient,
    PatientStatus,
    ScoreRecord,
)
from tests.bot.e2e import RunningBot
from tests.bot.helpers import administrations_of
from tests.fake_telegram import FakeUser


async def complete_checkin(bot: RunningBot, user: FakeUser, answers: list[str]) -> None:
    user.send_command("/checkin")
    await bot.settle()
    for value in answers:
        user.send_text(value)
        await bot.settle()
    user.press(next(data for _, data in user.buttons() if data.startswith("c:")))
    await bot.settle()


def patient_row(bot: RunningBot, patient_id: int) -> Patient:
    with bot.ctx.session() as session:
        patient = session.get(Patient, patient_id)
        assert patient is not None
        return patient


class TestCommandMenu:
    async def test_commands_registered_in_every_language(self, running_bot: RunningBot) -> None:
        """The command menu is published in English (default), Chinese and German."""
        english = running_bot.api.commands()
        chinese = running_bot.api.commands(language_code="zh")
        german = running_bot.api.commands(language_code="de")
        names = [
            "checkin", "sideeffect", "history", "status", "settings", "language", "pause", "stop",
            "help",
        ]  # fmt: skip
        assert [c["command"] for c in english] == names
        assert [c["command"] for c in chinese] == names
        assert [c["command"] for c in german] == names
        assert english[0]["description"] == "Answer an extra questionnaire now"
        assert chinese[0]["description"] == "现在额外回答一份问卷"
        assert german[0]["description"] == "Jetzt einen zusätzlichen Fragebogen beantworten"

    async def test_help_lists_every_command(self, running_bot: RunningBot) -> None:
        """/help names every patient command."""
        ana, _patient_id = await running_bot.onboarded_patient()
        ana.send_command("/help")
        await running_bot.settle()
        text = ana.last_message()["text"]
        for name in (
            "/checkin",
            "/history",
            "/status",
            "/settings",
            "/language",
            "/pause",
            "/stop",
        ):
            assert name in text

    async def test_unknown_command_gets_help(self, running_bot: RunningBot) -> None:
        """A command nobody handles is answered with the help that fits the account."""
        ana, _patient_id = await running_bot.onboarded_patient()
        ana.send_command("/frobnicate")
        await running_bot.settle()
        assert "What I can do" in ana.last_message()["text"]


class TestHistoryAndStatus:
    async def test_history_sends_a_chart_and_a_table(self, running_bot: RunningBot) -> None:
        """/history sends a PNG chart and a table with BASDAI and, with a lab, ASDAS and state."""
        ana, patient_id = await running_bot.onboarded_patient()
        ana.send_command("/history")
        await running_bot.settle()
        assert "not completed a questionnaire" in ana.last_message()["text"]

        await complete_checkin(running_bot, ana, ["4", "5", "0", "3", "4", "60", "5"])
        running_bot.clock.advance(timedelta(days=1))
        labs.add_lab_values(
            running_bot.ctx,
            clinic_ref=patient_row(running_bot, patient_id).clinic_ref,
            drawn=(running_bot.clock.now() - timedelta(hours=2)).isoformat(timespec="minutes"),
            entered_by="test",
            crp="64.6",
            crp_unit="mg/L",
        )
        running_bot.clock.advance(timedelta(days=6))
        await complete_checkin(running_bot, ana, ["2", "2", "0", "1", "2", "12", "2"])
        assert "That is lower than last time (3.3 on 02 Mar 2026)" in ana.last_message()["text"]

        ana.send_command("/history")
        await running_bot.settle()
        photo = running_bot.api.calls("sendPhoto")[-1]
        assert photo.files["photo"].content.startswith(b"\x89PNG")
        assert "ASDAS where a lab value was available" in photo.params["caption"]
        table = ana.last_message()["text"]
        assert "02 Mar 2026" in table
        assert "3.3  3.9 CRP (very high disease activity)" in table
        assert "09 Mar 2026" in table

    async def test_status_shows_the_next_questionnaire(self, running_bot: RunningBot) -> None:
        """/status shows the weekly slot in local time and a Continue button for an open one."""
        ana, _patient_id = await running_bot.onboarded_patient(weekday=3)
        ana.send_command("/status")
        await running_bot.settle()
        text = ana.last_message()["text"]
        assert "Every Thursday at 18:00 (Europe/Berlin)" in text
        assert "Next: Thursday 05 Mar 2026, 18:00." in text
        ana.send_command("/checkin")
        await running_bot.settle()
        ana.send_command("/status")
        await running_bot.settle()
        assert "You have a questionnaire open until" in ana.last_message()["text"]
        assert [label for label, _ in ana.buttons()] == ["Continue"]


class TestSettings:
    async def test_change_day_time_zone_and_language(self, running_bot: RunningBot) -> None:
        """/settings changes the weekday, a typed time zone, and /language the language."""
        ana, patient_id = await running_bot.onboarded_patient()
        ana.send_command("/settings")
        await running_bot.settle()
        assert "Questionnaire: every Monday at 18:00" in ana.last_message()["text"]
        ana.press_button("Day")
        await running_bot.settle()
        ana.press_button("Saturday")
        await running_bot.settle()
        assert "every Saturday at 18:00" in ana.last_message()["text"]
        ana.press_button("Time zone")
        await running_bot.settle()
        ana.send_text("Nowhere/Special")
        await running_bot.settle()
        assert "I do not know the time zone" in ana.last_message()["text"]
        ana.send_text("america/new_york")
        await running_bot.settle()
        assert "Time zone: America/New York" in ana.last_message()["text"]
        ana.send_command("/language")
        await running_bot.settle()
        ana.press_button("中文")
        await running_bot.settle()
        assert ana.last_message()["text"] == "从现在起我将使用中文。"
        patient = patient_row(running_bot, patient_id)
        assert (patient.timezone, patient.schedule_weekday, patient.language) == (
            "America/New_York",
            5,
            "zh",
        )
        ana.send_command("/checkin")
        await running_bot.settle()
        assert "第 1 题" in ana.last_message()["text"]


class TestPauseAndStop:
    async def test_pause_and_resume(self, running_bot: RunningBot) -> None:
        """/pause for two weeks stores the end; pressing Resume ends the pause early."""
        ana, patient_id = await running_bot.onboarded_patient()
        ana.send_command("/pause")
        await running_bot.settle()
        assert [label for label, _ in ana.buttons()] == ["1 week", "2 weeks", "4 weeks"]
        ana.press_button("2 weeks")
        await running_bot.settle()
        assert "Paused until Monday 16 Mar 2026, 10:00" in ana.last_message()["text"]
        patient = patient_row(running_bot, patient_id)
        assert patient.status == PatientStatus.PAUSED.value
        assert patient.paused_until == running_bot.clock.now() + timedelta(weeks=2)
        ana.send_command("/pause")
        await running_bot.settle()
        ana.press_button("Resume now")
        await running_bot.settle()
        assert patient_row(running_bot, patient_id).status == PatientStatus.ACTIVE.value

    async def test_stop_keeping_the_answers(self, running_bot: RunningBot) -> None:
        """ "Stop contacting me" withdraws the patient and keeps what they answered."""
        ana, patient_id = await running_bot.onboarded_patient()
        await complete_checkin(running_bot, ana, ["4", "5", "0", "3", "4", "60", "5"])
        ana.send_command("/stop")
        await running_bot.settle()
        ana.press_button("Stop contacting me, keep what I answered for my clinic")
        await running_bot.settle()
        patient = patient_row(running_bot, patient_id)
        assert patient.status == PatientStatus.WITHDRAWN.value
        assert patient.withdrawn_at == running_bot.clock.now()
        assert len(administrations_of(running_bot.ctx, patient_id)) == 1
        ana.send_command("/checkin")
        await running_bot.settle()
        assert "if you stopped, contact your clinic" in ana.last_message()["text"]

    async def test_stop_and_delete_needs_two_confirmations(self, running_bot: RunningBot) -> None:
        """Deletion is confirmed twice, then removes answers, scores, labs and the link."""
        ana, patient_id = await running_bot.onboarded_patient()
        await complete_checkin(running_bot, ana, ["4", "5", "0", "3", "4", "60", "5"])
        labs.add_lab_values(
            running_bot.ctx,
            clinic_ref=patient_row(running_bot, patient_id).clinic_ref,
            drawn=running_bot.clock.now().isoformat(timespec="minutes"),
            entered_by="test",
            crp="5",
            crp_unit="mg/L",
        )
        ana.press("o:stop:delete3", force=True)  # a forged final confirmation does nothing
        await running_bot.settle()
        assert patient_row(running_bot, patient_id).status == PatientStatus.ACTIVE.value
        ana.send_command("/stop")
        await running_bot.settle()
        ana.press_button("Stop and delete my data")
        await running_bot.settle()
        assert "Do you want to continue?" in ana.last_message()["text"]
        ana.press_button("Yes, delete")
        await running_bot.settle()
        assert "This cannot be undone." in ana.last_message()["text"]
        ana.press_button("Delete everything")
        await running_bot.settle()
        assert "Your data has been deleted" in ana.last_message()["text"]

        with running_bot.ctx.session() as session:
            patient = session.get(Patient, patient_id)
            assert patient is not None
            assert patient.status == PatientStatus.DELETED.value
            assert patient.display_name is None
            assert list(session.exec(select(Administration))) == []
            assert list(session.exec(select(Answer))) == []
            assert list(session.exec(select(ScoreRecord))) == []
            assert list(session.exec(select(LabResult))) == []
            assert list(session.exec(select(ChatLink))) == []
            events = list(
                session.exec(select(AuditEvent).where(AuditEvent.patient_id == patient_id))
            )
        assert events[-1].action == "delete_data"
        assert all(event.before is None and event.after is None for event in events)
        ana.send_text("7")
        await running_bot.settle()
        assert "personal code your clinic gave you" in ana.last_message()["text"]

    async def test_cancel_keeps_everything(self, running_bot: RunningBot) -> None:
        """Cancelling at the second confirmation deletes nothing."""
        ana, patient_id = await running_bot.onboarded_patient()
        ana.send_command("/stop")
        await running_bot.settle()
        ana.press_button("Stop and delete my data")
        await running_bot.settle()
        ana.press_button("Yes, delete")
        await running_bot.settle()
        ana.press_button("Cancel")
        await running_bot.settle()
        assert ana.last_message()["text"] == "Nothing was changed."
        ana.press("o:stop:delete3", force=True)
        await running_bot.settle()
        assert patient_row(running_bot, patient_id).status == PatientStatus.ACTIVE.value


class TestPrivacy:
    async def test_logs_carry_no_answers_names_or_tokens(
        self, running_bot: RunningBot, caplog: pytest.LogCaptureFixture
    ) -> None:
        """What the bot logs while a patient answers holds no token, name, reference or answer."""
        caplog.set_level(logging.DEBUG)
        ana, patient_id = await running_bot.onboarded_patient()
        await complete_checkin(running_bot, ana, ["4", "5", "0", "3", "4", "97", "5"])
        logged = "\n".join(
            record.getMessage() + json.dumps(getattr(record, "fields", {}), default=str)
            for record in caplog.records
            if record.name.startswith("bot")
        )
        assert "answer recorded" in logged
        assert "TEST-TOKEN" not in logged
        assert "Ana" not in logged
        assert patient_row(running_bot, patient_id).clinic_ref not in logged
        assert "97" not in logged
