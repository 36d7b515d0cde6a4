"""Inline keyboards built from the button rows `bot.present` composes."""

from __future__ import annotations

from bot.present.screens import Button
from bot.telegram.keyboards import markup


class TestMarkup:
    def test_rows_become_buttons_in_order(self) -> None:
        """Each row of buttons is a row of the keyboard, labels and data as given."""
        keyboard = markup(
            [[Button("0", "a:1:q1:0"), Button("1", "a:1:q1:1")], [Button("OK", "c:1")]]
        )
        assert keyboard is not None
        assert [[(b.text, b.callback_data) for b in row] for row in keyboard.inline_keyboard] == [
            [("0", "a:1:q1:0"), ("1", "a:1:q1:1")],
            [("OK", "c:1")],
        ]

    def test_no_rows_no_keyboard(self) -> None:
        """A screen without buttons is sent without a keyboard."""
        assert markup(()) is None

    def test_other_rows_give_another_keyboard(self) -> None:
        """A keyboard built before is reused only for the very same rows."""
        first = markup(((Button("0", "a:1:q1:0"),),))
        again = markup([[Button("0", "a:1:q1:0")]])
        other = markup(((Button("0", "a:1:q2:0"),),))
        assert first == again
        assert other is not None
        assert other.inline_keyboard[0][0].callback_data == "a:1:q2:0"
        assert other != first
