"""Button data: round-trips, fits in 64 bytes, and refuses anything malformed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot import callbacks as cb


class TestCallbackData:
    @pytest.mark.parametrize(
        "button",
        [
            cb.AnswerButton(cb.MAX_ID, "patient_global", 10),
            cb.AnswerButton(1, "q6", 120),
            cb.BackButton(7, "q2"),
            cb.StartButton(7),
            cb.ConfirmButton(7),
            cb.ChangeButton(7, None),
            cb.ChangeButton(7, "q3"),
            cb.SnoozeButton(7, "1d"),
            cb.OptionButton("tz", "America/Argentina/Buenos_Aires"),
            cb.PhysicianButton("crp", "save:42"),
        ],
    )
    def test_round_trip(self, button: cb.Button) -> None:
        """Every button decodes to exactly what was encoded, within 64 bytes."""
        data = cb.encode(button)
        assert len(data.encode()) <= 64
        assert cb.decode(data) == button

    @pytest.mark.parametrize(
        "data",
        [
            "",
            "a:1:q7:3",
            "a:x:q1:3",
            "a:1:q1:-1",
            "z:1:3h",
            "a:1:q1:3:extra",
            "s:",
            None,
            "a:" + "9" * 70 + ":q1:1",
            f"c:{cb.MAX_ID + 1}",  # no database row can have this id
        ],
    )
    def test_malformed_data_is_refused(self, data: str | None) -> None:
        """Forged or truncated data decodes to None instead of raising."""
        assert cb.decode(data) is None

    @given(st.text(max_size=100))
    def test_any_text_never_raises(self, data: str) -> None:
        """Arbitrary data from a client decodes or is refused, never crashes."""
        cb.decode(data)
