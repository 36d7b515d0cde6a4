"""Specification of the BASDAI and ASDAS arithmetic, categories and response criteria."""

from __future__ import annotations

import math
from decimal import Decimal, localcontext
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.scoring import (
    CRP_FLOOR_MG_L,
    MG_DL_TO_MG_L,
    AsdasChange,
    AsdasState,
    asdas_category,
    asdas_change,
    asdas_crp,
    asdas_esr,
    asdas_eular_basdai_response,
    basdai,
    basdai50,
    basdai_active,
    crp_to_mg_l,
    display_decimal,
    display_round,
    effective_crp,
    stiffness_minutes_to_score,
)

# Modest example counts keep the whole suite fast; no deadline, since a loaded machine is
# not a bug in the arithmetic.
properties = settings(max_examples=150, deadline=None)

D = Decimal
THREE_PLACES = D("0.001")

BASDAI_ITEMS = ("q1", "q2", "q3", "q4", "q5", "q6")
ASDAS_ITEMS = ("back_pain", "stiffness_duration", "patient_global", "peripheral_pain")

item_values = st.one_of(
    st.integers(min_value=0, max_value=10),
    st.decimals(min_value=0, max_value=10, places=2, allow_nan=False, allow_infinity=False),
)
lab_values = st.decimals(
    min_value=0, max_value=500, places=2, allow_nan=False, allow_infinity=False
)

BAD_ITEM_VALUES = [
    pytest.param(None, "is missing", id="missing"),
    pytest.param(True, "must be a number", id="bool"),
    pytest.param(float("nan"), "finite", id="float-nan"),
    pytest.param(float("inf"), "finite", id="float-inf"),
    pytest.param(D("NaN"), "finite", id="decimal-nan"),
    pytest.param(D("-Infinity"), "finite", id="decimal-minus-inf"),
    pytest.param("seven", "must be a number", id="text"),
    pytest.param([7], "must be a number", id="list"),
    pytest.param(11, "between 0 and 10, got 11", id="above-10"),
    pytest.param(-1, "between 0 and 10, got -1", id="below-0"),
    pytest.param(D("10.01"), "between 0 and 10", id="just-above-10"),
]

BAD_LAB_VALUES = [
    pytest.param(None, "is missing", id="missing"),
    pytest.param(False, "must be a number", id="bool"),
    pytest.param(float("nan"), "finite", id="float-nan"),
    pytest.param(float("inf"), "finite", id="float-inf"),
    pytest.param("Infinity", "finite", id="text-inf"),
    pytest.param(-1, "must not be negative", id="negative"),
    pytest.param(D("-0.01"), "must not be negative", id="just-negative"),
]


def basdai_items(**overrides: Any) -> dict[str, Any]:
    """Valid BASDAI items with some replaced."""
    return {"q1": 5, "q2": 5, "q3": 5, "q4": 5, "q5": 5, "q6": 5, **overrides}


def asdas_items(**overrides: Any) -> dict[str, Any]:
    """Valid ASDAS questionnaire items with some replaced."""
    items: dict[str, Any] = {
        "back_pain": 5,
        "stiffness_duration": 5,
        "patient_global": 5,
        "peripheral_pain": 0,
    }
    return {**items, **overrides}


def as_kwargs(names: tuple[str, ...], values: list[Any]) -> dict[str, Any]:
    """Keyword arguments pairing item names with values."""
    return dict(zip(names, values, strict=True))


@st.composite
def raised_item(draw: st.DrawFn, names: tuple[str, ...]) -> tuple[dict[str, Any], str, Decimal]:
    """A set of items, one item name, and a value for it at least as high as the current one."""
    items = {name: draw(item_values) for name in names}
    name = draw(st.sampled_from(names))
    higher = draw(
        st.decimals(min_value=D(items[name]), max_value=10, allow_nan=False, allow_infinity=False)
    )
    return {key: D(value) for key, value in items.items()}, name, higher


class TestBasdai:
    """BASDAI = (q1 + q2 + q3 + q4 + (q5 + q6) / 2) / 5 (clinical spec §2)."""

    def test_averages_four_items_with_the_mean_of_the_two_stiffness_items(self) -> None:
        """Items 5 and 6 count half each, so the six items weigh like five."""
        assert basdai(q1=1, q2=2, q3=3, q4=4, q5=6, q6=8) == D("3.4")

    def test_spans_zero_to_ten(self) -> None:
        """All items 0 give 0 and all items 10 give 10."""
        assert basdai(q1=0, q2=0, q3=0, q4=0, q5=0, q6=0) == 0
        assert basdai(q1=10, q2=10, q3=10, q4=10, q5=10, q6=10) == 10

    def test_accepts_the_fractional_stiffness_duration_value(self) -> None:
        """Item 6 comes from minutes / 12 and may be fractional (45 min → 3.75)."""
        q6 = stiffness_minutes_to_score(45)
        assert basdai(q1=2, q2=2, q3=2, q4=2, q5=2.25, q6=q6) == D("2.2")

    def test_reads_floats_by_their_decimal_text(self) -> None:
        """A float is read as written, so 0.1 + 0.2 style errors never reach a score."""
        assert basdai(q1=0.1, q2=0.2, q3=0, q4=0, q5=0, q6=0) == D("0.06")

    def test_accepts_numeric_strings_and_decimals(self) -> None:
        """Values arriving as text or Decimal give the same score as ints."""
        assert basdai(q1="5", q2=D("5"), q3=" 5 ", q4=5, q5=5, q6=5.0) == 5

    def test_ignores_the_callers_decimal_context(self) -> None:
        """A low-precision context set by a caller does not change the result."""
        expected = basdai(q1=1, q2=1, q3=1, q4=1, q5=1, q6=stiffness_minutes_to_score(50))
        with localcontext() as context:
            context.prec = 3
            assert basdai(q1=1, q2=1, q3=1, q4=1, q5=1, q6=stiffness_minutes_to_score(50)) == (
                expected
            )

    @pytest.mark.parametrize("name", BASDAI_ITEMS)
    @pytest.mark.parametrize(("bad", "message"), BAD_ITEM_VALUES)
    def test_rejects_a_bad_item_naming_it(self, name: str, bad: Any, message: str) -> None:
        """Missing, boolean, non-finite, non-numeric and out-of-range items are refused by name."""
        with pytest.raises(ValueError, match=rf"^{name} .*{message}"):
            basdai(**basdai_items(**{name: bad}))

    def test_error_message_reads_naturally(self) -> None:
        """The message names the item and the value, as the spec asks."""
        with pytest.raises(ValueError, match=r"^q3 must be between 0 and 10, got 11$"):
            basdai(q1=0, q2=0, q3=11, q4=0, q5=0, q6=0)

    @properties
    @given(values=st.lists(item_values, min_size=6, max_size=6))
    def test_always_lies_between_zero_and_ten(self, values: list[Decimal]) -> None:
        """Any valid answers give a BASDAI within 0-10."""
        assert 0 <= basdai(**as_kwargs(BASDAI_ITEMS, values)) <= 10

    @properties
    @given(case=raised_item(BASDAI_ITEMS))
    def test_never_decreases_when_an_item_rises(
        self, case: tuple[dict[str, Any], str, Decimal]
    ) -> None:
        """Raising any one item never lowers the BASDAI."""
        items, name, higher = case
        assert basdai(**{**items, name: higher}) >= basdai(**items)


class TestStiffnessMinutesToScore:
    """Item 6 on 0-10 is minutes / 12, capped at 10 (clinical spec §1)."""

    @pytest.mark.parametrize(
        ("minutes", "score"),
        [(0, D("0")), (30, D("2.5")), (60, D("5")), (90, D("7.5")), (120, D("10"))],
    )
    def test_matches_the_spec_table(self, minutes: int, score: Decimal) -> None:
        """0 h, ½ h, 1 h, 1½ h and 2 h give 0, 2.5, 5, 7.5 and 10."""
        assert stiffness_minutes_to_score(minutes) == score

    def test_caps_at_ten_beyond_two_hours(self) -> None:
        """Stiffness lasting all morning still scores 10."""
        assert stiffness_minutes_to_score(300) == 10

    def test_quarter_hours_are_exact(self) -> None:
        """15 minutes is exactly 1.25, as the duration buttons need."""
        assert stiffness_minutes_to_score(15) == D("1.25")

    @pytest.mark.parametrize(
        ("bad", "message"),
        [
            (-1, "minutes must not be negative"),
            (float("nan"), "minutes must be a finite number"),
            (float("inf"), "minutes must be a finite number"),
            (None, "minutes is missing"),
        ],
    )
    def test_rejects_impossible_durations(self, bad: Any, message: str) -> None:
        """Negative and non-finite durations are input errors."""
        with pytest.raises(ValueError, match=message):
            stiffness_minutes_to_score(bad)


class TestCrpToMgL:
    """CRP is converted to mg/L on entry; 1 mg/dL = 10 mg/L (clinical spec §2)."""

    def test_converts_mg_dl_to_mg_l(self) -> None:
        """6.46 mg/dL is 64.6 mg/L."""
        assert crp_to_mg_l(D("6.46"), "mg/dL") == D("64.6")
        assert D("6.46") * MG_DL_TO_MG_L == D("64.6")

    def test_keeps_mg_l(self) -> None:
        """A value already in mg/L is unchanged."""
        assert crp_to_mg_l(7.59, "mg/L") == D("7.59")

    @pytest.mark.parametrize("unit", ["MG/DL", "mg/dl", " mg / dL "])
    def test_reads_the_unit_regardless_of_case_and_spacing(self, unit: str) -> None:
        """Unit spelling from a lab system does not matter."""
        assert crp_to_mg_l(1, unit) == 10

    @pytest.mark.parametrize("unit", ["mg", "g/L", "mmol/L", "", "nmol/L"])
    def test_rejects_an_unknown_unit_naming_it(self, unit: str) -> None:
        """A value in a unit we cannot convert is refused, naming the unit."""
        with pytest.raises(ValueError, match=rf"got '{unit}'"):
            crp_to_mg_l(5, unit)

    def test_rejects_a_missing_unit(self) -> None:
        """A lab value must carry its unit."""
        missing: Any = None
        with pytest.raises(ValueError, match="unit"):
            crp_to_mg_l(5, missing)

    def test_rejects_a_negative_value(self) -> None:
        """A negative CRP is an input error whatever the unit."""
        with pytest.raises(ValueError, match="crp must not be negative"):
            crp_to_mg_l(-1, "mg/dL")


class TestEffectiveCrp:
    """CRP below 2 mg/L or below the detection limit counts as 2 mg/L (clinical spec §2)."""

    def test_floors_a_value_below_two(self) -> None:
        """1.9 mg/L is used as 2 mg/L and the floor is recorded."""
        assert effective_crp(D("1.9")) == (CRP_FLOOR_MG_L, True)

    def test_floors_zero(self) -> None:
        """An undetectable 0 mg/L is used as 2 mg/L."""
        assert effective_crp(0) == (D("2"), True)

    def test_floors_a_value_below_the_detection_limit_whatever_the_limit(self) -> None:
        """A report of "< 5" mg/L is used as 2 mg/L, not 5."""
        assert effective_crp(5, below_detection_limit=True) == (D("2"), True)

    def test_keeps_exactly_two(self) -> None:
        """2 mg/L measured is used as is and is not reported as floored."""
        assert effective_crp(2) == (D("2"), False)

    def test_keeps_a_value_above_two(self) -> None:
        """2.01 mg/L is used as measured."""
        assert effective_crp(D("2.01")) == (D("2.01"), False)

    def test_rejects_a_non_boolean_detection_flag(self) -> None:
        """A truthy string such as "no" must not silently floor the CRP."""
        answer: Any = "no"
        with pytest.raises(ValueError, match="crp_below_detection_limit"):
            effective_crp(5, below_detection_limit=answer)

    @pytest.mark.parametrize(("bad", "message"), BAD_LAB_VALUES)
    def test_rejects_a_bad_crp_naming_it(self, bad: Any, message: str) -> None:
        """Missing, negative and non-finite CRP values are refused as crp_mg_l."""
        with pytest.raises(ValueError, match=rf"^crp_mg_l .*{message}"):
            effective_crp(bad)


class TestAsdasCrp:
    """ASDAS-CRP with the two-decimal ASAS weights and the CRP floor (clinical spec §2)."""

    def test_worked_example_before_treatment(self) -> None:
        """Back pain 5, duration 5, global 5, peripheral 0, CRP 64.6 gives 3.876: very high."""
        score = asdas_crp(
            back_pain=5, stiffness_duration=5, patient_global=5, peripheral_pain=0, crp_mg_l=64.6
        )
        assert score.quantize(THREE_PLACES) == D("3.876")
        assert display_round(score) == "3.9"
        assert asdas_category(score) is AsdasState.VERY_HIGH

    def test_worked_example_after_treatment(self) -> None:
        """Back pain 2, duration 1, global 2, peripheral 0, CRP 7.59 gives 1.767: low."""
        score = asdas_crp(
            back_pain=2, stiffness_duration=1, patient_global=2, peripheral_pain=0, crp_mg_l=7.59
        )
        assert score.quantize(THREE_PLACES) == D("1.767")
        assert display_round(score) == "1.8"
        assert asdas_category(score) is AsdasState.LOW

    def test_worked_example_is_a_major_improvement(self) -> None:
        """From 3.876 to 1.767 is a decrease of more than 2.0."""
        before = asdas_crp(
            back_pain=5, stiffness_duration=5, patient_global=5, peripheral_pain=0, crp_mg_l=64.6
        )
        after = asdas_crp(
            back_pain=2, stiffness_duration=1, patient_global=2, peripheral_pain=0, crp_mg_l=7.59
        )
        assert asdas_change(baseline=before, followup=after) is AsdasChange.MAJOR_IMPROVEMENT

    def test_uses_the_two_decimal_weights(self) -> None:
        """Each item carries its ASAS-endorsed weight, not the 0.121/0.058/... development one."""
        zeros = as_kwargs(ASDAS_ITEMS, [0] * 4)
        floor_only = asdas_crp(**zeros, crp_mg_l=0)
        weights = {
            "back_pain": D("0.12"),
            "stiffness_duration": D("0.06"),
            "patient_global": D("0.11"),
            "peripheral_pain": D("0.07"),
        }
        for name, weight in weights.items():
            score = asdas_crp(**{**zeros, name: 10}, crp_mg_l=0)
            with localcontext() as context:
                context.prec = 60
                assert abs(score - floor_only - 10 * weight) < D("1e-45")

    def test_applies_the_floor_below_two(self) -> None:
        """CRP 1.9 mg/L gives the same score as CRP 2 mg/L."""
        floored = asdas_crp(**asdas_items(), crp_mg_l=D("1.9"))
        assert floored == asdas_crp(**asdas_items(), crp_mg_l=2)

    def test_applies_the_floor_below_the_detection_limit(self) -> None:
        """A CRP reported as "< 5" mg/L scores as 2 mg/L."""
        below = asdas_crp(**asdas_items(), crp_mg_l=5, crp_below_detection_limit=True)
        assert below == asdas_crp(**asdas_items(), crp_mg_l=2)

    def test_has_no_upper_cap_on_crp(self) -> None:
        """A very high CRP still counts in full."""
        high = asdas_crp(**asdas_items(), crp_mg_l=400)
        assert high > asdas_crp(**asdas_items(), crp_mg_l=200)

    @pytest.mark.parametrize("name", ASDAS_ITEMS)
    @pytest.mark.parametrize(("bad", "message"), BAD_ITEM_VALUES)
    def test_rejects_a_bad_item_naming_it(self, name: str, bad: Any, message: str) -> None:
        """Every questionnaire input is checked and named in the error."""
        with pytest.raises(ValueError, match=rf"^{name} .*{message}"):
            asdas_crp(**asdas_items(**{name: bad}), crp_mg_l=5)

    @pytest.mark.parametrize(("bad", "message"), BAD_LAB_VALUES)
    def test_rejects_a_bad_crp_naming_it(self, bad: Any, message: str) -> None:
        """A missing CRP is never imputed: no CRP, no ASDAS-CRP."""
        with pytest.raises(ValueError, match=rf"^crp_mg_l .*{message}"):
            asdas_crp(**asdas_items(), crp_mg_l=bad)

    @properties
    @given(values=st.lists(item_values, min_size=4, max_size=4), crp=lab_values)
    def test_is_never_negative(self, values: list[Decimal], crp: Decimal) -> None:
        """Any valid inputs give an ASDAS-CRP of at least 0."""
        assert asdas_crp(**as_kwargs(ASDAS_ITEMS, values), crp_mg_l=crp) >= 0

    @properties
    @given(case=raised_item(ASDAS_ITEMS), crp=lab_values)
    def test_never_decreases_when_an_item_rises(
        self, case: tuple[dict[str, Any], str, Decimal], crp: Decimal
    ) -> None:
        """Raising any one item never lowers ASDAS-CRP."""
        items, name, higher = case
        assert asdas_crp(**{**items, name: higher}, crp_mg_l=crp) >= asdas_crp(
            **items, crp_mg_l=crp
        )

    @properties
    @given(
        values=st.lists(item_values, min_size=4, max_size=4), crps=st.tuples(lab_values, lab_values)
    )
    def test_never_decreases_when_crp_rises(
        self, values: list[Decimal], crps: tuple[Decimal, Decimal]
    ) -> None:
        """A higher CRP never gives a lower ASDAS-CRP, floor included."""
        items = as_kwargs(ASDAS_ITEMS, values)
        low, high = sorted(crps)
        assert asdas_crp(**items, crp_mg_l=high) >= asdas_crp(**items, crp_mg_l=low)

    @properties
    @given(
        values=st.lists(item_values, min_size=4, max_size=4),
        crp=st.decimals(min_value=0, max_value=2, allow_nan=False, allow_infinity=False),
    )
    def test_any_crp_up_to_two_scores_as_two(self, values: list[Decimal], crp: Decimal) -> None:
        """Every CRP from 0 to 2 mg/L gives exactly the ASDAS of CRP 2 mg/L."""
        items = as_kwargs(ASDAS_ITEMS, values)
        assert asdas_crp(**items, crp_mg_l=crp) == asdas_crp(**items, crp_mg_l=2)


class TestAsdasEsr:
    """ASDAS-ESR with weights 0.08/0.07/0.11/0.09/0.29·√ESR and no floor (clinical spec §2)."""

    def test_exactly_two_point_one_is_high_disease_activity(self) -> None:
        """Items 1, 2, 1, 10 with ESR 9 give exactly 2.1, which is high, not low."""
        kwargs: dict[str, Any] = {
            "back_pain": 1,
            "stiffness_duration": 2,
            "patient_global": 1,
            "peripheral_pain": 10,
            "esr_mm_h": 9,
        }
        float_score = 0.08 * 1 + 0.07 * 2 + 0.11 * 1 + 0.09 * 10 + 0.29 * math.sqrt(9)
        assert float_score < 2.1  # the binary-float trap the spec warns about
        score = asdas_esr(**kwargs)
        assert score == D("2.1")
        assert asdas_category(score) is AsdasState.HIGH

    def test_exactly_one_point_three_is_low_disease_activity(self) -> None:
        """Items 2, 1, 1, 1 with ESR 9 give exactly 1.3, which is low, not inactive."""
        score = asdas_esr(
            back_pain=2, stiffness_duration=1, patient_global=1, peripheral_pain=1, esr_mm_h=9
        )
        assert score == D("1.3")
        assert asdas_category(score) is AsdasState.LOW

    def test_exactly_three_point_five_is_high_not_very_high(self) -> None:
        """Items 5, 9, 9, 10 with ESR 4 give exactly 3.5, which is still high."""
        score = asdas_esr(
            back_pain=5, stiffness_duration=9, patient_global=9, peripheral_pain=10, esr_mm_h=4
        )
        assert score == D("3.5")
        assert asdas_category(score) is AsdasState.HIGH

    def test_has_no_floor(self) -> None:
        """ESR 0 with all items 0 gives 0: unlike CRP, ESR is used as measured."""
        zeros = as_kwargs(ASDAS_ITEMS, [0] * 4)
        assert asdas_esr(**zeros, esr_mm_h=0) == 0

    @pytest.mark.parametrize("name", ASDAS_ITEMS)
    @pytest.mark.parametrize(("bad", "message"), BAD_ITEM_VALUES)
    def test_rejects_a_bad_item_naming_it(self, name: str, bad: Any, message: str) -> None:
        """Every questionnaire input is checked and named in the error."""
        with pytest.raises(ValueError, match=rf"^{name} .*{message}"):
            asdas_esr(**asdas_items(**{name: bad}), esr_mm_h=10)

    @pytest.mark.parametrize(("bad", "message"), BAD_LAB_VALUES)
    def test_rejects_a_bad_esr_naming_it(self, bad: Any, message: str) -> None:
        """Missing, negative and non-finite ESR values are refused as esr_mm_h."""
        with pytest.raises(ValueError, match=rf"^esr_mm_h .*{message}"):
            asdas_esr(**asdas_items(), esr_mm_h=bad)

    @properties
    @given(values=st.lists(item_values, min_size=4, max_size=4), esr=lab_values)
    def test_is_never_negative(self, values: list[Decimal], esr: Decimal) -> None:
        """Any valid inputs give an ASDAS-ESR of at least 0."""
        assert asdas_esr(**as_kwargs(ASDAS_ITEMS, values), esr_mm_h=esr) >= 0

    @properties
    @given(case=raised_item(ASDAS_ITEMS), esr=lab_values)
    def test_never_decreases_when_an_item_rises(
        self, case: tuple[dict[str, Any], str, Decimal], esr: Decimal
    ) -> None:
        """Raising any one item never lowers ASDAS-ESR."""
        items, name, higher = case
        assert asdas_esr(**{**items, name: higher}, esr_mm_h=esr) >= asdas_esr(
            **items, esr_mm_h=esr
        )

    @properties
    @given(
        values=st.lists(item_values, min_size=4, max_size=4), esrs=st.tuples(lab_values, lab_values)
    )
    def test_never_decreases_when_esr_rises(
        self, values: list[Decimal], esrs: tuple[Decimal, Decimal]
    ) -> None:
        """A higher ESR never gives a lower ASDAS-ESR."""
        items = as_kwargs(ASDAS_ITEMS, values)
        low, high = sorted(esrs)
        assert asdas_esr(**items, esr_mm_h=high) >= asdas_esr(**items, esr_mm_h=low)


class TestAsdasCategory:
    """ASDAS states from the unrounded score, thresholds inclusive as written (clinical spec §3)."""

    @pytest.mark.parametrize(
        ("score", "state"),
        [
            (D("0"), AsdasState.INACTIVE),
            (D("1.2999"), AsdasState.INACTIVE),
            (D("1.3"), AsdasState.LOW),
            (D("1.3001"), AsdasState.LOW),
            (D("2.0999"), AsdasState.LOW),
            (D("2.1"), AsdasState.HIGH),
            (D("2.1001"), AsdasState.HIGH),
            (D("3.4999"), AsdasState.HIGH),
            (D("3.5"), AsdasState.HIGH),
            (D("3.5001"), AsdasState.VERY_HIGH),
            (D("6"), AsdasState.VERY_HIGH),
        ],
    )
    def test_places_scores_on_and_beside_each_threshold(
        self, score: Decimal, state: AsdasState
    ) -> None:
        """<1.3 inactive, ≥1.3 low, ≥2.1 high, ≤3.5 still high, >3.5 very high."""
        assert asdas_category(score) is state

    def test_uses_the_2018_asas_names(self) -> None:
        """The state values are the 2018 names, "low" replacing the former "moderate"."""
        assert [state.value for state in AsdasState] == [
            "inactive disease",
            "low disease activity",
            "high disease activity",
            "very high disease activity",
        ]

    def test_states_are_strings(self) -> None:
        """A state renders as its name wherever text is expected."""
        assert f"{AsdasState.HIGH}" == "high disease activity"
        assert AsdasState("low disease activity") is AsdasState.LOW

    def test_judges_the_unrounded_score(self) -> None:
        """2.0999 is displayed as 2.1 but is still low disease activity."""
        assert display_round(D("2.0999")) == "2.1"
        assert asdas_category(D("2.0999")) is AsdasState.LOW

    def test_rejects_a_negative_score(self) -> None:
        """No valid input gives a negative ASDAS, so one is a bug upstream."""
        with pytest.raises(ValueError, match="score must not be negative"):
            asdas_category(-1)


class TestBasdaiActive:
    """BASDAI ≥ 4 is active disease (clinical spec §3)."""

    @pytest.mark.parametrize(
        ("score", "active"),
        [(D("3.99"), False), (D("4"), True), (D("4.0"), True), (D("4.01"), True), (0, False)],
    )
    def test_four_is_the_inclusive_threshold(self, score: Decimal, active: bool) -> None:
        """Exactly 4 is active; just below is not."""
        assert basdai_active(score) is active

    def test_worked_example_scores_can_disagree(self) -> None:
        """BASDAI 3.8 is not active while the same visit's ASDAS is very high."""
        assert basdai_active(D("3.8")) is False
        assert asdas_category(D("3.876")) is AsdasState.VERY_HIGH

    def test_rejects_a_score_outside_the_scale(self) -> None:
        """A BASDAI above 10 is a bug upstream."""
        with pytest.raises(ValueError, match="score must be between 0 and 10"):
            basdai_active(11)


class TestAsdasChange:
    """ASDAS change cut-offs 1.1, 2.0 and +0.9 on unrounded scores (clinical spec §3)."""

    @pytest.mark.parametrize(
        ("baseline", "followup", "change"),
        [
            ("3.1", "1.1", AsdasChange.MAJOR_IMPROVEMENT),
            ("3.1", "1.0999", AsdasChange.MAJOR_IMPROVEMENT),
            ("3.1", "1.1001", AsdasChange.IMPORTANT_IMPROVEMENT),
            ("3.2", "2.1", AsdasChange.IMPORTANT_IMPROVEMENT),
            ("3.2", "2.1001", AsdasChange.NO_IMPORTANT_CHANGE),
            ("2.1", "3.0", AsdasChange.IMPORTANT_WORSENING),
            ("2.1", "2.9999", AsdasChange.NO_IMPORTANT_CHANGE),
            ("1.0", "5.0", AsdasChange.IMPORTANT_WORSENING),
            ("2.5", "2.5", AsdasChange.NO_IMPORTANT_CHANGE),
        ],
    )
    def test_classifies_on_and_beside_each_cut_off(
        self, baseline: str, followup: str, change: AsdasChange
    ) -> None:
        """A decrease of exactly 2.0 or 1.1, or an increase of exactly 0.9, counts."""
        assert asdas_change(baseline=D(baseline), followup=D(followup)) is change

    def test_computes_the_difference_exactly_from_floats(self) -> None:
        """2.1 → 3.0 is an increase of exactly 0.9, although 3.0 - 2.1 in floats is 0.8999…."""
        assert 3.0 - 2.1 < 0.9
        assert asdas_change(baseline=2.1, followup=3.0) is AsdasChange.IMPORTANT_WORSENING

    def test_a_decrease_of_point_nine_is_not_an_improvement(self) -> None:
        """Only the worsening cut-off is 0.9; 3.0 → 2.1 is no important change."""
        assert asdas_change(baseline=3.0, followup=2.1) is AsdasChange.NO_IMPORTANT_CHANGE

    def test_has_no_major_worsening(self) -> None:
        """Any large rise is reported as a clinically important worsening."""
        assert {change.value for change in AsdasChange} == {
            "major improvement",
            "clinically important improvement",
            "clinically important worsening",
            "no clinically important change",
        }

    def test_rejects_a_missing_score(self) -> None:
        """A change needs both scores."""
        missing: Any = None
        with pytest.raises(ValueError, match="followup is missing"):
            asdas_change(baseline=2, followup=missing)


class TestBasdai50:
    """BASDAI50 is an improvement of at least 50 % from baseline (clinical spec §3)."""

    def test_worked_example_meets_basdai50(self) -> None:
        """3.8 → 1.4 is an improvement of 63 %."""
        assert basdai50(baseline=D("3.8"), followup=D("1.4")) is True

    def test_exactly_half_counts(self) -> None:
        """4 → 2 is exactly 50 % and meets the criterion."""
        assert basdai50(baseline=4, followup=2) is True

    def test_just_under_half_does_not_count(self) -> None:
        """4 → 2.01 falls just short."""
        assert basdai50(baseline=4, followup=D("2.01")) is False

    def test_exact_half_from_floats(self) -> None:
        """0.3 → 0.15 is exactly 50 % when floats are read by their decimal text."""
        assert basdai50(baseline=0.3, followup=0.15) is True

    def test_two_points_alone_is_not_basdai50(self) -> None:
        """8 → 6 is 2 points but only 25 %."""
        assert basdai50(baseline=8, followup=6) is False

    def test_baseline_zero_never_responds(self) -> None:
        """With nothing to halve, 0 → 0 is not a response."""
        assert basdai50(baseline=0, followup=0) is False

    def test_worsening_is_not_a_response(self) -> None:
        """A higher follow-up never meets BASDAI50."""
        assert basdai50(baseline=2, followup=5) is False

    def test_rejects_a_score_outside_the_scale(self) -> None:
        """A BASDAI above 10 is named in the error."""
        with pytest.raises(ValueError, match="baseline must be between 0 and 10"):
            basdai50(baseline=12, followup=1)


class TestAsdasEularBasdaiResponse:
    """ASAS/EULAR continuation: BASDAI improves by ≥ 50 % or ≥ 2 points (clinical spec §3)."""

    def test_exactly_two_points_counts(self) -> None:
        """8 → 6 is 2 points (25 %) and meets the continuation criterion."""
        assert asdas_eular_basdai_response(baseline=8, followup=6) is True

    def test_just_under_two_points_does_not_count(self) -> None:
        """8 → 6.01 is neither 2 points nor 50 %."""
        assert asdas_eular_basdai_response(baseline=8, followup=D("6.01")) is False

    def test_half_counts_below_two_points(self) -> None:
        """3 → 1.5 is only 1.5 points but 50 %, so it counts."""
        assert asdas_eular_basdai_response(baseline=3, followup=D("1.5")) is True

    def test_just_under_half_and_under_two_points_does_not_count(self) -> None:
        """3 → 1.51 meets neither arm."""
        assert asdas_eular_basdai_response(baseline=3, followup=D("1.51")) is False

    def test_baseline_zero_never_responds(self) -> None:
        """0 → 0 meets neither arm."""
        assert asdas_eular_basdai_response(baseline=0, followup=0) is False

    def test_differs_from_basdai50(self) -> None:
        """The two criteria are reported separately because they disagree here."""
        assert asdas_eular_basdai_response(baseline=8, followup=6) is True
        assert basdai50(baseline=8, followup=6) is False

    @properties
    @given(baseline=item_values, followup=item_values)
    def test_basdai50_implies_the_continuation_response(
        self, baseline: Decimal, followup: Decimal
    ) -> None:
        """Whoever meets BASDAI50 also meets the continuation criterion."""
        if basdai50(baseline=baseline, followup=followup):
            assert asdas_eular_basdai_response(baseline=baseline, followup=followup)


class TestDisplay:
    """One decimal, half away from zero on the exact value (clinical spec §3)."""

    @pytest.mark.parametrize(
        ("value", "text"),
        [
            (D("4.55"), "4.6"),
            (D("4.45"), "4.5"),
            (D("2.0999"), "2.1"),
            (D("0.05"), "0.1"),
            (D("-0.05"), "-0.1"),
            (D("3.87647"), "3.9"),
            (D("10"), "10.0"),
            (0, "0.0"),
        ],
    )
    def test_rounds_half_away_from_zero(self, value: Decimal, text: str) -> None:
        """Halves go away from zero and everything shows one decimal."""
        assert display_round(value) == text

    def test_corrects_pythons_round_for_floats(self) -> None:
        """The float 4.55 shows as 4.6 although round(4.55, 1) is 4.5."""
        assert round(4.55, 1) == 4.5
        assert display_round(4.55) == "4.6"

    def test_never_shows_negative_zero(self) -> None:
        """A change of -0.04 shows as 0.0, not -0.0."""
        assert display_round(D("-0.04")) == "0.0"

    def test_returns_a_decimal_for_calculation(self) -> None:
        """display_decimal gives the same rounding as a Decimal with one place."""
        assert display_decimal(D("4.55")) == D("4.6")
        assert display_decimal(D("4.55")).as_tuple().exponent == -1

    def test_rejects_a_non_finite_value(self) -> None:
        """There is no sensible display of NaN."""
        with pytest.raises(ValueError, match="value must be a finite number"):
            display_round(float("nan"))
