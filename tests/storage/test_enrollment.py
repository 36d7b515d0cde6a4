"""Enrollment codes: hashed, single use, expiring, and revoked by a newer code."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
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
        assert hash_code(ctx, created.code.code) in {row.code_hash for row in rows}

    def test_a_code_can_be_claimed_once(self, ctx: AppContext) -> None:
        """The first claim wins; a second claim of the same code gets nothing."""
        doctor = make_physician(ctx)
        created = make_patient(ctx, physician_id=doctor.physician_id)
        with ctx.session() as session:
            first = enrollment.claim_code(
                session=session, code_hash=hash_code(ctx, created.code.code), now=ctx.clock.now()
            )
            second = enrollment.claim_code(
                session=session, code_hash=hash_code(ctx, created.code.code), now=ctx.clock.now()
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
                session=session, code_hash=hash_code(ctx, created.code.code), now=clock.now()
            )
        assert claimed is None

    def test_typed_code_is_normalised(self, ctx: AppContext) -> None:
        """Lower case, spaces and dashes typed by a patient still match the code."""
        code = "ABCD-EFGH 23"
        assert hash_code(ctx, code.lower()) == hash_code(ctx, "ABCDEFGH23")

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


class TestAtomicAttemptCount:
    def test_concurrent_entries_never_pass_the_limit(self, ctx: AppContext) -> None:
        """Twelve code entries of one account at once, each in its own transaction: exactly
        the limit of them is counted, the rest refused, whatever the interleaving."""
        now = ctx.clock.now()
        limit = 5
        barrier = threading.Barrier(12)

        def enter() -> bool:
            barrier.wait()
            with ctx.session() as session:
                reserved = enrollment.reserve_attempt(
                    session=session, account_hash="acct", now=now,
                    since=now - timedelta(hours=1), limit=limit,
                )  # fmt: skip
                time.sleep(0.01)  # hold the transaction open a moment, as a claim would
                return reserved is not None

        with ThreadPoolExecutor(max_workers=12) as pool:
            results = list(pool.map(lambda _i: enter(), range(12)))
        assert results.count(True) == limit
        with ctx.session() as session:
            counted = enrollment.count_failed_attempts(
                session=session, account_hash="acct", since=now - timedelta(hours=1)
            )
        assert counted == limit

    def test_a_right_code_is_no_failure(self, ctx: AppContext) -> None:
        """A reserved entry taken back (the code was right) no longer counts."""
        now = ctx.clock.now()
        with ctx.session() as session:
            reserved = enrollment.reserve_attempt(
                session=session, account_hash="b", now=now, since=now, limit=1
            )
            assert reserved is not None
            enrollment.release_attempt(session=session, attempt_id=reserved)
            assert (
                enrollment.count_failed_attempts(session=session, account_hash="b", since=now) == 0
            )
