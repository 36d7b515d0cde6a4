"""Correcting and deleting a lab value: the old value stays in the audit trail and every score
that depended on it, or now depends on it, is recomputed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from bot.context import AppContext
from bot.domain import scoring
from bot.domain.labs import LabInputError
from bot.services import labs
from tests.labs.conftest import (
    Clinic,
    as_stored,
    asdas_crp_of,
    lab_events,
    questionnaire,
    score_of,
)

DONE = datetime(2026, 2, 10, 18, 0, tzinfo=UTC)


def case_asdas(crp: str) -> Decimal:
    return as_stored(scoring.asdas_crp(2, scoring.stiffness_minutes_to_score(15), 2, 0, crp))


def add(ctx: AppContext, value: str, drawn: str, unit: str = "mg/L") -> int:
    (outcome,) = labs.add_lab_values(
        ctx, clinic_ref="MRN-0001", drawn=drawn, entered_by="cli:nurse", crp=value, crp_unit=unit
    )
    return outcome.lab.lab_id


class TestFix:
    def test_new_value_is_audited_and_recomputed(self, ctx: AppContext, clinic: Clinic) -> None:
        """Correcting 75.9 to 7.59 keeps 75.9 in the audit trail and rescores the questionnaire."""
        administration = questionnaire(ctx, patient_id=clinic.patient_1, completed_at=DONE)
        lab_id = add(ctx, "75.9", "2026-02-09")
        assert asdas_crp_of(ctx, administration) == case_asdas("75.9")
        outcome = labs.fix_lab_value(
            ctx, lab_id=lab_id, actor="cli:doctor", value="7.59", reason="typo"
        )
        assert outcome.recomputed == (administration,)
        assert asdas_crp_of(ctx, administration) == case_asdas("7.59")
        create, correct = lab_events(ctx, lab_id)
        assert (create.action, correct.action, correct.actor) == ("create", "correct", "cli:doctor")
        assert json.loads(correct.before or "")["value"] == "75.9"
        after = json.loads(correct.after or "")
        assert (after["value"], after["reason"]) == ("7.59", "typo")

    def test_unit_mix_up(self, ctx: AppContext, clinic: Clinic) -> None:
        """Fixing only the unit re-reads the stored number: 0.759 mg/L becomes 7.59 mg/L."""
        administration = questionnaire(ctx, patient_id=clinic.patient_1, completed_at=DONE)
        lab_id = add(ctx, "0.759", "2026-02-09")
        assert score_of(ctx, administration).crp_floored
        outcome = labs.fix_lab_value(ctx, lab_id=lab_id, actor="cli:doctor", unit="mg/dL")
        assert (outcome.after.unit, outcome.after.value_normalised) == ("mg/dL", Decimal("7.59"))
        record = score_of(ctx, administration)
        assert not record.crp_floored
        assert record.asdas_crp == case_asdas("7.59")

    def test_moving_the_date_recomputes_old_and_new_window(
        self, ctx: AppContext, clinic: Clinic
    ) -> None:
        """A CRP moved from one week to the next leaves the first questionnaire awaiting CRP
        and completes the second."""
        first = questionnaire(ctx, patient_id=clinic.patient_1, completed_at=DONE)
        second = questionnaire(
            ctx, patient_id=clinic.patient_1, completed_at=DONE + timedelta(days=14)
        )
        lab_id = add(ctx, "7.59", "2026-02-09")
        assert asdas_crp_of(ctx, first) is not None
        assert asdas_crp_of(ctx, second) is None
        outcome = labs.fix_lab_value(ctx, lab_id=lab_id, actor="cli:doctor", drawn="2026-02-23")
        assert set(outcome.recomputed) == {first, second}
        assert asdas_crp_of(ctx, first) is None
        assert asdas_crp_of(ctx, second) == case_asdas("7.59")
        assert score_of(ctx, second).asdas_crp_lab_id == lab_id

    def test_marking_below_detection_limit(self, ctx: AppContext, clinic: Clinic) -> None:
        """Marking a value as below the detection limit applies the floor from then on."""
        administration = questionnaire(ctx, patient_id=clinic.patient_1, completed_at=DONE)
        lab_id = add(ctx, "5", "2026-02-09")
        labs.fix_lab_value(ctx, lab_id=lab_id, actor="cli:doctor", below_detection_limit=True)
        record = score_of(ctx, administration)
        assert record.crp_floored
        assert record.asdas_crp == case_asdas("2")

    @pytest.mark.parametrize(
        ("change", "code"),
        [
            ({}, "fix_nothing"),
            ({"value": "7.59"}, "fix_nothing"),
            ({"value": "900"}, "crp_implausible"),
            ({"drawn": "2027-01-01"}, "date_future"),
            ({"unit": "mmol/L"}, "unit_unknown"),
        ],
    )
    def test_refused_corrections_change_nothing(
        self, ctx: AppContext, clinic: Clinic, change: dict[str, str], code: str
    ) -> None:
        """A correction that changes nothing or is implausible is refused; no audit event."""
        lab_id = add(ctx, "7.59", "2026-02-09")
        with pytest.raises(LabInputError) as caught:
            labs.fix_lab_value(ctx, lab_id=lab_id, actor="cli:doctor", **change)  # type: ignore[arg-type]
        assert caught.value.code == code
        assert [event.action for event in lab_events(ctx, lab_id)] == ["create"]

    def test_moving_onto_another_stored_sample_is_refused(
        self, ctx: AppContext, clinic: Clinic
    ) -> None:
        """Moving a CRP to the instant of another stored CRP would make two; it is refused."""
        add(ctx, "7.59", "2026-02-09")
        other = add(ctx, "9", "2026-02-12")
        with pytest.raises(LabInputError) as caught:
            labs.fix_lab_value(ctx, lab_id=other, actor="cli:doctor", drawn="2026-02-09")
        assert caught.value.code == "same_sample_differs"

    def test_unknown_lab(self, ctx: AppContext, clinic: Clinic) -> None:
        """A lab id that does not exist is refused by name."""
        with pytest.raises(LabInputError) as caught:
            labs.fix_lab_value(ctx, lab_id=404, actor="cli:doctor", value="1")
        assert caught.value.code == "lab_unknown"


class TestDelete:
    def test_delete_falls_back_to_the_next_nearest(self, ctx: AppContext, clinic: Clinic) -> None:
        """Deleting the CRP a score used rescores it with the next nearest CRP in the window."""
        administration = questionnaire(ctx, patient_id=clinic.patient_1, completed_at=DONE)
        nearest = add(ctx, "30", "2026-02-10 17:00")
        add(ctx, "7.59", "2026-02-07")
        assert score_of(ctx, administration).asdas_crp_lab_id == nearest
        outcome = labs.delete_lab_value(
            ctx, lab_id=nearest, actor="cli:doctor", reason="haemolysed"
        )
        assert outcome.recomputed == (administration,)
        assert outcome.after.deleted
        assert asdas_crp_of(ctx, administration) == case_asdas("7.59")

    def test_delete_the_only_lab_leaves_the_score_awaiting_crp(
        self, ctx: AppContext, clinic: Clinic
    ) -> None:
        """Without another CRP the ASDAS-CRP goes away; it is never imputed."""
        administration = questionnaire(ctx, patient_id=clinic.patient_1, completed_at=DONE)
        lab_id = add(ctx, "7.59", "2026-02-09")
        labs.delete_lab_value(ctx, lab_id=lab_id, actor="cli:doctor")
        record = score_of(ctx, administration)
        assert (record.asdas_crp, record.asdas_crp_lab_id, record.crp_floored) == (
            None,
            None,
            False,
        )
        assert record.basdai is not None

    def test_deletion_is_audited_and_listed_only_on_request(
        self, ctx: AppContext, clinic: Clinic
    ) -> None:
        """The deleted value is in the audit trail and in `lab list --all`, not in the list."""
        lab_id = add(ctx, "7.59", "2026-02-09")
        labs.delete_lab_value(ctx, lab_id=lab_id, actor="cli:doctor", reason="wrong patient")
        deleted = lab_events(ctx, lab_id)[-1]
        assert deleted.action == "delete"
        assert json.loads(deleted.before or "")["value"] == "7.59"
        assert json.loads(deleted.after or "") == {"reason": "wrong patient"}
        assert labs.list_lab_values(ctx, clinic_ref="MRN-0001") == []
        (listed,) = labs.list_lab_values(ctx, clinic_ref="MRN-0001", include_deleted=True)
        assert listed.deleted

    def test_deleted_value_cannot_be_changed_again(self, ctx: AppContext, clinic: Clinic) -> None:
        """Deleting twice, or fixing a deleted value, is refused."""
        lab_id = add(ctx, "7.59", "2026-02-09")
        labs.delete_lab_value(ctx, lab_id=lab_id, actor="cli:doctor")
        for call in (
            lambda: labs.delete_lab_value(ctx, lab_id=lab_id, actor="cli:doctor"),
            lambda: labs.fix_lab_value(ctx, lab_id=lab_id, actor="cli:doctor", value="1"),
        ):
            with pytest.raises(LabInputError) as caught:
                call()
            assert caught.value.code == "lab_deleted"

    def test_the_sample_can_be_entered_again_after_deletion(
        self, ctx: AppContext, clinic: Clinic
    ) -> None:
        """A deleted value no longer blocks entering the right value for that sample."""
        administration = questionnaire(ctx, patient_id=clinic.patient_1, completed_at=DONE)
        lab_id = add(ctx, "75.9", "2026-02-09")
        labs.delete_lab_value(ctx, lab_id=lab_id, actor="cli:doctor")
        new_id = add(ctx, "7.59", "2026-02-09")
        assert new_id != lab_id
        assert score_of(ctx, administration).asdas_crp_lab_id == new_id
