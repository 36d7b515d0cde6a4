"""Stored scores of administrations, with the lab values they were computed from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import bindparam
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from storage.column_types import UTCDateTime
from storage.db import run_prepared, sync_cached
from storage.models import (
    Administration,
    AdministrationStatus,
    LabResult,
    ScoreRecord,
    table_of,
)

_SCORE_OF = select(ScoreRecord).where(
    col(ScoreRecord.administration_id) == bindparam("administration_id")
)


_SCORE = table_of(ScoreRecord)
_ADMINISTRATION = table_of(Administration)
_SCORE_VALUES = (
    "basdai",
    "asdas_crp",
    "asdas_crp_lab_id",
    "crp_floored",
    "asdas_esr",
    "asdas_esr_lab_id",
    "computed_at",
)


def _upsert(insert: Any) -> Any:
    """An INSERT of one administration's scores that replaces what was there, per dialect."""
    statement = insert(_SCORE)
    return statement.on_conflict_do_update(
        index_elements=[_SCORE.c.administration_id],
        set_={name: statement.excluded[name] for name in _SCORE_VALUES},
    ).returning(_SCORE.c.id)


_UPSERT = {"postgresql": _upsert(postgresql.insert), "sqlite": _upsert(sqlite.insert)}


def upsert_score(
    *,
    session: Session,
    administration_id: int,
    basdai: Decimal | None,
    asdas_crp: Decimal | None,
    asdas_crp_lab_id: int | None,
    crp_floored: bool,
    asdas_esr: Decimal | None,
    asdas_esr_lab_id: int | None,
    now: datetime,
) -> ScoreRecord:
    """Writes the scores of one administration, replacing what was there, in one statement.

    The returned record is what was written, not an object to change and save."""
    values: dict[str, Any] = {
        "basdai": basdai,
        "asdas_crp": asdas_crp,
        "asdas_crp_lab_id": asdas_crp_lab_id,
        "crp_floored": crp_floored,
        "asdas_esr": asdas_esr,
        "asdas_esr_lab_id": asdas_esr_lab_id,
        "computed_at": now,
    }
    statement = _UPSERT[session.get_bind().dialect.name]
    params = {"administration_id": administration_id, **values}
    score_id = int(run_prepared(session, statement, params).scalar_one())
    sync_cached(session, ScoreRecord, score_id, **values)
    return ScoreRecord.model_construct(id=score_id, administration_id=administration_id, **values)


@dataclass(frozen=True, slots=True)
class EarlierScores:
    """When an earlier questionnaire was completed and the scores stored for it (None where
    none were)."""

    completed_at: datetime
    basdai: Decimal | None
    asdas_crp: Decimal | None
    asdas_esr: Decimal | None


_LAST_COMPLETED_WITH_SCORES = (
    sa_select(
        _ADMINISTRATION.c.completed_at,
        _SCORE.c.basdai,
        _SCORE.c.asdas_crp,
        _SCORE.c.asdas_esr,
    )
    .select_from(_ADMINISTRATION)
    .outerjoin(_SCORE, _SCORE.c.administration_id == _ADMINISTRATION.c.id)
    .where(
        _ADMINISTRATION.c.patient_id == bindparam("patient_id"),
        _ADMINISTRATION.c.status == AdministrationStatus.COMPLETED.value,
        _ADMINISTRATION.c.completed_at <= bindparam("before", type_=UTCDateTime()),
        _ADMINISTRATION.c.id != bindparam("exclude_id"),
    )
    .order_by(_ADMINISTRATION.c.completed_at.desc(), _ADMINISTRATION.c.id.desc())
    .limit(1)
)


def last_completed_scores(
    *, session: Session, patient_id: int, before: datetime, exclude_id: int
) -> EarlierScores | None:
    """The patient's most recently completed administration that finished before a moment,
    other than `exclude_id`, with its stored scores, in one query; None if there is none."""
    params = {"patient_id": patient_id, "before": before, "exclude_id": exclude_id}
    row = run_prepared(session, _LAST_COMPLETED_WITH_SCORES, params).first()
    return None if row is None else EarlierScores(*tuple(row))


def get_score(*, session: Session, administration_id: int) -> ScoreRecord | None:
    """The stored scores of one administration, or None."""
    return session.exec(_SCORE_OF, params={"administration_id": administration_id}).first()


def scores_of_many(*, session: Session, administration_ids: list[int]) -> dict[int, ScoreRecord]:
    """Stored scores of several administrations in one query."""
    if not administration_ids:
        return {}
    rows = session.exec(
        select(ScoreRecord).where(col(ScoreRecord.administration_id).in_(administration_ids))
    )
    return {row.administration_id: row for row in rows}


def completed_near(
    *, session: Session, patient_id: int, around: datetime, window: timedelta
) -> list[Administration]:
    """A patient's completed administrations finished within ±window of a moment."""
    return list(
        session.exec(
            select(Administration).where(
                Administration.patient_id == patient_id,
                Administration.status == AdministrationStatus.COMPLETED.value,
                col(Administration.completed_at) >= around - window,
                col(Administration.completed_at) <= around + window,
            )
        )
    )


def delete_scores_of_patient(*, session: Session, patient_id: int) -> None:
    """Removes every stored score of a patient (data deletion)."""
    ids = select(Administration.id).where(Administration.patient_id == patient_id)
    for record in session.exec(
        select(ScoreRecord).where(col(ScoreRecord.administration_id).in_(ids))
    ):
        session.delete(record)
    session.flush()


class CompletedScores(NamedTuple):
    """A completed administration's scores as the course and the digest read them."""

    patient_id: int
    completed_at: datetime
    basdai: Decimal | None
    asdas_crp: Decimal | None
    asdas_esr: Decimal | None
    crp_mg_l: Decimal | None
    """The CRP its ASDAS-CRP used, as measured; None without an ASDAS-CRP."""


def completed_scores_of_patients(
    *, session: Session, patient_ids: list[int]
) -> list[CompletedScores]:
    """Every completed administration's scores of these patients in one query, oldest first.

    Only the columns are read, never score entities: a digest reads a year of every patient
    of a panel (about 10,000 rows for 200 patients), and building an ORM object per row was
    most of its database work."""
    if not patient_ids:
        return []
    rows = session.execute(
        sa_select(
            col(Administration.patient_id),
            col(Administration.completed_at),
            col(ScoreRecord.basdai),
            col(ScoreRecord.asdas_crp),
            col(ScoreRecord.asdas_esr),
            col(LabResult.value_normalised),
        )
        .join(ScoreRecord, col(ScoreRecord.administration_id) == col(Administration.id))
        .outerjoin(LabResult, col(LabResult.id) == col(ScoreRecord.asdas_crp_lab_id))
        .where(
            col(Administration.patient_id).in_(patient_ids),
            col(Administration.status) == AdministrationStatus.COMPLETED.value,
        )
        .order_by(col(Administration.completed_at), col(Administration.id))
    )
    return [
        CompletedScores(
            patient_id,
            completed_at,
            basdai,
            asdas_crp,
            asdas_esr,
            None if asdas_crp is None else crp,
        )
        for patient_id, completed_at, basdai, asdas_crp, asdas_esr, crp in rows
    ]
