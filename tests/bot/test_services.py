"""The patient-facing services, called directly on a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest

from bot.clock import FixedClock
from bot.context import AppContext, RedeliveredUpdate
from bot.domain.instruments import INSTRUMENT_VERSION
from bot.services import enrollment, history, labs, patients, questionnaire, staff
from bot.services import redelivery as updates
from bot.services.enrollment import Outcome as Enrolled
from bot.services.questionnaire import Outcome
from storage import administrations
from storage import patients as patient_storage
from storage.models import AdministrationKind, PatientStatus
from tests.bot.helpers import administrations_of, answers_of, audit_of, score_of
from tests.factories import make_active_patient, make_patient, make_physician

USER = 900_001


def active_patient(ctx: AppContext, *, user: int = USER, language: str = "en") -> int:
    physician = make_physician(ctx)
    return make_active_patient(
        ctx, physician_id=physician.physician_id, telegram_user_id=user, language=language
    )


def answer_all(ctx: AppContext, user: int, values: list[int]) -> int:
    """Opens a check-in and answers every item with buttons; returns the administration id."""
    opened = questionnaire.checkin(ctx, telegram_user_id=user)
    assert opened.view is not None
    administration_id = opened.view.administration_id
    for item, value in zip(
        ["q1", "q2", "q3", "q4", "q5", "q6", "patient_global"], values, strict=True
    ):
        reply = questionnaire.answer(
            ctx, telegram_user_id=user, administration_id=administration_id, item=item, value=value
        )
        assert reply.recorded, reply
    return administration_id


class TestEnrollmentService:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("ABCD-EFGH-23", True),
            ("abcdefgh23", True),
            ("hello", False),
            ("what is this bot about", False),
            ("7", False),
            ("中文中文中文中文", False),
        ],
    )
    def test_what_looks_like_a_code(self, text: str, expected: bool) -> None:
        """Only one short word of letters and digits is tried as a code."""
        assert enrollment.looks_like_code(text) is expected

    def test_a_code_links_once(self, ctx: AppContext) -> None:
        """A valid code links the account and cannot be used again."""
        physician = make_physician(ctx)
        created = make_patient(ctx, physician_id=physician.physician_id)
        first = enrollment.enroll(
            ctx, telegram_user_id=1, chat_id=1, code_text=created.code.code, language="en"
        )
        assert first.outcome is Enrolled.PATIENT_LINKED
        assert first.patient is not None
        assert first.patient.step == patients.STEP_LANGUAGE
        again = enrollment.enroll(
            ctx, telegram_user_id=2, chat_id=2, code_text=created.code.code, language="en"
        )
        assert again.outcome is Enrolled.INVALID

    def test_rate_limit_per_account_and_hour(self, ctx: AppContext, clock: FixedClock) -> None:
        """Five wrong codes lock one account for an hour; another account is not affected."""
        physician = make_physician(ctx)
        created = make_patient(ctx, physician_id=physician.physician_id)
        outcomes = [
            enrollment.enroll(
                ctx, telegram_user_id=1, chat_id=1, code_text=f"WRONG{n}XX", language="en"
            ).outcome
            for n in range(6)
        ]
        assert outcomes == [Enrolled.INVALID] * 4 + [Enrolled.RATE_LIMITED] * 2
        assert (
            enrollment.enroll(
                ctx, telegram_user_id=1, chat_id=1, code_text=created.code.code, language="en"
            ).outcome
            is Enrolled.RATE_LIMITED
        )
        other = enrollment.enroll(
            ctx, telegram_user_id=2, chat_id=2, code_text="WRONGXXXX", language="en"
        )
        assert other.outcome is Enrolled.INVALID
        clock.advance(timedelta(minutes=61))
        linked = enrollment.enroll(
            ctx, telegram_user_id=1, chat_id=1, code_text=created.code.code, language="en"
        )
        assert linked.outcome is Enrolled.PATIENT_LINKED

    def test_a_fresh_code_moves_the_patient_to_a_new_phone(self, ctx: AppContext) -> None:
        """A patient re-invited by the clinic links their new account; the old one is unlinked."""
        patient_id = active_patient(ctx, user=1)
        code = staff.new_patient_code(ctx, clinic_ref=clinic_ref_of(ctx, patient_id))
        moved = enrollment.enroll(
            ctx, telegram_user_id=2, chat_id=2, code_text=code.code, language="en"
        )
        assert moved.outcome is Enrolled.PATIENT_LINKED
        assert moved.patient is not None
        assert moved.patient.status == PatientStatus.ACTIVE.value  # set-up is kept
        assert enrollment.identify(ctx, telegram_user_id=1, language="en").kind == "unknown"
        assert enrollment.identify(ctx, telegram_user_id=2, language="en").patient_id == patient_id


class TestQuestionnaireService:
    def test_simultaneous_answers_to_one_item_store_one(self, ctx: AppContext) -> None:
        """Two processes handling the same press at once record exactly one answer."""
        active_patient(ctx)
        opened = questionnaire.checkin(ctx, telegram_user_id=USER)
        assert opened.view is not None
        administration_id = opened.view.administration_id
        barrier = threading.Barrier(4)
        outcomes: list[questionnaire.QuestionnaireReply] = []

        def press(value: int) -> None:
            barrier.wait()
            outcomes.append(
                questionnaire.answer(
                    ctx,
                    telegram_user_id=USER,
                    administration_id=administration_id,
                    item="q1",
                    value=value,
                )
            )

        threads = [threading.Thread(target=press, args=(value,)) for value in (3, 3, 7, 9)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(reply.recorded for reply in outcomes) == [False, False, False, True]
        stored = answers_of(ctx, administration_id)
        assert list(stored) == ["q1"]
        assert stored["q1"].version == 1
        assert len(audit_of(ctx, _patient(ctx), "answer")) == 1

    def test_confirm_scores_with_the_lab_in_the_window(self, ctx: AppContext) -> None:
        """Confirming computes BASDAI, and ASDAS-CRP from a CRP drawn within the window."""
        patient_id = active_patient(ctx)
        labs.add_lab_values(
            ctx,
            clinic_ref=clinic_ref_of(ctx, patient_id),
            drawn=(ctx.clock.now() - timedelta(days=2)).isoformat(timespec="minutes"),
            entered_by="test",
            crp="64.6",
            crp_unit="mg/L",
        )
        administration_id = answer_all(ctx, USER, [4, 5, 0, 3, 4, 60, 5])
        done = questionnaire.confirm(
            ctx, telegram_user_id=USER, administration_id=administration_id
        )
        assert done.outcome is Outcome.COMPLETED
        assert done.result is not None
        assert done.result.basdai == Decimal("3.3")
        assert done.result.asdas_kind == "CRP"
        score = score_of(ctx, administration_id)
        assert score is not None
        assert score.asdas_crp is not None
        assert f"{score.asdas_crp:.3f}" == "3.876"  # clinical spec §5
        again = questionnaire.confirm(
            ctx, telegram_user_id=USER, administration_id=administration_id
        )
        assert again.outcome is Outcome.ALREADY_COMPLETED

    def test_one_extra_questionnaire_per_local_day(
        self, ctx: AppContext, clock: FixedClock
    ) -> None:
        """A second /checkin resumes; after completing, another waits for the next local day."""
        active_patient(ctx)
        first = questionnaire.checkin(ctx, telegram_user_id=USER)
        assert first.view is not None
        assert not first.resumed
        again = questionnaire.checkin(ctx, telegram_user_id=USER)
        assert again.resumed
        assert again.view is not None
        assert again.view.administration_id == first.view.administration_id
        administration_id = first.view.administration_id
        for item, value in zip(
            ["q1", "q2", "q3", "q4", "q5", "q6", "patient_global"], [1] * 6 + [2], strict=True
        ):
            questionnaire.answer(
                ctx,
                telegram_user_id=USER,
                administration_id=administration_id,
                item=item,
                value=value if item != "q6" else 15,
            )
        questionnaire.confirm(ctx, telegram_user_id=USER, administration_id=administration_id)
        limited = questionnaire.checkin(ctx, telegram_user_id=USER)
        assert limited.outcome is Outcome.CHECKIN_LIMIT
        assert limited.next_slot is not None
        clock.advance(timedelta(hours=14))  # T0 is 10:00 in Berlin; now the next local day
        assert questionnaire.checkin(ctx, telegram_user_id=USER).outcome is Outcome.SHOW
        opened = administrations_of(ctx, _patient(ctx))[-1]
        assert opened.kind == AdministrationKind.CHECKIN.value
        assert opened.expires_at == ctx.clock.now() + timedelta(days=ctx.settings.expiry_days)

    def test_starting_a_scheduled_questionnaire_uses_the_current_language(
        self, ctx: AppContext
    ) -> None:
        """A questionnaire opened in English, started after a switch to Chinese, asks in Chinese."""
        patient_id = active_patient(ctx)
        now = ctx.clock.now()
        with ctx.session() as session:
            created = administrations.create_administration(
                session=session,
                patient_id=patient_id,
                kind=AdministrationKind.SCHEDULED.value,
                slot_at=now,
                now=now,
                expires_at=now + timedelta(days=3),
                instrument_version=INSTRUMENT_VERSION,
                language="en",
            )
            assert created is not None
            administration_id = created.id or 0
        patients.choose(ctx, telegram_user_id=USER, step="lang", value="zh")
        started = questionnaire.start(
            ctx, telegram_user_id=USER, administration_id=administration_id
        )
        assert started.view is not None
        assert (started.view.language, started.view.position) == ("zh", "q1")

    def test_another_patients_questionnaire_is_not_yours(self, ctx: AppContext) -> None:
        """Buttons naming someone else's questionnaire are refused without a trace."""
        active_patient(ctx, user=1)
        active_patient(ctx, user=2)
        theirs = questionnaire.checkin(ctx, telegram_user_id=1)
        assert theirs.view is not None
        reply = questionnaire.answer(
            ctx,
            telegram_user_id=2,
            administration_id=theirs.view.administration_id,
            item="q1",
            value=5,
        )
        assert reply.outcome is Outcome.NOT_YOURS
        assert answers_of(ctx, theirs.view.administration_id) == {}


class TestAccountService:
    def test_paused_patient_resumes_by_itself(self, ctx: AppContext, clock: FixedClock) -> None:
        """A pause ends on its own date, and /status counts the next slot from there."""
        active_patient(ctx)
        patients.choose(ctx, telegram_user_id=USER, step="pause", value="1")
        status = history.my_status(ctx, telegram_user_id=USER)
        assert status is not None
        assert status.status == PatientStatus.PAUSED.value
        assert status.next_slot is not None
        assert status.next_slot >= ctx.clock.now() + timedelta(weeks=1)
        clock.advance(timedelta(weeks=1, hours=1))
        later = history.my_status(ctx, telegram_user_id=USER)
        assert later is not None
        assert later.status == PatientStatus.ACTIVE.value

    def test_a_button_press_after_the_pause_lifts_it(
        self, ctx: AppContext, clock: FixedClock
    ) -> None:
        """A patient whose pause has ended answers with a button: the answer is stored and
        the patient is active again, with no pause left."""
        patient_id = active_patient(ctx)
        opened = questionnaire.checkin(ctx, telegram_user_id=USER)
        assert opened.view is not None
        with ctx.session() as session:  # a pause ending before the check-in expires
            paused = patient_storage.get_patient(session=session, patient_id=patient_id)
            assert paused is not None
            paused.status = PatientStatus.PAUSED.value
            paused.paused_until = clock.now() + timedelta(hours=1)
            patient_storage.save_patient(session=session, patient=paused)
        clock.advance(timedelta(hours=2))
        reply = questionnaire.answer(
            ctx,
            telegram_user_id=USER,
            administration_id=opened.view.administration_id,
            item="q1",
            value=4,
        )
        assert reply.recorded, reply
        with ctx.session() as session:
            patient = patient_storage.get_patient(session=session, patient_id=patient_id)
            assert patient is not None
            assert patient.status == PatientStatus.ACTIVE.value
            assert patient.paused_until is None

    def test_deletion_only_after_both_confirmations(self, ctx: AppContext) -> None:
        """The final delete button works only after the two confirmation steps, in order."""
        patient_id = active_patient(ctx)
        assert patients.choose(ctx, telegram_user_id=USER, step="stop", value="delete3").notice == (
            "stale"
        )
        assert patients.choose(ctx, telegram_user_id=USER, step="stop", value="delete").screen == (
            patients.AccountScreen.STOP_CONFIRM_1
        )
        assert patients.choose(ctx, telegram_user_id=USER, step="stop", value="delete3").notice == (
            "stale"
        )
        assert patients.choose(ctx, telegram_user_id=USER, step="stop", value="delete2").screen == (
            patients.AccountScreen.STOP_CONFIRM_2
        )
        deleted = patients.choose(ctx, telegram_user_id=USER, step="stop", value="delete3")
        assert deleted.screen is patients.AccountScreen.STOP_DELETED
        assert enrollment.identify(ctx, telegram_user_id=USER, language="en").kind == "unknown"
        assert administrations_of(ctx, patient_id) == []

    @pytest.mark.parametrize(
        ("typed", "zone"),
        [("Europe/Paris", "Europe/Paris"), ("asia/shanghai", "Asia/Shanghai"), ("Mars", None)],
    )
    def test_typed_time_zones(self, typed: str, zone: str | None) -> None:
        """Typed IANA names are matched regardless of case; unknown names are refused."""
        assert patients.resolve_timezone(typed) == zone

    @pytest.mark.parametrize(
        ("typed", "valid"), [("19:30", True), ("7.15", True), ("25:00", False)]
    )
    def test_typed_times(self, typed: str, valid: bool) -> None:
        """A typed time is hours and optional minutes within the day."""
        assert (patients.parse_time(typed) is not None) is valid


def clinic_ref_of(ctx: AppContext, patient_id: int) -> str:
    with ctx.session() as session:
        patient = patient_storage.get_patient(session=session, patient_id=patient_id)
        assert patient is not None
        return patient.clinic_ref


def _patient(ctx: AppContext) -> int:
    found = enrollment.identify(ctx, telegram_user_id=USER, language="en").patient_id
    assert found is not None
    return found


def _answer_first_item(ctx: AppContext, administration_id: int) -> None:
    reply = questionnaire.answer(
        ctx, telegram_user_id=USER, administration_id=administration_id, item="q1", value=4
    )
    assert reply.recorded, reply


class TestUpdateClaim:
    """The claim that an update is handled once commits with the first unit of work it joins."""

    def _claimed(self, ctx: AppContext, update_id: int, key: str) -> AppContext:
        return ctx.claiming(updates.update_claim(ctx, update_id=update_id, message_key=key))

    def test_claim_and_answer_commit_together(self, ctx: AppContext) -> None:
        """The answer that carried the claim is stored once; the same press delivered again
        (same update, or the same press under a new update id) is refused and stores nothing."""
        active_patient(ctx)
        opened = questionnaire.checkin(ctx, telegram_user_id=USER)
        assert opened.view is not None
        administration_id = opened.view.administration_id
        first = self._claimed(ctx, 10, "q:press-1")
        _answer_first_item(first, administration_id)
        assert first.claim is not None
        assert first.claim.settled
        for update_id in (10, 11):
            again = self._claimed(ctx, update_id, "q:press-1")
            with pytest.raises(RedeliveredUpdate):
                _answer_first_item(again, administration_id)
        assert {
            item: answer.version for item, answer in answers_of(ctx, administration_id).items()
        } == {"q1": 1}

    def test_a_failed_unit_of_work_leaves_the_update_unclaimed(self, ctx: AppContext) -> None:
        """When the work carrying the claim fails, both roll back: the redelivered update is
        handled then, instead of being skipped with its answer lost."""
        active_patient(ctx)
        opened = questionnaire.checkin(ctx, telegram_user_id=USER)
        assert opened.view is not None
        administration_id = opened.view.administration_id
        failing = self._claimed(ctx, 20, "q:press-2")
        with pytest.raises(RuntimeError), failing.session():
            raise RuntimeError("the database went away")
        assert failing.claim is not None
        assert not failing.claim.settled
        redelivered = self._claimed(ctx, 20, "q:press-2")
        _answer_first_item(redelivered, administration_id)
        assert set(answers_of(ctx, administration_id)) == {"q1"}

    def test_an_update_without_work_is_claimed_on_its_own(self, ctx: AppContext) -> None:
        """An update whose handlers opened no unit of work is claimed at the end, once."""
        updates.settle_claim(self._claimed(ctx, 30, "m:1:1"))
        with pytest.raises(RedeliveredUpdate):
            updates.settle_claim(self._claimed(ctx, 31, "m:1:1"))

    def test_the_root_context_carries_no_claim(self, ctx: AppContext) -> None:
        """Work outside an update (the tick, the web app) takes no claim, and a context of one
        update leaves the root's untouched."""
        scoped = self._claimed(ctx, 40, "m:1:2")
        assert ctx.claim is None
        with ctx.session():
            pass
        updates.settle_claim(scoped)
        assert scoped.claim is not None
        assert scoped.claim.settled
