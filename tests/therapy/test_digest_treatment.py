"""The physician's digest gains the treatment course (§7) and the week's safety answers (§8)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine

from bot.clock import FixedClock
from bot.context import AppContext
from bot.digest_render import render_text
from bot.render import default_renderer
from bot.services import digest, labs, safety, therapy
from bot.services.digest import IsoWeek, TreatmentKind
from tests.conftest import make_settings
from tests.factories import make_active_patient, make_physician
from tests.therapy.conftest import CASE_AFTER, CASE_BEFORE, typed_questionnaire

USER = 5151
FOLLOW_UP = datetime(2025, 8, 15, 10, 0, tzinfo=UTC)  # a Friday of ISO week 2025-W33


@pytest.fixture
async def case_ctx(
    database_url: str, migrated_engine: Engine, clock: FixedClock
) -> AsyncIterator[AppContext]:
    """Check-ins on, the clock in the week after the follow-up."""
    clock.set(datetime(2025, 8, 18, 9, 0, tzinfo=UTC))
    settings = make_settings(database_url, safety_checkins=True, emergency_number="112")
    context = AppContext(settings=settings, engine=migrated_engine, clock=clock)
    yield context
    await context.aclose()


def seed_case(ctx: AppContext) -> int:
    """The published case as an active patient of a physician; returns the physician id."""
    physician = make_physician(ctx, name="Dr. Lee")
    patient_id = make_active_patient(
        ctx, physician_id=physician.physician_id, telegram_user_id=USER, ref="MRN-0042"
    )
    for drug, therapy_class, start in (
        ("adalimumab", "tnf_inhibitor", "2024-06-03"),
        ("upadacitinib", "jak_inhibitor", "2025-03-03"),
    ):
        therapy.add_therapy(
            ctx, clinic_ref="MRN-0042", drug=drug, therapy_class=therapy_class, start=start,
            actor="test",
        )  # fmt: skip
    for crp, drawn in (("64.6", "2025-02-28 09:00"), ("7.59", "2025-08-15 09:00")):
        labs.add_lab_values(ctx, clinic_ref="MRN-0042", drawn=drawn, entered_by="test", crp=crp)
    typed_questionnaire(
        ctx, patient_id=patient_id, completed_at=datetime(2025, 2, 28, 10, tzinfo=UTC),
        answers=CASE_BEFORE,
    )  # fmt: skip
    typed_questionnaire(ctx, patient_id=patient_id, completed_at=FOLLOW_UP, answers=CASE_AFTER)
    return physician.physician_id


class TestTreatmentSection:
    def test_response_assessed_this_week_with_the_numbers(self, case_ctx: AppContext) -> None:
        """The week of the follow-up lists upadacitinib's response: 3.9 → 1.8, CRP, BASDAI."""
        physician_id = seed_case(case_ctx)
        built = digest.build_digest(case_ctx, physician_id=physician_id, week=IsoWeek(2025, 33))
        assert built is not None
        assert [(n.therapy.drug, n.kind) for n in built.treatment] == [
            ("upadacitinib", TreatmentKind.ASSESSED)
        ]
        text = render_text(built, default_renderer())
        assert "Treatment course" in text
        assert (
            "<b>MRN-0042</b> · upadacitinib · response assessed: week 23 (2025-08-15): "
            "ASDAS-CRP 3.9 → 1.8 (low disease activity), CRP 64.6 → 7.59 mg/L: major "
            "improvement, low disease activity target reached; BASDAI 3.8 → 1.4: BASDAI50 met; "
            "ASAS/EULAR response met"
        ) in text

    def test_assessment_due_in_the_coming_weeks(self, case_ctx: AppContext) -> None:
        """Four weeks before week 12 the digest says the assessment is coming."""
        physician_id = seed_case(case_ctx)
        built = digest.build_digest(case_ctx, physician_id=physician_id, week=IsoWeek(2025, 19))
        assert built is not None
        assert [(n.therapy.drug, n.kind) for n in built.treatment] == [
            ("upadacitinib", TreatmentKind.DUE)
        ]
        assert "response assessment due 2025-05-26 to 2025-08-18" in render_text(
            built, default_renderer()
        )


class TestSafetySection:
    def test_the_weeks_yes_answers_with_dates(self, case_ctx: AppContext) -> None:
        """A "doses" yes with its note and a fever yes appear with their dates; "no" does not."""
        physician_id = seed_case(case_ctx)
        case_ctx.clock.set(FOLLOW_UP + timedelta(hours=2))  # type: ignore[attr-defined]
        opened = safety.report(case_ctx, telegram_user_id=USER)
        assert opened.view is not None
        checkin_id = opened.view.checkin_id
        for code in ("fever_infection", "hospital", "zoster", "eye", "vte_chest", "bowel", "skin"):
            safety.answer(
                case_ctx, telegram_user_id=USER, checkin_id=checkin_id, code=code,
                yes=code == "fever_infection",
            )  # fmt: skip
        safety.answer(
            case_ctx, telegram_user_id=USER, checkin_id=checkin_id, code="doses", yes=True
        )
        safety.note(case_ctx, telegram_user_id=USER, text="skipped the injection")
        built = digest.build_digest(case_ctx, physician_id=physician_id, week=IsoWeek(2025, 33))
        assert built is not None
        assert [(n.question, n.alerted_now) for n in built.safety] == [
            ("fever_infection", True),
            ("doses", False),
        ]
        text = render_text(built, default_renderer())
        assert "<b>MRN-0042</b>, 2025-08-15: fever or infection · alerted at once" in text
        assert (
            "<b>MRN-0042</b>, 2025-08-15: missed or stopped doses (“skipped the injection”)" in text
        )
        later = digest.build_digest(case_ctx, physician_id=physician_id, week=IsoWeek(2025, 34))
        assert later is not None
        assert later.safety == ()
