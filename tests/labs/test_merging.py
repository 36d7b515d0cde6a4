"""Lab values entered through the service complete the ASDAS of questionnaires in their window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from bot.context import AppContext
from bot.domain import scoring
from bot.domain.labs import LabInputError
from bot.services import labs
from storage import audit
from tests.labs.conftest import Clinic, as_stored, asdas_crp_of, questionnaire, score_of

DONE = datetime(2026, 2, 20, 18, 0, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%MZ")


def add_crp(
    ctx: AppContext, ref: str, value: str, at: datetime, unit: str = "mg/L"
) -> labs.StoreOutcome:
    (outcome,) = labs.add_lab_values(
        ctx, clinic_ref=ref, drawn=iso(at), entered_by="cli:test", crp=value, crp_unit=unit
    )
    return outcome


def case_asdas(crp: str) -> Decimal:
    """ASDAS-CRP of the test questionnaire (back pain 2, stiffness 15 min, global 2,
    peripheral 0) with this CRP in mg/L, as stored."""
    return as_stored(scoring.asdas_crp(2, scoring.stiffness_minutes_to_score(15), 2, 0, crp))


class TestWindowMatching:
    def test_lab_before_completion(self, ctx: AppContext, clinic: Clinic) -> None:
        """A CRP drawn three days before completion is used, with its id as provenance."""
        lab = add_crp(ctx, "MRN-0001", "7.59", DONE - timedelta(days=3))
        administration = questionnaire(ctx, patient_id=clinic.patient_1, completed_at=DONE)
        record = score_of(ctx, administration)
        assert record.asdas_crp == case_asdas("7.59")
        assert record.asdas_crp_lab_id == lab.lab.lab_id
        assert not record.crp_floored
        assert scoring.display_round(record.asdas_crp) == "1.8"
        assert scoring.asdas_category(record.asdas_crp) is scoring.AsdasState.LOW

    def test_late_lab_after_completion(self, ctx: AppContext, clinic: Clinic) -> None:
        """A CRP drawn two days after completion, entered later, completes the ASDAS."""
        administration = questionnaire(ctx, patient_id=clinic.patient_1, completed_at=DONE)
        assert asdas_crp_of(ctx, administration) is None
        lab = add_crp(ctx, "MRN-0001", "7.59", DONE + timedelta(days=2))
        assert lab.recomputed == (administration,)
        assert asdas_crp_of(ctx, administration) == case_asdas("7.59")

    def test_tie_takes_the_earlier_sample(self, ctx: AppContext, clinic: Clinic) -> None:
        """Two CRPs equally far before and after: the earlier one is used (clinical spec §4)."""
        administration = questionnaire(ctx, patient_id=clinic.patient_1, completed_at=DONE)
        after = add_crp(ctx, "MRN-0001", "20", DONE + timedelta(days=3))
        before = add_crp(ctx, "MRN-0001", "7.59", DONE - timedelta(days=3))
        record = score_of(ctx, administration)
        assert record.asdas_crp_lab_id == before.lab.lab_id != after.lab.lab_id
        assert record.asdas_crp == case_asdas("7.59")

    def test_nothing_in_window_means_no_asdas(self, ctx: AppContext, clinic: Clinic) -> None:
        """A CRP eight days away is outside ±7 days: BASDAI only, ASDAS-CRP is not imputed."""
        add_crp(ctx, "MRN-0001", "7.59", DONE - timedelta(days=8))
        administration = questionnaire(ctx, patient_id=clinic.patient_1, completed_at=DONE)
        record = score_of(ctx, administration)
        assert record.basdai is not None
        assert record.asdas_crp is None
        assert record.asdas_crp_lab_id is None

    def test_several_labs_the_nearest_wins(self, ctx: AppContext, clinic: Clinic) -> None:
        """Of four CRPs in and out of the window, the one nearest to completion is used."""
        administration = questionnaire(ctx, patient_id=clinic.patient_1, completed_at=DONE)
        add_crp(ctx, "MRN-0001", "30", DONE - timedelta(days=6))
        nearest = add_crp(ctx, "MRN-0001", "7.59", DONE + timedelta(hours=20))
        add_crp(ctx, "MRN-0001", "12", DONE - timedelta(days=2))
        add_crp(ctx, "MRN-0001", "2.5", DONE + timedelta(days=9))
        assert score_of(ctx, administration).asdas_crp_lab_id == nearest.lab.lab_id

    def test_one_lab_serves_every_questionnaire_in_its_window(
        self, ctx: AppContext, clinic: Clinic
    ) -> None:
        """A late CRP completes each weekly questionnaire within ±7 days of it, not others."""
        first = questionnaire(ctx, patient_id=clinic.patient_1, completed_at=DONE)
        second = questionnaire(
            ctx, patient_id=clinic.patient_1, completed_at=DONE + timedelta(days=7)
        )
        far = questionnaire(
            ctx, patient_id=clinic.patient_1, completed_at=DONE + timedelta(days=14)
        )
        outcome = add_crp(ctx, "MRN-0001", "7.59", DONE + timedelta(days=3))
        assert set(outcome.recomputed) == {first, second}
        assert asdas_crp_of(ctx, first) == asdas_crp_of(ctx, second) == case_asdas("7.59")
        assert asdas_crp_of(ctx, far) is None

    def test_another_patients_lab_is_never_used(self, ctx: AppContext, clinic: Clinic) -> None:
        """A CRP of MRN-0002 drawn at the same moment leaves MRN-0001's ASDAS empty."""
        administration = questionnaire(ctx, patient_id=clinic.patient_1, completed_at=DONE)
        add_crp(ctx, "MRN-0002", "7.59", DONE)
        assert asdas_crp_of(ctx, administration) is None

    def test_esr_gives_asdas_esr_alongside(self, ctx: AppContext, clinic: Clinic) -> None:
        """CRP and ESR of one sample give both ASDAS-CRP and ASDAS-ESR (clinical spec §2)."""
        administration = questionnaire(ctx, patient_id=clinic.patient_1, completed_at=DONE)
        outcomes = labs.add_lab_values(
            ctx,
            clinic_ref="MRN-0001",
            drawn="2026-02-19",
            entered_by="cli:test",
            crp="7.59",
            esr="16",
        )
        record = score_of(ctx, administration)
        assert record.asdas_crp == case_asdas("7.59")
        assert record.asdas_esr == as_stored(
            scoring.asdas_esr(2, scoring.stiffness_minutes_to_score(15), 2, 0, 16)
        )
        assert record.asdas_esr_lab_id == outcomes[1].lab.lab_id


class TestUnitsAndFloor:
    def test_mg_dl_gives_the_same_asdas_as_mg_l(self, ctx: AppContext, clinic: Clinic) -> None:
        """0.759 mg/dL is stored as entered and scores exactly as 7.59 mg/L."""
        administration = questionnaire(ctx, patient_id=clinic.patient_1, completed_at=DONE)
        outcome = add_crp(ctx, "MRN-0001", "0.759", DONE, unit="mg/dL")
        assert (str(outcome.lab.value), outcome.lab.unit) == ("0.759", "mg/dL")
        assert outcome.lab.value_normalised == Decimal("7.59")
        assert asdas_crp_of(ctx, administration) == case_asdas("7.59")

    def test_below_detection_limit_uses_the_floor(self, ctx: AppContext, clinic: Clinic) -> None:
        """ "<5" mg/L is recorded as below the limit and ASDAS-CRP uses 2 mg/L, marked floored."""
        administration = questionnaire(ctx, patient_id=clinic.patient_1, completed_at=DONE)
        outcome = add_crp(ctx, "MRN-0001", "<5", DONE)
        assert outcome.lab.below_detection_limit
        assert outcome.lab.floored
        record = score_of(ctx, administration)
        assert record.crp_floored
        assert record.asdas_crp == case_asdas("2")

    def test_measured_value_under_two_is_floored(self, ctx: AppContext, clinic: Clinic) -> None:
        """A measured 1.2 mg/L counts as 2 mg/L; exactly 2 mg/L is used as measured."""
        administration = questionnaire(ctx, patient_id=clinic.patient_1, completed_at=DONE)
        add_crp(ctx, "MRN-0001", "1.2", DONE)
        assert score_of(ctx, administration).crp_floored
        other = questionnaire(ctx, patient_id=clinic.patient_2, completed_at=DONE)
        add_crp(ctx, "MRN-0002", "2", DONE)
        assert not score_of(ctx, other).crp_floored
        assert asdas_crp_of(ctx, other) == asdas_crp_of(ctx, administration)


class TestEntryRules:
    def test_every_value_is_audited(self, ctx: AppContext, clinic: Clinic) -> None:
        """Storing a value appends a "create" event with who entered it and the exact value."""
        outcome = add_crp(ctx, "MRN-0001", "7.59", DONE)
        with ctx.session() as session:
            (event,) = audit.list_events(session=session, entity="lab")
        assert (event.action, event.actor, event.entity_id) == (
            "create",
            "cli:test",
            outcome.lab.lab_id,
        )
        assert event.patient_id == clinic.patient_1
        assert '"value": "7.59"' in (event.after or "")

    def test_the_same_sample_twice_is_a_duplicate(self, ctx: AppContext, clinic: Clinic) -> None:
        """Entering the same value for the same sample again stores nothing new."""
        first = add_crp(ctx, "MRN-0001", "7.59", DONE)
        again = add_crp(ctx, "MRN-0001", "0.759", DONE, unit="mg/dL")
        assert again.status == labs.DUPLICATE
        assert again.lab.lab_id == first.lab.lab_id
        assert len(labs.list_lab_values(ctx, clinic_ref="MRN-0001")) == 1

    def test_a_different_value_for_a_stored_sample_is_refused(
        self, ctx: AppContext, clinic: Clinic
    ) -> None:
        """A second, different CRP for the same sample is refused, pointing at `lab fix`."""
        first = add_crp(ctx, "MRN-0001", "7.59", DONE)
        with pytest.raises(LabInputError) as caught:
            add_crp(ctx, "MRN-0001", "8.1", DONE)
        assert caught.value.code == "same_sample_differs"
        assert caught.value.params["lab_id"] == first.lab.lab_id
        assert caught.value.params["stored"] == Decimal("7.59")
        assert caught.value.params["unit"] == "mg/L"

    def test_one_bad_value_refuses_the_whole_entry(self, ctx: AppContext, clinic: Clinic) -> None:
        """A good CRP with an implausible ESR stores neither."""
        with pytest.raises(LabInputError):
            labs.add_lab_values(
                ctx,
                clinic_ref="MRN-0001",
                drawn="2026-02-20",
                entered_by="cli:test",
                crp="7.59",
                esr="250",
            )
        assert labs.list_lab_values(ctx, clinic_ref="MRN-0001") == []

    def test_unknown_patient(self, ctx: AppContext, clinic: Clinic) -> None:
        """A reference no patient has is refused and names the reference."""
        with pytest.raises(LabInputError) as caught:
            add_crp(ctx, "MRN-9999", "7.59", DONE)
        assert (caught.value.code, caught.value.params) == ("patient_unknown", {"ref": "MRN-9999"})
