"""What a press, a typed message or `/start` from a Telegram account means, as one service.

The Telegram handlers and the terminal demo both go through here, so they share every rule:
which account is speaking, which step it is at, and which service answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from bot import callbacks
from bot.context import AppContext
from bot.domain import safety as safety_rules
from bot.services import enrollment, history, patients, questionnaire, safety
from bot.services.enrollment import EnrollmentResult
from bot.services.history import StatusView
from bot.services.patients import AccountReply
from bot.services.questionnaire import QuestionnaireReply
from bot.services.safety import SafetyReply
from storage.models import AdministrationKind


@dataclass(frozen=True)
class Notice:
    """A message with nothing behind it: `key` names its template. `offers_side_effect` adds
    the button that reports a side effect, the same as `/sideeffect` (clinical spec §8)."""

    key: str
    language: str
    offers_side_effect: bool = False


SIDE_EFFECT_BUTTON: Final = callbacks.OptionButton("report", "sideeffect")
"""The "report a side effect" button under `/checkin`; it goes the way `/sideeffect` goes."""


Reply = QuestionnaireReply | SafetyReply | AccountReply | EnrollmentResult | StatusView | Notice

PATIENT_PREFIXES = ("a:", "b:", "s:", "c:", "e:", "o:", "k:")
"""Callback data this module answers; other prefixes belong to other parts of the bot."""


def press(ctx: AppContext, *, telegram_user_id: int, data: str | None, language: str) -> Reply:
    """A button press. Malformed or forged data is refused without touching anything."""
    button = callbacks.decode(data)
    match button:
        case callbacks.AnswerButton(administration_id, item, value):
            return questionnaire.answer(
                ctx,
                telegram_user_id=telegram_user_id,
                administration_id=administration_id,
                item=item,
                value=value,
            )
        case callbacks.BackButton(administration_id, item):
            return questionnaire.back(
                ctx,
                telegram_user_id=telegram_user_id,
                administration_id=administration_id,
                item=item,
            )
        case callbacks.StartButton(administration_id):
            return questionnaire.start(
                ctx, telegram_user_id=telegram_user_id, administration_id=administration_id
            )
        case callbacks.ConfirmButton(administration_id):
            return questionnaire.confirm(
                ctx, telegram_user_id=telegram_user_id, administration_id=administration_id
            )
        case callbacks.ChangeButton(administration_id, item):
            return questionnaire.change(
                ctx,
                telegram_user_id=telegram_user_id,
                administration_id=administration_id,
                item=item,
            )
        case callbacks.SafetyButton(checkin_id, action, question):
            return _safety_press(ctx, telegram_user_id, checkin_id, action, question, language)
        case callbacks.OptionButton("report", "sideeffect"):
            (reported,) = command(
                ctx, telegram_user_id=telegram_user_id, name="sideeffect", language=language
            )
            return reported
        case callbacks.OptionButton("first", _):
            return questionnaire.checkin(ctx, telegram_user_id=telegram_user_id)
        case callbacks.OptionButton(step, value):
            return patients.choose(ctx, telegram_user_id=telegram_user_id, step=step, value=value)
    return QuestionnaireReply(questionnaire.Outcome.NOT_YOURS, language=language)


def _safety_press(
    ctx: AppContext,
    telegram_user_id: int,
    checkin_id: int,
    action: str,
    question: str,
    language: str,
) -> Reply:
    """A press in a safety check-in: yes, no, back, change or confirm (clinical spec §8)."""
    if question != safety.SUMMARY and question not in safety_rules.QUESTION_CODES:
        return QuestionnaireReply(questionnaire.Outcome.NOT_YOURS, language=language)
    if action in ("y", "n") and question != safety.SUMMARY:
        return safety.answer(
            ctx,
            telegram_user_id=telegram_user_id,
            checkin_id=checkin_id,
            code=question,
            yes=action == "y",
        )
    if action == "b":
        return safety.back(
            ctx, telegram_user_id=telegram_user_id, checkin_id=checkin_id, code=question
        )
    if action == "e" and question != safety.SUMMARY:
        return safety.change(
            ctx, telegram_user_id=telegram_user_id, checkin_id=checkin_id, code=question
        )
    if action == "c" and question == safety.SUMMARY:
        return safety.confirm(ctx, telegram_user_id=telegram_user_id, checkin_id=checkin_id)
    return QuestionnaireReply(questionnaire.Outcome.NOT_YOURS, language=language)


def has_follow_up(reply: Reply) -> bool:
    """Whether `follow_up` may add something: only a weekly questionnaire confirmed just now
    (a check-in is followed by nothing, so its confirmation opens no second unit of work)."""
    return (
        isinstance(reply, QuestionnaireReply)
        and reply.outcome is questionnaire.Outcome.COMPLETED
        and reply.view is not None
        and reply.view.kind == AdministrationKind.SCHEDULED.value
    )


def follow_up(ctx: AppContext, *, telegram_user_id: int, reply: Reply) -> list[Reply]:
    """What comes after a reply in the same answer: a confirmed weekly questionnaire is
    followed by the safety check-in when the patient is asked it (clinical spec §8)."""
    if isinstance(reply, QuestionnaireReply) and has_follow_up(reply):
        assert reply.view is not None
        opened = safety.after_questionnaire(
            ctx,
            telegram_user_id=telegram_user_id,
            administration_id=reply.view.administration_id,
        )
        if opened is not None:
            return [opened]
    return []


def typed(
    ctx: AppContext, *, telegram_user_id: int, chat_id: int, text: str, language: str
) -> list[Reply]:
    """A typed message: a code from an unknown account, a setup answer, or a questionnaire
    answer from a patient."""
    account = enrollment.identify(ctx, telegram_user_id=telegram_user_id, language=language)
    if account.kind == "unknown":
        if not enrollment.looks_like_code(text):
            return [Notice("enrollment.how_to_join", language)]
        return _enrolled(ctx, telegram_user_id, chat_id, text, language)
    if account.kind == "physician":
        return [Notice("enrollment.physician_intro", account.language)]
    setup = patients.typed_during_setup(ctx, telegram_user_id=telegram_user_id, text=text)
    if setup is not None:
        return [setup]
    answered = questionnaire.answer_typed(ctx, telegram_user_id=telegram_user_id, text=text)
    if answered.outcome is questionnaire.Outcome.NO_OPEN:
        # No questionnaire to answer: text during a safety check-in is a note (spec §8). A
        # check-in left open never takes the answers of the next questionnaire.
        noted = safety.note(ctx, telegram_user_id=telegram_user_id, text=text)
        if noted is not None:
            return [noted]
    return [answered]


def _enrolled(
    ctx: AppContext, telegram_user_id: int, chat_id: int, code: str, language: str
) -> list[Reply]:
    """Enrolls with a code; a linked patient is shown their first setup step straight away."""
    result = enrollment.enroll(
        ctx, telegram_user_id=telegram_user_id, chat_id=chat_id, code_text=code, language=language
    )
    if result.outcome is enrollment.Outcome.PATIENT_LINKED:
        where = patients.current_screen(ctx, telegram_user_id=telegram_user_id)
        if where is not None:
            return [result, where]
    return [result]


def start(
    ctx: AppContext, *, telegram_user_id: int, chat_id: int, code: str | None, language: str
) -> list[Reply]:
    """`/start`, with the code of a clinic's link or without: links an unknown account, or
    shows a linked one where it stands."""
    account = enrollment.identify(ctx, telegram_user_id=telegram_user_id, language=language)
    if account.kind == "unknown":
        if not code:
            return [Notice("enrollment.ask_code", language)]
        return _enrolled(ctx, telegram_user_id, chat_id, code, language)
    replies: list[Reply] = []
    if code:
        replies.append(EnrollmentResult(enrollment.Outcome.ALREADY_LINKED, account.language))
    if account.kind == "physician":
        replies.append(Notice("enrollment.physician_intro", account.language))
        return replies
    where = patients.current_screen(ctx, telegram_user_id=telegram_user_id)
    if where is not None and where.screen is patients.AccountScreen.ACCOUNT_HOME:
        status = history.my_status(ctx, telegram_user_id=telegram_user_id)
        if status is not None:
            replies.append(status)
            return replies
    if where is not None:
        replies.append(where)
    return replies or [Notice("enrollment.how_to_join", language)]


PATIENT_COMMANDS = (
    "checkin", "sideeffect", "status", "settings", "language", "pause", "stop", "help",
)  # fmt: skip
"""Commands answered by `command`, in the order of Telegram's command menu (with history)."""


def command(ctx: AppContext, *, telegram_user_id: int, name: str, language: str) -> list[Reply]:
    """A patient command (`/checkin`, `/sideeffect`, `/status`, `/settings`, `/language`,
    `/pause`, `/stop`, `/help`): unknown accounts get the how-to-join text, physicians their
    introduction."""
    if name == "checkin":
        # A patient's `/checkin` needs no reading of who is speaking first: the check-in reads
        # its patient in its own transaction, and only an account it finds no patient for
        # (unknown, a physician, one no longer followed) is looked at as below.
        asked = questionnaire.checkin(ctx, telegram_user_id=telegram_user_id)
        if asked.outcome is not questionnaire.Outcome.NOT_YOURS:
            return _checked_in(asked)
    account = enrollment.identify(ctx, telegram_user_id=telegram_user_id, language=language)
    if account.kind == "unknown":
        return [Notice("enrollment.how_to_join", language)]
    if account.kind == "physician":
        return [Notice("enrollment.physician_intro", account.language)]
    if name == "help":
        return [Notice("help.patient", account.language)]
    if name == "checkin":
        return _checked_in(questionnaire.checkin(ctx, telegram_user_id=telegram_user_id))
    if name == "sideeffect":
        return [safety.report(ctx, telegram_user_id=telegram_user_id)]
    if name == "status":
        status = history.my_status(ctx, telegram_user_id=telegram_user_id)
        return [status] if status is not None else [Notice("enrollment.how_to_join", language)]
    return [
        patients.open_menu(
            ctx, telegram_user_id=telegram_user_id, menu=name, language=account.language
        )
    ]


def _checked_in(asked: QuestionnaireReply) -> list[Reply]:
    """What `/checkin` answers, from what the check-in did."""
    if asked.outcome not in (questionnaire.Outcome.SHOW, questionnaire.Outcome.CHECKIN_LIMIT):
        return [asked]
    # Any time, also during a questionnaire, a patient may report an event (spec §8); the
    # offer comes first so that the question stays the newest message.
    return [Notice("safety.offer", asked.language, offers_side_effect=True), asked]
