"""Who needs the physician's attention, who is improving, and why (clinical spec §3).

Pure rules over one patient's scores: every threshold is compared on the unrounded exact
decimal, inclusive as written in the clinical spec, through `bot.domain.scoring`. The digest,
its charts and the immediate alerts all take their judgements from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal
from enum import StrEnum
from typing import Final, NamedTuple

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
    return value.quantize(SETTLED, rounding=ROUND_HALF_EVEN, context=_EXACT)


def difference(after: Decimal, before: Decimal) -> Decimal:
    """`after - before` of settled scores, without rounding, so a rise exactly on a threshold
    stays on it."""
    return _EXACT.subtract(settled(after), settled(before))


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
    """A response against the patient's baseline worth telling the physician about.

    BASDAI50 and the ASAS/EULAR BASDAI response (≥ 50 % or ≥ 2 points) differ and are
    reported side by side, each under its own name (clinical spec §3, §6).
    """

    ASDAS_MAJOR_IMPROVEMENT = "asdas_major_improvement"
    ASDAS_IMPORTANT_IMPROVEMENT = "asdas_important_improvement"
    BASDAI50 = "basdai50"
    BASDAI_ASAS_EULAR = "basdai_asas_eular"


class Variant(StrEnum):
    """Which ASDAS a judgement rests on; change is only computed within one (spec §6)."""

    CRP = "CRP"
    ESR = "ESR"


class Trend(StrEnum):
    """Direction of BASDAI over the last few questionnaires (higher is worse)."""

    UP = "up"
    DOWN = "down"
    STEADY = "steady"
    UNKNOWN = "unknown"


class Observation(NamedTuple):
    """The scores of one completed questionnaire; None where a score could not be computed.

    `asdas` is ASDAS-CRP and `asdas_esr` ASDAS-ESR, each with the date its lab value was
    drawn (clinical spec §6: every ASDAS is shown with that date, and is current only while
    that lab value is recent). A named tuple: a digest makes two of these (as read, then
    settled) for each of a year of questionnaires of two hundred patients, and a frozen
    dataclass costs several times as much to make.
    """

    at: datetime
    basdai: Decimal | None
    asdas: Decimal | None
    asdas_esr: Decimal | None = None
    crp_drawn_at: datetime | None = None
    esr_drawn_at: datetime | None = None

    def asdas_of(self, variant: Variant) -> Decimal | None:
        """The ASDAS of one variant (CRP or ESR)."""
        return self.asdas if variant is Variant.CRP else self.asdas_esr

    def lab_at(self, variant: Variant) -> datetime:
        """When the lab value of that variant's ASDAS was drawn (the questionnaire's time
        when unknown)."""
        drawn = self.crp_drawn_at if variant is Variant.CRP else self.esr_drawn_at
        return self.at if drawn is None else drawn


@dataclass(frozen=True)
class PatientFacts:
    """Everything the rules need about one patient, as of one moment.

    `observations` are the completed questionnaires up to `as_of`, oldest first;
    `scheduled_missed` says, oldest first, whether each closed scheduled questionnaire up to
    `as_of` was missed (True) or completed (False); open ones are left out.
    `asdas_baseline_at` and `basdai_baseline_at` are the questionnaires of the current therapy
    episode's baseline (clinical spec §7), when it has one: they take the place of the
    clinic-set `baseline_at` for that score.
    """

    as_of: datetime
    observations: Sequence[Observation]
    scheduled_missed: Sequence[bool]
    unreachable_since: datetime | None
    last_crp_at: datetime | None
    baseline_at: datetime | None = None
    asdas_baseline_at: datetime | None = None
    basdai_baseline_at: datetime | None = None


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
    variant: Variant | None = None
    drawn_at: datetime | None = None


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
    variant: Variant = Variant.CRP

    @property
    def latest_asdas_value(self) -> Decimal | None:
        """The current ASDAS of the variant that drives the flags."""
        return None if self.latest_asdas is None else self.latest_asdas.asdas_of(self.variant)

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
    at, basdai, asdas, asdas_esr, crp_drawn_at, esr_drawn_at = observation
    return Observation(
        at,
        None if basdai is None else settled(basdai),
        None if asdas is None else settled(asdas),
        None if asdas_esr is None else settled(asdas_esr),
        crp_drawn_at,
        esr_drawn_at,
    )


def choose_variant(observations: Sequence[Observation], recent_since: datetime) -> Variant:
    """ASDAS-CRP drives the flags when the patient has one (current first); a patient with
    only ASDAS-ESR is judged on ASDAS-ESR, never as having no ASDAS (clinical spec §6)."""
    for current_only in (True, False):
        for variant in Variant:
            if any(
                obs.asdas_of(variant) is not None
                and (not current_only or obs.lab_at(variant) >= recent_since)
                for obs in observations
            ):
                return variant
    return Variant.CRP


def _last_with(observations: Sequence[Observation], attribute: str) -> list[Observation]:
    return [obs for obs in observations if getattr(obs, attribute) is not None]


def baseline(
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


def asdas_concerns(
    latest: Observation | None,
    previous: Observation | None,
    variant: Variant = Variant.CRP,
) -> tuple[Flag, ...]:
    """ASDAS very high (> 3.5) or high (≥ 2.1), and a clinically important worsening
    (an increase ≥ 0.9 against the previous ASDAS of the same variant); clinical spec §3, §6.
    Each flag carries its variant and the date of the lab value (spec §6)."""
    now = None if latest is None else latest.asdas_of(variant)
    if latest is None or now is None:
        return ()
    drawn_at = latest.lab_at(variant)
    flags: list[Flag] = []
    state = scoring.asdas_category(now)
    if state is scoring.AsdasState.VERY_HIGH:
        flags.append(Flag(Concern.ASDAS_VERY_HIGH, value=now, variant=variant, drawn_at=drawn_at))
    elif state is scoring.AsdasState.HIGH:
        flags.append(Flag(Concern.ASDAS_HIGH, value=now, variant=variant, drawn_at=drawn_at))
    before = None if previous is None else previous.asdas_of(variant)
    if before is not None:
        change = scoring.asdas_change(before, now)
        if change is scoring.AsdasChange.IMPORTANT_WORSENING:
            flags.append(
                Flag(
                    Concern.ASDAS_WORSENING,
                    value=difference(now, before),
                    reference=before,
                    variant=variant,
                    drawn_at=drawn_at,
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

    ASDAS counts as current while its lab value was drawn within the last `no_crp_weeks`
    weeks (clinical spec §6); ASDAS-CRP drives the flags, and a patient with only ASDAS-ESR
    is judged on ASDAS-ESR, change staying within one variant (spec §6). A patient without a
    CRP drawn in that period and without a current ASDAS-ESR is flagged, since without CRP
    there is no ASDAS-CRP (clinical spec §2). Improvements compare the current
    scores with the baseline (the current therapy episode's baseline questionnaire of
    clinical spec §7 when there is one, else the first completed questionnaire, or the one
    nearest to the baseline date the clinic set): an ASDAS decrease ≥ 2.0 is a major and
    ≥ 1.1 a clinically important improvement, a BASDAI halved is BASDAI50 (clinical spec
    §3). Worsening compares
    with the previous score, as a flare is a change since last time.
    """
    observations = [_settle(obs) for obs in facts.observations if obs.at <= facts.as_of]
    recent_since = facts.as_of - timedelta(weeks=no_crp_weeks)
    with_basdai = _last_with(observations, "basdai")
    variant = choose_variant(observations, recent_since)
    with_asdas = [obs for obs in observations if obs.asdas_of(variant) is not None]
    latest_basdai = with_basdai[-1] if with_basdai else None
    previous_basdai = with_basdai[-2] if len(with_basdai) > 1 else None
    latest_asdas = (
        with_asdas[-1] if with_asdas and with_asdas[-1].lab_at(variant) >= recent_since else None
    )
    previous_asdas = with_asdas[-2] if latest_asdas is not None and len(with_asdas) > 1 else None

    concerns = [
        *asdas_concerns(latest_asdas, previous_asdas, variant),
        *basdai_concerns(latest_basdai, previous_basdai),
    ]
    if facts.unreachable_since is not None:
        concerns.append(Flag(Concern.UNREACHABLE, since=facts.unreachable_since))
    run = missed_in_a_row(facts.scheduled_missed)
    if run >= MISSED_IN_A_ROW:
        concerns.append(Flag(Concern.MISSED, count=run))
    no_recent_crp = facts.last_crp_at is None or facts.last_crp_at < recent_since
    current_esr_only = latest_asdas is not None and variant is Variant.ESR
    if no_recent_crp and not current_esr_only:
        concerns.append(Flag(Concern.NO_RECENT_CRP, count=no_crp_weeks, since=facts.last_crp_at))
    concerns.sort(key=lambda flag: SEVERITY.index(Concern(flag.kind)))

    progress: list[Flag] = []
    baseline_asdas = baseline(with_asdas, facts.asdas_baseline_at or facts.baseline_at)
    if (
        latest_asdas is not None
        and baseline_asdas is not None
        and baseline_asdas is not latest_asdas
    ):
        baseline_value = baseline_asdas.asdas_of(variant)
        latest_value = latest_asdas.asdas_of(variant)
        assert baseline_value is not None
        assert latest_value is not None
        change = scoring.asdas_change(baseline_value, latest_value)
        kind = {
            scoring.AsdasChange.MAJOR_IMPROVEMENT: Progress.ASDAS_MAJOR_IMPROVEMENT,
            scoring.AsdasChange.IMPORTANT_IMPROVEMENT: Progress.ASDAS_IMPORTANT_IMPROVEMENT,
        }.get(change)
        if kind is not None:
            progress.append(
                Flag(
                    kind,
                    value=difference(baseline_value, latest_value),
                    reference=baseline_value,
                    since=baseline_asdas.at,
                    variant=variant,
                    drawn_at=latest_asdas.lab_at(variant),
                )
            )
    baseline_basdai = baseline(with_basdai, facts.basdai_baseline_at or facts.baseline_at)
    if (
        latest_basdai is not None
        and baseline_basdai is not None
        and baseline_basdai is not latest_basdai
        and baseline_basdai.basdai is not None
        and latest_basdai.basdai is not None
    ):
        before, after = baseline_basdai.basdai, latest_basdai.basdai
        # BASDAI50 and the ASAS/EULAR response, each under its own name (spec §3, §6).
        for kind, met in (
            (Progress.BASDAI50, scoring.basdai50(before, after)),
            (Progress.BASDAI_ASAS_EULAR, scoring.asdas_eular_basdai_response(before, after)),
        ):
            if met:
                progress.append(Flag(kind, value=after, reference=before, since=baseline_basdai.at))

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
        variant=variant,
    )


def completion_alerts(observations: Sequence[Observation]) -> tuple[Flag, ...]:
    """What the newest score of a questionnaire (the last observation) alerts a physician to:
    very high disease activity (ASDAS > 3.5) or a clinically important worsening (ASDAS up
    ≥ 0.9 against the previous ASDAS of the same variant); clinical spec §3, §6. ASDAS-CRP
    is judged when there is one, else ASDAS-ESR."""
    if not observations:
        return ()
    observations = [_settle(obs) for obs in observations]
    latest = observations[-1]
    variant = Variant.CRP if latest.asdas is not None else Variant.ESR
    if latest.asdas_of(variant) is None:
        return ()
    earlier = [obs for obs in observations[:-1] if obs.asdas_of(variant) is not None]
    flags = asdas_concerns(latest, earlier[-1] if earlier else None, variant)
    return tuple(
        flag for flag in flags if flag.kind in (Concern.ASDAS_VERY_HIGH, Concern.ASDAS_WORSENING)
    )
