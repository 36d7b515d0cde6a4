"""What a service reply looks like to a person: message texts from `templates/` and buttons.

Telegram-free on purpose, so the bot's handlers and the terminal demo present exactly the same
screens; `bot.telegram.keyboards` turns the button rows into Telegram inline keyboards.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from bot.domain import instruments
from bot.domain.labs import LabParam, display_value
from bot.domain.scoring import display_decimal, display_round
from bot.present import formats
from bot.present.render import TELEGRAM_TEXT_LIMIT, Renderer

NRS_ROWS: Final = ((0, 1, 2, 3, 4, 5), (6, 7, 8, 9, 10))
DURATIONS_PER_ROW: Final = 3
TRUNCATION_MARK: Final = "…"
ECHO_LIMIT: Final = 64


@dataclass(frozen=True)
class Button:
    label: str
    data: str


@dataclass(frozen=True)
class Screen:
    """One message: HTML text and rows of buttons.

    `live_administration_id` marks the message that shows that administration's current step
    (its id is remembered, so the next step can edit it); `previous_message_id` is the message
    that showed it before, whose keyboard is removed when the step moves to another message.
    """

    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()
    live_administration_id: int | None = None
    previous_message_id: int | None = None


@dataclass(frozen=True)
class Presentation:
    """How to answer one update.

    For a button press, `primary` replaces the pressed message when `edit_pressed`, otherwise it
    is sent as a new message and the pressed message loses its keyboard; `toast` answers the
    press. Without a press, `primary` is sent, and a lone `toast` is sent as a message. `follow`
    are further messages sent afterwards.
    """

    primary: Screen | None = None
    follow: tuple[Screen, ...] = ()
    toast: str | None = None
    edit_pressed: bool = True


_instrument_cache: dict[tuple[Path, str, str], dict[str, Any]] = {}


def instrument_text(renderer: Renderer, version: str, language: str) -> dict[str, Any]:
    """The wording of an instrument version in a language (templates/instruments/…)."""
    key = (renderer.templates_dir, version, language)
    if key not in _instrument_cache:
        path = renderer.templates_dir / "instruments" / version / f"{language}.toml"
        if not path.exists():
            path = (
                renderer.templates_dir
                / "instruments"
                / instruments.INSTRUMENT_VERSION
                / f"{language if language in renderer.languages else 'en'}.toml"
            )
        _instrument_cache[key] = renderer.read_data(str(path.relative_to(renderer.templates_dir)))
    return _instrument_cache[key]


def informal_label(renderer: Renderer, wording: dict[str, Any], language: str) -> str:
    """The label under an unlicensed rendering, read from the version's `licensed_translation`
    flag: a licensed text goes unlabelled, any other is labelled informal even if its file
    forgot its `note` (clinical spec §1)."""
    if wording.get("licensed_translation") is True:
        return ""
    return str(wording.get("note") or renderer.text("questionnaire.informal_rendering", language))


def fit(text: str) -> str:
    """Text cut to Telegram's 4096-character limit (a safety net; templates stay far below)."""
    if len(text) <= TELEGRAM_TEXT_LIMIT:
        return text
    return text[: TELEGRAM_TEXT_LIMIT - len(TRUNCATION_MARK)] + TRUNCATION_MARK


def echo(text: str | None) -> str:
    """A patient's typed text shortened for quoting back (the template escapes it)."""
    value = (text or "").strip()
    return value if len(value) <= ECHO_LIMIT else value[: ECHO_LIMIT - 1] + TRUNCATION_MARK


def local_time(moment: datetime, zone: str) -> datetime:
    """A moment in the person's own time zone."""
    return moment.astimezone(ZoneInfo(zone))


def format_date(renderer: Renderer, language: str, moment: datetime, zone: str) -> str:
    """A date in the person's zone and language."""
    return formats.day_text(
        local_time(moment, zone), renderer.text("history.date_format", language), language
    )


def format_slot(renderer: Renderer, language: str, moment: datetime, zone: str) -> str:
    """A moment as weekday, date and time in the person's zone and language."""
    local = local_time(moment, zone)
    return renderer.text(
        "account.slot",
        language,
        weekday=weekday_name(renderer, language, local.weekday()),
        date=formats.day_text(local, renderer.text("history.date_format", language), language),
        clock=formats.clock_text(local, language),
    )


def weekday_name(renderer: Renderer, language: str, weekday: int) -> str:
    """A weekday (0 = Monday) named by CLDR in the language."""
    del renderer  # kept in the signature: every screen helper takes the renderer first
    return formats.weekday_name(weekday, language)


def clock_text(value: time) -> str:
    """A time of day as the templates show it."""
    return value.strftime("%H:%M")


def display(value: Decimal, language: str = "en") -> str:
    """A score with one decimal, half away from zero (clinical spec §3), written with the
    language's decimal separator."""
    return formats.number_text(display_round(value), language)


def rounded(value: Decimal | None) -> Decimal | None:
    """A score as people read it: one decimal, half away from zero on the exact value
    (clinical spec §3: 4.55 → 4.6); None stays None. Its state comes from the exact value."""
    return None if value is None else display_decimal(value)


def percent(share: Fraction) -> int:
    """A share (0 to 1) as a whole percent, half up on the exact value (2/3 → 67, 1/8 → 13)."""
    return int(
        (Decimal(100 * share.numerator) / share.denominator).quantize(Decimal(1), ROUND_HALF_UP)
    )


def measured(value: Decimal | None) -> str | None:
    """A lab value or a typed answer exactly as precise as it was entered ("7.59", "0.5")."""
    return None if value is None else display_value(value)


def lab_refusal(
    renderer: Renderer, language: str, code: str, params: Mapping[str, LabParam]
) -> str:
    """Why a lab entry was refused (`labs.reason.<code>`), its values written like `measured()`."""
    shown = {
        name: measured(value) if isinstance(value, Decimal) else value
        for name, value in params.items()
    }
    return renderer.text(f"labs.reason.{code}", language, **shown)


def answer_value(value: Decimal, minutes: int | None) -> Decimal | str:
    """One questionnaire answer: the 0–10 score of a stiffness duration (given with its
    `minutes`) rounded like a score, any other rating as it was given."""
    if minutes is not None:
        return display_decimal(value)
    return display_value(value)
