"""The questionnaire as a pure state machine: which step a press or a typed answer leads to.

The state is what an administration row stores: the position (`None` before the first
question, an item code while asking, `SUMMARY` on the review screen) and whether the patient is
correcting one answer from the summary (`return_to_summary`). Every event names the position it
was meant for, so an event from another position (a stale button, a double tap, a forged
press) is refused here, before anything is stored. Items and their order come from
`bot.domain.instruments` (clinical spec §1).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from bot.domain.instruments import ITEM_CODES, next_item, previous_item

SUMMARY: Final = "summary"
"""The position after the last item: every answer shown, with Confirm and Change an answer."""


@dataclass(frozen=True)
class State:
    """Where one administration stands."""

    position: str | None
    return_to_summary: bool = False

    @property
    def started(self) -> bool:
        return self.position is not None


@dataclass(frozen=True)
class Start:
    """Start or resume: never moves a questionnaire that is already under way."""


@dataclass(frozen=True)
class Answer:
    """An answer to `item` (its value is checked by `instruments`, not here)."""

    item: str


@dataclass(frozen=True)
class Back:
    """The Back button shown under `item`."""

    item: str


@dataclass(frozen=True)
class Change:
    """From the summary, re-answer `item`."""

    item: str


@dataclass(frozen=True)
class Confirm:
    """The Confirm button of the summary."""


Event = Start | Answer | Back | Change | Confirm


@dataclass(frozen=True)
class Completed:
    """Confirming a complete summary ends the questionnaire."""


def first_position() -> str:
    """Where a questionnaire starts."""
    return ITEM_CODES[0]


def step(state: State, event: Event, answered: Iterable[str]) -> State | Completed | None:
    """The state after `event`, `Completed` on a valid confirmation, or None if the event does
    not belong to this state (nothing may be recorded then).

    `answered` are the item codes that already have an answer; the answer carried by an
    `Answer` event counts as given.
    """
    done = set(answered)
    match event:
        case Start():
            if state.position is None:
                return State(first_position(), return_to_summary=False)
            return state
        case Answer(item):
            if state.position != item or item not in ITEM_CODES:
                return None
            done.add(item)
            if state.return_to_summary:
                return State(SUMMARY, return_to_summary=False)
            following = next_item(item)
            return State(SUMMARY if following is None else following, return_to_summary=False)
        case Back(item):
            if state.position != item or item not in ITEM_CODES:
                return None
            if state.return_to_summary:
                # Correcting one answer from the summary: Back abandons the correction.
                return State(SUMMARY, return_to_summary=False)
            earlier = previous_item(item)
            if earlier is None:
                return None
            return State(earlier, return_to_summary=False)
        case Change(item):
            if state.position != SUMMARY or item not in ITEM_CODES:
                return None
            return State(item, return_to_summary=True)
        case Confirm():
            if state.position != SUMMARY or not complete(done):
                return None
            return Completed()
    return None  # pragma: no cover - the match above is exhaustive


def complete(answered: Iterable[str]) -> bool:
    """Whether every item has an answer, so the summary may be confirmed."""
    return set(ITEM_CODES) <= set(answered)


def can_go_back(state: State) -> bool:
    """Whether the question at `state` offers a Back button."""
    if state.position is None or state.position == SUMMARY:
        return False
    return state.return_to_summary or previous_item(state.position) is not None


def progress(position: str) -> tuple[int, int]:
    """(number of this question, number of questions), counting from 1."""
    return ITEM_CODES.index(position) + 1, len(ITEM_CODES)
