"""What a physician experiences in Telegram: `/patients`, `/patient <reference>` and `/crp`.

Each command asks `bot.services.physician`, which answers None for an account that is not a
linked physician; such an account gets "not available" and learns nothing else. Buttons carry
`p:<action>:<argument>` (`bot.callbacks.PhysicianButton`): `p:page:<n>` pages the patient list,
`p:save:<id>` / `p:cancel:<id>` resolve a CRP preview kept in the database, so they work after
a restart and in any process.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InputFile, Update
from telegram.error import BadRequest
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes, filters

from bot import callbacks
from bot.app import deps
from bot.present import screens
from bot.present.charts import ChartLabels, TherapyBar, TrendPoint, trend_chart_png
from bot.present.course import CourseWords, rendered
from bot.present.course_report import course_report_pdf
from bot.present.render import Renderer
from bot.services import physician
from bot.services.physician import (
    CrpOutcome,
    CrpPreview,
    LabLine,
    Lookup,
    PatientDetail,
    PatientList,
    PatientSummary,
    PendingOutcome,
    PendingReply,
    TherapyOutcome,
    TherapyPendingReply,
    TherapyPreview,
)
from bot.services.therapy import CourseReport
from bot.telegram.handlers.common import call, user_language

logger = logging.getLogger(__name__)

PAGE, SAVE, CANCEL = "page", "save", "cancel"
THERAPY_SAVE, THERAPY_CANCEL = "tsave", "tcancel"
INDENT = "    "  # the catalogue strips outer spaces, so indentation is added here
DATE_FORMAT = "%Y-%m-%d"
DATE_TIME_FORMAT = "%Y-%m-%d %H:%M"


def _safe(text: str) -> Markup:
    """A message rendered from the templates (already escaped) used inside another one."""
    return Markup(text)  # noqa: S704  (renderer output is escaped HTML)


def _local(moment: datetime, timezone: str, fmt: str = DATE_FORMAT) -> str:
    return moment.astimezone(ZoneInfo(timezone)).strftime(fmt)


def _drawn(moment: datetime, timezone: str) -> str:
    local = moment.astimezone(ZoneInfo(timezone))
    return local.strftime(DATE_FORMAT if local.strftime("%H:%M") == "12:00" else DATE_TIME_FORMAT)


# -- rendering -----------------------------------------------------------------------------------


def _asdas_text(r: Renderer, lang: str, row: PatientSummary, timezone: str) -> str:
    """The current ASDAS with its state and the date of its lab value (clinical spec §6)."""
    if row.asdas_crp is None or row.asdas_state is None:
        if row.awaiting_crp:
            return r.text("labs.awaiting_crp", lang)
        return r.text("physician.score.none", lang)
    return r.text(
        "physician.score.asdas",
        lang,
        value=row.asdas_crp,
        state=r.asdas_state_name(row.asdas_state, lang),
        floored=row.crp_floored,
        date=None if row.asdas_drawn_at is None else _local(row.asdas_drawn_at, timezone),
    )


def _row(r: Renderer, lang: str, row: PatientSummary, no_crp_weeks: int, timezone: str) -> str:
    basdai = (
        r.text("physician.score.basdai", lang, value=row.basdai, active=row.basdai_active)
        if row.basdai is not None
        else r.text("physician.score.none", lang)
    )
    line = r.text(
        "physician.patients.row",
        lang,
        trend=r.text(f"physician.trend.{row.trend}", lang),
        name=row.identifier,
        basdai=_safe(basdai),
        kind=row.asdas_kind,
        asdas=_safe(_asdas_text(r, lang, row, timezone)),
    )
    if not row.flags:
        return line
    return line + "\n" + INDENT + _flags(r, lang, row.flags, no_crp_weeks, row.asdas_kind)


def _flags(
    r: Renderer, lang: str, flags: tuple[str, ...], no_crp_weeks: int, kind: str = "CRP"
) -> str:
    """The flags, ASDAS ones labelled with the variant they rest on (clinical spec §6)."""
    text = ", ".join(
        r.text(f"physician.flag.{flag}", lang, weeks=no_crp_weeks, kind=kind) for flag in flags
    )
    return r.text("physician.patients.row_flags", lang, text=_safe(text))


def render_list(r: Renderer, found: PatientList) -> str:
    """The text of one page of `/patients`."""
    lang = found.language
    if not found.rows:
        return r.text("physician.patients.empty", lang)
    title = r.text(
        "physician.patients.title_admin" if found.admin else "physician.patients.title",
        lang,
        total=found.total,
    )
    parts = [title]
    if found.pages > 1:
        parts[0] += " · " + r.text(
            "physician.patients.page", lang, number=found.page + 1, count=found.pages
        )
    parts.extend(_row(r, lang, row, found.no_crp_weeks, found.timezone) for row in found.rows)
    parts.append(r.text("physician.patients.legend", lang))
    return "\n\n".join([parts[0], "\n".join(parts[1:-1]), parts[-1]])


def list_keyboard(r: Renderer, found: PatientList) -> InlineKeyboardMarkup | None:
    """‹ Previous / Next › buttons when the list has more than one page."""
    if found.pages <= 1:
        return None
    buttons = []
    if found.page > 0:
        data = callbacks.encode(callbacks.PhysicianButton(PAGE, str(found.page - 1)))
        buttons.append(
            InlineKeyboardButton(
                r.text("physician.patients.previous", found.language), callback_data=data
            )
        )
    if found.page + 1 < found.pages:
        data = callbacks.encode(callbacks.PhysicianButton(PAGE, str(found.page + 1)))
        buttons.append(
            InlineKeyboardButton(
                r.text("physician.patients.next", found.language), callback_data=data
            )
        )
    return InlineKeyboardMarkup([buttons])


def _lab_text(r: Renderer, lang: str, lab: LabLine, timezone: str) -> str:
    values = {"value": lab.value, "unit": lab.unit, "date": _drawn(lab.drawn_at, timezone)}
    if lab.analyte == "esr":
        key = "physician.detail.esr"
    elif lab.below_detection_limit:
        key = "physician.detail.crp_below_limit"
    elif lab.floored:
        key = "physician.detail.crp_floored"
    else:
        key = "physician.detail.crp"
    return INDENT + r.text(key, lang, **values)


def render_detail(r: Renderer, detail: PatientDetail, window_days: int, no_crp_weeks: int) -> str:
    """The text of `/patient <reference>`: latest scores with their lab values, last answers."""
    lang, zone, summary = detail.language, detail.timezone, detail.summary
    lines = [
        r.text(
            "physician.detail.title",
            lang,
            name=summary.identifier,
            status=r.text(f"physician.status.{summary.status}", lang),
        )
    ]
    if detail.completed_at is None:
        lines.append(r.text("physician.detail.none_yet", lang))
        return "\n".join(lines)
    lines.append(r.text("physician.detail.latest", lang, date=_local(detail.completed_at, zone)))
    if detail.basdai is not None:
        lines.append(
            r.text(
                "physician.detail.basdai", lang, value=detail.basdai, active=summary.basdai_active
            )
        )
    if detail.asdas_crp is not None and detail.asdas_crp_state is not None:
        lines.append(
            r.text(
                "physician.detail.asdas_crp",
                lang,
                value=detail.asdas_crp,
                state=r.asdas_state_name(detail.asdas_crp_state, lang),
            )
        )
        if detail.crp is not None:
            lines.append(_lab_text(r, lang, detail.crp, zone))
    elif detail.asdas_esr is None:
        lines.append(r.text("physician.detail.awaiting_crp", lang, days=window_days))
    if detail.asdas_esr is not None and detail.asdas_esr_state is not None:
        lines.append(
            r.text(
                "physician.detail.asdas_esr",
                lang,
                value=detail.asdas_esr,
                state=r.asdas_state_name(detail.asdas_esr_state, lang),
            )
        )
        if detail.esr is not None:
            lines.append(_lab_text(r, lang, detail.esr, zone))
    if summary.basdai50 is not None and summary.basdai_baseline_at is not None:
        # BASDAI50 and the ASAS/EULAR response, each under its own name (clinical spec §6).
        lines.append(
            r.text(
                "physician.detail.basdai_responses",
                lang,
                baseline=summary.basdai_baseline,
                date=_local(summary.basdai_baseline_at, zone),
                basdai50=summary.basdai50,
                asas_eular=summary.basdai_asas_eular,
            )
        )
    if summary.flags:
        lines.append(_flags(r, lang, summary.flags, no_crp_weeks, summary.asdas_kind))
    if detail.answers:
        lines.append("")
        lines.append(r.text("physician.detail.answers", lang))
        for answer in detail.answers:
            item = r.text(f"physician.item.{answer.item_code}", lang)
            if answer.minutes is not None:
                lines.append(
                    r.text(
                        "physician.detail.answer_duration",
                        lang,
                        item=item,
                        minutes=answer.minutes,
                        value=answer.value,
                    )
                )
            else:
                lines.append(r.text("physician.detail.answer", lang, item=item, value=answer.value))
    return "\n".join(lines)


def chart_labels(r: Renderer, detail: PatientDetail, weeks: int) -> ChartLabels:
    """The trend chart's texts in the physician's language, titled with the patient."""
    return screens.chart_labels(
        r,
        detail.language,
        weeks,
        title=lambda lang: r.text(
            "physician.detail.chart_title", lang, name=detail.summary.identifier, weeks=weeks
        ),
    )


def _preview_line(r: Renderer, lang: str, lab: LabLine, converted: str | None) -> str:
    values = {"analyte": lab.analyte.upper(), "value": lab.value, "unit": lab.unit}
    if lab.below_detection_limit:
        return r.text("physician.crp.line_below_limit", lang, **values)
    if lab.floored:
        return r.text("physician.crp.line_floored", lang, **values)
    if converted is not None and lab.unit != "mg/L" and lab.analyte == "crp":
        return r.text("physician.crp.line_converted", lang, converted=converted, **values)
    return r.text("physician.crp.line", lang, **values)


def render_preview(r: Renderer, preview: CrpPreview) -> str:
    """The confirmation question of `/crp`: what exactly will be stored."""
    lang = preview.language
    assert preview.crp is not None
    assert preview.drawn_at is not None
    head = r.text(
        "physician.crp.preview",
        lang,
        name=preview.identifier,
        date=_drawn(preview.drawn_at, preview.timezone),
    )
    lines = [head, _preview_line(r, lang, preview.crp, preview.crp_mg_l)]
    if preview.esr is not None:
        lines.append(_preview_line(r, lang, preview.esr, None))
    return "\n".join(lines)


def preview_keyboard(r: Renderer, preview: CrpPreview) -> InlineKeyboardMarkup:
    assert preview.pending_id is not None
    save = callbacks.encode(callbacks.PhysicianButton(SAVE, str(preview.pending_id)))
    cancel = callbacks.encode(callbacks.PhysicianButton(CANCEL, str(preview.pending_id)))
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    r.text("physician.crp.save", preview.language), callback_data=save
                ),
                InlineKeyboardButton(
                    r.text("physician.crp.cancel", preview.language), callback_data=cancel
                ),
            ]
        ]
    )


def render_pending(r: Renderer, reply: PendingReply, window_days: int) -> str:
    """What became of a Save or Cancel press."""
    lang = reply.language
    if reply.outcome is PendingOutcome.CANCELLED:
        return r.text("physician.crp.cancelled", lang)
    if reply.outcome is PendingOutcome.GONE:
        return r.text("physician.crp.gone", lang)
    if reply.outcome is PendingOutcome.REFUSED:
        assert reply.reason is not None
        reason = r.text(f"labs.reason.{reply.reason}", lang, **reply.params)
        return r.text("physician.crp.refused", lang, reason=_safe(reason))
    key = (
        "physician.crp.saved"
        if reply.outcome is PendingOutcome.SAVED
        else "physician.crp.already_stored"
    )
    lines = [r.text(key, lang, name=reply.identifier)]
    lines.extend(
        _preview_line(r, lang, lab, None) + f" · {_drawn(lab.drawn_at, reply.timezone)}"
        for lab in reply.stored
    )
    if reply.recomputed:
        lines.append(r.text("physician.crp.recomputed", lang, count=reply.recomputed))
        if reply.asdas_crp is not None and reply.asdas_crp_state is not None:
            lines.append(
                r.text(
                    "physician.crp.latest_asdas",
                    lang,
                    value=reply.asdas_crp,
                    state=r.asdas_state_name(reply.asdas_crp_state, lang),
                )
            )
    elif reply.outcome is PendingOutcome.SAVED:
        lines.append(r.text("physician.crp.no_questionnaire", lang, days=window_days))
    return "\n".join(lines)


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


async def patients_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Shows the physician's patients with latest BASDAI, ASDAS-CRP, trend and flags."""
    user_id, chat_id = _who(update)
    d = deps(context)
    found = await call(physician.patient_list, d.ctx, telegram_user_id=user_id, page=0)
    if found is None:
        await _not_available(update, context)
        return
    await context.bot.send_message(
        chat_id, render_list(d.renderer, found), reply_markup=list_keyboard(d.renderer, found)
    )


async def patient_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Sends one patient's trend chart, latest scores with their lab values and last answers."""
    user_id, chat_id = _who(update)
    d = deps(context)
    args = context.args or []
    reply = await call(
        physician.patient_detail, d.ctx, telegram_user_id=user_id, clinic_ref=" ".join(args[:1])
    )
    if reply is None:
        await _not_available(update, context)
        return
    r = d.renderer
    if not args:
        await context.bot.send_message(chat_id, r.text("physician.detail.usage", reply.language))
        return
    if reply.outcome is Lookup.NO_PATIENT or reply.detail is None:
        await context.bot.send_message(
            chat_id, r.text("physician.detail.no_patient", reply.language, ref=reply.clinic_ref)
        )
        return
    detail = reply.detail
    if detail.points:
        weeks = physician.CHART_WEEKS
        png = await call(
            trend_chart_png,
            [TrendPoint(at=p.at, basdai=p.basdai, asdas=p.asdas) for p in detail.points],
            labels=chart_labels(r, detail, weeks),
            lab_dates=[mark.drawn_at for mark in detail.lab_marks],
            start=detail.since,
            timezone=detail.timezone,
            therapies=[
                TherapyBar(
                    label=t.drug if t.dose is None else f"{t.drug} {t.dose}",
                    start=t.start,
                    stop=t.stop,
                )
                for t in detail.therapies
            ],
        )
        caption = r.text(
            "physician.detail.chart_caption",
            detail.language,
            name=detail.summary.identifier,
            weeks=weeks,
        )
        await context.bot.send_photo(chat_id, png, caption=caption)
    settings = d.ctx.settings
    text = render_detail(r, detail, settings.lab_window_days, settings.digest_no_crp_weeks)
    await context.bot.send_message(chat_id, text)
    if detail.therapies:
        # A patient on treatment: the course report for the clinic visit comes along (§7).
        course = await call(
            physician.patient_course, d.ctx, telegram_user_id=user_id, clinic_ref=args[0]
        )
        if course is not None and course.report is not None:
            await _send_report(context, chat_id, r, course.report)


async def crp_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Shows what a typed CRP (and ESR) would store, with Save and Cancel buttons."""
    user_id, chat_id = _who(update)
    d = deps(context)
    preview = await call(
        physician.preview_crp, d.ctx, telegram_user_id=user_id, args=list(context.args or [])
    )
    if preview is None:
        await _not_available(update, context)
        return
    r, lang = d.renderer, preview.language
    if preview.outcome is CrpOutcome.INVALID:
        assert preview.reason is not None
        text = r.text(f"labs.reason.{preview.reason}", lang, **preview.params)
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
        chat_id, render_preview(r, preview), reply_markup=preview_keyboard(r, preview)
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
        found = await call(physician.patient_list, d.ctx, telegram_user_id=user_id, page=number)
        if found is None:
            await _answer(query, d.renderer.text("common.not_available", user_language(update)))
            return
        await _answer(query)
        await _edit(
            context,
            chat_id,
            message_id,
            render_list(d.renderer, found),
            list_keyboard(d.renderer, found),
        )
        return
    reply = await call(
        physician.resolve_pending,
        d.ctx,
        telegram_user_id=user_id,
        pending_id=number,
        save=button.action == SAVE,
    )
    if reply is None:
        await _answer(query, d.renderer.text("common.not_available", user_language(update)))
        return
    text = render_pending(d.renderer, reply, d.ctx.settings.lab_window_days)
    if reply.outcome is PendingOutcome.GONE:
        # A second tap on Save or Cancel: the message already says what happened, so it stays
        # as it is and the tap is answered with a short notice.
        await _answer(query, text)
        return
    await _answer(query)
    if reply.outcome is PendingOutcome.REFUSED:
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
    if physician.is_therapy_change(args):
        await _therapy_change(context, user_id, chat_id, args, user_language(update))
        return
    reply = await call(
        physician.patient_course, d.ctx, telegram_user_id=user_id, clinic_ref=" ".join(args[:1])
    )
    if reply is None:
        await _not_available(update, context)
        return
    r, lang = d.renderer, reply.language
    if not args:
        await context.bot.send_message(chat_id, r.text("therapy.chat.usage", lang))
        return
    if reply.outcome is Lookup.NO_PATIENT or reply.report is None:
        await context.bot.send_message(
            chat_id, r.text("physician.detail.no_patient", lang, ref=reply.clinic_ref)
        )
        return
    report = reply.report
    words = CourseWords(r, lang)
    lines = words.course(report.course) or [r.text("therapy.report.no_episodes", lang)]
    heading = r.text("therapy.report.title", lang, ref=report.clinic_ref)
    await context.bot.send_message(chat_id, screens.fit("\n".join([f"<b>{heading}</b>", *lines])))
    await _send_report(context, chat_id, r, report)


def render_therapy_preview(r: Renderer, preview: TherapyPreview) -> str:
    """The confirmation question of `/therapy <ref> add|stop`: what exactly will be stored."""
    assert preview.episode is not None
    return r.text(
        f"therapy.chat.preview_{preview.action}",
        preview.language,
        identifier=preview.identifier,
        episode=CourseWords(r, preview.language).episode(preview.episode),
    )


def therapy_preview_keyboard(r: Renderer, preview: TherapyPreview) -> InlineKeyboardMarkup:
    assert preview.pending_id is not None
    argument = str(preview.pending_id)
    save = callbacks.encode(callbacks.PhysicianButton(THERAPY_SAVE, argument))
    cancel = callbacks.encode(callbacks.PhysicianButton(THERAPY_CANCEL, argument))
    lang = preview.language
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(r.text("therapy.chat.save", lang), callback_data=save),
                InlineKeyboardButton(r.text("therapy.chat.cancel", lang), callback_data=cancel),
            ]
        ]
    )


def render_therapy_pending(r: Renderer, reply: TherapyPendingReply) -> str:
    """What a Save or Cancel press on a therapy preview did."""
    lang = reply.language
    if reply.outcome is PendingOutcome.GONE:
        return r.text("therapy.chat.gone", lang)
    if reply.outcome is PendingOutcome.REFUSED:
        assert reply.reason is not None
        reason = rendered(r.text(f"therapy.reason.{reply.reason}", lang, **reply.params))
        return r.text("therapy.chat.refused", lang, reason=reason)
    assert reply.episode is not None
    episode = CourseWords(r, lang).episode(reply.episode)
    if reply.outcome is PendingOutcome.CANCELLED:
        return r.text("therapy.chat.cancelled", lang, episode=episode)
    return r.text(
        f"therapy.chat.saved_{reply.action}",
        lang,
        identifier=reply.identifier,
        therapy_id=reply.therapy_id,
        episode=episode,
    )


async def _therapy_change(
    context: ContextTypes.DEFAULT_TYPE, user_id: int, chat_id: int, args: list[str], language: str
) -> None:
    """Shows the episode `/therapy <ref> add|stop …` would store, with Save and Cancel."""
    d = deps(context)
    preview = await call(
        physician.preview_therapy_change, d.ctx, telegram_user_id=user_id, args=args
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
            render_therapy_preview(r, preview),
            reply_markup=therapy_preview_keyboard(r, preview),
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
        physician.resolve_therapy_change,
        d.ctx,
        telegram_user_id=user_id,
        pending_id=pending_id,
        save=query.data.startswith(f"p:{THERAPY_SAVE}:"),
    )
    if reply is None:
        await _answer(query, d.renderer.text("common.not_available", language))
        return
    text = render_therapy_pending(d.renderer, reply)
    if reply.outcome is PendingOutcome.GONE:
        await _answer(query, text)
        return
    await _answer(query)
    if reply.outcome is PendingOutcome.REFUSED:
        await context.bot.send_message(chat_id, text)
        return
    await _edit(context, chat_id, message_id, text, None)


async def _send_report(
    context: ContextTypes.DEFAULT_TYPE, chat_id: int, r: Renderer, report: CourseReport
) -> None:
    pdf = await call(course_report_pdf, r, report)
    await context.bot.send_document(
        chat_id,
        InputFile(pdf, filename=f"course-{report.clinic_ref}.pdf"),
        caption=r.text("therapy.chat.report_caption", report.language, ref=report.clinic_ref),
    )


def register(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Registers the physician commands and their buttons."""
    private = filters.ChatType.PRIVATE
    application.add_handler(CommandHandler("patients", patients_command, filters=private))
    application.add_handler(CommandHandler("patient", patient_command, filters=private))
    application.add_handler(CommandHandler("crp", crp_command, filters=private))
    application.add_handler(CommandHandler("therapy", therapy_command, filters=private))
    application.add_handler(
        CallbackQueryHandler(
            physician_button,
            pattern=rf"^p:(?:{PAGE}|{SAVE}|{CANCEL}|{THERAPY_SAVE}|{THERAPY_CANCEL}):",
        )
    )
