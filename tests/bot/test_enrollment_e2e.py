"""Joining through Telegram: codes, refusals, rate limiting, consent and set-up."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from bot.services.keyed import account_hash
from bot.services.patients import CONSENT_VERSION
from storage.models import ChatLink, EnrollmentAttempt, Patient, PatientStatus
from tests.bot.e2e import RunningBot
from tests.bot.helpers import administrations_of


def patient_row(bot: RunningBot, patient_id: int) -> Patient:
    with bot.ctx.session() as session:
        patient = session.get(Patient, patient_id)
        assert patient is not None
        return patient


def links(bot: RunningBot) -> list[ChatLink]:
    with bot.ctx.session() as session:
        return list(session.exec(select(ChatLink)))


def attempts(bot: RunningBot) -> list[EnrollmentAttempt]:
    with bot.ctx.session() as session:
        return list(session.exec(select(EnrollmentAttempt)))


class TestEnrollment:
    async def test_link_from_the_clinic(self, running_bot: RunningBot) -> None:
        """`/start <code>` links the account, uses the code up and asks for the language."""
        ana, patient_id, code = running_bot.patient()
        ana.send_command("/start", code)
        await running_bot.settle()
        welcome, language = ana.messages()
        assert "Your Telegram account is now linked" in welcome["text"]
        assert "Which language" in language["text"]
        assert [label for label, _ in ana.buttons()] == ["English", "Deutsch", "中文"]
        assert patient_row(running_bot, patient_id).status == PatientStatus.ONBOARDING.value
        (link,) = links(running_bot)
        assert (link.telegram_user_id, link.patient_id) == (ana.id, patient_id)

        eve = running_bot.api.new_user("Eve")
        eve.send_command("/start", code)
        await running_bot.settle()
        assert "that code did not work" in eve.last_message()["text"]
        assert len(links(running_bot)) == 1

    async def test_typing_the_code(self, running_bot: RunningBot) -> None:
        """`/start` alone asks for the code, and typing it (any case, with dashes) links."""
        ana, patient_id, code = running_bot.patient()
        ana.send_command("/start")
        await running_bot.settle()
        assert "Please type the personal code" in ana.last_message()["text"]
        ana.send_text(f"{code[:5].lower()}-{code[5:]}")
        await running_bot.settle()
        assert "now linked" in ana.messages()[-2]["text"]
        assert links(running_bot)[0].patient_id == patient_id

    async def test_strangers_learn_how_to_join_and_leave_no_trace(
        self, running_bot: RunningBot
    ) -> None:
        """Anyone not enrolled gets the how-to-join text; nothing about them is stored."""
        stranger = running_bot.api.new_user("Sam")
        stranger.send_text("hello, what is this?")
        stranger.send_command("/checkin")
        stranger.send_command("/history")
        await running_bot.settle()
        texts = [m["text"] for m in stranger.messages()]
        assert len(texts) == 3
        assert all("personal code your clinic gave you" in text for text in texts)
        assert links(running_bot) == []
        assert attempts(running_bot) == []

    @pytest.mark.parametrize(
        ("client_language", "expected"),
        [
            ("de", "persönlichen Code, den Ihnen Ihre Klinik gegeben hat"),
            ("de-AT", "persönlichen Code, den Ihnen Ihre Klinik gegeben hat"),
            ("zh-hans", "医院提供给您的个人代码"),
            ("fr", "personal code your clinic gave you"),
        ],
    )
    async def test_strangers_read_how_to_join_in_their_telegram_language(
        self, running_bot: RunningBot, client_language: str, expected: str
    ) -> None:
        """Before anyone has chosen, the language Telegram reports picks the text: German and
        Chinese clients read theirs, any other language reads English."""
        stranger = running_bot.api.new_user("Jonas", language_code=client_language)
        stranger.send_text("Hallo")
        await running_bot.settle()
        assert expected in stranger.last_message()["text"]

    async def test_five_wrong_codes_in_an_hour_ask_to_wait(self, running_bot: RunningBot) -> None:
        """After five wrong codes the account must wait an hour, even with the right code."""
        ana, patient_id, code = running_bot.patient()
        for attempt in range(4):
            ana.send_text(f"WRONGCODE{attempt}")
            await running_bot.settle()
            assert "that code did not work" in ana.last_message()["text"]
        ana.send_text("WRONGCODE5")
        await running_bot.settle()
        assert "Please wait an hour" in ana.last_message()["text"]
        ana.send_command("/start", code)
        await running_bot.settle()
        assert "Please wait an hour" in ana.last_message()["text"]
        assert links(running_bot) == []
        # Counted under a keyed hash of the account, never its Telegram id.
        stored = attempts(running_bot)
        assert len(stored) == 5
        assert {row.account_hash for row in stored} == {account_hash(running_bot.ctx, ana.id)}
        assert str(ana.id) not in stored[0].account_hash

        running_bot.clock.advance(timedelta(hours=1, minutes=1))
        ana.send_command("/start", code)
        await running_bot.settle()
        assert links(running_bot)[0].patient_id == patient_id

    async def test_a_linked_account_cannot_link_a_second_person(
        self, running_bot: RunningBot
    ) -> None:
        """An account linked to one patient refuses another's code, which stays usable."""
        ana, _ana_id = await running_bot.onboarded_patient()
        _other, other_id, other_code = running_bot.patient()
        ana.send_command("/start", other_code)
        await running_bot.settle()
        assert "already linked" in ana.messages()[-2]["text"]
        bea = running_bot.api.new_user("Bea")
        bea.send_command("/start", other_code)
        await running_bot.settle()
        assert {link.patient_id for link in links(running_bot)} >= {other_id}

    async def test_physician_code_links_a_physician(self, running_bot: RunningBot) -> None:
        """A physician's code links without consent and shows the physician commands."""
        doctor, physician_id = await running_bot.linked_physician()
        intro = doctor.last_message()["text"]
        assert "You are linked as a physician" in intro
        for command in ("/patients", "/patient", "/crp", "/digest"):
            assert command in intro
        (link,) = links(running_bot)
        assert (link.physician_id, link.patient_id) == (physician_id, None)


class TestConsentAndSetUp:
    async def test_no_question_without_consent(self, running_bot: RunningBot) -> None:
        """ "Not now" stores no consent and no questionnaire can start until the patient agrees."""
        ana, patient_id, code = running_bot.patient()
        ana.send_command("/start", code)
        await running_bot.settle()
        ana.press("o:lang:en")
        await running_bot.settle()
        consent = ana.last_message()["text"]
        for topic in ("What we collect", "Who sees it", "How long it is kept", "How to stop"):
            assert topic in consent
        ana.press_button("Not now")
        await running_bot.settle()
        assert "Nothing will be asked until you agree" in ana.last_message()["text"]
        ana.send_command("/checkin")
        await running_bot.settle()
        assert "please finish setting up first" in ana.last_message()["text"]
        assert administrations_of(running_bot.ctx, patient_id) == []
        assert patient_row(running_bot, patient_id).consent_at is None

        ana.send_command("/start")
        await running_bot.settle()
        ana.press_button("I agree")
        await running_bot.settle()
        patient = patient_row(running_bot, patient_id)
        assert patient.consent_version == CONSENT_VERSION
        assert patient.consent_at == running_bot.clock.now()

    async def test_set_up_choices_are_stored(self, running_bot: RunningBot) -> None:
        """Language, time zone, weekday and time chosen by button end in an active patient."""
        ana, patient_id = await running_bot.onboarded_patient(
            language="zh", timezone="Asia/Shanghai", weekday=2
        )
        patient = patient_row(running_bot, patient_id)
        assert (patient.language, patient.timezone, patient.schedule_weekday) == (
            "zh",
            "Asia/Shanghai",
            2,
        )
        assert patient.schedule_time.strftime("%H:%M") == "18:00"
        assert patient.status == PatientStatus.ACTIVE.value
        assert patient.onboarding_step is None
        assert "每星期三 18:00（Asia/Shanghai）" in ana.last_message()["text"]

    async def test_clinic_time_zone_is_offered_first(self, running_bot: RunningBot) -> None:
        """The clinic's own time zone is the first choice."""
        ana, _patient_id, code = running_bot.patient()
        ana.send_command("/start", code)
        await running_bot.settle()
        ana.press("o:lang:en")
        await running_bot.settle()
        ana.press("o:consent:yes")
        await running_bot.settle()
        first_label, first_data = ana.buttons()[0]
        assert first_label == "Europe/Berlin (clinic)"
        assert first_data == "o:tz:Europe/Berlin"
