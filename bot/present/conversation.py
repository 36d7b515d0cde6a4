"""A reply of `bot.services.conversation` as the patient sees it, for the bot and the demo."""

from __future__ import annotations

from collections.abc import Sequence

from bot import callbacks as cb
from bot.present.account import account_presentation, enrollment_presentation, status_screen
from bot.present.checkin import checkin_presentation
from bot.present.questionnaire import questionnaire_presentation
from bot.present.render import Renderer
from bot.present.screens import Button, Presentation, Screen
from bot.services.conversation import SIDE_EFFECT_BUTTON, Notice, Reply
from bot.services.enrollment import EnrollmentResult
from bot.services.history import StatusView
from bot.services.patients import AccountReply
from bot.services.questionnaire import QuestionnaireReply
from bot.services.safety import SafetyReply


def present(renderer: Renderer, replies: Reply | Sequence[Reply]) -> Presentation:
    """How to answer an update whose service replies are `replies` (in order)."""
    if not isinstance(replies, Sequence):
        return _present_one(renderer, replies)
    parts = [_present_one(renderer, reply) for reply in replies]
    if not parts:
        return Presentation()
    first, rest = parts[0], parts[1:]
    follow = list(first.follow)
    for part in rest:
        if part.primary is not None:
            follow.append(part.primary)
        follow.extend(part.follow)
    return Presentation(
        primary=first.primary,
        follow=tuple(follow),
        toast=first.toast,
        edit_pressed=first.edit_pressed,
    )


def _present_one(renderer: Renderer, reply: Reply) -> Presentation:
    if isinstance(reply, QuestionnaireReply):
        return questionnaire_presentation(renderer, reply)
    if isinstance(reply, SafetyReply):
        return checkin_presentation(renderer, reply)
    if isinstance(reply, AccountReply):
        return account_presentation(renderer, reply)
    if isinstance(reply, EnrollmentResult):
        return enrollment_presentation(renderer, reply)
    if isinstance(reply, StatusView):
        return Presentation(primary=status_screen(renderer, reply), edit_pressed=False)
    assert isinstance(reply, Notice)
    buttons: tuple[tuple[Button, ...], ...] = ()
    if reply.offers_side_effect:
        label = renderer.text("safety.report_button", reply.language)
        buttons = ((Button(label, cb.encode(SIDE_EFFECT_BUTTON)),),)
    return Presentation(
        primary=Screen(renderer.text(reply.key, reply.language), buttons), edit_pressed=False
    )
