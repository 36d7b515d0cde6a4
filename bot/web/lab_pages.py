"""Lab entry: the form with its preview and confirm step, the lab file with its dry-run report
and confirm step, and fixing or deleting a stored value with a reason."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bot.services import lab_entry
from bot.services.accounts import Area, Principal
from bot.services.lab_entry import EntryLine, LabInputError
from bot.web.guard import page_for, refused
from bot.web.pages import deps_of, render

FORM_LINES = 5
MAX_FILE_BYTES = 2_000_000
"""A lab system's export of a morning's values is a few kilobytes; more is not a lab file."""


def _lines(form: FormData) -> list[EntryLine]:
    fields = {
        name: [str(v) for v in form.getlist(name)]
        for name in ("ref", "crp", "unit", "esr", "drawn")
    }
    count = min(len(fields["ref"]), lab_entry.MAX_LINES)

    def at(name: str, index: int, default: str = "") -> str:
        values = fields[name]
        return values[index][:64] if index < len(values) else default

    return [
        EntryLine(
            clinic_ref=at("ref", i),
            crp=at("crp", i),
            crp_unit=at("unit", i, "mg/L") or "mg/L",
            esr=at("esr", i),
            drawn=at("drawn", i),
        )
        for i in range(count)
    ]


@page_for(Area.LABS)
async def labs_page(request: Request, principal: Principal) -> Response:
    """The entry form for several patients, the lab file upload, and the lookup for fixes."""
    blank = [EntryLine("") for _ in range(FORM_LINES)]
    return render(request, "labs.html.j2", principal=principal, lines=blank, result=None)


async def _entry(request: Request, principal: Principal, *, confirm: bool) -> Response:
    form = await request.form()
    lines = _lines(form)
    result = await run_in_threadpool(
        lambda: lab_entry.enter(
            deps_of(request).ctx, principal=principal, lines=lines, confirm=confirm
        )
    )
    status = 400 if result.refused else 200
    return render(
        request,
        "lab_preview.html.j2",
        principal=principal,
        status_code=status,
        result=result,
        lines=lines,
    )


@page_for(Area.LABS)
async def preview(request: Request, principal: Principal) -> Response:
    """Shows exactly what will be stored and the ASDAS it completes; nothing is stored yet."""
    return await _entry(request, principal, confirm=False)


@page_for(Area.LABS)
async def save(request: Request, principal: Principal) -> Response:
    """Stores the previewed lines (all or, if one is now refused, none)."""
    return await _entry(request, principal, confirm=True)


async def _upload(
    request: Request, principal: Principal, data: bytes, *, confirm: bool
) -> Response:
    ctx = deps_of(request).ctx
    try:
        report = await run_in_threadpool(
            lambda: lab_entry.import_file(ctx, principal=principal, data=data, confirm=confirm)
        )
    except LabInputError as error:
        return render(
            request,
            "lab_report.html.j2",
            principal=principal,
            status_code=400,
            report=None,
            error=error,
            data="",
        )
    return render(
        request,
        "lab_report.html.j2",
        principal=principal,
        report=report,
        error=None,
        data=base64.b64encode(data).decode() if not confirm else "",
    )


@page_for(Area.LABS)
async def upload(request: Request, principal: Principal) -> Response:
    """The dry-run report of an uploaded lab file: every bad line and why."""
    form = await request.form()
    upload_file = form.get("file")
    if not isinstance(upload_file, UploadFile):
        return await _upload(request, principal, b"", confirm=False)
    try:
        data = await upload_file.read(MAX_FILE_BYTES + 1)
    finally:
        await upload_file.close()
    if len(data) > MAX_FILE_BYTES:
        return refused(request, principal, 400)
    return await _upload(request, principal, data, confirm=False)


@page_for(Area.LABS)
async def upload_confirm(request: Request, principal: Principal) -> Response:
    """Imports the file whose report was confirmed: its good lines are stored."""
    form = await request.form()
    try:
        data = base64.b64decode(str(form.get("data", "")), validate=True)
    except (binascii.Error, ValueError):
        return refused(request, principal, 400)
    if len(data) > MAX_FILE_BYTES:
        return refused(request, principal, 400)
    return await _upload(request, principal, data, confirm=True)


async def _patient_labs(
    request: Request,
    principal: Principal,
    ref: str,
    *,
    status_code: int = 200,
    error: LabInputError | None = None,
    done: str | None = None,
) -> Response:
    found = await run_in_threadpool(
        lambda: lab_entry.patient_labs(deps_of(request).ctx, principal=principal, clinic_ref=ref)
    )
    if found is None:
        return refused(request, principal, 404)
    return render(
        request,
        "lab_values.html.j2",
        principal=principal,
        status_code=status_code,
        found=found,
        error=error,
        done=done if done in ("fixed", "deleted") else None,
    )


@page_for(Area.LABS)
async def patient_values(request: Request, principal: Principal) -> Response:
    """One patient's lab values, each with fix and delete."""
    ref = request.query_params.get("ref", "").strip()[:64]
    if not ref:
        return RedirectResponse("/labs", status_code=303)
    return await _patient_labs(
        request, principal, ref, error=None, done=request.query_params.get("done")
    )


async def _change(request: Request, principal: Principal, *, delete: bool) -> Response:
    form = await request.form()
    lab_id = int(request.path_params["lab_id"])
    ref = str(form.get("ref", ""))[:64]
    ctx = deps_of(request).ctx
    try:
        if delete:
            await run_in_threadpool(
                lambda: lab_entry.delete(
                    ctx, principal=principal, lab_id=lab_id, reason=str(form.get("reason", ""))
                )
            )
        else:
            await run_in_threadpool(
                lambda: lab_entry.fix(
                    ctx,
                    principal=principal,
                    lab_id=lab_id,
                    value=str(form.get("value", ""))[:32],
                    unit=str(form.get("unit", ""))[:16],
                    drawn=str(form.get("drawn", ""))[:32],
                    reason=str(form.get("reason", "")),
                )
            )
    except LabInputError as error:
        if error.code == "lab_unknown":
            return refused(request, principal, 404)
        return await _patient_labs(request, principal, ref, status_code=400, error=error, done=None)
    done = "deleted" if delete else "fixed"
    return RedirectResponse(f"/labs/patient?ref={quote(ref)}&done={done}", status_code=303)


@page_for(Area.LABS)
async def fix(request: Request, principal: Principal) -> Response:
    """Corrects a stored value; the reason is required and audited."""
    return await _change(request, principal, delete=False)


@page_for(Area.LABS)
async def delete(request: Request, principal: Principal) -> Response:
    """Deletes a stored value; the reason is required and audited."""
    return await _change(request, principal, delete=True)


ROUTES = [
    Route("/labs", labs_page, methods=["GET"]),
    Route("/labs/preview", preview, methods=["POST"]),
    Route("/labs/save", save, methods=["POST"]),
    Route("/labs/upload", upload, methods=["POST"]),
    Route("/labs/upload/confirm", upload_confirm, methods=["POST"]),
    Route("/labs/patient", patient_values, methods=["GET"]),
    Route("/labs/{lab_id:int}/fix", fix, methods=["POST"]),
    Route("/labs/{lab_id:int}/delete", delete, methods=["POST"]),
]
