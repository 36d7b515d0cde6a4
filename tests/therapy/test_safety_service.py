"""Who is asked the safety check-in and how its answers are kept (clinical spec §8)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.clock import FixedClock
from bot.context import AppContext
from bot.domain.safety import QUESTION_CODES, PatientAdvice
from bot.services import conversation, questionnaire, safety, therapy
from bot.services.safety import SafetyOutcome
from storage import administrations, patients
from storage.models import AdministrationKind, SafetyAnswer, SafetyCheckin
from tests.conftest import T0, make_settings
from tests.factories import make_active_patient, make_physician
from tests.therapy.conftest import CASE_AFTER, invoke, typed_questionnaire

USER = 4242


@pytest.fixture
async def safe_ctx(
    database_url: str, migrated_engine: Engine, clock: FixedClock
) -> AsyncIterator[AppContext]:
    """A context with safety check-ins on (emergency number 112)."""
    settings = make_settings(database_url, safety_checkins=True, emergency_number="112")
    context = AppContext(settings=settings, engine=migrated_engine, clock=clock)
    yield context
    await context.aclose()


def patient_on(ctx: AppContext, therapy_class: str | None) -> int:
    physician = make_physician(ctx)
    patient_id = make_active_patient(
        ctx, physician_id=physician.physician_id, telegram_user_id=USER, ref="MRN-0042"
    )
    if therapy_class is not None:
        therapy.add_therapy(
            ctx,
            clinic_ref="MRN-0042",
            drug="a drug",
            therapy_class=therapy_class,
            start="2026-02-02",
            actor="test",
        )
    return patient_id


def weekly_questionnaire(ctx: AppContext, patient_id: int, kind: str = "scheduled") -> int:
    administration_id = typed_questionnaire(
        ctx, patient_id=patient_id, completed_at=T0 - timedelta(hours=1), answers=CASE_AFTER
    )
    if kind != "scheduled":
        with ctx.session() as session:
            row = administrations.get_administration(
                session=session, administration_id=administration_id
            )
            assert row is not None
            row.kind = kind
            session.add(row)
    return administration_id


class TestWhoIsAsked:
    @pytest.mark.parametrize(
        ("therapy_class", "asked"),
        [("jak_inhibitor", True), ("tnf_inhibitor", True), ("il17_inhibitor", True),
         ("nsaid", False), (None, False)],
    )  # fmt: skip
    def test_after_the_weekly_questionnaire(
        self, safe_ctx: AppContext, therapy_class: str | None, asked: bool
    ) -> None:
        """Opened after the weekly questionnaire of a patient on a TNF, IL-17 or JAK inhibitor."""
        patient_id = patient_on(safe_ctx, therapy_class)
        administration_id = weekly_questionnaire(safe_ctx, patient_id)
        opened = safety.after_questionnaire(
            safe_ctx, telegram_user_id=USER, administration_id=administration_id
        )
        assert (opened is not None) is asked
        if opened is not None:
            assert opened.view is not None
            assert opened.view.current == QUESTION_CODES[0]
            assert opened.emergency_number == "112"

    def test_opened_once_per_questionnaire(self, safe_ctx: AppContext) -> None:
        """Called twice (two processes, a redelivery), the same check-in is shown."""
        patient_id = patient_on(safe_ctx, "jak_inhibitor")
        administration_id = weekly_questionnaire(safe_ctx, patient_id)
        first = safety.after_questionnaire(
            safe_ctx, telegram_user_id=USER, administration_id=administration_id
        )
        again = safety.after_questionnaire(
            safe_ctx, telegram_user_id=USER, administration_id=administration_id
        )
        assert first is not None
        assert again is not None
        assert first.view is not None
        assert again.view is not None
        assert first.view.checkin_id == again.view.checkin_id

    def test_not_after_an_extra_questionnaire(self, safe_ctx: AppContext) -> None:
        """The check-in is weekly: an extra /checkin questionnaire does not open one."""
        patient_id = patient_on(safe_ctx, "jak_inhibitor")
        administration_id = weekly_questionnaire(
            safe_ctx, patient_id, kind=AdministrationKind.CHECKIN.value
        )
        assert (
            safety.after_questionnaire(
                safe_ctx, telegram_user_id=USER, administration_id=administration_id
            )
            is None
        )

    def test_not_when_the_deployment_has_it_off(self, ctx: AppContext) -> None:
        patient_id = patient_on(ctx, "jak_inhibitor")
        administration_id = weekly_questionnaire(ctx, patient_id)
        assert (
            safety.after_questionnaire(
                ctx, telegram_user_id=USER, administration_id=administration_id
            )
            is None
        )

    def test_clinic_switch_per_patient(
        self, safe_ctx: AppContext, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """`spondybot therapy checkin … off` stops it for a patient on a JAK inhibitor, `on`
        asks a patient on no monitored drug, `default` returns to the §8 rule."""
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("DATABASE_URL", safe_ctx.settings.database_url)
        patient_id = patient_on(safe_ctx, "jak_inhibitor")
        code, out, _ = invoke("therapy", "checkin", "--patient", "MRN-0042", "off")
        assert (code, out.strip()) == (0, "safety check-in for MRN-0042: off")
        first = weekly_questionnaire(safe_ctx, patient_id)
        assert (
            safety.after_questionnaire(safe_ctx, telegram_user_id=USER, administration_id=first)
            is None
        )
        code, _, err = invoke("therapy", "checkin", "--patient", "MRN-0042", "maybe")
        assert (code, err.strip()) == (2, "error: “maybe” is not on, off or default")
        invoke("therapy", "checkin", "--patient", "MRN-0042", "default")
        safe_ctx.clock.advance(timedelta(days=7))  # type: ignore[attr-defined]
        second = typed_questionnaire(
            safe_ctx, patient_id=patient_id, completed_at=T0 + timedelta(days=6), answers=CASE_AFTER
        )
        assert (
            safety.after_questionnaire(safe_ctx, telegram_user_id=USER, administration_id=second)
            is not None
        )


class TestAnswers:
    def opened(self, ctx: AppContext) -> int:
        patient_on(ctx, "jak_inhibitor")
        reply = safety.report(ctx, telegram_user_id=USER)
        assert reply.view is not None
        return reply.view.checkin_id

    def test_stale_press_records_nothing(self, safe_ctx: AppContext) -> None:
        """A press for a question that is not the current one changes nothing."""
        checkin_id = self.opened(safe_ctx)
        reply = safety.answer(
            safe_ctx, telegram_user_id=USER, checkin_id=checkin_id, code="eye", yes=True
        )
        assert reply.outcome is SafetyOutcome.STALE
        assert reply.view is not None
        assert reply.view.answers == ()
        assert reply.alerts == ()

    def test_someone_elses_checkin_is_refused(self, safe_ctx: AppContext) -> None:
        checkin_id = self.opened(safe_ctx)
        reply = safety.answer(
            safe_ctx, telegram_user_id=999, checkin_id=checkin_id, code="fever_infection", yes=True
        )
        assert reply.outcome is SafetyOutcome.NOT_YOURS

    def test_fever_advises_the_clinic_today(self, safe_ctx: AppContext) -> None:
        checkin_id = self.opened(safe_ctx)
        reply = safety.answer(
            safe_ctx, telegram_user_id=USER, checkin_id=checkin_id, code="fever_infection", yes=True
        )
        assert reply.advice == (PatientAdvice.CONTACT_CLINIC_TODAY,)
        assert reply.view is not None
        assert reply.view.current == "hospital"

    def test_note_goes_to_the_last_yes_and_change_returns_to_summary(
        self, safe_ctx: AppContext
    ) -> None:
        """A typed note lands on the latest "yes"; changing an answer from the summary stores
        the new answer and goes back to the summary."""
        checkin_id = self.opened(safe_ctx)
        for code in QUESTION_CODES:
            safety.answer(
                safe_ctx, telegram_user_id=USER, checkin_id=checkin_id, code=code,
                yes=code == "doses",
            )  # fmt: skip
        noted = safety.note(safe_ctx, telegram_user_id=USER, text="  forgot   two doses ")
        assert noted is not None
        assert noted.outcome is SafetyOutcome.NOTE_SAVED
        assert noted.view is not None
        doses = noted.view.answer("doses")
        assert doses is not None
        assert doses.note == "forgot two doses"
        safety.change(safe_ctx, telegram_user_id=USER, checkin_id=checkin_id, code="skin")
        changed = safety.answer(
            safe_ctx, telegram_user_id=USER, checkin_id=checkin_id, code="skin", yes=True
        )
        assert changed.view is not None
        assert changed.view.current == "summary"
        skin = changed.view.answer("skin")
        assert skin is not None
        assert skin.yes
        done = safety.confirm(safe_ctx, telegram_user_id=USER, checkin_id=checkin_id)
        assert done.outcome is SafetyOutcome.CONFIRMED
        again = safety.confirm(safe_ctx, telegram_user_id=USER, checkin_id=checkin_id)
        assert again.outcome is SafetyOutcome.ALREADY_CONFIRMED


class TestDeletion:
    def test_deleting_a_patient_removes_check_ins_and_answers(self, safe_ctx: AppContext) -> None:
        """A patient's data deletion removes every check-in and answer of theirs."""
        patient_id = patient_on(safe_ctx, "jak_inhibitor")
        opened = safety.report(safe_ctx, telegram_user_id=USER)
        assert opened.view is not None
        safety.answer(
            safe_ctx, telegram_user_id=USER, checkin_id=opened.view.checkin_id,
            code="fever_infection", yes=True,
        )  # fmt: skip
        with safe_ctx.session() as session:
            patients.delete_patient_data(
                session=session, patient_id=patient_id, now=safe_ctx.clock.now()
            )
        with safe_ctx.session() as session:
            assert session.exec(select(SafetyCheckin)).all() == []
            assert session.exec(select(SafetyAnswer)).all() == []


class TestTypedText:
    def test_questionnaire_answers_are_never_taken_as_notes(self, safe_ctx: AppContext) -> None:
        """With a check-in left open, a typed "7" answers the open questionnaire; without a
        questionnaire, typed text is the note of the latest "yes"."""
        patient_on(safe_ctx, "jak_inhibitor")
        opened = safety.report(safe_ctx, telegram_user_id=USER)
        assert opened.view is not None
        checkin_id = opened.view.checkin_id
        safety.answer(
            safe_ctx, telegram_user_id=USER, checkin_id=checkin_id, code="fever_infection",
            yes=True,
        )  # fmt: skip
        (note,) = conversation.typed(
            safe_ctx, telegram_user_id=USER, chat_id=USER, text="38.5 since Monday", language="en"
        )
        assert isinstance(note, safety.SafetyReply)
        assert note.outcome is SafetyOutcome.NOTE_SAVED
        started = questionnaire.checkin(safe_ctx, telegram_user_id=USER)
        assert started.view is not None
        (reply,) = conversation.typed(
            safe_ctx, telegram_user_id=USER, chat_id=USER, text="7", language="en"
        )
        assert isinstance(reply, questionnaire.QuestionnaireReply)
        assert reply.view is not None
        assert reply.view.answers.get("q1") == 7
        fever = safety.resume(safe_ctx, telegram_user_id=USER)
        assert fever is not None
        assert fever.view is not None
        answer = fever.view.answer("fever_infection")
        assert answer is not None
        assert answer.note == "38.5 since Monday"
