"""What a physician reads in the chat: the patient list, one patient, CRP and therapy previews.

Built from `templates/` only (the `physician.*` and `therapy.chat.*` messages); the Telegram
handlers (`bot.telegram.handlers.physician`) send it. Buttons carry `p:<action>:<argument>`
(`bot.callbacks.PhysicianButton`).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from markupsafe import Markup

from bot import callbacks
from bot.domain.scoring import AsdasState
from bot.present import history, screens
from bot.present.charts import ChartLabels, TherapyBar, trend_chart_png
from bot.present.course import CourseWords, rendered
from bot.present.render import Renderer
from bot.present.screens import Button, answer_value, lab_refusal, measured, rounded
from bot.services.crp_entry import CrpPreview, PendingReply
from bot.services.physician_panel import (
    LabLine,
    PatientDetail,
    PatientList,
    PatientSummary,
    PendingOutcome,
)
from bot.services.therapy import CourseReport
from bot.services.therapy_entry import TherapyPendingReply, TherapyPreview

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
        value=rounded(row.asdas_crp),
        state=r.asdas_state_name(row.asdas_state, lang),
        floored=row.crp_floored,
        date=None if row.asdas_drawn_at is None else _local(row.asdas_drawn_at, timezone),
    )


def _row(r: Renderer, lang: str, row: PatientSummary, no_crp_weeks: int, timezone: str) -> str:
    basdai = (
        r.text("physician.score.basdai", lang, value=rounded(row.basdai), active=row.basdai_active)
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


def list_buttons(r: Renderer, found: PatientList) -> tuple[tuple[Button, ...], ...]:
    """‹ Previous / Next › buttons when the list has more than one page."""
    if found.pages <= 1:
        return ()
    buttons = []
    if found.page > 0:
        data = callbacks.encode(callbacks.PhysicianButton(PAGE, str(found.page - 1)))
        buttons.append(Button(r.text("physician.patients.previous", found.language), data))
    if found.page + 1 < found.pages:
        data = callbacks.encode(callbacks.PhysicianButton(PAGE, str(found.page + 1)))
        buttons.append(Button(r.text("physician.patients.next", found.language), data))
    return (tuple(buttons),)


def _lab_text(r: Renderer, lang: str, lab: LabLine, timezone: str) -> str:
    values = {
        "value": measured(lab.value),
        "unit": lab.unit,
        "date": _drawn(lab.drawn_at, timezone),
    }
    if lab.analyte == "esr":
        key = "physician.detail.esr"
    elif lab.below_detection_limit:
        key = "physician.detail.crp_below_limit"
    elif lab.floored:
        key = "physician.detail.crp_floored"
    else:
        key = "physician.detail.crp"
    return INDENT + r.text(key, lang, **values)


def _asdas_lines(
    r: Renderer,
    lang: str,
    variant: str,
    value: Decimal | None,
    state: AsdasState | None,
    lab: LabLine | None,
    timezone: str,
) -> list[str]:
    """An ASDAS ("crp" or "esr") with its state and the lab value it used; none without it."""
    if value is None or state is None:
        return []
    lines = [
        r.text(
            f"physician.detail.asdas_{variant}",
            lang,
            value=rounded(value),
            state=r.asdas_state_name(state, lang),
        )
    ]
    if lab is not None:
        lines.append(_lab_text(r, lang, lab, timezone))
    return lines


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
                "physician.detail.basdai",
                lang,
                value=rounded(detail.basdai),
                active=summary.basdai_active,
            )
        )
    crp_lines = _asdas_lines(
        r, lang, "crp", detail.asdas_crp, detail.asdas_crp_state, detail.crp, zone
    )
    lines.extend(crp_lines)
    if not crp_lines and detail.asdas_esr is None:
        lines.append(r.text("physician.detail.awaiting_crp", lang, days=window_days))
    lines.extend(
        _asdas_lines(r, lang, "esr", detail.asdas_esr, detail.asdas_esr_state, detail.esr, zone)
    )
    if summary.basdai50 is not None and summary.basdai_baseline_at is not None:
        # BASDAI50 and the ASAS/EULAR response, each under its own name (clinical spec §6).
        lines.append(
            r.text(
                "physician.detail.basdai_responses",
                lang,
                baseline=rounded(summary.basdai_baseline),
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
                        value=answer_value(answer.value, answer.minutes),
                    )
                )
            else:
                value = answer_value(answer.value, answer.minutes)
                lines.append(r.text("physician.detail.answer", lang, item=item, value=value))
    return "\n".join(lines)


def chart_labels(r: Renderer, detail: PatientDetail, weeks: int) -> ChartLabels:
    """The trend chart's texts in the physician's language, titled with the patient."""
    return history.chart_labels(
        r,
        detail.language,
        weeks,
        title=lambda lang: r.text(
            "physician.detail.chart_title", lang, name=detail.summary.identifier, weeks=weeks
        ),
    )


def _preview_line(r: Renderer, lang: str, lab: LabLine, converted: Decimal | None) -> str:
    values = {"analyte": lab.analyte.upper(), "value": measured(lab.value), "unit": lab.unit}
    if lab.below_detection_limit:
        return r.text("physician.crp.line_below_limit", lang, **values)
    if lab.floored:
        return r.text("physician.crp.line_floored", lang, **values)
    if converted is not None and lab.unit != "mg/L" and lab.analyte == "crp":
        return r.text("physician.crp.line_converted", lang, converted=measured(converted), **values)
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


def preview_buttons(r: Renderer, preview: CrpPreview) -> tuple[tuple[Button, ...], ...]:
    """Save and Cancel under a CRP preview."""
    assert preview.pending_id is not None
    save = callbacks.encode(callbacks.PhysicianButton(SAVE, str(preview.pending_id)))
    cancel = callbacks.encode(callbacks.PhysicianButton(CANCEL, str(preview.pending_id)))
    lang = preview.language
    return (
        (
            Button(r.text("physician.crp.save", lang), save),
            Button(r.text("physician.crp.cancel", lang), cancel),
        ),
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
        reason = lab_refusal(r, lang, reply.reason, reply.params)
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
                    value=rounded(reply.asdas_crp),
                    state=r.asdas_state_name(reply.asdas_crp_state, lang),
                )
            )
    elif reply.outcome is PendingOutcome.SAVED:
        lines.append(r.text("physician.crp.no_questionnaire", lang, days=window_days))
    return "\n".join(lines)


def render_therapy_preview(r: Renderer, preview: TherapyPreview) -> str:
    """The confirmation question of `/therapy <ref> add|stop`: what exactly will be stored."""
    assert preview.episode is not None
    return r.text(
        f"therapy.chat.preview_{preview.action}",
        preview.language,
        identifier=preview.identifier,
        episode=CourseWords(r, preview.language).episode(preview.episode),
    )


def therapy_preview_buttons(r: Renderer, preview: TherapyPreview) -> tuple[tuple[Button, ...], ...]:
    """Save and Cancel under a therapy preview."""
    assert preview.pending_id is not None
    argument = str(preview.pending_id)
    save = callbacks.encode(callbacks.PhysicianButton(THERAPY_SAVE, argument))
    cancel = callbacks.encode(callbacks.PhysicianButton(THERAPY_CANCEL, argument))
    lang = preview.language
    return (
        (
            Button(r.text("therapy.chat.save", lang), save),
            Button(r.text("therapy.chat.cancel", lang), cancel),
        ),
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


def detail_chart_png(r: Renderer, detail: PatientDetail, weeks: int) -> bytes:
    """The patient's trend chart with lab marks and therapy bars (slow: run in a thread)."""
    return trend_chart_png(
        detail.points,
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


def course_text(r: Renderer, report: CourseReport, lang: str) -> str:
    """The treatment course in one message: heading, then each episode with its response."""
    words = CourseWords(r, lang)
    lines = words.course(report.course) or [r.text("therapy.report.no_episodes", lang)]
    heading = r.text("therapy.report.title", lang, ref=report.clinic_ref)
    return screens.fit("\n".join([f"<b>{heading}</b>", *lines]))
