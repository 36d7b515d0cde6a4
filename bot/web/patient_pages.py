"""The patient list and one patient's page (physicians: their own; admins: everybody's)."""

from __future__ import annotations

import base64
from datetime import timedelta

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.present.render import Renderer
from bot.services import patient_record
from bot.services.accounts import Area, Principal
from bot.web.guard import page_for, refused
from bot.web.pages import deps_of, language_of, render


@page_for(Area.PATIENTS)
async def patient_list(request: Request, principal: Principal) -> Response:
    """The reader's patients, most in need of attention first; search by reference."""
    raw_physician = request.query_params.get("physician", "")
    overview = await run_in_threadpool(
        patient_record.overview,
        deps_of(request).ctx,
        principal=principal,
        search=request.query_params.get("q", ""),
        physician_id=int(raw_physician) if raw_physician.isdigit() else None,
    )
    return render(request, "patients.html.j2", principal=principal, overview=overview)


def _course_chart(renderer: Renderer, language: str, record: patient_record.Record) -> str | None:
    """The course chart as a PNG data URI (an image, so the CSP needs no script), or None."""
    if not record.course:
        return None
    from bot.present import history
    from bot.present.charts import trend_chart_png
    from bot.services.physician_panel import ChartPoint

    use_crp = any(point.asdas_crp is not None for point in record.course)
    points = [
        ChartPoint(
            at=point.at,
            basdai=point.basdai,
            asdas=point.asdas_crp if use_crp else point.asdas_esr,
        )
        for point in record.course
    ]
    weeks = patient_record.CHART_WEEKS
    labels = history.chart_labels(
        renderer,
        language,
        weeks,
        title=lambda lang: renderer.text(
            "web.patient.chart_title",
            lang,
            ref=record.clinic_ref,
            weeks=weeks,
            variant="ASDAS-CRP" if use_crp else "ASDAS-ESR",
        ),
    )
    png = trend_chart_png(
        points,
        labels=labels,
        lab_dates=[lab.drawn_at for lab in record.labs],
        # From a fortnight before the first point: a new patient's course is not a dot at
        # the right edge of an empty year.
        start=max(record.course_since, record.course[0].at - timedelta(days=14)),
        timezone=record.timezone,  # the patient's own, like the bot's `/patient`
    )
    return "data:image/png;base64," + base64.b64encode(png).decode()


@page_for(Area.PATIENTS)
async def patient_page(request: Request, principal: Principal) -> Response:
    """One patient's course, questionnaires, labs, schedule and delivery state; audited.
    Another physician's patient gets exactly the page of an unknown reference."""
    deps = deps_of(request)
    record = await run_in_threadpool(
        patient_record.record,
        deps.ctx,
        principal=principal,
        clinic_ref=request.path_params["ref"],
    )
    if record is None:
        return refused(request, principal, 404)
    chart = await run_in_threadpool(
        _course_chart, deps.renderer, language_of(request, principal), record
    )
    return render(
        request,
        "patient.html.j2",
        principal=principal,
        record=record,
        chart=chart,
        no_crp_weeks=deps.ctx.settings.digest_no_crp_weeks,
    )


ROUTES = [
    Route("/patients", patient_list, methods=["GET"]),
    Route("/patients/{ref}", patient_page, methods=["GET"]),
]
