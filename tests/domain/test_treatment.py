"""Specification of therapy episodes and their response (clinical spec §7), at every boundary."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from bot.domain.scoring import AsdasChange, AsdasState, asdas_crp, basdai
from bot.domain.treatment import (
    AsdasVariant,
    Judgement,
    ScorePoint,
    StopReason,
    TherapyClass,
    TherapyEpisode,
    TherapyInputError,
    assessment_window,
    baseline,
    parse_class,
    parse_day,
    parse_stop_reason,
    read_episode,
)

START = date(2025, 1, 6)
TODAY = date(2026, 1, 1)


def episode(
    drug: str = "upadacitinib",
    stop: date | None = None,
    stop_reason: StopReason | None = None,
) -> TherapyEpisode:
    """An upadacitinib episode started on START."""
    return TherapyEpisode(
        drug=drug,
        therapy_class=TherapyClass.JAK_INHIBITOR,
        start=START,
        stop=stop,
        stop_reason=stop_reason,
    )


def at(
    days: int, asdas: str | None = None, basdai_: str | None = None, esr: str | None = None
) -> ScorePoint:
    """A score point `days` after the start (negative: before it)."""
    return ScorePoint(
        day=START + timedelta(days=days),
        basdai=None if basdai_ is None else Decimal(basdai_),
        asdas_crp=None if asdas is None else Decimal(asdas),
        asdas_esr=None if esr is None else Decimal(esr),
    )


class TestEpisodeValues:
    def test_classes_and_stop_reasons_are_those_of_the_spec(self) -> None:
        """§7 lists seven classes and five stop reasons."""
        assert {c.value for c in TherapyClass} == {
            "nsaid", "csdmard", "tnf_inhibitor", "il17_inhibitor", "jak_inhibitor",
            "glucocorticoid", "other",
        }  # fmt: skip
        assert {r.value for r in StopReason} == {
            "inefficacy", "adverse_event", "remission_or_taper", "patient_choice", "other",
        }  # fmt: skip

    def test_parsing_forgives_case_and_separators(self) -> None:
        """ "TNF-inhibitor" and "adverse event" are read as their codes."""
        assert parse_class("TNF-inhibitor") is TherapyClass.TNF_INHIBITOR
        assert parse_stop_reason("Adverse event") is StopReason.ADVERSE_EVENT

    def test_unknown_class_is_refused_by_name(self) -> None:
        with pytest.raises(TherapyInputError) as caught:
            parse_class("biologic")
        assert (caught.value.code, caught.value.params) == ("class_unknown", {"value": "biologic"})

    def test_stop_before_start_is_refused(self) -> None:
        with pytest.raises(TherapyInputError) as caught:
            episode(stop=START - timedelta(days=1))
        assert caught.value.code == "stop_before_start"

    def test_stop_reason_needs_a_stop(self) -> None:
        with pytest.raises(TherapyInputError) as caught:
            episode(stop_reason=StopReason.INEFFICACY)
        assert caught.value.code == "reason_without_stop"

    def test_empty_drug_is_refused(self) -> None:
        with pytest.raises(TherapyInputError) as caught:
            episode(drug="  ")
        assert caught.value.code == "drug_missing"

    @pytest.mark.parametrize(
        ("text", "expected"), [("2025-01-06", date(2025, 1, 6)), ("06.01.2025", date(2025, 1, 6))]
    )
    def test_dates_iso_or_day_first(self, text: str, expected: date) -> None:
        assert parse_day(text, today=TODAY) == expected

    @pytest.mark.parametrize(("text", "code"), [("01/06/2025", "date_unreadable"),
                                                ("2026-02-01", "date_future")])  # fmt: skip
    def test_ambiguous_or_future_dates_are_refused(self, text: str, code: str) -> None:
        with pytest.raises(TherapyInputError) as caught:
            parse_day(text, today=TODAY)
        assert caught.value.code == code

    def test_open_on_includes_start_and_stop_days(self) -> None:
        stopped = episode(stop=START + timedelta(days=10), stop_reason=StopReason.OTHER)
        assert stopped.open_on(START)
        assert stopped.open_on(START + timedelta(days=10))
        assert not stopped.open_on(START - timedelta(days=1))
        assert not stopped.open_on(START + timedelta(days=11))


class TestBaseline:
    @pytest.mark.parametrize(("days_before", "found"), [(27, True), (28, True), (29, False)])
    def test_window_is_28_days_up_to_the_start(self, days_before: int, found: bool) -> None:
        """A score 28 days before the start is a baseline; 29 days before is not (§7)."""
        base = baseline(episode(), [at(-days_before, asdas="3.0", basdai_="4.0")])
        assert (base.asdas is not None) is found
        assert (base.basdai is not None) is found

    def test_start_day_counts_and_the_last_one_wins(self) -> None:
        """The last ASDAS up to and including the start day is the baseline."""
        base = baseline(episode(), [at(-20, asdas="3.0"), at(0, asdas="2.5"), at(3, asdas="1")])
        assert base.asdas is not None
        assert (base.asdas.value, base.asdas.day, base.asdas.after_start) == (
            Decimal("2.5"), START, False,
        )  # fmt: skip

    @pytest.mark.parametrize(("days_after", "found"), [(1, True), (7, True), (8, False)])
    def test_after_start_within_seven_days(self, days_after: int, found: bool) -> None:
        """Without a score before, the first one within 7 days after is marked "after start"."""
        base = baseline(episode(), [at(days_after, asdas="3.0"), at(days_after + 1, asdas="2")])
        if found:
            assert base.asdas is not None
            assert base.asdas.after_start
            assert base.asdas.value == Decimal("3.0")
        else:
            assert base.asdas is None

    def test_asdas_crp_preferred_then_esr(self) -> None:
        """ASDAS-CRP is the baseline when there is one; otherwise ASDAS-ESR, labelled (§2, §6)."""
        crp = baseline(episode(), [at(-10, asdas="3.0", esr="2.0"), at(-2, esr="2.2")])
        assert crp.asdas_variant is AsdasVariant.CRP
        assert crp.asdas is not None
        assert crp.asdas.value == Decimal("3.0")
        esr = baseline(episode(), [at(-2, esr="2.2")])
        assert esr.asdas_variant is AsdasVariant.ESR

    def test_no_baseline_no_response(self) -> None:
        """No score near the start: the reading says "no baseline" and judges nothing."""
        reading = read_episode(episode(), [at(-40, asdas="3.5"), at(90, asdas="1.0")], today=TODAY)
        assert reading.judgement is Judgement.NO_BASELINE
        assert reading.assessment is None


class TestAssessment:
    @pytest.mark.parametrize(
        ("days", "assessed"),
        [(83, False), (84, True), (168, True), (169, False)],
    )
    def test_weeks_12_to_24_inclusive(self, days: int, assessed: bool) -> None:
        """Week 12 (day 84) and week 24 (day 168) are in the window; a day outside is not."""
        points = [at(-1, asdas="3.5"), at(days, asdas="2.0")]
        reading = read_episode(episode(), points, today=START + timedelta(days=200))
        assert (reading.assessment is not None) is assessed
        if not assessed:
            assert reading.judgement is Judgement.NOT_ASSESSED

    def test_first_asdas_in_window_is_the_assessment(self) -> None:
        points = [at(-1, asdas="3.5"), at(90, asdas="3.4"), at(120, asdas="1.0")]
        reading = read_episode(episode(), points, today=TODAY)
        assert reading.assessment is not None
        assert (reading.assessment.week, reading.judgement) == (12, Judgement.NO_RESPONSE)

    @pytest.mark.parametrize(
        ("after", "judgement", "major"),
        [
            ("2.41", Judgement.NO_RESPONSE, False),
            ("2.40", Judgement.RESPONSE, False),
            ("1.50", Judgement.RESPONSE, True),
            ("1.51", Judgement.RESPONSE, False),
        ],
    )
    def test_decrease_thresholds_from_high_baseline(
        self, after: str, judgement: Judgement, major: bool
    ) -> None:
        """From 3.5: → 2.41 (1.09, still ≥ 2.1) is primary non-response, → 2.40 (1.1) a
        response, → 1.51 (1.99) not yet major, → 1.50 (2.0) a major improvement."""
        points = [at(-1, asdas="3.5"), at(100, asdas=after)]
        reading = read_episode(episode(), points, today=TODAY)
        assert reading.judgement is judgement
        assert reading.assessment is not None
        assert reading.assessment.major_improvement is major

    def test_delta_1_09_is_no_response_and_1_1_is(self) -> None:
        """An ASDAS decrease of 1.09 is not a response; exactly 1.1 is (§7, unrounded)."""
        no = read_episode(episode(), [at(-1, asdas="3.29"), at(100, asdas="2.20")], today=TODAY)
        yes = read_episode(episode(), [at(-1, asdas="3.30"), at(100, asdas="2.20")], today=TODAY)
        assert no.judgement is Judgement.NO_RESPONSE
        assert yes.judgement is Judgement.RESPONSE

    @pytest.mark.parametrize(
        ("after", "judgement", "target"),
        [
            ("2.1", Judgement.NO_RESPONSE, False),
            ("2.0999", Judgement.TARGET_WITHOUT_RESPONSE, True),
        ],
    )
    def test_asdas_2_1_is_not_the_target(
        self, after: str, judgement: Judgement, target: bool
    ) -> None:
        """With a decrease < 1.1, ASDAS 2.1 is primary non-response; just below 2.1 is the low
        disease activity target reached (no non-response)."""
        reading = read_episode(episode(), [at(-1, asdas="3.0"), at(100, asdas=after)], today=TODAY)
        assert reading.judgement is judgement
        assert reading.assessment is not None
        assert reading.assessment.low_activity_target is target

    def test_inactive_disease_below_1_3(self) -> None:
        reading = read_episode(episode(), [at(-1, asdas="3.0"), at(100, asdas="1.29")], today=TODAY)
        assert reading.assessment is not None
        assert reading.assessment.inactive_disease
        assert reading.assessment.state_after is AsdasState.INACTIVE

    def test_basdai_only_uses_asas_eular_rule(self) -> None:
        """Without an ASDAS, BASDAI with the ASAS/EULAR rule (≥ 50 % or ≥ 2 points), labelled."""
        points = [at(-1, basdai_="6.0"), at(100, basdai_="4.0")]
        reading = read_episode(episode(), points, today=TODAY)
        assert reading.assessment is not None
        assert reading.assessment.by_basdai_only
        assert reading.judgement is Judgement.RESPONSE
        assert reading.assessment.basdai50 is False
        short = read_episode(
            episode(), [at(-1, basdai_="6.0"), at(100, basdai_="4.1")], today=TODAY
        )
        assert short.judgement is Judgement.NO_RESPONSE

    def test_variant_is_kept(self) -> None:
        """An ESR baseline is compared only with a later ASDAS-ESR (§6)."""
        points = [at(-1, esr="3.5"), at(90, asdas="1.0"), at(100, esr="3.4")]
        reading = read_episode(episode(), points, today=TODAY)
        assert reading.assessment is not None
        assert reading.assessment.asdas_variant is AsdasVariant.ESR
        assert reading.judgement is Judgement.NO_RESPONSE

    def test_due_and_not_yet_due(self) -> None:
        """Before week 12 the assessment is not yet due; in weeks 12-24 without ASDAS it is."""
        points = [at(-1, asdas="3.5")]
        first, last = assessment_window(START)
        assert (first, last) == (START + timedelta(days=84), START + timedelta(days=168))
        before = read_episode(episode(), points, today=first - timedelta(days=1))
        due = read_episode(episode(), points, today=first)
        still_due = read_episode(episode(), points, today=last)
        assert before.judgement is Judgement.NOT_YET_DUE
        assert due.judgement is Judgement.DUE
        assert still_due.judgement is Judgement.DUE

    def test_stopped_before_the_window(self) -> None:
        stopped = episode(stop=START + timedelta(days=40), stop_reason=StopReason.ADVERSE_EVENT)
        reading = read_episode(stopped, [at(-1, asdas="3.5"), at(100, asdas="1.0")], today=TODAY)
        assert reading.judgement is Judgement.STOPPED_BEFORE_ASSESSMENT
        assert reading.assessment is None


class TestLossOfResponse:
    def responded(self, *later: ScorePoint) -> list[ScorePoint]:
        return [at(-1, asdas="3.5"), at(100, asdas="1.5"), *later]

    def test_confirmed_rise_of_0_9_is_a_loss(self) -> None:
        """A rise ≥ 0.9 from the best, confirmed by the next ASDAS, is loss of response."""
        reading = read_episode(
            episode(), self.responded(at(130, asdas="2.4"), at(137, asdas="2.45")), today=TODAY
        )
        assert reading.loss is not None
        assert (reading.loss.day, reading.loss.best) == (
            START + timedelta(days=137),
            Decimal("1.5"),
        )

    def test_unconfirmed_rise_is_not_a_loss(self) -> None:
        reading = read_episode(
            episode(), self.responded(at(130, asdas="2.4"), at(137, asdas="2.3")), today=TODAY
        )
        assert reading.loss is None

    def test_rise_of_0_89_is_not_a_loss(self) -> None:
        reading = read_episode(
            episode(), self.responded(at(130, asdas="2.39"), at(137, asdas="2.39")), today=TODAY
        )
        assert reading.loss is None

    def test_any_asdas_above_3_5_is_a_loss(self) -> None:
        """One ASDAS > 3.5 after a response is enough; exactly 3.5 is not (§3 thresholds)."""
        lost = read_episode(episode(), self.responded(at(130, asdas="3.51")), today=TODAY)
        kept = read_episode(episode(), self.responded(at(130, asdas="3.5")), today=TODAY)
        assert lost.loss is not None
        assert lost.loss.very_high
        assert kept.loss is None

    def test_best_is_the_lowest_so_far(self) -> None:
        """The rise is measured from the best ASDAS on the episode, reached after assessment."""
        points = self.responded(at(120, asdas="1.0"), at(130, asdas="1.9"), at(137, asdas="1.95"))
        reading = read_episode(episode(), points, today=TODAY)
        assert reading.loss is not None
        assert reading.loss.best == Decimal("1.0")

    def test_no_loss_without_response(self) -> None:
        points = [at(-1, asdas="3.0"), at(100, asdas="2.5"), at(130, asdas="3.6")]
        reading = read_episode(episode(), points, today=TODAY)
        assert reading.judgement is Judgement.NO_RESPONSE
        assert reading.loss is None


class TestSeedCase:
    def test_upadacitinib_added_reads_as_the_case_report(self) -> None:
        """The §5 case as §7 reads it: 3.9 very high → 1.8 low, major improvement, target
        reached; BASDAI 3.8 → 1.4 with BASDAI50 and the ASAS/EULAR response."""
        before = ScorePoint(
            day=START - timedelta(days=3),
            basdai=basdai(5, 5, 0, 4, 5, 5),
            asdas_crp=asdas_crp(5, 5, 5, 0, "64.6"),
        )
        after = ScorePoint(
            day=START + timedelta(weeks=24),
            basdai=basdai(2, 2, 0, 1, 3, 1),
            asdas_crp=asdas_crp(2, 1, 2, 0, "7.59"),
        )
        reading = read_episode(episode(), [before, after], today=TODAY)
        assessment = reading.assessment
        assert assessment is not None
        assert reading.baseline.asdas_state is AsdasState.VERY_HIGH
        assert assessment.state_after is AsdasState.LOW
        assert assessment.asdas_change is AsdasChange.MAJOR_IMPROVEMENT
        assert assessment.low_activity_target
        assert not assessment.inactive_disease
        assert (assessment.basdai_before, assessment.basdai_after) == (
            Decimal("3.8"),
            Decimal("1.4"),
        )
        assert assessment.basdai50
        assert assessment.asas_eular_basdai_response
        assert reading.judgement is Judgement.RESPONSE
        assert assessment.week == 24
