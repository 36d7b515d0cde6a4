"""The immediate alerts a physician reads: a worrying questionnaire, a safety red flag."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from bot.domain.attention import Concern
from bot.present.digest.text import local_date, number
from bot.present.render import Renderer
from bot.services.digest import Alert
from bot.services.safety import SafetyAlert


def alert_text(renderer: Renderer, alert: Alert) -> str:
    """The one short message an alert is, in the physician's language: the ASDAS variant and
    its lab date, and whether a late lab value completed it (clinical spec §6)."""
    values: dict[str, object] = {"asdas": "", "before": "", "after": "", "kind": "CRP", "drawn": ""}
    values["late"] = alert.late_lab
    values["completed"] = (
        "" if alert.completed_at is None else str(local_date(alert.completed_at, alert.timezone))
    )
    for flag in alert.flags:
        if flag.variant is not None:
            values["kind"] = flag.variant.value
        if flag.drawn_at is not None:
            values["drawn"] = str(local_date(flag.drawn_at, alert.timezone))
        if flag.kind is Concern.ASDAS_VERY_HIGH and flag.value is not None:
            values["asdas"] = number(flag.value)
        elif (
            flag.kind is Concern.ASDAS_WORSENING
            and flag.reference is not None
            and flag.value is not None
        ):
            values["before"] = number(flag.reference)
            values["after"] = number(flag.reference + flag.value)
    return renderer.text(
        "digest.alert.message", alert.language, identifier=alert.patient_identifier, **values
    )


def safety_alert_text(renderer: Renderer, alert: SafetyAlert, advice: str | None) -> str:
    """The immediate alert of a red flag (clinical spec §8), in the physician's language."""
    at = alert.answered_at.astimezone(ZoneInfo(alert.timezone)).strftime("%Y-%m-%d %H:%M")
    return renderer.text(
        "safety.alert.message",
        alert.language,
        identifier=alert.patient_identifier,
        at=at,
        question=renderer.text(f"safety.short.{alert.question_code}", alert.language),
        advice=(
            None
            if advice is None
            else renderer.text(f"safety.alert.advice_{advice}", alert.language)
        ),
    )
