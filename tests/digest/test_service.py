"""Building a physician's digest from the database: header, flags, lines, query count."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from sqlalchemy import event

from bot.config import PatientIdentifier
from bot.context import AppContext
from bot.domain.attention import Concern, Progress, Trend
from bot.domain.scoring import AsdasState
from bot.services import therapy
from bot.services.digest import (
    DigestError,
    IsoWeek,
    WeekStatus,
    build_digest,
    covered_week,
    due_at,
)
from storage.models import PatientStatus
from tests.digest import builders as b

# The clock stands at Monday 2 March 2026, 09:00 UTC: the digest covers 23 Feb – 1 Mar.
WEEK = IsoWeek(2026, 9)


def slot(weeks_before: int = 0, days: int = 0) -> datetime:
    """The Monday 18:00 (Berlin) questionnaire slot `weeks_before` weeks before the week covered."""
    return (
        datetime(2026, 2, 23, 17, 0, tzinfo=UTC)
        - timedelta(weeks=weeks_before)
        + timedelta(days=days)
    )


def line_of(digest: Any, patient_id: int) -> Any:
    return next(line for line in digest.patients if line.patient_id == patient_id)


class TestIsoWeek:
    def test_parse_and_print(self) -> None:
        """Weeks are written like 2026-W14, the form `--week` takes."""
        assert IsoWeek.parse("2026-W14") == IsoWeek(2026, 14)
        assert IsoWeek.parse("2026w3") == IsoWeek(2026, 3)
        assert str(IsoWeek(2026, 3)) == "2026-W03"
        assert IsoWeek(2026, 14).monday() == date(2026, 3, 30)

    @pytest.mark.parametrize("text", ["2026-14", "2025-W53", "W14", "2026-W00"])
    def test_malformed_weeks_are_refused(self, text: str) -> None:
        """A week that does not exist is an error naming what was typed."""
        with pytest.raises(ValueError, match="week"):
            IsoWeek.parse(text)

    def test_year_boundaries(self) -> None:
        """The ISO week of 1 Jan 2027 is 2026-W53, and the week before 2027-W01 is it."""
        assert IsoWeek.containing(date(2027, 1, 1)) == IsoWeek(2026, 53)
        assert IsoWeek(2027, 1).previous() == IsoWeek(2026, 53)

    def test_the_week_covered_is_the_last_complete_one_in_local_time(self) -> None:
        """Sunday 23:30 UTC is already Monday in Shanghai: there, last week is complete."""
        sunday_night = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
        assert covered_week(sunday_night, "Asia/Shanghai") == IsoWeek(2026, 9)
        assert covered_week(sunday_night, "America/New_York") == IsoWeek(2026, 8)

    def test_due_moment_is_local_weekday_and_time(self) -> None:
        """Monday 08:00 in Berlin is 07:00 UTC in winter and 06:00 UTC in summer."""
        assert due_at(IsoWeek(2026, 10), weekday=0, at=time(8), timezone="Europe/Berlin") == (
            datetime(2026, 3, 2, 7, tzinfo=UTC)
        )
        assert due_at(IsoWeek(2026, 14), weekday=0, at=time(8), timezone="Europe/Berlin") == (
            datetime(2026, 3, 30, 6, tzinfo=UTC)
        )


class TestBuildDigest:
    def test_no_patients_no_digest(self, ctx: AppContext) -> None:
        """A physician with no enrolled patient gets no digest at all."""
        doctor = b.physician(ctx)
        assert build_digest(ctx, physician_id=doctor) is None
        b.patient(ctx, doctor, status=PatientStatus.INVITED)
        b.patient(ctx, doctor, status=PatientStatus.WITHDRAWN)
        assert build_digest(ctx, physician_id=doctor) is None

    def test_unknown_physician(self, ctx: AppContext) -> None:
        """Asking for the digest of a physician who does not exist says so."""
        with pytest.raises(DigestError, match="no physician with id 99"):
            build_digest(ctx, physician_id=99)

    def test_header_counts_the_week(self, ctx: AppContext) -> None:
        """Active and paused patients, completed, missed and open questionnaires of the week."""
        doctor = b.physician(ctx)
        done, gone, waiting = (b.patient(ctx, doctor) for _ in range(3))
        paused = b.patient(ctx, doctor, status=PatientStatus.PAUSED)
        b.completed(ctx, done, slot())
        b.completed(ctx, done, slot(1))  # an earlier week does not count
        b.missed(ctx, gone, slot())
        b.still_open(ctx, waiting, slot(days=6))
        b.completed(ctx, paused, slot(), kind=b.AdministrationKind.CHECKIN)
        digest = build_digest(ctx, physician_id=doctor)
        assert digest is not None
        assert digest.week == WEEK
        assert (digest.first_day, digest.last_day) == (date(2026, 2, 23), date(2026, 3, 1))
        assert (digest.patients_active, digest.patients_paused) == (3, 1)
        assert (digest.completed, digest.missed, digest.pending) == (1, 1, 1)
        assert digest.completion_rate == Fraction(1, 2)
        assert line_of(digest, paused).paused

    def test_no_questionnaire_this_week_has_no_rate(self, ctx: AppContext) -> None:
        """With nothing due in the week, the completion rate is unknown rather than 0 %."""
        doctor = b.physician(ctx)
        b.patient(ctx, doctor)
        digest = build_digest(ctx, physician_id=doctor)
        assert digest is not None
        assert digest.completion_rate is None

    def test_patient_line_shows_latest_scores_changes_and_states(self, ctx: AppContext) -> None:
        """Latest BASDAI and ASDAS-CRP with state, change since the previous, trend, weeks."""
        doctor = b.physician(ctx)
        who = b.patient(ctx, doctor)
        b.completed(ctx, who, slot(2), item=2)
        b.crp(ctx, who, slot(2), 5)
        b.missed(ctx, who, slot(1))
        b.completed(ctx, who, slot(), item="4.5")
        b.crp(ctx, who, slot(), 20)
        digest = build_digest(ctx, physician_id=doctor)
        assert digest is not None
        line = line_of(digest, who)
        assert line.basdai == Decimal("4.5")
        assert line.basdai_active
        assert line.basdai_change == Decimal("2.5")
        assert line.trend is Trend.UP
        assert line.asdas is not None
        assert line.asdas_change is not None
        assert line.asdas_state is AsdasState.HIGH
        assert line.asdas_change > Decimal("0.9")
        assert line.last_weeks == (
            WeekStatus.NONE,
            WeekStatus.COMPLETED,
            WeekStatus.MISSED,
            WeekStatus.COMPLETED,
        )
        assert [flag.kind for flag in line.concerns] == [
            Concern.ASDAS_WORSENING,
            Concern.BASDAI_RISE,
            Concern.ASDAS_HIGH,
            Concern.BASDAI_ACTIVE,
        ]

    def test_patient_without_lab(self, ctx: AppContext) -> None:
        """No CRP: ASDAS is unavailable, the patient is flagged and BASDAI is still shown."""
        doctor = b.physician(ctx)
        who = b.patient(ctx, doctor)
        b.completed(ctx, who, slot(), item=1)
        digest = build_digest(ctx, physician_id=doctor)
        assert digest is not None
        line = line_of(digest, who)
        assert (line.basdai, line.asdas, line.asdas_state) == (Decimal(1), None, None)
        assert [flag.kind for flag in line.concerns] == [Concern.NO_RECENT_CRP]
        assert [entry.patient_id for entry in digest.attention] == [who]

    def test_patient_with_one_questionnaire(self, ctx: AppContext) -> None:
        """One questionnaire: scores shown, no change, no trend, not improving."""
        doctor = b.physician(ctx)
        who = b.patient(ctx, doctor)
        b.completed(ctx, who, slot(), item=1)
        b.crp(ctx, who, slot(), 1)
        digest = build_digest(ctx, physician_id=doctor)
        assert digest is not None
        line = line_of(digest, who)
        assert line.basdai_change is None
        assert line.asdas_change is None
        assert line.trend is Trend.UNKNOWN
        assert line.asdas_state is AsdasState.INACTIVE
        assert line.concerns == ()
        assert line.progress == ()
        assert digest.attention == ()
        assert digest.improving == ()

    def test_patient_who_missed_everything(self, ctx: AppContext) -> None:
        """All missed: no scores, every week marked missed, flagged with the run length."""
        doctor = b.physician(ctx)
        who = b.patient(ctx, doctor)
        for weeks in range(5):
            b.missed(ctx, who, slot(weeks))
        digest = build_digest(ctx, physician_id=doctor)
        assert digest is not None
        line = line_of(digest, who)
        assert line.basdai is None
        assert line.asdas is None
        assert line.history == ()
        assert line.last_weeks == (WeekStatus.MISSED,) * 4
        missed = next(flag for flag in line.concerns if flag.kind is Concern.MISSED)
        assert missed.count == 5
        assert digest.completion_rate == Fraction(0)

    def test_unreachable_patient(self, ctx: AppContext) -> None:
        """A patient who blocked the bot is listed with the date it happened."""
        doctor = b.physician(ctx)
        since = slot(1)
        who = b.patient(ctx, doctor, unreachable_since=since)
        digest = build_digest(ctx, physician_id=doctor)
        assert digest is not None
        flag = line_of(digest, who).concerns[0]
        assert (flag.kind, flag.since) == (Concern.UNREACHABLE, since)

    def test_attention_is_sorted_by_severity(self, ctx: AppContext) -> None:
        """A very high ASDAS comes before a BASDAI rise, which comes before missing data."""
        doctor = b.physician(ctx)
        no_lab = b.patient(ctx, doctor, ref="A-no-lab")
        b.completed(ctx, no_lab, slot(), item=1)
        rising = b.patient(ctx, doctor, ref="B-rising")
        b.crp(ctx, rising, slot(), 1)
        b.completed(ctx, rising, slot(1), item=1)
        b.completed(ctx, rising, slot(), item=3)
        flaring = b.patient(ctx, doctor, ref="C-flaring")
        b.crp(ctx, flaring, slot(), 80)
        b.completed(ctx, flaring, slot(), item=8, patient_global=9)
        quiet = b.patient(ctx, doctor, ref="D-quiet")
        b.crp(ctx, quiet, slot(), 1)
        b.completed(ctx, quiet, slot(), item=1)
        digest = build_digest(ctx, physician_id=doctor)
        assert digest is not None
        assert [line.patient_id for line in digest.attention] == [flaring, rising, no_lab]
        assert [line.identifier for line in digest.patients] == [
            "A-no-lab",
            "B-rising",
            "C-flaring",
            "D-quiet",
        ]

    def test_improving_against_baseline(self, ctx: AppContext) -> None:
        """BASDAI halved since the first questionnaire puts the patient under improving."""
        doctor = b.physician(ctx)
        who = b.patient(ctx, doctor)
        b.crp(ctx, who, slot(), 1)
        b.completed(ctx, who, slot(20), item=6)
        b.completed(ctx, who, slot(1), item=4)
        b.completed(ctx, who, slot(), item=3)
        digest = build_digest(ctx, physician_id=doctor)
        assert digest is not None
        assert [line.patient_id for line in digest.improving] == [who]
        flag = digest.improving[0].progress[0]
        assert (flag.kind, flag.reference, flag.value) == (Progress.BASDAI50, 6, 3)

    def test_clinic_baseline_date(self, ctx: AppContext) -> None:
        """A baseline date set by the clinic picks the questionnaire nearest to it."""
        doctor = b.physician(ctx)
        who = b.patient(ctx, doctor, baseline=slot(1))
        b.crp(ctx, who, slot(), 1)
        b.completed(ctx, who, slot(20), item=6)
        b.completed(ctx, who, slot(1), item=4)
        b.completed(ctx, who, slot(), item=3)
        digest = build_digest(ctx, physician_id=doctor)
        assert digest is not None
        assert digest.improving == ()

    def test_identifier_follows_the_clinic_setting(self, ctx: AppContext) -> None:
        """Patients are named by clinic reference, or by display name when the clinic says so."""
        doctor = b.physician(ctx)
        named = b.patient(ctx, doctor, ref="MRN-1", name="Li Wei")
        unnamed = b.patient(ctx, doctor, ref="MRN-2")
        by_ref = build_digest(ctx, physician_id=doctor)
        ctx.settings = ctx.settings.model_copy(
            update={"patient_identifier": PatientIdentifier.DISPLAY_NAME}
        )
        by_name = build_digest(ctx, physician_id=doctor)
        assert by_ref is not None
        assert by_name is not None
        assert line_of(by_ref, named).identifier == "MRN-1"
        assert line_of(by_name, named).identifier == "Li Wei"
        assert line_of(by_name, unnamed).identifier == "MRN-2"

    def test_an_earlier_week_ignores_what_came_after(self, ctx: AppContext) -> None:
        """The digest of a past week shows the scores as they stood at the end of that week."""
        doctor = b.physician(ctx)
        who = b.patient(ctx, doctor)
        b.completed(ctx, who, slot(1), item=2)
        b.completed(ctx, who, slot(), item=7)
        digest = build_digest(ctx, physician_id=doctor, week=WEEK.previous())
        assert digest is not None
        assert line_of(digest, who).basdai == 2

    def test_chart_history_covers_twelve_weeks(self, ctx: AppContext) -> None:
        """Each line carries the last 12 weeks of scores for the chart, oldest first."""
        doctor = b.physician(ctx)
        who = b.patient(ctx, doctor)
        for weeks in range(14):
            b.completed(ctx, who, slot(weeks), item=weeks % 10)
        digest = build_digest(ctx, physician_id=doctor)
        assert digest is not None
        history = line_of(digest, who).history
        assert len(history) == 12
        assert history[0].at == slot(11)
        assert history[-1].at == slot()

    def test_older_asdas_is_dated(self, ctx: AppContext) -> None:
        """ASDAS needs a CRP: the latest ASDAS can be older than the latest BASDAI."""
        doctor = b.physician(ctx)
        who = b.patient(ctx, doctor)
        b.crp(ctx, who, slot(3), 3)
        b.completed(ctx, who, slot(3), item=2)
        b.completed(ctx, who, slot(), item=2)
        digest = build_digest(ctx, physician_id=doctor)
        assert digest is not None
        line = line_of(digest, who)
        assert (line.basdai_at, line.asdas_at) == (slot(), slot(3))


@contextmanager
def counting_queries(ctx: AppContext) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(ctx.engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(ctx.engine, "before_cursor_execute", record)


class TestQueryCount:
    def test_queries_do_not_grow_with_the_panel(self, ctx: AppContext) -> None:
        """Building a digest for 50 patients issues as many queries as for 5, also when half
        of them have therapy episodes (the treatment section reads them all at once)."""
        counts = []
        for size in (5, 50):
            doctor = b.physician(ctx)
            for index in range(size):
                ref = f"Q{size}-{index}"
                who = b.patient(ctx, doctor, ref=ref)
                if index % 2:
                    therapy.add_therapy(
                        ctx, clinic_ref=ref, drug="upadacitinib", therapy_class="jak_inhibitor",
                        start=(slot(3) - timedelta(weeks=12)).date().isoformat(), actor="test",
                    )  # fmt: skip
                b.completed(ctx, who, slot(1), item=index % 10)
                b.completed(ctx, who, slot(), item=(index + 3) % 10)
                if index % 2:
                    b.crp(ctx, who, slot(), index)
                if index % 3:
                    b.missed(ctx, who, slot(2))
            with counting_queries(ctx) as statements:
                digest = build_digest(ctx, physician_id=doctor)
            assert digest is not None
            assert len(digest.patients) == size
            counts.append(len(statements))
        assert counts[0] == counts[1]
        # Panel, history and CRP; episodes, the scores of patients on therapy, safety answers.
        assert counts[0] <= 9
