"""Services return values (exact scores, states, dates, flags); `bot.present` rounds them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from bot.context import AppContext
from bot.domain import attention
from bot.domain.scoring import AsdasState
from bot.present.physician import render_detail, render_list, render_pending
from bot.present.render import default_renderer
from bot.present.screens import answer_value, measured, rounded
from bot.services import crp_entry, labs, physician_panel
from bot.services.physician_panel import PendingOutcome
from tests.labs.conftest import Clinic, questionnaire, score_of
from tests.labs.test_physician_service import DR_A, PATIENT, link

DONE = datetime(2026, 2, 20, 18, 0, tzinfo=UTC)


@pytest.fixture
def linked(ctx: AppContext, clinic: Clinic) -> Clinic:
    """Dr A and the patient MRN-0001 have linked their accounts."""
    link(ctx, DR_A, clinic.codes["dr_a"])
    link(ctx, PATIENT, clinic.codes["MRN-0001"])
    return clinic


class TestRounding:
    """The one display rounding of `bot.present` (clinical spec §3)."""

    @pytest.mark.parametrize(
        ("exact", "shown"),
        [
            ("4.55", "4.6"),  # half away from zero; round() would give 4.5
            ("4.45", "4.5"),
            ("1.325", "1.3"),
            ("2.0999", "2.1"),
            ("-0.04", "0.0"),  # never "-0.0"
            ("10", "10.0"),
        ],
    )
    def test_a_score_shows_with_one_decimal_half_away_from_zero(
        self, exact: str, shown: str
    ) -> None:
        """A score reads with one decimal, rounded half away from zero on the exact value."""
        assert str(rounded(Decimal(exact))) == shown

    def test_no_score_stays_none(self) -> None:
        """A missing score stays missing rather than becoming 0."""
        assert rounded(None) is None
        assert measured(None) is None

    def test_lab_values_and_ratings_read_as_entered(self) -> None:
        """A lab value or a rating keeps the precision it was entered with; a stiffness
        duration's 0–10 score is rounded like a score."""
        assert measured(Decimal("7.59")) == "7.59"
        assert measured(Decimal("0.5")) == "0.5"
        assert answer_value(Decimal("7"), None) == "7"
        assert str(answer_value(Decimal("1.25"), 15)) == "1.3"


class TestPhysicianPanelValues:
    def test_patient_list_returns_exact_scores_and_states(
        self, ctx: AppContext, linked: Clinic
    ) -> None:
        """`/patients` rows carry the stored scores, an `AsdasState`, a `Trend` and dates;
        the list text shows them with one decimal."""
        administration = questionnaire(ctx, patient_id=linked.patient_1, completed_at=DONE)
        labs.add_lab_values(
            ctx, clinic_ref="MRN-0001", drawn="2026-02-19", entered_by="cli:x", crp="7.59"
        )
        stored = score_of(ctx, administration)
        found = physician_panel.patient_list(ctx, telegram_user_id=DR_A)
        assert found is not None
        row = found.rows[0]
        assert isinstance(row.basdai, Decimal)
        assert row.basdai == stored.basdai == Decimal("1.325")
        assert isinstance(row.asdas_crp, Decimal)
        assert row.asdas_crp == stored.asdas_crp
        assert row.asdas_state is AsdasState.LOW
        assert isinstance(row.trend, attention.Trend)
        assert isinstance(row.latest_at, datetime)
        assert row.basdai_active is False
        text = render_list(default_renderer(), found)
        assert "1.3" in text
        assert "1.8" in text
        assert "1.325" not in text
        assert "1.76" not in text

    def test_patient_detail_returns_exact_answers_and_lab_values(
        self, ctx: AppContext, linked: Clinic
    ) -> None:
        """`/patient` carries exact answers, lab values and scores; the text rounds scores
        to one decimal and shows the lab value as entered."""
        questionnaire(ctx, patient_id=linked.patient_1, completed_at=DONE)
        labs.add_lab_values(
            ctx, clinic_ref="MRN-0001", drawn="2026-02-19", entered_by="cli:x", crp="7.59"
        )
        ctx.clock.advance(timedelta(days=1))  # type: ignore[attr-defined]
        reply = physician_panel.patient_detail(ctx, telegram_user_id=DR_A, clinic_ref="MRN-0001")
        assert reply is not None
        detail = reply.detail
        assert detail is not None
        assert detail.basdai == Decimal("1.325")
        assert detail.asdas_crp_state is AsdasState.LOW
        assert detail.crp is not None
        assert detail.crp.value == Decimal("7.59")
        duration = [a for a in detail.answers if a.minutes is not None]
        assert [a.minutes for a in duration] == [15]
        assert all(isinstance(a.value, Decimal) for a in detail.answers)
        text = render_detail(default_renderer(), detail, 7, 12)
        assert "1.3" in text
        assert "1.8" in text
        assert "7.59" in text
        assert "1.325" not in text


class TestCrpEntryValues:
    def test_preview_and_save_return_decimals_and_state(
        self, ctx: AppContext, linked: Clinic
    ) -> None:
        """The `/crp` preview carries the converted CRP as a Decimal; Save returns the new
        ASDAS-CRP exact with its `AsdasState`, and the reply shows it with one decimal."""
        administration = questionnaire(ctx, patient_id=linked.patient_1, completed_at=DONE)
        preview = crp_entry.preview_crp(
            ctx, telegram_user_id=DR_A, args=["MRN-0001", "0,759", "mg/dL", "2026-02-19"]
        )
        assert preview is not None
        assert preview.crp_mg_l == Decimal("7.59")
        assert preview.crp is not None
        assert preview.crp.value == Decimal("0.759")
        assert preview.pending_id is not None
        saved = crp_entry.resolve_pending(
            ctx, telegram_user_id=DR_A, pending_id=preview.pending_id, save=True
        )
        assert saved is not None
        assert saved.outcome is PendingOutcome.SAVED
        assert saved.asdas_crp == score_of(ctx, administration).asdas_crp
        assert saved.asdas_crp_state is AsdasState.LOW
        text = render_pending(default_renderer(), saved, 7)
        assert "1.8" in text
        assert "1.76" not in text
