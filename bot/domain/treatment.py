"""Therapy episodes and the response to each: baseline, assessment, non-response, loss (spec §7).

Everything here works on calendar days (the clinic's local date of a score), because the
rules of clinical spec §7 count days and weeks from a start date that has no time of day.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from operator import attrgetter
from typing import Final

from bot.domain import scoring

BASELINE_DAYS_BEFORE: Final = 28
"""A baseline is the last score in the 28 days up to and including the start (spec §7)."""

BASELINE_DAYS_AFTER: Final = 7
"""Without one, the first score within 7 days after the start, marked "after start" (§7)."""

ASSESSMENT_FROM_WEEK: Final = 12
ASSESSMENT_UNTIL_WEEK: Final = 24
"""Response is judged at the first ASDAS 12 to 24 weeks after the start (spec §7; Ramiro et
al., ASAS-EULAR 2022, Ann Rheum Dis 2023;82:19-34)."""

LOSS_INCREASE: Final = scoring.ASDAS_IMPORTANT_WORSENING
"""Loss of response: an ASDAS increase ≥ 0.9 from the best on the episode, confirmed (§7)."""

DRUG_MAX_LENGTH: Final = 120
DOSE_MAX_LENGTH: Final = 120


class TherapyClass(StrEnum):
    """The classes of clinical spec §7."""

    NSAID = "nsaid"
    CSDMARD = "csdmard"
    TNF_INHIBITOR = "tnf_inhibitor"
    IL17_INHIBITOR = "il17_inhibitor"
    JAK_INHIBITOR = "jak_inhibitor"
    GLUCOCORTICOID = "glucocorticoid"
    OTHER = "other"


MONITORED_CLASSES: Final = frozenset(
    {TherapyClass.TNF_INHIBITOR, TherapyClass.IL17_INHIBITOR, TherapyClass.JAK_INHIBITOR}
)
"""Classes whose open episode turns the weekly safety check-in on by default (spec §8)."""


class StopReason(StrEnum):
    """Why an episode stopped (clinical spec §7)."""

    INEFFICACY = "inefficacy"
    ADVERSE_EVENT = "adverse_event"
    REMISSION_OR_TAPER = "remission_or_taper"
    PATIENT_CHOICE = "patient_choice"
    OTHER = "other"


class TherapyInputError(ValueError):
    """An episode that cannot be stored; `code` names the reason, `params` fill its text."""

    def __init__(self, code: str, **params: str) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


def parse_class(text: str) -> TherapyClass:
    """A therapy class from its code, case and separators forgiven ("TNF-inhibitor")."""
    normalised = text.strip().lower().replace("-", "_").replace(" ", "_")
    try:
        return TherapyClass(normalised)
    except ValueError:
        raise TherapyInputError("class_unknown", value=text[:40]) from None


def parse_stop_reason(text: str) -> StopReason:
    """A stop reason from its code, case and separators forgiven ("adverse event")."""
    normalised = text.strip().lower().replace("-", "_").replace(" ", "_")
    try:
        return StopReason(normalised)
    except ValueError:
        raise TherapyInputError("stop_reason_unknown", value=text[:40]) from None


def parse_day(text: str, *, today: date) -> date:
    """A start or stop date, `2026-03-02` or `02.03.2026` (day first); never in the future."""
    value = text.strip()
    parsed: date | None = None
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        parts = value.split(".")
        if len(parts) == 3 and len(parts[2]) == 4 and all(p.isdigit() for p in parts):
            try:
                parsed = date(int(parts[2]), int(parts[1]), int(parts[0]))
            except ValueError:
                parsed = None
    if parsed is None:
        raise TherapyInputError("date_unreadable", value=value[:40])
    if parsed > today:
        raise TherapyInputError("date_future", value=parsed.isoformat())
    return parsed


@dataclass(frozen=True)
class TherapyEpisode:
    """One drug taken from `start` until `stop` (open while None); episodes may overlap."""

    drug: str
    therapy_class: TherapyClass
    start: date
    dose: str | None = None
    stop: date | None = None
    stop_reason: StopReason | None = None

    def __post_init__(self) -> None:
        check_episode(self)

    def open_on(self, day: date) -> bool:
        """Whether the drug was being taken on this day (start and stop days included)."""
        return self.start <= day and (self.stop is None or day <= self.stop)


def check_episode(episode: TherapyEpisode) -> None:
    """Refuses an episode a physician could not have meant: no drug, a stop before the start,
    a stop reason without a stop, or names too long to show."""
    drug = episode.drug.strip()
    if not drug:
        raise TherapyInputError("drug_missing")
    if len(drug) > DRUG_MAX_LENGTH:
        raise TherapyInputError("drug_too_long", limit=str(DRUG_MAX_LENGTH))
    if episode.dose is not None and len(episode.dose) > DOSE_MAX_LENGTH:
        raise TherapyInputError("dose_too_long", limit=str(DOSE_MAX_LENGTH))
    if episode.stop is not None and episode.stop < episode.start:
        raise TherapyInputError(
            "stop_before_start", start=episode.start.isoformat(), stop=episode.stop.isoformat()
        )
    if episode.stop is None and episode.stop_reason is not None:
        raise TherapyInputError("reason_without_stop")


@dataclass(frozen=True)
class ScorePoint:
    """One completed questionnaire's scores on the clinic's calendar day it was completed.

    `asdas_crp` and `asdas_esr` are unrounded; change is compared only within one variant
    (clinical spec §6), with ASDAS-CRP preferred (§2). `crp_mg_l` is the CRP the ASDAS-CRP
    used, as measured (shown beside it; the case report tells its course in CRP too).
    """

    day: date
    basdai: Decimal | None = None
    asdas_crp: Decimal | None = None
    asdas_esr: Decimal | None = None
    crp_mg_l: Decimal | None = None


class AsdasVariant(StrEnum):
    CRP = "ASDAS-CRP"
    ESR = "ASDAS-ESR"


def _asdas(point: ScorePoint, variant: AsdasVariant) -> Decimal | None:
    return point.asdas_crp if variant is AsdasVariant.CRP else point.asdas_esr


@dataclass(frozen=True)
class BaselineValue:
    """A baseline score, the day it was taken, whether it came after the start (§7), and the
    CRP of that questionnaire's ASDAS-CRP."""

    value: Decimal
    day: date
    after_start: bool
    crp_mg_l: Decimal | None = None


@dataclass(frozen=True)
class Baseline:
    """The episode's baseline ASDAS (with its variant) and BASDAI; either may be missing."""

    asdas: BaselineValue | None
    asdas_variant: AsdasVariant | None
    basdai: BaselineValue | None

    @property
    def asdas_state(self) -> scoring.AsdasState | None:
        return None if self.asdas is None else scoring.asdas_category(self.asdas.value)


_ValueOf = Callable[[ScorePoint], Decimal | None]
"""Which number of a score point a search looks at."""


def _basdai_of(point: ScorePoint) -> Decimal | None:
    return point.basdai


def _asdas_crp_of(point: ScorePoint) -> Decimal | None:
    return point.asdas_crp


def _asdas_esr_of(point: ScorePoint) -> Decimal | None:
    return point.asdas_esr


def _baseline_value(
    points: Sequence[ScorePoint], start: date, value_of: _ValueOf
) -> BaselineValue | None:
    """Clinical spec §7: the last value in [start − 28 days, start], else the first in
    (start, start + 7 days], marked "after start". `points` are in day order, so the two
    windows are found by bisection rather than by looking at a year of points."""
    first = bisect_left(points, start - timedelta(days=BASELINE_DAYS_BEFORE), key=_day)
    boundary = bisect_right(points, start, key=_day)
    for point in reversed(points[first:boundary]):
        if (value := value_of(point)) is not None:
            return BaselineValue(value, point.day, after_start=False, crp_mg_l=point.crp_mg_l)
    last = bisect_right(points, start + timedelta(days=BASELINE_DAYS_AFTER), key=_day)
    for point in points[boundary:last]:
        if (value := value_of(point)) is not None:
            return BaselineValue(value, point.day, after_start=True, crp_mg_l=point.crp_mg_l)
    return None


_day: Callable[[ScorePoint], date] = attrgetter("day")


def _chronological(points: Sequence[ScorePoint]) -> list[ScorePoint]:
    """Points by day; the caller's order is kept within a day (it knows the times)."""
    return sorted(points, key=_day)


def baseline(episode: TherapyEpisode, points: Sequence[ScorePoint]) -> Baseline:
    """The baseline of an episode (clinical spec §7).

    The last ASDAS (and BASDAI) in the 28 days up to and including the start date, i.e. from
    start − 28 days to the start; if there is none, the first within 7 days after the start,
    marked "after start". ASDAS-CRP is preferred; ASDAS-ESR serves when the window holds no
    ASDAS-CRP (§2, §6), and later change is then measured in ASDAS-ESR only.
    """
    ordered = _chronological(points)
    asdas, variant = _baseline_value(ordered, episode.start, _asdas_crp_of), AsdasVariant.CRP
    if asdas is None:
        asdas, variant = _baseline_value(ordered, episode.start, _asdas_esr_of), AsdasVariant.ESR
    return Baseline(
        asdas=asdas,
        asdas_variant=None if asdas is None else variant,
        basdai=_baseline_value(ordered, episode.start, _basdai_of),
    )


def assessment_window(start: date) -> tuple[date, date]:
    """First and last day of the response assessment: weeks 12 to 24 after the start (§7)."""
    return (
        start + timedelta(weeks=ASSESSMENT_FROM_WEEK),
        start + timedelta(weeks=ASSESSMENT_UNTIL_WEEK),
    )


def week_of(start: date, day: date) -> int:
    """Whole weeks from the start to a day (day 84 is week 12)."""
    return (day - start).days // 7


class Judgement(StrEnum):
    """Where the episode's response stands (clinical spec §7)."""

    NO_BASELINE = "no baseline"
    NOT_YET_DUE = "not yet due"
    DUE = "assessment due"
    RESPONSE = "response"
    NO_RESPONSE = "no response"
    TARGET_WITHOUT_RESPONSE = "target reached without important improvement"
    NOT_ASSESSED = "not assessed"
    STOPPED_BEFORE_ASSESSMENT = "stopped before assessment"


@dataclass(frozen=True)
class Assessment:
    """The response assessment at week `week` (clinical spec §7).

    With an ASDAS (`asdas_variant` set) response is an ASDAS decrease ≥ 1.1, major ≥ 2.0, and
    the target is ASDAS < 2.1 (inactive < 1.3). Without one it rests on BASDAI with the
    ASAS/EULAR rule (`by_basdai_only`). BASDAI50 and the ASAS/EULAR BASDAI response are given
    beside the ASDAS whenever both BASDAI values exist (§3, §6).
    """

    day: date
    week: int
    asdas_variant: AsdasVariant | None
    asdas_before: Decimal | None
    asdas_after: Decimal | None
    basdai_before: Decimal | None
    basdai_after: Decimal | None
    crp_before: Decimal | None = None
    crp_after: Decimal | None = None

    @property
    def by_basdai_only(self) -> bool:
        return self.asdas_after is None

    @property
    def asdas_decrease(self) -> Decimal | None:
        if self.asdas_before is None or self.asdas_after is None:
            return None
        return self.asdas_before - self.asdas_after

    @property
    def asdas_change(self) -> scoring.AsdasChange | None:
        if self.asdas_before is None or self.asdas_after is None:
            return None
        return scoring.asdas_change(self.asdas_before, self.asdas_after)

    @property
    def state_after(self) -> scoring.AsdasState | None:
        return None if self.asdas_after is None else scoring.asdas_category(self.asdas_after)

    @property
    def important_improvement(self) -> bool:
        """ASDAS decrease ≥ 1.1: a response (§7)."""
        decrease = self.asdas_decrease
        return decrease is not None and decrease >= scoring.ASDAS_IMPORTANT_IMPROVEMENT

    @property
    def major_improvement(self) -> bool:
        """ASDAS decrease ≥ 2.0 (§7)."""
        decrease = self.asdas_decrease
        return decrease is not None and decrease >= scoring.ASDAS_MAJOR_IMPROVEMENT

    @property
    def low_activity_target(self) -> bool:
        """ASDAS < 2.1: the low disease activity target is reached (§7)."""
        return self.asdas_after is not None and self.asdas_after < scoring.ASDAS_HIGH_FROM

    @property
    def inactive_disease(self) -> bool:
        """ASDAS < 1.3 (§7)."""
        return self.asdas_after is not None and self.asdas_after < scoring.ASDAS_INACTIVE_BELOW

    @property
    def basdai50(self) -> bool | None:
        if self.basdai_before is None or self.basdai_after is None:
            return None
        return scoring.basdai50(self.basdai_before, self.basdai_after)

    @property
    def asas_eular_basdai_response(self) -> bool | None:
        if self.basdai_before is None or self.basdai_after is None:
            return None
        return scoring.asdas_eular_basdai_response(self.basdai_before, self.basdai_after)

    @property
    def judgement(self) -> Judgement:
        """Response, primary non-response (decrease < 1.1 and ASDAS ≥ 2.1), or the target
        reached without a clinically important improvement; BASDAI-only by ASAS/EULAR (§7)."""
        if self.by_basdai_only:
            return Judgement.RESPONSE if self.asas_eular_basdai_response else Judgement.NO_RESPONSE
        if self.important_improvement:
            return Judgement.RESPONSE
        if self.low_activity_target:
            return Judgement.TARGET_WITHOUT_RESPONSE
        return Judgement.NO_RESPONSE


@dataclass(frozen=True)
class LossOfResponse:
    """After a response: why and when it was lost (clinical spec §7)."""

    day: date
    asdas: Decimal
    best: Decimal
    very_high: bool


@dataclass(frozen=True)
class EpisodeReading:
    """The §7 reading of one episode on a given day."""

    episode: TherapyEpisode
    baseline: Baseline
    assessment: Assessment | None
    judgement: Judgement
    assessment_from: date
    assessment_until: date
    loss: LossOfResponse | None


def _assessment(
    episode: TherapyEpisode, base: Baseline, points: Sequence[ScorePoint]
) -> Assessment | None:
    """The first ASDAS (of the baseline's variant) 12 to 24 weeks after the start, both ends
    included; without an ASDAS baseline, the first BASDAI in that window (§7). `points` are
    in day order."""
    first, last = assessment_window(episode.start)
    in_window = [
        point
        for point in points[
            bisect_left(points, first, key=_day) : bisect_right(points, last, key=_day)
        ]
        if episode.open_on(point.day)
    ]
    if base.asdas is not None and base.asdas_variant is not None:
        variant = base.asdas_variant
        for point in in_window:
            after = _asdas(point, variant)
            if after is not None:
                return Assessment(
                    day=point.day,
                    week=week_of(episode.start, point.day),
                    asdas_variant=variant,
                    asdas_before=base.asdas.value,
                    asdas_after=after,
                    basdai_before=None if base.basdai is None else base.basdai.value,
                    basdai_after=point.basdai,
                    crp_before=base.asdas.crp_mg_l if variant is AsdasVariant.CRP else None,
                    crp_after=point.crp_mg_l if variant is AsdasVariant.CRP else None,
                )
        return None
    if base.basdai is None:
        return None
    for point in in_window:
        if point.basdai is not None:
            return Assessment(
                day=point.day,
                week=week_of(episode.start, point.day),
                asdas_variant=None,
                asdas_before=None,
                asdas_after=None,
                basdai_before=base.basdai.value,
                basdai_after=point.basdai,
            )
    return None


def _loss(
    episode: TherapyEpisode,
    variant: AsdasVariant,
    assessment: Assessment,
    points: Sequence[ScorePoint],
) -> LossOfResponse | None:
    """Clinical spec §7: after a response, an ASDAS increase ≥ 0.9 from the best ASDAS on the
    episode, confirmed by the next ASDAS, or any ASDAS > 3.5.

    The best is the lowest ASDAS from the start up to the rise; the confirming ASDAS must also
    be ≥ 0.9 above that best, and the loss is dated on the confirming one.
    """
    on_episode = [
        (point.day, value)
        for point in points
        if episode.start <= point.day
        and episode.open_on(point.day)
        and (value := _asdas(point, variant)) is not None
    ]
    assessed_at = next(i for i, (day, value) in enumerate(on_episode) if day == assessment.day)
    best = min(value for _, value in on_episode[: assessed_at + 1])
    for index in range(assessed_at + 1, len(on_episode)):
        day, value = on_episode[index]
        if value > scoring.ASDAS_VERY_HIGH_ABOVE:
            return LossOfResponse(day=day, asdas=value, best=best, very_high=True)
        if value - best >= LOSS_INCREASE and index + 1 < len(on_episode):
            next_day, next_value = on_episode[index + 1]
            if next_value - best >= LOSS_INCREASE:
                very_high = next_value > scoring.ASDAS_VERY_HIGH_ABOVE
                return LossOfResponse(
                    day=next_day, asdas=next_value, best=best, very_high=very_high
                )
        best = min(best, value)
    return None


def read_episode(
    episode: TherapyEpisode, points: Sequence[ScorePoint], *, today: date
) -> EpisodeReading:
    """The §7 reading of an episode as of `today`: baseline, the response assessment (or
    whether it is due), primary non-response and loss of response (clinical spec §7).

    No baseline, no response: the reading says so rather than guessing.
    """
    ordered = _chronological(points)
    base = baseline(episode, ordered)
    first, last = assessment_window(episode.start)
    assessment = (
        None if base.asdas is None and base.basdai is None else _assessment(episode, base, ordered)
    )
    loss = None
    if base.asdas is None and base.basdai is None:
        judgement = Judgement.NO_BASELINE
    elif assessment is not None:
        judgement = assessment.judgement
        if judgement is Judgement.RESPONSE and base.asdas_variant is not None:
            loss = _loss(episode, base.asdas_variant, assessment, ordered)
    elif episode.stop is not None and episode.stop < min(today, last):
        judgement = Judgement.STOPPED_BEFORE_ASSESSMENT
    elif today < first:
        judgement = Judgement.NOT_YET_DUE
    elif today <= last:
        judgement = Judgement.DUE
    else:
        judgement = Judgement.NOT_ASSESSED
    return EpisodeReading(
        episode=episode,
        baseline=base,
        assessment=assessment,
        judgement=judgement,
        assessment_from=first,
        assessment_until=last,
        loss=loss,
    )
