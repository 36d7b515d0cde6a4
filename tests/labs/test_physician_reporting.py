"""What a physician reads in /patients and /patient follows the reporting rules (spec §6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.context import AppContext
from bot.domain.scoring import AsdasState
from bot.present.physician import render_detail, render_list
from bot.present.render import default_renderer
from bot.services import labs, physician_panel
from tests.labs.conftest import Clinic, questionnaire
from tests.labs.test_physician_service import DR_A, PATIENT, link

DONE = datetime(2026, 2, 20, 18, 0, tzinfo=UTC)
HIGH = {"q1": 6, "q2": 8, "q3": 6, "q4": 6, "q5": 6, "q6": 90, "patient_global": 8}
"""BASDAI 6.6; ASDAS-ESR 4.3 with an ESR of 36 mm/h."""


@pytest.fixture
def linked(ctx: AppContext, clinic: Clinic) -> Clinic:
    """Dr A and the patient MRN-0001 have linked their accounts."""
    link(ctx, DR_A, clinic.codes["dr_a"])
    link(ctx, PATIENT, clinic.codes["MRN-0001"])
    return clinic


def _listed(ctx: AppContext) -> str:
    found = physician_panel.patient_list(ctx, telegram_user_id=DR_A)
    assert found is not None
    return render_list(default_renderer(), found)


class TestPatientList:
    def test_esr_only_patient_shows_asdas_esr_with_its_lab_date(
        self, ctx: AppContext, linked: Clinic
    ) -> None:
        """Only ESR: /patients shows ASDAS-ESR with state and the day it was drawn, and the
        attention flag, never "awaiting CRP"."""
        questionnaire(ctx, patient_id=linked.patient_1, completed_at=DONE, answers=HIGH)
        labs.add_lab_values(
            ctx, clinic_ref="MRN-0001", drawn="2026-02-18", entered_by="cli:x", esr="36"
        )
        found = physician_panel.patient_list(ctx, telegram_user_id=DR_A)
        assert found is not None
        row = found.rows[0]
        assert (row.asdas_kind, row.asdas_state) == ("ESR", AsdasState.VERY_HIGH)
        assert "asdas_very_high" in row.flags
        assert "awaiting_crp" not in row.flags
        text = _listed(ctx)
        line = next(ln for ln in text.splitlines() if "MRN-0001" in ln)
        assert "ASDAS-ESR 4.3 (very high disease activity), lab 2026-02-18" in line
        assert "ASDAS-ESR very high disease activity" in text

    def test_crp_asdas_is_shown_with_the_date_of_its_crp(
        self, ctx: AppContext, linked: Clinic
    ) -> None:
        """An ASDAS-CRP in /patients carries the date its CRP was drawn."""
        questionnaire(ctx, patient_id=linked.patient_1, completed_at=DONE)
        labs.add_lab_values(
            ctx, clinic_ref="MRN-0001", drawn="2026-02-19", entered_by="cli:x", crp="7.59"
        )
        text = _listed(ctx)
        line = next(ln for ln in text.splitlines() if "MRN-0001" in ln)
        assert "ASDAS-CRP 1.8 (low disease activity)" in line
        assert "2026-02-19" in line


class TestPatientDetail:
    def test_basdai50_and_asas_eular_response_are_reported_side_by_side(
        self, ctx: AppContext, linked: Clinic
    ) -> None:
        """BASDAI 6.6 → 4.6 (2 points, not half): ASAS/EULAR met, BASDAI50 not met."""
        questionnaire(ctx, patient_id=linked.patient_1, completed_at=DONE, answers=HIGH)
        lower = dict(HIGH, q1=4, q2=6, q3=4, q4=4, q5=4, q6=30)
        questionnaire(
            ctx, patient_id=linked.patient_1, completed_at=DONE + timedelta(days=28), answers=lower
        )
        ctx.clock.advance(timedelta(days=30))  # type: ignore[attr-defined]
        reply = physician_panel.patient_detail(ctx, telegram_user_id=DR_A, clinic_ref="MRN-0001")
        assert reply is not None
        assert reply.detail is not None
        summary = reply.detail.summary
        assert (summary.basdai50, summary.basdai_asas_eular) == (False, True)
        text = render_detail(default_renderer(), reply.detail, 7, 12)
        assert "BASDAI50 not met" in text
        assert "ASAS/EULAR BASDAI response (≥ 50 % or ≥ 2 points) met" in text
