"""Research exports asked for in the web app: their queue, progress and outcome."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from storage.models import ExportJob, ExportJobStatus


def create_job(
    *, session: Session, account_id: int, format: str, filters: dict[str, Any], now: datetime
) -> ExportJob:
    """Queues an export."""
    job = ExportJob(
        account_id=account_id,
        format=format,
        filters=json.dumps(filters, sort_keys=True),
        created_at=now,
        updated_at=now,
    )
    session.add(job)
    session.flush()
    return job


def get_job(*, session: Session, job_id: int) -> ExportJob | None:
    return session.get(ExportJob, job_id)


def claim_job(*, session: Session, job_id: int, now: datetime) -> bool:
    """Moves a queued job to running; only one process wins (conditional UPDATE)."""
    result = session.execute(
        update(ExportJob)
        .where(col(ExportJob.id) == job_id, col(ExportJob.status) == ExportJobStatus.QUEUED.value)
        .values(status=ExportJobStatus.RUNNING.value, updated_at=now)
    )
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


def record_progress(
    *, session: Session, job_id: int, now: datetime, total: int | None = None, advance: int = 0
) -> None:
    """Sets the number of questionnaires to export, or adds to the number done."""
    values: dict[str, Any] = {"updated_at": now, "done": col(ExportJob.done) + advance}
    if total is not None:
        values["total"] = total
    session.execute(update(ExportJob).where(col(ExportJob.id) == job_id).values(**values))


def finish_job(
    *,
    session: Session,
    job_id: int,
    now: datetime,
    rows: int | None = None,
    sha256: str | None = None,
    audit_id: int | None = None,
    file_name: str | None = None,
    error: str | None = None,
) -> None:
    """Records a job's outcome: its file and audit entry, or why it failed."""
    session.execute(
        update(ExportJob)
        .where(col(ExportJob.id) == job_id)
        .values(
            status=(ExportJobStatus.FAILED if error else ExportJobStatus.DONE).value,
            rows=rows,
            sha256=sha256,
            audit_id=audit_id,
            file_name=file_name,
            error=error,
            updated_at=now,
            finished_at=now,
        )
    )


def list_jobs(*, session: Session, account_id: int | None, limit: int) -> list[ExportJob]:
    """The newest jobs first, of one account or (None) of everybody."""
    query = select(ExportJob).order_by(col(ExportJob.id).desc()).limit(limit)
    if account_id is not None:
        query = query.where(ExportJob.account_id == account_id)
    return list(session.exec(query))
