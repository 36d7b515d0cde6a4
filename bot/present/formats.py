"""Dates, times, numbers and weekday names in a reader's language, from CLDR through Babel.

Month and weekday names, the order of a date's parts and the decimal separator (`7,59` in
German) come from the CLDR data Babel ships, never from the server's C locale. The clinical
display rounding (clinical spec §3: one decimal, half away from zero) is applied before a number
gets here; this module only writes it with the language's separators. Exports, CSV and FHIR stay
machine-formatted and do not use it.
"""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from functools import cache, lru_cache

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_time, get_day_names
from babel.numbers import format_decimal

FALLBACK_LOCALE = "en"


@cache
def locale_of(language: str) -> Locale:
    """The CLDR locale of a language code; English for a code CLDR does not know, so a
    catalog for a made-up or private-use language still formats dates and numbers."""
    try:
        return Locale.parse(language)
    except (UnknownLocaleError, ValueError):
        return Locale.parse(FALLBACK_LOCALE)


def weekday_name(weekday: int, language: str) -> str:
    """The full name of a weekday (0 = Monday), as CLDR writes it in the language."""
    return str(get_day_names("wide", locale=locale_of(language))[weekday])


def day_text(value: date | datetime, pattern: str, language: str) -> str:
    """A calendar day written with a CLDR date pattern ("dd MMM y"), month names from CLDR.
    The pattern is the translator's (each language's catalog has its own)."""
    day = value.date() if isinstance(value, datetime) else value
    return _day_text(day, pattern, language)


@lru_cache(maxsize=4096)
def _day_text(day: date, pattern: str, language: str) -> str:
    """`day_text` of a calendar day, written once: a digest writes the same few days (the
    week's questionnaires, the last lab values) for every patient."""
    return format_date(day, pattern, locale=locale_of(language))


def clock_text(value: time | datetime, language: str) -> str:
    """A time of day on the 24-hour clock ("18:00"), which every supported clinic uses."""
    moment = value.time() if isinstance(value, datetime) else value
    return format_time(moment, "HH:mm", locale=locale_of(language))


def number_text(value: Decimal | int | str, language: str) -> str:
    """A number already rounded for display, with the language's decimal separator and the
    decimals it has ("7.59" → "7,59" in German, "4.0" stays one decimal). Text that is not a
    number ("–", "<0.5") is returned as it is."""
    return _number_text(str(value), language)


@lru_cache(maxsize=4096)
def _number_text(text: str, language: str) -> str:
    """`number_text` of a value's text: the same few hundred scores are written again and
    again (a digest writes a score for every patient), so each is formatted once."""
    original = text
    prefix = ""
    if text[:1] in "<>":
        prefix, text = text[0], text[1:]
    try:
        number = Decimal(text)
    except InvalidOperation:
        return original
    if not number.is_finite():
        return original
    exponent = number.as_tuple().exponent
    decimals = max(0, -exponent) if isinstance(exponent, int) else 0
    pattern = "0." + "0" * decimals if decimals else "0"
    return prefix + format_decimal(number, format=pattern, locale=locale_of(language))
