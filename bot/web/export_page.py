"""The export page: choose format, period and date shifting; the export runs in the background
with its progress shown, is downloaded when ready, and the export audit trail is listed."""

from __future__ import annotations

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Route

from bot.services import export_jobs
from bot.services.accounts import Area, Principal
from bot.services.export_jobs import ExportJobError
from bot.web.guard import page_for, refused
from bot.web.pages import deps_of, render


async def _page(
    request: Request, principal: Principal, *, status_code: int = 200, error: str | None = None
) -> Response:
    ctx = deps_of(request).ctx
    jobs = await run_in_threadpool(lambda: export_jobs.list_jobs(ctx, principal=principal))
    trail = await run_in_threadpool(export_jobs.audit_trail, ctx)
    return render(
        request,
        "exports.html.j2",
        principal=principal,
        status_code=status_code,
        jobs=jobs,
        trail=trail,
        error=error,
        refresh=any(job.running for job in jobs),
    )


@page_for(Area.EXPORTS)
async def exports_page(request: Request, principal: Principal) -> Response:
    """The export form, the reader's exports with their progress, and the audit trail."""
    return await _page(request, principal)


@page_for(Area.EXPORTS)
async def start_export(request: Request, principal: Principal) -> Response:
    """Queues the export and runs it after answering, so the page shows its progress."""
    form = await request.form()
    ctx = deps_of(request).ctx
    try:
        job_id = await run_in_threadpool(
            lambda: export_jobs.request_export(
                ctx,
                principal=principal,
                format=str(form.get("format", "")),
                since=str(form.get("since", ""))[:10],
                until=str(form.get("until", ""))[:10],
                shift_dates=form.get("shift_dates") == "yes",
            )
        )
    except ExportJobError as error:
        return await _page(request, principal, status_code=400, error=error.code)
    return RedirectResponse(
        "/exports", status_code=303, background=BackgroundTask(export_jobs.run_job, ctx, job_id)
    )


@page_for(Area.EXPORTS)
async def download(request: Request, principal: Principal) -> Response:
    """The finished file, only to the person who asked for it (or an admin)."""
    found = await run_in_threadpool(
        lambda: export_jobs.download(
            deps_of(request).ctx, principal=principal, job_id=int(request.path_params["job_id"])
        )
    )
    if found is None:
        return refused(request, principal, 404)
    path, name = found
    return FileResponse(path, filename=name, media_type="application/octet-stream")


ROUTES = [
    Route("/exports", exports_page, methods=["GET"]),
    Route("/exports", start_export, methods=["POST"]),
    Route("/exports/{job_id:int}/download", download, methods=["GET"]),
]
