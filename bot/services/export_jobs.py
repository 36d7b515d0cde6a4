"""Research exports from the web app: queued, run in the background with their progress in the
database, downloaded by the person who asked (or an admin), and recorded in the export audit
trail like every export (`bot.export.service.run_export` does the work).

Files wait in `WEB_EXPORT_DIR` under a name only the job knows; FHIR's directory of NDJSON
files is handed out as one zip archive.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Final

from bot.context import AppContext
from bot.export import service as export_service
from bot.services.accounts import Principal, StaffRole
from storage import export_jobs, staff_accounts
from storage.models import ExportJob, ExportJobStatus

logger = logging.getLogger(__name__)

LIST_SIZE: Final = 20
STALE_AFTER: Final = timedelta(minutes=15)
"""A running job with no progress for this long was cut off (its process stopped)."""
_SUFFIX: Final = {"wide": ".csv", "long": ".csv", "parquet": ".parquet", "fhir": ".zip"}


class ExportJobError(ValueError):
    """A request the export page answers with the reason named by `code`."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class JobView:
    job_id: int
    requested_by: str
    format: str
    since: str | None
    until: str | None
    shift_dates: bool
    status: str
    total: int
    done: int
    rows: int | None
    sha256: str | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None

    @property
    def percent(self) -> int:
        """How far the export got (100 when done)."""
        if self.status == ExportJobStatus.DONE.value:
            return 100
        return 0 if self.total == 0 else min(99, self.done * 100 // self.total)

    @property
    def running(self) -> bool:
        return self.status in (ExportJobStatus.QUEUED.value, ExportJobStatus.RUNNING.value)


def _day(text: str, field: str) -> date | None:
    if not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ExportJobError(f"bad_{field}") from None


def request_export(
    ctx: AppContext,
    *,
    principal: Principal,
    format: str,
    since: str = "",
    until: str = "",
    shift_dates: bool = False,
) -> int:
    """Queues an export after the same checks as the command line; returns the job's id."""
    if format not in export_service.FORMATS:
        raise ExportJobError("bad_format")
    first, last = _day(since, "since"), _day(until, "until")
    if first is not None and last is not None and first > last:
        raise ExportJobError("since_after_until")
    if ctx.settings.pseudonym_key is None:
        raise ExportJobError("no_pseudonym_key")
    filters = {
        "since": None if first is None else first.isoformat(),
        "until": None if last is None else last.isoformat(),
        "shift_dates": shift_dates,
    }
    with ctx.session() as session:
        job = export_jobs.create_job(
            session=session,
            account_id=principal.account_id,
            format=format,
            filters=filters,
            now=ctx.clock.now(),
        )
        assert job.id is not None
        return job.id


class _JobProgress:
    """`bot.export.service.Progress` written to the job's row, so any process can show it."""

    def __init__(self, ctx: AppContext, job_id: int) -> None:
        self.ctx = ctx
        self.job_id = job_id

    def start(self, total: int) -> None:
        with self.ctx.session() as session:
            export_jobs.record_progress(
                session=session, job_id=self.job_id, now=self.ctx.clock.now(), total=total
            )

    def advance(self, count: int) -> None:
        with self.ctx.session() as session:
            export_jobs.record_progress(
                session=session, job_id=self.job_id, now=self.ctx.clock.now(), advance=count
            )


def _export_dir(ctx: AppContext) -> Path:
    directory = Path(ctx.settings.web_export_dir)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    return directory


def run_job(ctx: AppContext, job_id: int) -> None:
    """Runs a queued job to its end (done or failed); a job another process took is left
    alone. Meant for a background thread."""
    with ctx.session() as session:
        if not export_jobs.claim_job(session=session, job_id=job_id, now=ctx.clock.now()):
            return
        job = export_jobs.get_job(session=session, job_id=job_id)
        assert job is not None
        account = staff_accounts.get_account(session=session, account_id=job.account_id)
        by = "unknown" if account is None else f"{account.email} (web)"
        job_format, filters = job.format, json.loads(job.filters)
    directory = _export_dir(ctx)
    stem = f"export-{job_id}-{job_format}"
    target = directory / (stem if job_format == "fhir" else stem + _SUFFIX[job_format])
    request = export_service.ExportRequest(
        format=job_format,
        by=by,
        out=target,
        since=None if filters["since"] is None else date.fromisoformat(filters["since"]),
        until=None if filters["until"] is None else date.fromisoformat(filters["until"]),
        shift_dates=bool(filters["shift_dates"]),
    )
    try:
        result = export_service.run_export(ctx, request, progress=_JobProgress(ctx, job_id))
        file_name = target.name
        if job_format == "fhir":
            archive = shutil.make_archive(str(target), "zip", root_dir=target)
            shutil.rmtree(target)
            file_name = Path(archive).name
    except export_service.ExportError as error:
        with ctx.session() as session:
            export_jobs.finish_job(
                session=session, job_id=job_id, now=ctx.clock.now(), error=str(error)[:500]
            )
        return
    except Exception:
        logger.exception("web export failed", extra={"fields": {"job_id": job_id}})
        with ctx.session() as session:
            export_jobs.finish_job(
                session=session, job_id=job_id, now=ctx.clock.now(), error="internal error"
            )
        return
    with ctx.session() as session:
        export_jobs.finish_job(
            session=session,
            job_id=job_id,
            now=ctx.clock.now(),
            rows=result.rows,
            sha256=result.sha256,
            audit_id=result.audit_id,
            file_name=file_name,
        )


def _view(ctx: AppContext, job: ExportJob, email: str) -> JobView:
    assert job.id is not None
    filters = json.loads(job.filters)
    status = job.status
    if status == ExportJobStatus.RUNNING.value and ctx.clock.now() - job.updated_at > STALE_AFTER:
        status = ExportJobStatus.FAILED.value  # its process stopped; ask again
    return JobView(
        job_id=job.id,
        requested_by=email,
        format=job.format,
        since=filters.get("since"),
        until=filters.get("until"),
        shift_dates=bool(filters.get("shift_dates")),
        status=status,
        total=job.total,
        done=job.done,
        rows=job.rows,
        sha256=job.sha256,
        error=job.error,
        created_at=job.created_at,
        finished_at=job.finished_at,
    )


def _sees_all(principal: Principal) -> bool:
    return principal.role is StaffRole.ADMIN


def list_jobs(ctx: AppContext, *, principal: Principal) -> tuple[JobView, ...]:
    """The reader's own jobs (an admin's: everybody's), newest first."""
    with ctx.session() as session:
        jobs = export_jobs.list_jobs(
            session=session,
            account_id=None if _sees_all(principal) else principal.account_id,
            limit=LIST_SIZE,
        )
        emails: dict[int, str] = {}
        for job in jobs:
            if job.account_id not in emails:
                account = staff_accounts.get_account(session=session, account_id=job.account_id)
                emails[job.account_id] = "" if account is None else account.email
        return tuple(_view(ctx, job, emails[job.account_id]) for job in jobs)


def download(ctx: AppContext, *, principal: Principal, job_id: int) -> tuple[Path, str] | None:
    """The finished export file and the name to save it under; None when the job is not the
    reader's (nor the reader an admin), unknown, or not finished."""
    with ctx.session() as session:
        job = export_jobs.get_job(session=session, job_id=job_id)
    if job is None or job.status != ExportJobStatus.DONE.value or job.file_name is None:
        return None
    if job.account_id != principal.account_id and not _sees_all(principal):
        return None
    path = Path(ctx.settings.web_export_dir) / job.file_name
    if not path.is_file():
        return None
    return path, f"spondybot-{job.file_name}"


def audit_trail(ctx: AppContext) -> list[export_service.ExportAuditEntry]:
    """Every export that left the clinic (command line and web), newest first."""
    return export_service.list_export_audit(ctx, limit=50)
