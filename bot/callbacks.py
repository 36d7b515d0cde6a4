"""Short, self-describing inline-button data (Telegram allows 64 bytes).

Buttons carry what they mean, never a reference into process memory, so any process can
handle a press at any time. Every press is still checked against the pressing account's own
open administration before anything is recorded; parsing here only rejects malformed data.

Formats (ids are decimal integers):
    a:<administration>:<item>:<value>   answer an item (value: 0–10, or minutes for q6)
    b:<administration>:<item>           back from <item> to the previous one
    s:<administration>                  start or resume (invitation and reminder button)
    c:<administration>                  confirm the summary
    e:<administration>                  "change an answer": show the item picker
    e:<administration>:<item>           re-answer one item from the summary
    z:<administration>:<2h|1d>          snooze a reminder
    o:<step>:<value>                    onboarding and settings choices
    p:<action>:<argument>               physician actions
    k:<check-in>:<y|n|b|e|c>:<question> safety check-in: yes, no, back, change, confirm
                                        (question: a code of clinical spec §8, or "summary")
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_CALLBACK_BYTES = 64
MAX_ID = 2**31 - 1
"""Row ids are 32-bit integers in the database: a button naming a larger one is forged."""
_ITEM = r"(?:q[1-6]|pg)"
# `patient_global` is abbreviated to keep answer buttons well under 64 bytes.
_ITEM_ABBREVIATIONS = {"patient_global": "pg"}
_ITEM_EXPANSIONS = {short: full for full, short in _ITEM_ABBREVIATIONS.items()}
SNOOZE_CHOICES = ("2h", "1d")


@dataclass(frozen=True)
class AnswerButton:
    administration_id: int
    item_code: str
    value: int


@dataclass(frozen=True)
class BackButton:
    administration_id: int
    item_code: str


@dataclass(frozen=True)
class StartButton:
    administration_id: int


@dataclass(frozen=True)
class ConfirmButton:
    administration_id: int


@dataclass(frozen=True)
class ChangeButton:
    administration_id: int
    item_code: str | None


@dataclass(frozen=True)
class SnoozeButton:
    administration_id: int
    choice: str


@dataclass(frozen=True)
class OptionButton:
    step: str
    value: str


@dataclass(frozen=True)
class PhysicianButton:
    action: str
    argument: str


@dataclass(frozen=True)
class SafetyButton:
    """A press in a safety check-in (clinical spec §8); `action` is one of SAFETY_ACTIONS."""

    checkin_id: int
    action: str
    question: str


SAFETY_ACTIONS = ("y", "n", "b", "e", "c")
"""yes, no, back, change (from the summary), confirm."""


Button = (
    AnswerButton
    | BackButton
    | StartButton
    | ConfirmButton
    | ChangeButton
    | SnoozeButton
    | OptionButton
    | PhysicianButton
    | SafetyButton
)

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(rf"a:(\d{{1,12}}):({_ITEM}):(\d{{1,4}})"), "answer"),
    (re.compile(rf"b:(\d{{1,12}}):({_ITEM})"), "back"),
    (re.compile(r"s:(\d{1,12})"), "start"),
    (re.compile(r"c:(\d{1,12})"), "confirm"),
    (re.compile(rf"e:(\d{{1,12}})(?::({_ITEM}))?"), "change"),
    (re.compile(r"z:(\d{1,12}):(2h|1d)"), "snooze"),
    (re.compile(r"o:([a-z_]{1,16}):([A-Za-z0-9_/+\-:.]{1,40})"), "option"),
    (re.compile(r"p:([a-z_]{1,16}):([A-Za-z0-9_\-:.]{1,40})"), "physician"),
    (re.compile(r"k:(\d{1,12}):([ynbec]):([a-z_]{1,20})"), "safety"),
]


def _short(item_code: str) -> str:
    return _ITEM_ABBREVIATIONS.get(item_code, item_code)


def _full(short: str) -> str:
    return _ITEM_EXPANSIONS.get(short, short)


def encode(button: Button) -> str:
    """The callback_data string of a button."""
    match button:
        case AnswerButton(adm, item, value):
            data = f"a:{adm}:{_short(item)}:{value}"
        case BackButton(adm, item):
            data = f"b:{adm}:{_short(item)}"
        case StartButton(adm):
            data = f"s:{adm}"
        case ConfirmButton(adm):
            data = f"c:{adm}"
        case ChangeButton(adm, item):
            data = f"e:{adm}" if item is None else f"e:{adm}:{_short(item)}"
        case SnoozeButton(adm, choice):
            data = f"z:{adm}:{choice}"
        case OptionButton(step, value):
            data = f"o:{step}:{value}"
        case PhysicianButton(action, argument):
            data = f"p:{action}:{argument}"
        case SafetyButton(checkin, action, question):
            data = f"k:{checkin}:{action}:{question}"
    if len(data.encode()) > MAX_CALLBACK_BYTES:
        raise ValueError("callback data longer than Telegram's 64 bytes")
    return data


def decode(data: str | None) -> Button | None:
    """The button a callback_data string describes, or None if it is malformed or forged."""
    if not data or len(data.encode("utf-8", "surrogatepass")) > MAX_CALLBACK_BYTES:
        return None
    for pattern, kind in _PATTERNS:
        match = pattern.fullmatch(data)
        if match is None:
            continue
        groups = match.groups()
        if kind not in ("option", "physician") and int(groups[0]) > MAX_ID:
            return None
        if kind == "answer":
            return AnswerButton(int(groups[0]), _full(groups[1]), int(groups[2]))
        if kind == "back":
            return BackButton(int(groups[0]), _full(groups[1]))
        if kind == "start":
            return StartButton(int(groups[0]))
        if kind == "confirm":
            return ConfirmButton(int(groups[0]))
        if kind == "change":
            return ChangeButton(int(groups[0]), None if groups[1] is None else _full(groups[1]))
        if kind == "snooze":
            return SnoozeButton(int(groups[0]), groups[1])
        if kind == "option":
            return OptionButton(groups[0], groups[1])
        if kind == "safety":
            return SafetyButton(int(groups[0]), groups[1], groups[2])
        return PhysicianButton(groups[0], groups[1])
    return None
