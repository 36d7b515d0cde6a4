"""The attention rules: every flag exactly on its threshold and just beside it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal, localcontext

import pytest

from bot.domain.attention import (
    SEVERITY,
    Concern,
    Observation,
    PatientFacts,
    Progress,
    Trend,
    assess,
    completion_alerts,
    missed_in_a_row,
    trend,
)

D = Decimal
NOW = datetime(2026, 3, 30, tzinfo=UTC)
WEEK = timedelta(weeks=1)
# A hair: far below any clinical resolution, far above the 40 stored digits.
HAIR = D("1e-20")
FRESH_CRP = NOW - WEEK


def obs(weeks_ago: int, basdai: object = None, asdas: object = None) -> Observation:
    return Observation(
        at=NOW - weeks_ago * WEEK - timedelta(days=1),
        basdai=None if basdai is None else D(str(basdai)),
        asdas=None if asdas is None else D(str(asdas)),
    )


def facts(
    *observations: Observation,
    missed: tuple[bool, ...] = (),
    unreachable: datetime | None = None,
    last_crp: datetime | None = FRESH_CRP,
    baseline: datetime | None = None,
) -> PatientFacts:
    return PatientFacts(
        as_of=NOW,
        observations=observations,
        scheduled_missed=missed,
        unreachable_since=unreachable,
        last_crp_at=last_crp,
        baseline_at=baseline,
    )


def kinds(flags: tuple[object, ...]) -> set[object]:
    return {flag.kind for flag in flags}


def concerns_of(patient: PatientFacts) -> set[object]:
    return kinds(assess(patient, no_crp_weeks=12).concerns)


def progress_of(patient: PatientFacts) -> set[object]:
    return kinds(assess(patient, no_crp_weeks=12).progress)


class TestAsdasActivity:
    @pytest.mark.parametrize(
        ("asdas", "expected"),
        [
            (D("3.5") + HAIR, {Concern.ASDAS_VERY_HIGH}),
            (D("3.5"), {Concern.ASDAS_HIGH}),
            (D("2.1"), {Concern.ASDAS_HIGH}),
            (D("2.1") - HAIR, set()),
            (D("1.0"), set()),
        ],
    )
    def test_very_high_above_3_5_and_high_from_2_1(
        self, asdas: Decimal, expected: set[object]
    ) -> None:
        """ASDAS > 3.5 is very high, 2.1 to 3.5 inclusive is high, just below 2.1 is neither."""
        assert concerns_of(facts(obs(0, basdai=1, asdas=asdas))) == expected

    def test_very_high_carries_the_unrounded_value(self) -> None:
        """The flag keeps the exact ASDAS so the reason can show it next to its state."""
        value = D("3.5") + HAIR
        flag = assess(facts(obs(0, basdai=1, asdas=value)), no_crp_weeks=12).concerns[0]
        assert flag.value == value

    def test_an_old_asdas_is_not_current(self) -> None:
        """An ASDAS older than the CRP window does not raise activity flags (it is stale)."""
        patient = facts(obs(13, basdai=1, asdas=4), obs(0, basdai=1), last_crp=None)
        assert concerns_of(patient) == {Concern.NO_RECENT_CRP}
        assert assess(patient, no_crp_weeks=12).latest_asdas is None


class TestWorsening:
    @pytest.mark.parametrize(
        ("before", "after", "flagged"),
        [
            (D("1.2"), D("2.1"), True),
            (D("1.2"), D("2.1") - HAIR, False),
            (D("0.5"), D("1.4"), True),
            (D("0.5"), D("1.4") - HAIR, False),
        ],
    )
    def test_asdas_increase_of_0_9_against_the_previous(
        self, before: Decimal, after: Decimal, flagged: bool
    ) -> None:
        """An ASDAS increase of exactly 0.9 is a clinically important worsening; less is not."""
        patient = facts(obs(3, basdai=1, asdas=before), obs(0, basdai=1, asdas=after))
        assert (Concern.ASDAS_WORSENING in concerns_of(patient)) is flagged

    def test_worsening_compares_with_the_previous_asdas_not_the_baseline(self) -> None:
        """Baseline 1.0, previous 2.5, now 2.6: no flare since last time although up 1.6."""
        patient = facts(
            obs(8, basdai=1, asdas="1.0"),
            obs(4, basdai=1, asdas="2.5"),
            obs(0, basdai=1, asdas="2.6"),
        )
        assert Concern.ASDAS_WORSENING not in concerns_of(patient)

    def test_questionnaires_without_asdas_are_skipped_to_find_the_previous(self) -> None:
        """The previous ASDAS is the last one measured, however many BASDAI-only weeks passed."""
        patient = facts(
            obs(6, basdai=1, asdas="1.0"), obs(3, basdai=1), obs(0, basdai=1, asdas="1.9")
        )
        flag = next(
            f
            for f in assess(patient, no_crp_weeks=12).concerns
            if f.kind is Concern.ASDAS_WORSENING
        )
        assert flag.reference == D("1.0")
        assert flag.value == D("0.9")

    @pytest.mark.parametrize(
        ("before", "after", "flagged"),
        [
            (D("1"), D("3"), True),
            (D("1"), D("3") - HAIR, False),
            (D("0.3"), D("2.3"), True),
        ],
    )
    def test_basdai_rise_of_2_points(self, before: Decimal, after: Decimal, flagged: bool) -> None:
        """A BASDAI rise of exactly 2 points since the previous BASDAI needs attention."""
        patient = facts(obs(1, basdai=before), obs(0, basdai=after))
        assert (Concern.BASDAI_RISE in concerns_of(patient)) is flagged

    def test_basdai_rise_on_repeating_decimals(self) -> None:
        """Stiffness minutes ÷ 12 repeat forever; a rise of exactly 2 still counts once both
        scores are stored to 40 significant digits."""
        before = D("0.8333333333333333333333333333333333333333")  # 40 digits, as stored
        after = D("2.833333333333333333333333333333333333333")
        with localcontext(Context(prec=100)):
            assert after - before < 2
        patient = facts(obs(1, basdai=before), obs(0, basdai=after))
        assert Concern.BASDAI_RISE in concerns_of(patient)


class TestBasdaiActive:
    @pytest.mark.parametrize(
        ("basdai", "flagged"), [(D("4"), True), (D("4") - HAIR, False), (D("10"), True)]
    )
    def test_basdai_4_or_more(self, basdai: Decimal, flagged: bool) -> None:
        """BASDAI ≥ 4 is active disease, inclusive."""
        assert (Concern.BASDAI_ACTIVE in concerns_of(facts(obs(0, basdai=basdai)))) is flagged


class TestReachability:
    @pytest.mark.parametrize(
        ("missed", "flagged"),
        [
            ((True, True), True),
            ((False, True, True, True), True),
            ((True, False), False),
            ((True, True, False), False),
            ((False, True), False),
            ((), False),
        ],
    )
    def test_two_or_more_missed_in_a_row(self, missed: tuple[bool, ...], flagged: bool) -> None:
        """Two missed questionnaires in a row (the most recent ones) need attention; one not."""
        assert (Concern.MISSED in concerns_of(facts(missed=missed))) is flagged

    def test_the_flag_counts_the_run(self) -> None:
        """The reason says how many were missed in a row."""
        assert missed_in_a_row([True, False, True, True, True]) == 3
        flag = next(
            f
            for f in assess(facts(missed=(True, True, True)), no_crp_weeks=12).concerns
            if f.kind is Concern.MISSED
        )
        assert flag.count == 3

    def test_unreachable_when_blocked(self) -> None:
        """A patient the bot cannot reach (blocked) needs a call, with the date it started."""
        since = NOW - 2 * WEEK
        flags = assess(facts(unreachable=since), no_crp_weeks=12).concerns
        assert [f.since for f in flags if f.kind is Concern.UNREACHABLE] == [since]
        assert Concern.UNREACHABLE not in concerns_of(facts())


class TestNoRecentCrp:
    def test_no_crp_at_all(self) -> None:
        """A patient with no lab value at all is flagged: ASDAS cannot be computed."""
        assert Concern.NO_RECENT_CRP in concerns_of(facts(obs(0, basdai=1), last_crp=None))

    def test_exactly_n_weeks_ago_is_still_recent(self) -> None:
        """A CRP drawn exactly N weeks before the end of the week counts; a moment earlier not."""
        on = facts(obs(0, basdai=1), last_crp=NOW - timedelta(weeks=12))
        beside = facts(obs(0, basdai=1), last_crp=NOW - timedelta(weeks=12, microseconds=1))
        assert Concern.NO_RECENT_CRP not in concerns_of(on)
        assert Concern.NO_RECENT_CRP in concerns_of(beside)

    def test_window_follows_the_setting(self) -> None:
        """The number of weeks is the clinic's setting."""
        patient = facts(obs(0, basdai=1), last_crp=NOW - timedelta(weeks=5))
        assert Concern.NO_RECENT_CRP in kinds(assess(patient, no_crp_weeks=4).concerns)
        assert Concern.NO_RECENT_CRP not in kinds(assess(patient, no_crp_weeks=6).concerns)


class TestSeverity:
    def test_concerns_are_listed_most_severe_first(self) -> None:
        """One patient's reasons come in severity order."""
        patient = facts(
            obs(1, basdai=1, asdas="2.0"),
            obs(0, basdai=6, asdas="3.6"),
            missed=(True, True),
            unreachable=NOW,
            last_crp=None,
        )
        listed = [f.kind for f in assess(patient, no_crp_weeks=12).concerns]
        assert listed == [
            Concern.ASDAS_VERY_HIGH,
            Concern.ASDAS_WORSENING,
            Concern.BASDAI_RISE,
            Concern.BASDAI_ACTIVE,
            Concern.UNREACHABLE,
            Concern.MISSED,
            Concern.NO_RECENT_CRP,
        ]

    def test_severity_key_ranks_flares_before_missing_data(self) -> None:
        """A very high ASDAS outranks any number of lesser concerns."""
        very_high = assess(facts(obs(0, basdai=1, asdas=4)), no_crp_weeks=12)
        many_lesser = assess(
            facts(obs(0, basdai=5), missed=(True, True), unreachable=NOW, last_crp=None),
            no_crp_weeks=12,
        )
        assert very_high.severity_key() < many_lesser.severity_key()
        assert SEVERITY[0] is Concern.ASDAS_VERY_HIGH
        assert SEVERITY[-1] is Concern.NO_RECENT_CRP


class TestImprovement:
    @pytest.mark.parametrize(
        ("baseline", "now", "expected"),
        [
            (D("4.0"), D("2.0"), {Progress.ASDAS_MAJOR_IMPROVEMENT}),
            (D("4.0"), D("2.0") + HAIR, {Progress.ASDAS_IMPORTANT_IMPROVEMENT}),
            (D("3.0"), D("1.9"), {Progress.ASDAS_IMPORTANT_IMPROVEMENT}),
            (D("3.0"), D("1.9") + HAIR, set()),
        ],
    )
    def test_asdas_improvement_against_baseline(
        self, baseline: Decimal, now: Decimal, expected: set[object]
    ) -> None:
        """A decrease ≥ 2.0 is major, ≥ 1.1 clinically important, both against baseline."""
        patient = facts(obs(10, basdai=1, asdas=baseline), obs(0, basdai=1, asdas=now))
        assert progress_of(patient) == expected

    @pytest.mark.parametrize(
        ("baseline", "now", "met"),
        [(D("6"), D("3"), True), (D("6"), D("3") + HAIR, False), (D("0"), D("0"), False)],
    )
    def test_basdai50_against_baseline(self, baseline: Decimal, now: Decimal, met: bool) -> None:
        """BASDAI halved (or better) since baseline is BASDAI50; a baseline of 0 never is."""
        patient = facts(obs(10, basdai=baseline), obs(4, basdai=baseline), obs(0, basdai=now))
        assert (Progress.BASDAI50 in progress_of(patient)) is met

    def test_baseline_is_the_first_questionnaire(self) -> None:
        """Without a clinic-set date the first completed questionnaire is the baseline."""
        patient = facts(obs(10, basdai=8), obs(5, basdai=5), obs(0, basdai=4))
        flag = assess(patient, no_crp_weeks=12).progress[0]
        assert flag.kind is Progress.BASDAI50
        assert flag.reference == D(8)

    def test_baseline_date_set_by_the_clinic(self) -> None:
        """With a baseline date, the questionnaire nearest to it is the baseline."""
        patient = facts(
            obs(10, basdai=8), obs(5, basdai=5), obs(0, basdai=4), baseline=NOW - 5 * WEEK
        )
        assert Progress.BASDAI50 not in progress_of(patient)

    def test_one_questionnaire_is_no_change(self) -> None:
        """A single questionnaire is its own baseline: nothing improves, nothing worsens."""
        judged = assess(facts(obs(0, basdai=2, asdas="1.0")), no_crp_weeks=12)
        assert judged.progress == ()
        assert judged.previous_basdai is None
        assert judged.trend is Trend.UNKNOWN


class TestTrend:
    @pytest.mark.parametrize(
        ("values", "expected"),
        [
            ([D(2), D(3)], Trend.UP),
            ([D(2), D("2.9")], Trend.STEADY),
            ([D(5), D(6), D(4)], Trend.DOWN),
            ([D(9), D(1), D(1), D(1), D(2)], Trend.UP),
            ([D(1)], Trend.UNKNOWN),
        ],
    )
    def test_latest_against_the_oldest_of_the_last_four(
        self, values: list[Decimal], expected: Trend
    ) -> None:
        """A move of at least one BASDAI point over the last four questionnaires shows."""
        assert trend(values) is expected


class TestCompletionAlerts:
    def test_very_high_after_completion(self) -> None:
        """A questionnaire with ASDAS above 3.5 alerts."""
        flags = completion_alerts([obs(0, basdai=2, asdas=D("3.5") + HAIR)])
        assert kinds(flags) == {Concern.ASDAS_VERY_HIGH}
        assert completion_alerts([obs(0, basdai=2, asdas=D("3.5"))]) == ()

    def test_worsening_after_completion(self) -> None:
        """An ASDAS 0.9 above the previous ASDAS alerts; high activity alone does not."""
        flags = completion_alerts([obs(2, basdai=1, asdas="1.2"), obs(0, basdai=1, asdas="2.1")])
        assert kinds(flags) == {Concern.ASDAS_WORSENING}
        assert completion_alerts([obs(2, asdas="1.2"), obs(0, asdas=D("2.1") - HAIR)]) == ()

    def test_no_asdas_no_alert(self) -> None:
        """Without a CRP there is no ASDAS and so nothing to alert about."""
        assert completion_alerts([obs(2, basdai=1, asdas=1), obs(0, basdai=9)]) == ()
