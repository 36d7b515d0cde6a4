"""Small readers of the database and the chat for end-to-end assertions."""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select

from bot.context import AppContext
from storage.models import Administration, Answer, AuditEvent, ScoreRecord
from tests.fake_telegram import FakeUser


def administrations_of(ctx: AppContext, patient_id: int) -> list[Administration]:
    with ctx.session() as session:
        return list(
            session.exec(
                select(Administration)
                .where(Administration.patient_id == patient_id)
                .order_by(col(Administration.id))
            )
        )


def answers_of(ctx: AppContext, administration_id: int) -> dict[str, Answer]:
    with ctx.session() as session:
        rows = session.exec(select(Answer).where(Answer.administration_id == administration_id))
        return {row.item_code: row for row in rows}


def score_of(ctx: AppContext, administration_id: int) -> ScoreRecord | None:
    with ctx.session() as session:
        return session.exec(
            select(ScoreRecord).where(ScoreRecord.administration_id == administration_id)
        ).first()


def audit_of(ctx: AppContext, patient_id: int, entity: str | None = None) -> list[AuditEvent]:
    with ctx.session() as session:
        query = select(AuditEvent).where(AuditEvent.patient_id == patient_id)
        if entity is not None:
            query = query.where(AuditEvent.entity == entity)
        return list(session.exec(query.order_by(col(AuditEvent.id))))


def live_keyboard_messages(user: FakeUser) -> list[dict[str, Any]]:
    """The bot messages in the chat that still carry buttons."""
    return [m for m in user.messages() if m.get("reply_markup", {}).get("inline_keyboard")]


def button_data(user: FakeUser, label: str) -> str:
    """The callback data of the button labelled `label` on the newest keyboard."""
    for text, data in user.buttons():
        if text == label:
            return data
    raise LookupError(f"no button {label!r}:\n{user.transcript()}")


def toasts(api: Any, user: FakeUser) -> list[str]:
    """Texts of the answers to this user's button presses (the short notices)."""
    return [
        str(call.params.get("text"))
        for call in api.calls("answerCallbackQuery")
        if call.chat_id == user.id and call.params.get("text")
    ]
