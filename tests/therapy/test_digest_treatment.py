"""The physician's digest gains the treatment course (§7) and the week's safety answers (§8)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine

from bot.clock import FixedClock
from bot.context import AppContext
from bot.domain.attention import Progress
from bot.present.digest.text import render_text
from bot.present.render import default_renderer
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


class TestImprovingAgainstTheEpisodeBaseline:
    """ "Improving" is measured against the current episode's baseline when it has one (§7)."""

    def test_measured_from_the_current_episodes_baseline_and_says_so(
        self, case_ctx: AppContext
    ) -> None:
        """An old low BASDAI before the course does not hide the response: BASDAI is compared
        with upadacitinib's baseline (3.8 → 1.4, BASDAI50), and the line names that baseline."""
        physician_id = seed_case(case_ctx)
        patient = therapy.list_therapies(case_ctx, clinic_ref="MRN-0042")[0].patient_id
        typed_questionnaire(
            case_ctx, patient_id=patient, completed_at=datetime(2024, 5, 6, 10, tzinfo=UTC),
            answers=CASE_AFTER,
        )  # fmt: skip
        built = digest.build_digest(case_ctx, physician_id=physician_id, week=IsoWeek(2025, 33))
        assert built is not None
        (line,) = built.improving
        assert (line.baseline_drug, line.baseline_start) == ("upadacitinib", date(2025, 3, 3))
        kinds = [flag.kind for flag in line.progress]
        assert Progress.BASDAI50 in kinds
        text = render_text(built, default_renderer())
        assert (
            "BASDAI50 reached (BASDAI 3.8 → 1.4 since 28 Feb 2025); ASAS/EULAR BASDAI response "
            "met (≥ 50 % or ≥ 2 points; BASDAI 3.8 → 1.4 since 28 Feb 2025) — measured against "
            "the baseline of upadacitinib (started 3 Mar 2025)"
        ) in text
        zh = dataclasses.replace(built, language="zh")
        assert "以upadacitinib（2025年3月3日开始）的疗程基线计" in render_text(
            zh, default_renderer()
        )

    def test_without_an_episode_as_before(self, case_ctx: AppContext) -> None:
        """A patient without therapy episodes is compared with the first questionnaire, and
        no episode baseline is named."""
        physician = make_physician(case_ctx, name="Dr. Lee")
        patient = make_active_patient(
            case_ctx, physician_id=physician.physician_id, telegram_user_id=USER, ref="MRN-0042"
        )
        labs.add_lab_values(
            case_ctx, clinic_ref="MRN-0042", drawn="2025-02-28 09:00", entered_by="test",
            crp="64.6",
        )  # fmt: skip
        labs.add_lab_values(
            case_ctx, clinic_ref="MRN-0042", drawn="2025-08-15 09:00", entered_by="test",
            crp="7.59",
        )  # fmt: skip
        for moment, answers in ((datetime(2025, 2, 28, 10, tzinfo=UTC), CASE_BEFORE),
                                (FOLLOW_UP, CASE_AFTER)):  # fmt: skip
            typed_questionnaire(case_ctx, patient_id=patient, completed_at=moment, answers=answers)
        built = digest.build_digest(
            case_ctx, physician_id=physician.physician_id, week=IsoWeek(2025, 33)
        )
        assert built is not None
        (line,) = built.improving
        assert line.baseline_drug is None
        text = render_text(built, default_renderer())
        assert "major improvement (ASDAS-CRP 3.9 → 1.8 since 28 Feb 2025)" in text
        assert "measured against the baseline of" not in text


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
