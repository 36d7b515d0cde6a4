"""Enrollment codes: hashed, single use, expiring, and revoked by a newer code."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from bot.clock import FixedClock
from bot.context import AppContext
from bot.services.staff import hash_code
from storage import enrollment
from storage.models import EnrollmentCode
from tests.factories import make_patient, make_physician


class TestEnrollmentCodes:
    def test_only_the_hash_is_stored(self, ctx: AppContext) -> None:
        """The code printed to staff does not appear anywhere in the code table."""
        doctor = make_physician(ctx)
        created = make_patient(ctx, physician_id=doctor.physician_id)
        with ctx.session() as session:
            rows = session.exec(select(EnrollmentCode)).all()
        assert all(created.code.code not in row.code_hash for row in rows)
        assert hash_code(created.code.code) in {row.code_hash for row in rows}

    def test_a_code_can_be_claimed_once(self, ctx: AppContext) -> None:
        """The first claim wins; a second claim of the same code gets nothing."""
        doctor = make_physician(ctx)
        created = make_patient(ctx, physician_id=doctor.physician_id)
        with ctx.session() as session:
            first = enrollment.claim_code(
                session=session, code_hash=hash_code(created.code.code), now=ctx.clock.now()
            )
            second = enrollment.claim_code(
                session=session, code_hash=hash_code(created.code.code), now=ctx.clock.now()
            )
        assert first is not None
        assert first.patient_id == created.patient_id
        assert second is None

    def test_expired_code_is_refused(self, ctx: AppContext, clock: FixedClock) -> None:
        """A code past its validity cannot be claimed."""
        doctor = make_physician(ctx)
        created = make_patient(ctx, physician_id=doctor.physician_id)
        clock.advance(timedelta(days=ctx.settings.enrollment_code_ttl_days, seconds=1))
        with ctx.session() as session:
            claimed = enrollment.claim_code(
                session=session, code_hash=hash_code(created.code.code), now=clock.now()
            )
        assert claimed is None

    def test_typed_code_is_normalised(self, ctx: AppContext) -> None:
        """Lower case, spaces and dashes typed by a patient still match the code."""
        code = "ABCD-EFGH 23"
        assert hash_code(code.lower()) == hash_code("ABCDEFGH23")

    def test_failed_attempts_are_counted_per_account(self, ctx: AppContext) -> None:
        """Wrong entries are counted within the window for the given account only."""
        now = ctx.clock.now()
        with ctx.session() as session:
            for minutes in (0, 10, 70):
                enrollment.record_failed_attempt(
                    session=session, account_hash="a", now=now - timedelta(minutes=minutes)
                )
            enrollment.record_failed_attempt(session=session, account_hash="b", now=now)
            recent = enrollment.count_failed_attempts(
                session=session, account_hash="a", since=now - timedelta(hours=1)
            )
        assert recent == 2
