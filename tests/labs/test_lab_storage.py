"""Lab storage on both databases: one current value per sample, and pending chat entries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy.exc import IntegrityError

from bot.context import AppContext
from storage import labs, pending
from storage.models import LabResult, PendingLabEntry
from tests.labs.conftest import Clinic

DRAWN = datetime(2026, 2, 20, 11, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def add(ctx: AppContext, patient_id: int, value: str, *, key: str | None = None) -> LabResult:
    with ctx.session() as session:
        return labs.add_lab_result(
            session=session,
            patient_id=patient_id,
            analyte="crp",
            value=Decimal(value),
            unit="mg/L",
            value_normalised=Decimal(value),
            below_detection_limit=False,
            drawn_at=DRAWN,
            source="cli",
            entered_by="test",
            now=NOW,
            source_key=key,
        )


class TestOneCurrentValuePerSample:
    def test_a_second_current_value_is_refused_by_the_database(
        self, ctx: AppContext, clinic: Clinic
    ) -> None:
        """Even a writer that skipped the service's check cannot store a sample twice."""
        add(ctx, clinic.patient_1, "7.59")
        with pytest.raises(IntegrityError):
            add(ctx, clinic.patient_1, "8")

    def test_a_deleted_value_does_not_block_the_sample(
        self, ctx: AppContext, clinic: Clinic
    ) -> None:
        """After deletion the sample can be stored again; lookups see only the current one."""
        first = add(ctx, clinic.patient_1, "75.9", key="k1")
        with ctx.session() as session:
            stored = labs.get_lab_result(session=session, lab_id=first.id or 0)
            assert stored is not None
            labs.mark_deleted(session=session, lab=stored, now=NOW)
        second = add(ctx, clinic.patient_1, "7.59")
        with ctx.session() as session:
            same = labs.find_same_sample(
                session=session, patient_id=clinic.patient_1, analyte="crp", drawn_at=DRAWN
            )
            imported = labs.get_by_source_key(session=session, source_key="k1")
        assert same is not None
        assert same.id == second.id
        assert imported is not None
        assert imported.id == first.id

    def test_other_patients_and_analytes_are_other_samples(
        self, ctx: AppContext, clinic: Clinic
    ) -> None:
        """The same instant for another patient is another sample."""
        add(ctx, clinic.patient_1, "7.59")
        add(ctx, clinic.patient_2, "7.59")
        with ctx.session() as session:
            assert len(labs.list_lab_results(session=session, patient_id=clinic.patient_2)) == 1


class TestPendingEntries:
    def entry(self, ctx: AppContext, clinic: Clinic) -> int:
        with ctx.session() as session:
            created = labs.create_pending_entry(
                session=session,
                physician_id=clinic.physician_a,
                patient_id=clinic.patient_1,
                crp_value=Decimal("7.59"),
                crp_unit="mg/L",
                crp_below_detection_limit=False,
                esr_value=None,
                drawn_at=DRAWN,
                now=NOW,
                expires_at=NOW + timedelta(hours=24),
            )
            assert created.id is not None
            return created.id

    def resolve(self, ctx: AppContext, entry: int, physician: int, at: datetime = NOW) -> bool:
        with ctx.session() as session:
            return pending.resolve_pending(
                session=session,
                model=PendingLabEntry,
                row_id=entry,
                physician_id=physician,
                status="saved",
                now=at,
            )

    def test_resolves_once(self, ctx: AppContext, clinic: Clinic) -> None:
        """The first resolution wins; a second (double tap, other process) changes nothing."""
        entry = self.entry(ctx, clinic)
        assert self.resolve(ctx, entry, clinic.physician_a)
        assert not self.resolve(ctx, entry, clinic.physician_a)
        with ctx.session() as session:
            found = pending.get_pending(session=session, model=PendingLabEntry, row_id=entry)
        assert found is not None
        assert (found.status, found.resolved_at) == ("saved", NOW)

    def test_only_its_physician_and_only_before_expiry(
        self, ctx: AppContext, clinic: Clinic
    ) -> None:
        """Another physician cannot resolve it, and nobody can once it has expired."""
        entry = self.entry(ctx, clinic)
        assert not self.resolve(ctx, entry, clinic.physician_b)
        assert not self.resolve(ctx, entry, clinic.physician_a, NOW + timedelta(hours=24))
        assert self.resolve(ctx, entry, clinic.physician_a, NOW + timedelta(hours=23))
