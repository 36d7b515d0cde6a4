"""BASDAI and ASDAS scores, disease activity states and response criteria (clinical spec §2-§3)."""

# Binary floats put a score that is exactly on a threshold on the wrong side (an ASDAS-ESR of
# 2.1 becomes 2.0999999999999996), so every input becomes a Decimal on entry and every result
# is computed in a private context of ample precision, the logarithm and square root included.

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation, localcontext
from enum import StrEnum
from typing import Final

Number = int | float | Decimal | str
"""What the public functions accept; floats go through ``str`` so 7.59 stays 7.59."""

PRECISION: Final = 50
"""Significant digits for intermediate results: far beyond any clinical resolution."""

CRP_FLOOR_MG_L: Final = Decimal("2")
"""CRP used when the measured value is below 2 mg/L or below the detection limit (spec §2)."""

MG_DL_TO_MG_L: Final = Decimal("10")
"""1 mg/dL = 10 mg/L; ASDAS-CRP is defined on mg/L (spec §2)."""

ITEM_MIN: Final = Decimal("0")
ITEM_MAX: Final = Decimal("10")
MINUTES_PER_POINT: Final = Decimal("12")
BASDAI_ACTIVE_THRESHOLD: Final = Decimal("4")
"""BASDAI ≥ 4 is active disease: the ASAS consensus threshold for starting a biologic (spec §3;
Braun et al., Ann Rheum Dis 2003;62:817-24). Garrett 1994 defines the index, not this line."""

ASDAS_INACTIVE_BELOW: Final = Decimal("1.3")
ASDAS_HIGH_FROM: Final = Decimal("2.1")
ASDAS_VERY_HIGH_ABOVE: Final = Decimal("3.5")

ASDAS_MAJOR_IMPROVEMENT: Final = Decimal("2.0")
ASDAS_IMPORTANT_IMPROVEMENT: Final = Decimal("1.1")
ASDAS_IMPORTANT_WORSENING: Final = Decimal("0.9")
ASAS_EULAR_ABSOLUTE_POINTS: Final = Decimal("2")
BASDAI_NOTICEABLE_CHANGE: Final = Decimal("1")
"""A BASDAI change of at least 1 point, about the minimal clinically important difference, is
told to the patient as lower or higher (spec §6; Pavy et al., J Rheumatol 2005;32:80-5)."""

_ONE_DECIMAL: Final = Decimal("0.1")


class AsdasState(StrEnum):
    """ASDAS disease activity state with the 2018 ASAS names (spec §3; Machado, ARD 2018)."""

    INACTIVE = "inactive disease"
    LOW = "low disease activity"
    HIGH = "high disease activity"
    VERY_HIGH = "very high disease activity"

    @property
    def key(self) -> str:
        """The one short name of the state ("inactive", "low", "high", "very_high") by which
        the templates' state names, the web pages and the export address it (spec §3)."""
        return self.name.lower()


class AsdasChange(StrEnum):
    """ASDAS change between two administrations (spec §3; Machado ARD 2011, Molto ARD 2018)."""

    MAJOR_IMPROVEMENT = "major improvement"
    IMPORTANT_IMPROVEMENT = "clinically important improvement"
    IMPORTANT_WORSENING = "clinically important worsening"
    NO_IMPORTANT_CHANGE = "no clinically important change"


def _context() -> Context:
    """A fresh context so a caller's global decimal settings never change a score."""
    return Context(prec=PRECISION, rounding=ROUND_HALF_UP)


def _to_decimal(value: object, name: str) -> Decimal:
    """Convert one input to a finite ``Decimal`` or raise ``ValueError`` naming the item.

    Spec §2 asks for inputs to be rejected with an error naming the item. ``bool`` is refused
    although it is an ``int``, because ``True`` as a pain score is a bug, not a 1.
    """
    if value is None:
        raise ValueError(f"{name} is missing")
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
        result = Decimal(str(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{name} must be a number, got {value!r}") from None
    else:
        raise ValueError(f"{name} must be a number, got {type(value).__name__}")
    if not result.is_finite():
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return result


def _item(value: object, name: str) -> Decimal:
    """A 0-10 rating (spec §1-§2): anything outside the scale is an input error."""
    result = _to_decimal(value, name)
    if not ITEM_MIN <= result <= ITEM_MAX:
        raise ValueError(f"{name} must be between 0 and 10, got {value}")
    return result


def _non_negative(value: object, name: str) -> Decimal:
    """A lab value or duration: spec §2 rejects negative values and sets no upper cap."""
    result = _to_decimal(value, name)
    if result < 0:
        raise ValueError(f"{name} must not be negative, got {value}")
    return result


def _flag(value: object, name: str) -> bool:
    """A yes/no input; a truthy string such as ``"no"`` must not silently mean yes."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def basdai(q1: Number, q2: Number, q3: Number, q4: Number, q5: Number, q6: Number) -> Decimal:
    """BASDAI = (q1 + q2 + q3 + q4 + (q5 + q6) / 2) / 5, range 0-10.

    Clinical spec §2 (Garrett et al., J Rheumatol 1994;21:2286-91); ``q6`` is the 0-10
    value of the stiffness duration, see ``stiffness_minutes_to_score``.
    """
    i1, i2, i3, i4 = _item(q1, "q1"), _item(q2, "q2"), _item(q3, "q3"), _item(q4, "q4")
    i5, i6 = _item(q5, "q5"), _item(q6, "q6")
    with localcontext(_context()):
        return (i1 + i2 + i3 + i4 + (i5 + i6) / 2) / 5


def stiffness_minutes_to_score(minutes: Number) -> Decimal:
    """BASDAI item 6 on its 0-10 scale: minutes / 12, capped at 10 (2 h or more).

    Clinical spec §1 (Garrett et al., J Rheumatol 1994;21:2286-91).
    """
    value = _non_negative(minutes, "minutes")
    with localcontext(_context()):
        return min(value / MINUTES_PER_POINT, ITEM_MAX)


def crp_to_mg_l(value: Number, unit: str) -> Decimal:
    """CRP in mg/L from a lab value and its unit; 1 mg/dL = 10 mg/L.

    Clinical spec §2: a lab value must carry its unit and mg/dL is converted on entry, since
    ASDAS-CRP is defined on mg/L (van der Heijde et al., ARD 2009;68:1811-8).
    """
    crp = _non_negative(value, "crp")
    normalised = "".join(unit.split()).lower() if isinstance(unit, str) else None
    if normalised == "mg/l":
        return crp
    if normalised == "mg/dl":
        with localcontext(_context()):
            return crp * MG_DL_TO_MG_L
    raise ValueError(f"unit must be 'mg/L' or 'mg/dL', got {unit!r}")


def effective_crp(crp_mg_l: Number, below_detection_limit: bool = False) -> tuple[Decimal, bool]:
    """The CRP that enters ASDAS-CRP, and whether the 2 mg/L floor replaced the measurement.

    Clinical spec §2 (Machado et al., Arthritis Rheumatol 2015, doi 10.1002/art.38921): a CRP
    below 2 mg/L, or reported only as below the detection limit ("<5"), counts as 2 mg/L.
    A CRP of exactly 2 mg/L is used as measured.
    """
    crp = _non_negative(crp_mg_l, "crp_mg_l")
    if _flag(below_detection_limit, "crp_below_detection_limit") or crp < CRP_FLOOR_MG_L:
        return CRP_FLOOR_MG_L, True
    return crp, False


def asdas_crp(
    back_pain: Number,
    stiffness_duration: Number,
    patient_global: Number,
    peripheral_pain: Number,
    crp_mg_l: Number,
    crp_below_detection_limit: bool = False,
) -> Decimal:
    """ASDAS-CRP = 0.12·back pain + 0.06·duration + 0.11·global + 0.07·peripheral + 0.58·ln(CRP+1).

    Clinical spec §2, ASAS-endorsed two-decimal weights (van der Heijde et al., ARD
    2009;68:1811-8; Machado et al., ARD 2011;70:47-53), CRP in mg/L with the 2 mg/L floor
    (Machado et al., Arthritis Rheumatol 2015).
    """
    pain = _item(back_pain, "back_pain")
    duration = _item(stiffness_duration, "stiffness_duration")
    global_ = _item(patient_global, "patient_global")
    peripheral = _item(peripheral_pain, "peripheral_pain")
    crp, _ = effective_crp(crp_mg_l, crp_below_detection_limit)
    with localcontext(_context()):
        return (
            Decimal("0.12") * pain
            + Decimal("0.06") * duration
            + Decimal("0.11") * global_
            + Decimal("0.07") * peripheral
            + Decimal("0.58") * (crp + 1).ln()
        )


def asdas_esr(
    back_pain: Number,
    stiffness_duration: Number,
    patient_global: Number,
    peripheral_pain: Number,
    esr_mm_h: Number,
) -> Decimal:
    """ASDAS-ESR = 0.08·back pain + 0.07·duration + 0.11·global + 0.09·peripheral + 0.29·√ESR.

    Clinical spec §2 (van der Heijde et al., ARD 2009;68:1811-8), ESR in mm/h; unlike CRP,
    ESR has no floor.
    """
    pain = _item(back_pain, "back_pain")
    duration = _item(stiffness_duration, "stiffness_duration")
    global_ = _item(patient_global, "patient_global")
    peripheral = _item(peripheral_pain, "peripheral_pain")
    esr = _non_negative(esr_mm_h, "esr_mm_h")
    with localcontext(_context()):
        return (
            Decimal("0.08") * pain
            + Decimal("0.07") * duration
            + Decimal("0.11") * global_
            + Decimal("0.09") * peripheral
            + Decimal("0.29") * esr.sqrt()
        )


def asdas_category(score: Number) -> AsdasState:
    """ASDAS disease activity state from the unrounded score, thresholds inclusive as written.

    Clinical spec §3 (Machado et al., ARD 2018;77:1539-40): <1.3 inactive, ≥1.3 and <2.1 low,
    ≥2.1 and ≤3.5 high, >3.5 very high.
    """
    value = _non_negative(score, "score")
    if value < ASDAS_INACTIVE_BELOW:
        return AsdasState.INACTIVE
    if value < ASDAS_HIGH_FROM:
        return AsdasState.LOW
    if value <= ASDAS_VERY_HIGH_ABOVE:
        return AsdasState.HIGH
    return AsdasState.VERY_HIGH


def basdai_active(score: Number) -> bool:
    """BASDAI ≥ 4 means active disease (clinical spec §3).

    The threshold is the ASAS consensus one for starting a biologic
    (Braun et al., Ann Rheum Dis 2003;62:817-24); Garrett 1994 defines the index, not this.
    """
    return _item(score, "score") >= BASDAI_ACTIVE_THRESHOLD


def asdas_change(baseline: Number, followup: Number) -> AsdasChange:
    """Classify the change from baseline ASDAS to follow-up ASDAS, both unrounded.

    Clinical spec §3: a decrease ≥ 2.0 is a major improvement, ≥ 1.1 a clinically important
    improvement (Machado et al., ARD 2011;70:47-53), an increase ≥ 0.9 a clinically important
    worsening (Molto et al., ARD 2018;77:124-7). The difference is exact, so 3.0 → 2.1 is 0.9.
    """
    before = _non_negative(baseline, "baseline")
    after = _non_negative(followup, "followup")
    with localcontext(_context()):
        decrease = before - after
        increase = after - before
    if decrease >= ASDAS_MAJOR_IMPROVEMENT:
        return AsdasChange.MAJOR_IMPROVEMENT
    if decrease >= ASDAS_IMPORTANT_IMPROVEMENT:
        return AsdasChange.IMPORTANT_IMPROVEMENT
    if increase >= ASDAS_IMPORTANT_WORSENING:
        return AsdasChange.IMPORTANT_WORSENING
    return AsdasChange.NO_IMPORTANT_CHANGE


class BasdaiComparison(StrEnum):
    """How a patient's BASDAI compares with last time, in words the patient reads (spec §6)."""

    LOWER = "lower"
    HIGHER = "higher"
    ABOUT_THE_SAME = "same"


def basdai_comparison(previous: Number, latest: Number) -> BasdaiComparison:
    """Lower or higher only for an exact change of at least 1 point, else about the same.

    Clinical spec §6 (Pavy et al., J Rheumatol 2005;32:80-5): a smaller change is within the
    noise of the index, so telling a patient "lower than last time" for 0.1 misleads.
    """
    before = _item(previous, "previous")
    after = _item(latest, "latest")
    with localcontext(_context()):
        change = after - before
    if change <= -BASDAI_NOTICEABLE_CHANGE:
        return BasdaiComparison.LOWER
    if change >= BASDAI_NOTICEABLE_CHANGE:
        return BasdaiComparison.HIGHER
    return BasdaiComparison.ABOUT_THE_SAME


def _basdai_improvement(baseline: Number, followup: Number) -> tuple[bool, Decimal]:
    """Whether BASDAI at least halved, and its exact improvement (positive means better)."""
    before = _item(baseline, "baseline")
    after = _item(followup, "followup")
    with localcontext(_context()):
        improvement = before - after
        # A baseline of 0 has nothing to halve, so it never counts as halved.
        halved = before > 0 and 2 * improvement >= before
    return halved, improvement


def basdai50(baseline: Number, followup: Number) -> bool:
    """BASDAI50: the follow-up BASDAI improved by at least 50 % of the baseline.

    Clinical spec §3 (Rudwaleit et al., Ann Rheum Dis 2004;63:665-70). A baseline of 0 has
    nothing to halve, so it never counts as a response.
    """
    halved, _ = _basdai_improvement(baseline, followup)
    return halved


def asdas_eular_basdai_response(baseline: Number, followup: Number) -> bool:
    """ASAS/EULAR continuation criterion: BASDAI improved by ≥ 50 % or by ≥ 2 points.

    Clinical spec §3 (ASAS anti-TNF recommendations, Braun et al., Ann Rheum Dis
    2006;65:316-20); reported separately from BASDAI50 because the two differ.
    """
    halved, improvement = _basdai_improvement(baseline, followup)
    return halved or improvement >= ASAS_EULAR_ABSOLUTE_POINTS


def display_decimal(value: Number) -> Decimal:
    """A score to one decimal, rounded half away from zero on the exact value.

    Clinical spec §3: 4.55 shows as 4.6 (Python's ``round()`` gives 4.5). Always show it next
    to its state, which comes from the unrounded score. A result of zero is never "-0.0".
    """
    exact = _to_decimal(value, "value")
    digits = max(PRECISION, exact.adjusted() + 2)
    with localcontext(Context(prec=digits, rounding=ROUND_HALF_UP)):
        rounded = exact.quantize(_ONE_DECIMAL, rounding=ROUND_HALF_UP)
        return abs(rounded) if rounded.is_zero() else rounded


def display_round(value: Number) -> str:
    """A score as text with one decimal, e.g. "4.6" (clinical spec §3, half away from zero)."""
    return str(display_decimal(value))
