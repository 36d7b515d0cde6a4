"""Enrollment: add a patient or renew a code, and the printable sheet (A4 or Letter) with the
one-time code, the t.me link and its QR code, in the patient's language."""

from __future__ import annotations

import segno
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.services import enrollment_sheet
from bot.services.accounts import Area, Principal
from bot.services.enrollment_sheet import EnrollmentError, Sheet
from bot.web.guard import page_for
from bot.web.pages import deps_of, render

PAPER_SIZES = ("a4", "letter")


async def _form(
    request: Request, principal: Principal, *, status_code: int = 200, error: str | None = None
) -> Response:
    choices = await run_in_threadpool(
        lambda: enrollment_sheet.physicians_for(deps_of(request).ctx, principal=principal)
    )
    return render(
        request,
        "enroll.html.j2",
        principal=principal,
        status_code=status_code,
        physicians=choices,
        error=error,
        clinic_timezone=deps_of(request).ctx.settings.clinic_timezone,
    )


@page_for(Area.ENROLL)
async def enroll_page(request: Request, principal: Principal) -> Response:
    """The forms to add a patient and to renew a patient's code."""
    return await _form(request, principal)


def _paper(value: object) -> str:
    return str(value) if value in PAPER_SIZES else "a4"


def _sheet_page(request: Request, principal: Principal, sheet: Sheet, paper: str) -> Response:
    qr = segno.make(sheet.link, error="m").svg_data_uri(scale=6, border=2)
    return render(request, "sheet.html.j2", principal=principal, sheet=sheet, qr=qr, paper=paper)


@page_for(Area.ENROLL)
async def add_patient(request: Request, principal: Principal) -> Response:
    """Adds the patient and shows their sheet, ready to print (the code is shown only now)."""
    form = await request.form()
    raw_physician = str(form.get("physician_id", ""))
    try:
        if not raw_physician.isdigit():
            raise EnrollmentError("no_physician")
        sheet = await run_in_threadpool(
            lambda: enrollment_sheet.add_patient(
                deps_of(request).ctx,
                principal=principal,
                physician_id=int(raw_physician),
                clinic_ref=str(form.get("ref", ""))[:100],
                display_name=str(form.get("name", ""))[:200] or None,
                language=str(form.get("language", "")) or None,
                timezone=str(form.get("timezone", ""))[:64] or None,
            )
        )
    except EnrollmentError as error:
        return await _form(request, principal, status_code=400, error=error.code)
    return _sheet_page(request, principal, sheet, _paper(form.get("paper")))


@page_for(Area.ENROLL)
async def renew(request: Request, principal: Principal) -> Response:
    """Issues a new code (the old one stops working) and shows the new sheet."""
    form = await request.form()
    try:
        sheet = await run_in_threadpool(
            lambda: enrollment_sheet.renew_code(
                deps_of(request).ctx, principal=principal, clinic_ref=str(form.get("ref", ""))
            )
        )
    except EnrollmentError as error:
        return await _form(request, principal, status_code=404, error=error.code)
    return _sheet_page(request, principal, sheet, _paper(form.get("paper")))


ROUTES = [
    Route("/enroll", enroll_page, methods=["GET"]),
    Route("/enroll", add_patient, methods=["POST"]),
    Route("/enroll/renew", renew, methods=["POST"]),
]
