"""Who needs the physician's attention, who is improving, and why (clinical spec §3).

Pure rules over one patient's scores: every threshold is compared on the unrounded exact
decimal, inclusive as written in the clinical spec, through `bot.domain.scoring`. The digest,
its charts and the immediate alerts all take their judgements from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from enum import StrEnum
from typing import Final

from bot.domain import scoring

BASDAI_RISE_POINTS: Final = Decimal("2")
"""A BASDAI rise of at least 2 points since the previous BASDAI needs attention."""

MISSED_IN_A_ROW: Final = 2
"""Two or more scheduled questionnaires missed in a row need attention."""

TREND_WINDOW: Final = 4
"""The trend arrow compares the latest BASDAI with the oldest of the last four."""

TREND_STEP: Final = Decimal("1")
"""A BASDAI move of at least one point over the trend window shows as up or down."""


SETTLED: Final = Decimal("1e-30")
"""Scores are compared at 30 decimal places. Stored scores keep 40 significant digits, so two
scores exactly 2 apart (0.8333… and 2.8333…, from stiffness minutes ÷ 12) can differ by
2 − 3·10⁻⁴⁰ once stored. Settling both at 30 decimals, far below any clinical resolution and
far above that storage noise, keeps a change that is exactly on a threshold on it."""

_EXACT: Final = Context(prec=100)


def settled(value: Decimal) -> Decimal:
    """A score at the precision the rules compare (see `SETTLED`)."""
    with localcontext(_EXACT):
        return value.quantize(SETTLED, rounding=ROUND_HALF_EVEN)


def difference(after: Decimal, before: Decimal) -> Decimal:
    """`after - before` of settled scores, without rounding, so a rise exactly on a threshold
    stays on it."""
    with localcontext(_EXACT):
        return settled(after) - settled(before)


class Concern(StrEnum):
    """A reason to look at a patient now, in order of severity (most severe first)."""

    ASDAS_VERY_HIGH = "asdas_very_high"
    ASDAS_WORSENING = "asdas_worsening"
    BASDAI_RISE = "basdai_rise"
    ASDAS_HIGH = "asdas_high"
    BASDAI_ACTIVE = "basdai_active"
    UNREACHABLE = "unreachable"
    MISSED = "missed"
    NO_RECENT_CRP = "no_recent_crp"


SEVERITY: Final[tuple[Concern, ...]] = tuple(Concern)
"""Concerns from most to least severe: disease activity and flares before reachability and
missing data, since a flare is what the physician has to act on first."""


class Progress(StrEnum):
    """A response against the patient's baseline worth telling the physician about."""

    ASDAS_MAJOR_IMPROVEMENT = "asdas_major_improvement"
    ASDAS_IMPORTANT_IMPROVEMENT = "asdas_important_improvement"
    BASDAI50 = "basdai50"


class Trend(StrEnum):
    """Direction of BASDAI over the last few questionnaires (higher is worse)."""

    UP = "up"
    DOWN = "down"
    STEADY = "steady"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Observation:
    """The scores of one completed questionnaire; None where a score could not be computed."""

    at: datetime
    basdai: Decimal | None
    asdas: Decimal | None


@dataclass(frozen=True)
class PatientFacts:
    """Everything the rules need about one patient, as of one moment.

    `observations` are the completed questionnaires up to `as_of`, oldest first;
    `scheduled_missed` says, oldest first, whether each closed scheduled questionnaire up to
    `as_of` was missed (True) or completed (False); open ones are left out.
    """

    as_of: datetime
    observations: Sequence[Observation]
    scheduled_missed: Sequence[bool]
    unreachable_since: datetime | None
    last_crp_at: datetime | None
    baseline_at: datetime | None = None


@dataclass(frozen=True)
class Flag:
    """One concern or response with the numbers that justify it.

    `value` is the current score (or the size of the change), `reference` what it was
    compared with, `count` a number of questionnaires, `since` a date the reason refers to.
    """

    kind: Concern | Progress
    value: Decimal | None = None
    reference: Decimal | None = None
    count: int | None = None
    since: datetime | None = None


@dataclass(frozen=True)
class Assessment:
    """The judgement on one patient: latest scores, changes, concerns and responses."""

    latest: Observation | None
    latest_basdai: Observation | None
    previous_basdai: Observation | None
    latest_asdas: Observation | None
    previous_asdas: Observation | None
    concerns: tuple[Flag, ...]
    progress: tuple[Flag, ...]
    trend: Trend
    missed_in_a_row: int

    @property
    def needs_attention(self) -> bool:
        return bool(self.concerns)

    @property
    def improving(self) -> bool:
        return bool(self.progress)

    def severity_key(self) -> tuple[int, ...]:
        """Sorts patients most severe first: by the most severe concern, then the next."""
        present = {flag.kind for flag in self.concerns}
        return tuple(0 if kind in present else 1 for kind in SEVERITY)


def _settle(observation: Observation) -> Observation:
    return Observation(
        at=observation.at,
        basdai=None if observation.basdai is None else settled(observation.basdai),
        asdas=None if observation.asdas is None else settled(observation.asdas),
    )


def _last_with(observations: Sequence[Observation], attribute: str) -> list[Observation]:
    return [obs for obs in observations if getattr(obs, attribute) is not None]


def _baseline(
    observations: Sequence[Observation], baseline_at: datetime | None
) -> Observation | None:
    """The baseline among observations that have the score in question.

    Without a clinic-set baseline date it is the first one; with a date, the one completed
    nearest to that date, the earlier on a tie (as lab values are matched, clinical spec §4).
    """
    if not observations:
        return None
    if baseline_at is None:
        return observations[0]
    return min(observations, key=lambda obs: (abs(obs.at - baseline_at), obs.at))


def asdas_concerns(latest: Observation | None, previous: Observation | None) -> tuple[Flag, ...]:
    """ASDAS very high (> 3.5) or high (≥ 2.1), and a clinically important worsening
    (an increase ≥ 0.9 against the previous ASDAS); clinical spec §3."""
    if latest is None or latest.asdas is None:
        return ()
    flags: list[Flag] = []
    state = scoring.asdas_category(latest.asdas)
    if state is scoring.AsdasState.VERY_HIGH:
        flags.append(Flag(Concern.ASDAS_VERY_HIGH, value=latest.asdas))
    elif state is scoring.AsdasState.HIGH:
        flags.append(Flag(Concern.ASDAS_HIGH, value=latest.asdas))
    if previous is not None and previous.asdas is not None:
        change = scoring.asdas_change(previous.asdas, latest.asdas)
        if change is scoring.AsdasChange.IMPORTANT_WORSENING:
            flags.append(
                Flag(
                    Concern.ASDAS_WORSENING,
                    value=difference(latest.asdas, previous.asdas),
                    reference=previous.asdas,
                )
            )
    return tuple(flags)


def basdai_concerns(latest: Observation | None, previous: Observation | None) -> tuple[Flag, ...]:
    """BASDAI ≥ 4 (active disease) and a rise of ≥ 2 points since the previous BASDAI."""
    if latest is None or latest.basdai is None:
        return ()
    flags: list[Flag] = []
    if previous is not None and previous.basdai is not None:
        rise = difference(latest.basdai, previous.basdai)
        if rise >= BASDAI_RISE_POINTS:
            flags.append(Flag(Concern.BASDAI_RISE, value=rise, reference=previous.basdai))
    if scoring.basdai_active(latest.basdai):
        flags.append(Flag(Concern.BASDAI_ACTIVE, value=latest.basdai))
    return tuple(flags)


def missed_in_a_row(scheduled_missed: Sequence[bool]) -> int:
    """How many of the most recent closed scheduled questionnaires were missed in a row."""
    run = 0
    for missed in reversed(scheduled_missed):
        if not missed:
            break
        run += 1
    return run


def trend(values: Sequence[Decimal]) -> Trend:
    """BASDAI direction: the latest against the oldest of the last `TREND_WINDOW` values."""
    window = list(values)[-TREND_WINDOW:]
    if len(window) < 2:
        return Trend.UNKNOWN
    change = difference(window[-1], window[0])
    if change >= TREND_STEP:
        return Trend.UP
    if change <= -TREND_STEP:
        return Trend.DOWN
    return Trend.STEADY


def assess(facts: PatientFacts, *, no_crp_weeks: int) -> Assessment:
    """Concerns and responses of one patient as of `facts.as_of`.

    ASDAS counts as current when its questionnaire was completed within the last
    `no_crp_weeks` weeks; a patient without a CRP drawn in that period is flagged, since
    without CRP there is no ASDAS-CRP (clinical spec §2). Improvements compare the current
    scores with the baseline (the first completed questionnaire, or the one nearest to the
    baseline date the clinic set): an ASDAS decrease ≥ 2.0 is a major and ≥ 1.1 a clinically
    important improvement, a BASDAI halved is BASDAI50 (clinical spec §3). Worsening compares
    with the previous score, as a flare is a change since last time.
    """
    observations = [_settle(obs) for obs in facts.observations if obs.at <= facts.as_of]
    recent_since = facts.as_of - timedelta(weeks=no_crp_weeks)
    with_basdai = _last_with(observations, "basdai")
    with_asdas = _last_with(observations, "asdas")
    latest_basdai = with_basdai[-1] if with_basdai else None
    previous_basdai = with_basdai[-2] if len(with_basdai) > 1 else None
    latest_asdas = with_asdas[-1] if with_asdas and with_asdas[-1].at >= recent_since else None
    previous_asdas = with_asdas[-2] if latest_asdas is not None and len(with_asdas) > 1 else None

    concerns = [
        *asdas_concerns(latest_asdas, previous_asdas),
        *basdai_concerns(latest_basdai, previous_basdai),
    ]
    if facts.unreachable_since is not None:
        concerns.append(Flag(Concern.UNREACHABLE, since=facts.unreachable_since))
    run = missed_in_a_row(facts.scheduled_missed)
    if run >= MISSED_IN_A_ROW:
        concerns.append(Flag(Concern.MISSED, count=run))
    if facts.last_crp_at is None or facts.last_crp_at < recent_since:
        concerns.append(Flag(Concern.NO_RECENT_CRP, count=no_crp_weeks, since=facts.last_crp_at))
    concerns.sort(key=lambda flag: SEVERITY.index(Concern(flag.kind)))

    progress: list[Flag] = []
    baseline_asdas = _baseline(with_asdas, facts.baseline_at)
    if (
        latest_asdas is not None
        and baseline_asdas is not None
        and baseline_asdas is not latest_asdas
        and baseline_asdas.asdas is not None
        and latest_asdas.asdas is not None
    ):
        change = scoring.asdas_change(baseline_asdas.asdas, latest_asdas.asdas)
        kind = {
            scoring.AsdasChange.MAJOR_IMPROVEMENT: Progress.ASDAS_MAJOR_IMPROVEMENT,
            scoring.AsdasChange.IMPORTANT_IMPROVEMENT: Progress.ASDAS_IMPORTANT_IMPROVEMENT,
        }.get(change)
        if kind is not None:
            progress.append(
                Flag(
                    kind,
                    value=difference(baseline_asdas.asdas, latest_asdas.asdas),
                    reference=baseline_asdas.asdas,
                    since=baseline_asdas.at,
                )
            )
    baseline_basdai = _baseline(with_basdai, facts.baseline_at)
    if (
        latest_basdai is not None
        and baseline_basdai is not None
        and baseline_basdai is not latest_basdai
        and baseline_basdai.basdai is not None
        and latest_basdai.basdai is not None
        and scoring.basdai50(baseline_basdai.basdai, latest_basdai.basdai)
    ):
        progress.append(
            Flag(
                Progress.BASDAI50,
                value=latest_basdai.basdai,
                reference=baseline_basdai.basdai,
                since=baseline_basdai.at,
            )
        )

    return Assessment(
        latest=observations[-1] if observations else None,
        latest_basdai=latest_basdai,
        previous_basdai=previous_basdai,
        latest_asdas=latest_asdas,
        previous_asdas=previous_asdas,
        concerns=tuple(concerns),
        progress=tuple(progress),
        trend=trend([obs.basdai for obs in with_basdai if obs.basdai is not None]),
        missed_in_a_row=run,
    )


def completion_alerts(observations: Sequence[Observation]) -> tuple[Flag, ...]:
    """What a just-completed questionnaire (the last observation) alerts a physician to:
    very high disease activity (ASDAS > 3.5) or a clinically important worsening (ASDAS up
    ≥ 0.9 against the previous ASDAS); clinical spec §3."""
    if not observations or observations[-1].asdas is None:
        return ()
    observations = [_settle(obs) for obs in observations]
    earlier = _last_with(observations[:-1], "asdas")
    flags = asdas_concerns(observations[-1], earlier[-1] if earlier else None)
    return tuple(
        flag for flag in flags if flag.kind in (Concern.ASDAS_VERY_HIGH, Concern.ASDAS_WORSENING)
    )
