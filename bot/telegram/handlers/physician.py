"""What a physician experiences in Telegram: `/patients`, `/patient <reference>` and `/crp`.

Each command asks one service (`bot.services.physician_panel`, `crp_entry`, `therapy_entry`),
which answers None for an account that is not a linked physician; such an account gets "not
available" and learns nothing else. Buttons carry `p:<action>:<argument>`
(`bot.callbacks.PhysicianButton`): `p:page:<n>` pages the patient list, `p:save:<id>` /
`p:cancel:<id>` resolve a CRP preview kept in the database, so they work after a restart and
in any process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from telegram import InlineKeyboardMarkup, InputFile, Update
from telegram.error import BadRequest
from telegram.ext import ContextTypes

from bot import callbacks
from bot.present import physician as words
from bot.present.course_report import course_report_pdf
from bot.present.physician import CANCEL, PAGE, SAVE, THERAPY_CANCEL, THERAPY_SAVE
from bot.present.render import Renderer
from bot.present.screens import lab_refusal
from bot.services import crp_entry, physician_panel, therapy_entry
from bot.services.crp_entry import CrpOutcome
from bot.services.physician_panel import CourseReply, DetailReply, Lookup, PendingOutcome
from bot.services.therapy import CourseReport
from bot.services.therapy_entry import TherapyOutcome
from bot.telegram import keyboards
from bot.telegram.deps import deps
from bot.telegram.handlers.common import call, user_language

logger = logging.getLogger(__name__)

BUTTON_PATTERN = rf"^p:(?:{PAGE}|{SAVE}|{CANCEL}|{THERAPY_SAVE}|{THERAPY_CANCEL}):"
"""The callback data of the physician's list, lab and therapy buttons."""
# -- handlers ------------------------------------------------------------------------------------


def _who(update: Update) -> tuple[int, int]:
    user = update.effective_user
    chat = update.effective_chat
    assert user is not None
    assert chat is not None
    return user.id, chat.id


async def _not_available(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    _user, chat_id = _who(update)
    text = deps(context).renderer.text("common.not_available", user_language(update))
    await context.bot.send_message(chat_id, text)


_Found = TypeVar("_Found", DetailReply, CourseReply)


async def _named_patient(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    lookup: Callable[..., _Found | None],
    usage: str,
) -> _Found | None:
    """The patient named after `/patient` or `/therapy`; None once "not available", the
    command's `usage` or "no such patient" has been sent instead."""
    user_id, chat_id = _who(update)
    d = deps(context)
    args = context.args or []
    reply = await call(lookup, d.ctx, telegram_user_id=user_id, clinic_ref=" ".join(args[:1]))
    if reply is None:
        await _not_available(update, context)
        return None
    if not args:
        await context.bot.send_message(chat_id, d.renderer.text(usage, reply.language))
        return None
    if reply.outcome is Lookup.NO_PATIENT:
        text = d.renderer.text("physician.detail.no_patient", reply.language, ref=reply.clinic_ref)
        await context.bot.send_message(chat_id, text)
        return None
    return reply


async def patients_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Shows the physician's patients with latest BASDAI, ASDAS-CRP, trend and flags."""
    user_id, chat_id = _who(update)
    d = deps(context)
    found = await call(physician_panel.patient_list, d.ctx, telegram_user_id=user_id, page=0)
    if found is None:
        await _not_available(update, context)
        return
    await context.bot.send_message(
        chat_id,
        words.render_list(d.renderer, found),
        reply_markup=keyboards.markup(words.list_buttons(d.renderer, found)),
    )


async def patient_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Sends one patient's trend chart, latest scores with their lab values and last answers."""
    user_id, chat_id = _who(update)
    d = deps(context)
    args = context.args or []
    reply = await _named_patient(
        update, context, physician_panel.patient_detail, "physician.detail.usage"
    )
    if reply is None or reply.detail is None:
        return
    r = d.renderer
    detail = reply.detail
    if detail.points:
        weeks = physician_panel.CHART_WEEKS
        png = await call(words.detail_chart_png, r, detail, weeks)
        caption = r.text(
            "physician.detail.chart_caption",
            detail.language,
            name=detail.summary.identifier,
            weeks=weeks,
        )
        await context.bot.send_photo(chat_id, png, caption=caption)
    settings = d.ctx.settings
    text = words.render_detail(r, detail, settings.lab_window_days, settings.digest_no_crp_weeks)
    await context.bot.send_message(chat_id, text)
    if detail.therapies:
        # A patient on treatment: the course report for the clinic visit comes along (§7).
        course = await call(
            physician_panel.patient_course, d.ctx, telegram_user_id=user_id, clinic_ref=args[0]
        )
        if course is not None and course.report is not None:
            await _send_report(context, chat_id, r, course.report)


async def crp_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Shows what a typed CRP (and ESR) would store, with Save and Cancel buttons."""
    user_id, chat_id = _who(update)
    d = deps(context)
    preview = await call(
        crp_entry.preview_crp, d.ctx, telegram_user_id=user_id, args=list(context.args or [])
    )
    if preview is None:
        await _not_available(update, context)
        return
    r, lang = d.renderer, preview.language
    if preview.outcome is CrpOutcome.INVALID:
        assert preview.reason is not None
        text = lab_refusal(r, lang, preview.reason, preview.params)
        if preview.reason != "crp_usage":
            text += "\n\n" + r.text("physician.crp.usage", lang)
        await context.bot.send_message(chat_id, text)
        return
    if preview.outcome is CrpOutcome.NO_PATIENT:
        await context.bot.send_message(
            chat_id, r.text("physician.crp.no_patient", lang, ref=preview.clinic_ref)
        )
        return
    await context.bot.send_message(
        chat_id,
        words.render_preview(r, preview),
        reply_markup=keyboards.markup(words.preview_buttons(r, preview)),
    )


async def physician_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Turns the page of `/patients`, or saves or cancels a CRP preview."""
    query = update.callback_query
    assert query is not None
    user_id, chat_id = _who(update)
    d = deps(context)
    button = callbacks.decode(query.data)
    if (
        not isinstance(button, callbacks.PhysicianButton)
        or not button.argument.isdigit()
        or int(button.argument) > callbacks.MAX_ID  # no row has such an id: forged
    ):
        await _answer(query, d.renderer.text("common.not_available", user_language(update)))
        return
    number = int(button.argument)
    message_id = query.message.message_id if query.message is not None else None
    if button.action in (THERAPY_SAVE, THERAPY_CANCEL):
        await _resolve_therapy(
            query, context, user_id, chat_id, number, message_id, user_language(update)
        )
        return
    if button.action == PAGE:
        found = await call(
            physician_panel.patient_list, d.ctx, telegram_user_id=user_id, page=number
        )
        if found is None:
            await _answer(query, d.renderer.text("common.not_available", user_language(update)))
            return
        await _answer(query)
        await _edit(
            context,
            chat_id,
            message_id,
            words.render_list(d.renderer, found),
            keyboards.markup(words.list_buttons(d.renderer, found)),
        )
        return
    reply = await call(
        crp_entry.resolve_pending,
        d.ctx,
        telegram_user_id=user_id,
        pending_id=number,
        save=button.action == SAVE,
    )
    if reply is None:
        await _answer(query, d.renderer.text("common.not_available", user_language(update)))
        return
    text = words.render_pending(d.renderer, reply, d.ctx.settings.lab_window_days)
    await _show_resolution(context, query, chat_id, message_id, reply.outcome, text)


async def _show_resolution(
    context: ContextTypes.DEFAULT_TYPE,
    query: Any,
    chat_id: int,
    message_id: int | None,
    outcome: PendingOutcome,
    text: str,
) -> None:
    """What a Save or Cancel press did, where the physician sees it."""
    if outcome is PendingOutcome.GONE:
        # A second tap on Save or Cancel: the message already says what happened, so it stays
        # as it is and the tap is answered with a short notice.
        await _answer(query, text)
        return
    await _answer(query)
    if outcome is PendingOutcome.REFUSED:
        await context.bot.send_message(chat_id, text)
        return
    await _edit(context, chat_id, message_id, text, None)


async def _answer(query: Any, text: str | None = None) -> None:
    try:
        await query.answer(text=text)
    except BadRequest:
        logger.info("callback query could not be answered (expired)")


async def _edit(
    context: ContextTypes.DEFAULT_TYPE,
    chat_id: int,
    message_id: int | None,
    text: str,
    keyboard: InlineKeyboardMarkup | None,
) -> None:
    """Shows `text` in the pressed message, or as a new message if it cannot be edited."""
    if message_id is not None:
        try:
            await context.bot.edit_message_text(
                text, chat_id=chat_id, message_id=message_id, reply_markup=keyboard
            )
            return
        except BadRequest as error:
            if "message is not modified" in error.message.lower():
                return
            logger.info("edit refused, sending a new message instead")
    await context.bot.send_message(chat_id, text, reply_markup=keyboard)


async def therapy_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Shows one patient's treatment course, each episode with its response (clinical spec
    §7), and sends the one-page course report for the clinic visit."""
    user_id, chat_id = _who(update)
    d = deps(context)
    args = context.args or []
    if therapy_entry.is_therapy_change(args):
        await _therapy_change(context, user_id, chat_id, args, user_language(update))
        return
    reply = await _named_patient(
        update, context, physician_panel.patient_course, "therapy.chat.usage"
    )
    if reply is None or reply.report is None:
        return
    r, lang = d.renderer, reply.language
    report = reply.report
    await context.bot.send_message(chat_id, words.course_text(r, report, lang))
    await _send_report(context, chat_id, r, report)


async def _therapy_change(
    context: ContextTypes.DEFAULT_TYPE, user_id: int, chat_id: int, args: list[str], language: str
) -> None:
    """Shows the episode `/therapy <ref> add|stop …` would store, with Save and Cancel."""
    d = deps(context)
    preview = await call(
        therapy_entry.preview_therapy_change, d.ctx, telegram_user_id=user_id, args=args
    )
    if preview is None:
        await context.bot.send_message(chat_id, d.renderer.text("common.not_available", language))
        return
    r, lang = d.renderer, preview.language
    if preview.outcome is TherapyOutcome.NO_PATIENT:
        text = r.text("physician.detail.no_patient", lang, ref=preview.clinic_ref)
    elif preview.outcome is TherapyOutcome.USAGE:
        text = r.text("therapy.chat.usage", lang)
    elif preview.outcome is TherapyOutcome.INVALID:
        assert preview.reason is not None
        text = r.text(f"therapy.reason.{preview.reason}", lang, **preview.params)
        text += "\n\n" + r.text("therapy.chat.usage", lang)
    else:
        await context.bot.send_message(
            chat_id,
            words.render_therapy_preview(r, preview),
            reply_markup=keyboards.markup(words.therapy_preview_buttons(r, preview)),
        )
        return
    await context.bot.send_message(chat_id, text)


async def _resolve_therapy(
    query: Any,
    context: ContextTypes.DEFAULT_TYPE,
    user_id: int,
    chat_id: int,
    pending_id: int,
    message_id: int | None,
    language: str,
) -> None:
    """Saves or cancels a therapy preview; a stale or repeated press changes nothing."""
    d = deps(context)
    reply = await call(
        therapy_entry.resolve_therapy_change,
        d.ctx,
        telegram_user_id=user_id,
        pending_id=pending_id,
        save=query.data.startswith(f"p:{THERAPY_SAVE}:"),
    )
    if reply is None:
        await _answer(query, d.renderer.text("common.not_available", language))
        return
    text = words.render_therapy_pending(d.renderer, reply)
    await _show_resolution(context, query, chat_id, message_id, reply.outcome, text)


async def _send_report(
    context: ContextTypes.DEFAULT_TYPE, chat_id: int, r: Renderer, report: CourseReport
) -> None:
    pdf = await call(course_report_pdf, r, report)
    await context.bot.send_document(
        chat_id,
        InputFile(pdf, filename=f"course-{report.clinic_ref}.pdf"),
        caption=r.text("therapy.chat.report_caption", report.language, ref=report.clinic_ref),
    )
