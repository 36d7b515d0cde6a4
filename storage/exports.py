"""Research export queries: keyset-paginated batches of administrations with what they reference,
and the export audit trail.

Every query here takes the same `ExportScope`, so the administrations, the patients and the lab
values of one export always agree. Batches are fetched by groups of patients (`patient_id IN
(...)`, in patient then time order), so each batch is one short, index-driven query whatever the
size of the database, and a caller can use one short transaction per batch instead of one long
read. Rows are never read in id order: ids grow with time across all patients, and an export
whose rows followed them would give away how patients' dates relate (docs/security.md).

Administrations are read either typed (`Decimal`, aware `datetime`) or as the text CSV writes:
exact decimals as their stored text and times as ISO 8601 UTC text made by the database, so a
CSV value is never converted to a Python object only to be formatted back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, Generic, NamedTuple, TypeVar

from sqlalchemy import (
    ColumnElement,
    Executable,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    case,
    cast,
    exists,
    func,
    or_,
    type_coerce,
)
from sqlalchemy import select as core_select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel import Session, col, select

from storage.db import planned_for_index_reads
from storage.models import (
    Administration,
    AdministrationStatus,
    Answer,
    ExportAudit,
    LabResult,
    Patient,
    PatientStatus,
    SafetyAnswer,
    SafetyCheckin,
    ScoreRecord,
    TherapyEpisodeRow,
)


@dataclass(frozen=True, slots=True)
class ExportScope:
    """Which administrations an export covers: slots in [since, until), one physician or all.

    Patients who asked for their data to be deleted are never covered; a withdrawn patient is
    covered up to the moment of withdrawal (slots and lab draws after it are left out).
    """

    since: datetime | None = None
    until: datetime | None = None
    physician_id: int | None = None


class _IsoUtcText(FunctionElement[str]):
    """A UTC timestamp column as ISO 8601 text to the second with a Z, made by the database
    (the fraction of a second is cut, as Python's `isoformat()[:19]` cuts it)."""

    type = String()
    name = "iso_utc_text"
    inherit_cache = True


def _compiled_per_dialect(element: type[FunctionElement[Any]], **sql: str) -> None:
    """Compiles `element` on each dialect to its template, `{moment}` standing for the
    element's argument, so the database, not Python, formats every value of a batch."""
    for dialect, template in sql.items():

        def compile_moment(
            compiled: FunctionElement[Any],
            compiler: SQLCompiler,
            _template: str = template,
            **kw: Any,
        ) -> str:
            return _template.format(moment=compiler.process(compiled.clauses, **kw))

        compiles(element, dialect)(compile_moment)


_compiled_per_dialect(
    _IsoUtcText,
    postgresql="""to_char(({moment}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')""",
    # Stored as naive UTC text (storage.column_types.UTCDateTime); the format has no bind marks.
    sqlite="strftime('%Y-%m-%dT%H:%M:%SZ', {moment})",
)


# Result rows are read-only by convention; not frozen because frozen dataclasses are markedly
# slower to construct, and an export builds hundreds of thousands of them.
@dataclass(slots=True)
class LabRow:
    """A lab value as exported: normalised value (CRP mg/L, ESR mm/h) and when it was drawn."""

    lab_id: int
    patient_id: int
    research_id: str
    analyte: str
    value: Decimal
    below_detection_limit: bool
    drawn_at: datetime


@dataclass(slots=True)
class AnswerRow:
    """One item's current answer; `version` counts corrections (1 = never corrected)."""

    item_code: str
    raw_value: Decimal
    score: Decimal
    version: int | None = None
    answered_at: datetime | None = None


@dataclass(slots=True)
class AdministrationRow:
    """One administration with its answers, stored scores and the lab values those used."""

    administration_id: int
    patient_id: int
    research_id: str
    slot_at: datetime
    completed_at: datetime | None
    status: str
    language: str
    instrument_version: str
    basdai: Decimal | None
    asdas_crp: Decimal | None
    crp_floored: bool
    asdas_esr: Decimal | None
    crp: LabRow | None
    esr: LabRow | None
    scores: dict[str, Decimal] = field(default_factory=dict)
    """Each answered item's 0–10 value, by item code."""
    duration_raw: Decimal | None = None
    """The duration item's answer as given (minutes), if answered."""
    answers: dict[str, AnswerRow] = field(default_factory=dict)
    """Every answer with its version and time; filled only when details are asked for."""


@dataclass(frozen=True, slots=True)
class PatientRow:
    """A covered patient: only the row id and the random research id (never identifying data),
    with how many of their administrations the export covers (to size batches)."""

    patient_id: int
    research_id: str
    administrations: int = 0


def _not_after_withdrawal(moment: Any) -> ColumnElement[bool]:
    """True unless the patient withdrew before `moment`."""
    return or_(
        col(Patient.status) != PatientStatus.WITHDRAWN.value,
        col(Patient.withdrawn_at).is_(None),
        moment <= col(Patient.withdrawn_at),
    )


def _covered(scope: ExportScope) -> list[ColumnElement[bool]]:
    """Conditions on Administration joined with Patient for one export scope.

    An open administration without any answer is not reported yet (nothing happened so far).
    """
    answered = exists().where(col(Answer.administration_id) == col(Administration.id))
    conditions: list[ColumnElement[bool]] = [
        col(Patient.status) != PatientStatus.DELETED.value,
        _not_after_withdrawal(col(Administration.slot_at)),
        or_(col(Administration.status) != AdministrationStatus.OPEN.value, answered),
    ]
    if scope.since is not None:
        conditions.append(col(Administration.slot_at) >= scope.since)
    if scope.until is not None:
        conditions.append(col(Administration.slot_at) < scope.until)
    if scope.physician_id is not None:
        conditions.append(col(Patient.physician_id) == scope.physician_id)
    return conditions


def _usable_lab(lab: Any) -> ColumnElement[bool]:
    """A referenced lab value is exported unless deleted or drawn after a withdrawal."""
    return and_(lab.deleted_at.is_(None), _not_after_withdrawal(lab.drawn_at))


@dataclass(frozen=True, slots=True)
class BasdaiRow:
    """A completed questionnaire's BASDAI, for choosing each patient's baseline."""

    research_id: str
    administration_id: int
    completed_at: datetime
    baseline_date: datetime | None
    basdai: Decimal


def _basdai_history_select(
    physician_id: int | None,
) -> Select[str, int | None, datetime | None, datetime | None, Decimal | None]:
    """Completed questionnaires with a BASDAI of the batch's patients (`patient_ids`)."""
    return (
        core_select(
            col(Patient.research_id),
            col(Administration.id),
            col(Administration.completed_at),
            col(Patient.baseline_date),
            col(ScoreRecord.basdai),
        )
        .select_from(Administration)
        .join(Patient, col(Patient.id) == col(Administration.patient_id))
        .join(ScoreRecord, col(ScoreRecord.administration_id) == col(Administration.id))
        .where(
            col(Administration.patient_id).in_(_PATIENT_IDS),
            # The same bound on the patient side: see `_administrations_statement`.
            col(Patient.id).in_(_PATIENT_IDS),
            col(Patient.status) != PatientStatus.DELETED.value,
            _not_after_withdrawal(col(Administration.slot_at)),
            col(Administration.status) == AdministrationStatus.COMPLETED.value,
            col(Administration.completed_at).is_not(None),
            col(ScoreRecord.basdai).is_not(None),
            *([] if physician_id is None else [col(Patient.physician_id) == physician_id]),
        )
    )


@lru_cache(maxsize=8)
def _basdai_history_statement(physician_id: int | None) -> Executable:
    """`_basdai_history_select`, oldest first."""
    return _basdai_history_select(physician_id).order_by(
        col(Administration.completed_at), col(Administration.id)
    )


def basdai_history(
    *, session: Session, scope: ExportScope, patient_ids: list[int]
) -> list[BasdaiRow]:
    """Every completed questionnaire with a BASDAI of `patient_ids` (those of them an export
    covers), whatever its period, so responses compare with the patient's own baseline; oldest
    first.

    Read per batch of patients: a registry's whole history would be millions of rows held at
    once, where a batch's is a few thousand.
    """
    connection = _batch_connection(session)
    statement = _basdai_history_statement(scope.physician_id)
    return [BasdaiRow(*row) for row in connection.execute(statement, {"patient_ids": patient_ids})]


class _Microseconds(FunctionElement[int]):
    """A UTC timestamp column as whole microseconds since 1970, made by the database: exact, so
    two moments equally far from a third compare equal (a float would not always)."""

    type = Integer()
    name = "utc_microseconds"
    inherit_cache = True


_compiled_per_dialect(
    _Microseconds,
    postgresql="CAST(EXTRACT(EPOCH FROM ({moment})) * 1000000 AS BIGINT)",
    # Stored as naive UTC text 'YYYY-MM-DD HH:MM:SS.ffffff' (storage.column_types.UTCDateTime):
    # whole seconds from strftime on the text up to the seconds (SQLite's own time keeps
    # milliseconds and would round 59.9995 s up), the microseconds from the text (0 if none).
    sqlite="(CAST(strftime('%s', substr({moment}, 1, 19)) AS INTEGER) * 1000000"
    " + CAST(substr({moment}, 21, 6) AS INTEGER))",
)


@dataclass(frozen=True, slots=True)
class BaselineRow:
    """A patient's baseline questionnaire, as the database chose it (`basdai_baselines`)."""

    research_id: str
    administration_id: int
    basdai: Decimal


@lru_cache(maxsize=8)
def _basdai_baselines_statement(physician_id: int | None) -> Executable:
    """One row per patient of the batch (`patient_ids`): of `_basdai_history_select`'s rows,
    the first by distance to the patient's baseline date (none without a date), then
    completion time, then id."""
    distance = case(
        (col(Patient.baseline_date).is_(None), 0),
        else_=func.abs(
            _Microseconds(col(Administration.completed_at))
            - _Microseconds(col(Patient.baseline_date))
        ),
    )
    rank = (
        func.row_number()
        .over(
            partition_by=col(Administration.patient_id),
            order_by=(distance, col(Administration.completed_at), col(Administration.id)),
        )
        .label("rank")
    )
    ranked = _basdai_history_select(physician_id).add_columns(rank).subquery("ranked")
    return core_select(ranked.c.research_id, ranked.c.id, ranked.c.basdai).where(ranked.c.rank == 1)


def basdai_baselines(
    *, session: Session, scope: ExportScope, patient_ids: list[int]
) -> list[BaselineRow]:
    """Each of `patient_ids`' baseline questionnaire, one row per patient with one (those an
    export covers), chosen by the database from `basdai_history`'s rows as the digest chooses:
    the first completed questionnaire with a BASDAI or, when the clinic set a baseline date,
    the one completed nearest to it, the earlier on a tie.

    A batch's baselines are a row per patient, where its history is about fifty.
    """
    connection = _batch_connection(session)
    statement = _basdai_baselines_statement(scope.physician_id)
    return [
        BaselineRow(*row) for row in connection.execute(statement, {"patient_ids": patient_ids})
    ]


def count_administrations(*, session: Session, scope: ExportScope) -> int:
    """How many administrations an export of this scope covers."""
    query = (
        select(func.count())
        .select_from(Administration)
        .join(Patient, col(Patient.id) == col(Administration.patient_id))
        .where(*_covered(scope))
    )
    return int(session.exec(query).one())


_Moment = TypeVar("_Moment", str, int)


class ExportedAdministration(NamedTuple, Generic[_Moment]):
    """One administration read as an export writes it, nothing converted in Python: exact
    decimals as their stored text (plain notation, every digit: storage.column_types.ExactDecimal),
    and times made by the database, as ISO 8601 UTC text to the second for the CSV
    (`AdministrationText`) or as whole microseconds since 1970 UTC for the typed table
    (`AdministrationValues`). Its answers are read apart (`fetch_answer_text_batch`).

    A lab value and its draw time are None when the value is not exported (deleted, or drawn
    after the patient withdrew), as `AdministrationRow.crp` and `.esr` are then None.
    """

    administration_id: int
    research_id: str
    slot_at: _Moment
    completed_at: _Moment | None
    status: str
    language: str
    instrument_version: str
    basdai: str | None
    asdas_crp: str | None
    crp_floored: int | None
    """1 when the CRP was raised to the floor, else 0: as an integer on every database, which
    SQLite stores and the driver gives as it is."""
    asdas_esr: str | None
    crp_value: str | None
    crp_drawn_at: _Moment | None
    esr_value: str | None
    esr_drawn_at: _Moment | None


AdministrationText = ExportedAdministration[str]
AdministrationValues = ExportedAdministration[int]


_PATIENT_IDS = bindparam("patient_ids", expanding=True, type_=Integer())
# Batch statements are built once per export, with the batch as these parameters: building a
# statement of this size and its cache key takes milliseconds of Python time, every batch.


def _text(column: Any) -> Any:
    """An exact decimal column as its stored text (String has no result processing, where
    ExactDecimal would build a Decimal)."""
    return type_coerce(column, String())


@lru_cache(maxsize=8)
def _administrations_statement(
    scope: ExportScope, as_text: bool, times_in_microseconds: bool = False
) -> Executable:
    """The covered administrations of the batch's patients (`patient_ids`), with their patient,
    stored scores and the lab values those used, in patient then slot order; as text, only what
    the wide table shows (times as ISO text, or as whole microseconds since 1970)."""
    crp = aliased(LabResult, name="crp")
    esr = aliased(LabResult, name="esr")
    moment = _Microseconds if times_in_microseconds else _IsoUtcText
    columns: tuple[Any, ...] = (
        (
            col(Administration.id),
            col(Patient.research_id),
            moment(col(Administration.slot_at)),
            moment(col(Administration.completed_at)),
            col(Administration.status),
            col(Administration.language),
            col(Administration.instrument_version),
            _text(col(ScoreRecord.basdai)),
            _text(col(ScoreRecord.asdas_crp)),
            cast(col(ScoreRecord.crp_floored), Integer()),
            _text(col(ScoreRecord.asdas_esr)),
            _text(col(crp.value_normalised)),
            moment(col(crp.drawn_at)),
            _text(col(esr.value_normalised)),
            moment(col(esr.drawn_at)),
        )
        if as_text
        else (
            col(Administration.id),
            col(Administration.patient_id),
            col(Patient.research_id),
            col(Administration.slot_at),
            col(Administration.completed_at),
            col(Administration.status),
            col(Administration.language),
            col(Administration.instrument_version),
            col(ScoreRecord.basdai),
            col(ScoreRecord.asdas_crp),
            col(ScoreRecord.crp_floored),
            col(ScoreRecord.asdas_esr),
            col(crp.id),
            col(crp.value_normalised),
            col(crp.below_detection_limit),
            col(crp.drawn_at),
            col(esr.id),
            col(esr.value_normalised),
            col(esr.drawn_at),
        )
    )
    return (
        core_select(*columns)
        .select_from(Administration)
        .join(Patient, col(Patient.id) == col(Administration.patient_id))
        .outerjoin(ScoreRecord, col(ScoreRecord.administration_id) == col(Administration.id))
        .outerjoin(crp, and_(col(crp.id) == col(ScoreRecord.asdas_crp_lab_id), _usable_lab(crp)))
        .outerjoin(esr, and_(col(esr.id) == col(ScoreRecord.asdas_esr_lab_id), _usable_lab(esr)))
        .where(
            col(Administration.patient_id).in_(_PATIENT_IDS),
            # Said again of the patient: with the bound on one side only, PostgreSQL merges
            # the batch's administrations with the whole patient table read in key order, a
            # cost per batch that grows with the registry (all of it for every batch).
            col(Patient.id).in_(_PATIENT_IDS),
            *_covered(scope),
        )
        .order_by(
            col(Administration.patient_id), col(Administration.slot_at), col(Administration.id)
        )
    )


@lru_cache(maxsize=8)
def _answers_statement(
    scope: ExportScope,
    item_codes: tuple[str, ...],
    duration_item: str,
    answer_details: bool,
    as_text: bool,
) -> Executable:
    """The answers of the batch's patients (`patient_ids`): one row per answer with its version
    and time, or (without details) pivoted by the database into one row per administration: the
    raw answer of `duration_item`, then the score of each of `item_codes`.

    The answers are those of every administration of the batch's patients, read by their
    indexes. A full export covers nearly all of them (not slots after a withdrawal; callers
    ignore their answers); a narrowed export selects its administrations again, so as not to
    pivot answers it does not export.
    """
    batch = core_select(col(Administration.id)).where(
        col(Administration.patient_id).in_(_PATIENT_IDS)
    )
    if scope.physician_id is not None or scope.since is not None or scope.until is not None:
        batch = batch.join(Patient, col(Patient.id) == col(Administration.patient_id)).where(
            *_covered(scope)
        )
    in_batch: list[ColumnElement[bool]] = [
        col(Answer.administration_id).in_(batch.scalar_subquery())
    ]
    if answer_details and as_text:
        return core_select(
            col(Answer.administration_id),
            col(Answer.item_code),
            _text(col(Answer.raw_value)),
            _text(col(Answer.score)),
            col(Answer.version),
            _IsoUtcText(col(Answer.answered_at)),
        ).where(*in_batch)
    if answer_details:
        return core_select(
            col(Answer.administration_id),
            col(Answer.item_code),
            col(Answer.raw_value),
            col(Answer.score),
            col(Answer.version),
            col(Answer.answered_at),
        ).where(*in_batch)
    raw_value = _text(col(Answer.raw_value)) if as_text else col(Answer.raw_value)
    score = _text(col(Answer.score)) if as_text else col(Answer.score)
    return (
        core_select(
            col(Answer.administration_id),
            func.max(case((col(Answer.item_code) == duration_item, raw_value))),
            *(func.max(case((col(Answer.item_code) == code, score))) for code in item_codes),
        )
        .where(*in_batch)
        .group_by(col(Answer.administration_id))
    )


def _batch_connection(session: Session) -> Connection:
    """The session's connection, each batch planned for its own bounds and read by its
    indexes (`storage.db.planned_for_index_reads`): at 100,000 patients the answer reads of
    each batch otherwise turned into parallel plans (77 against 46 ms a batch), and at the
    default cost of a random page every batch hashed every stored score and every patient
    (210 against 65 ms a batch of a 10,000-patient registry)."""
    return planned_for_index_reads(session)


def _driver_rows(
    connection: Connection, statement: Executable, bounds: dict[str, Any]
) -> Sequence[Any]:
    """The rows of a text batch statement as the database driver's own tuples.

    Its columns are text and integers, which SQLAlchemy does not convert, so its row objects
    are skipped: building them was about half of the reading thread's time for a batch.
    """
    result = connection.execute(statement, bounds)
    try:
        return result.cursor.fetchall()
    finally:
        result.close()


def fetch_administration_batch(
    *,
    session: Session,
    scope: ExportScope,
    patient_ids: list[int],
    item_codes: tuple[str, ...],
    duration_item: str,
    answer_details: bool = False,
) -> list[AdministrationRow]:
    """The covered administrations of `patient_ids`, in patient id then slot order.

    Two queries per batch: administrations joined with their patient, stored scores and the
    lab values those scores used; then the answers of exactly these administrations: pivoted
    by the database into one row each (`item_codes` as columns, plus the raw answer of
    `duration_item`), or, with `answer_details`, one row per answer with its version and time.
    """
    # Core execution: plain tuples, without the ORM's per-row result machinery.
    connection = _batch_connection(session)
    rows: dict[int, AdministrationRow] = {}
    bounds = {"patient_ids": patient_ids}
    fetched: list[Any] = list(
        connection.execute(_administrations_statement(scope, False), bounds).all()
    )
    for row in fetched:
        (admin_id, patient_id, research_id, slot_at, completed_at, status, language, version) = row[
            :8
        ]
        basdai, asdas_crp, crp_floored, asdas_esr = row[8:12]
        crp_id, crp_value, crp_below, crp_drawn, esr_id, esr_value, esr_drawn = row[12:]
        rows[admin_id] = AdministrationRow(
            administration_id=admin_id,
            patient_id=patient_id,
            research_id=research_id,
            slot_at=slot_at,
            completed_at=completed_at,
            status=status,
            language=language,
            instrument_version=version,
            basdai=basdai,
            asdas_crp=asdas_crp,
            crp_floored=bool(crp_floored),
            asdas_esr=asdas_esr,
            crp=None
            if crp_id is None
            else LabRow(
                crp_id, patient_id, research_id, "crp", crp_value, bool(crp_below), crp_drawn
            ),
            esr=None
            if esr_id is None
            else LabRow(esr_id, patient_id, research_id, "esr", esr_value, False, esr_drawn),
        )
    if not rows:
        return []
    statement = _answers_statement(scope, item_codes, duration_item, answer_details, False)
    answers = connection.execute(statement, bounds).all()
    if answer_details:
        for answer in answers:
            owner = rows.get(answer[0])
            if owner is not None:  # not covered, or covered only after the first query ran
                item = AnswerRow(*answer[1:])
                owner.answers[item.item_code] = item
                owner.scores[item.item_code] = item.score
                if item.item_code == duration_item:
                    owner.duration_raw = item.raw_value
        return list(rows.values())
    for admin_id, duration_raw, *values in answers:
        owner = rows.get(admin_id)
        if owner is not None:
            owner.duration_raw = duration_raw
            owner.scores = {
                code: value
                for code, value in zip(item_codes, values, strict=True)
                if value is not None
            }
    return list(rows.values())


def fetch_administration_text_batch(
    *, session: Session, scope: ExportScope, patient_ids: list[int]
) -> list[AdministrationText]:
    """The administrations `fetch_administration_batch` reads, as text; their answers come
    from `fetch_answer_text_batch`, so both queries can run at once on two connections.

    Nothing is converted in Python: the wide CSV writes the stored decimal text and the
    database's time text as they are, which would otherwise be most of an export's work.
    """
    connection = _batch_connection(session)
    bounds = {"patient_ids": patient_ids}
    fetched = _driver_rows(connection, _administrations_statement(scope, True), bounds)
    # tuple.__new__ makes each row an ExportedAdministration in C; _make is a Python call per row.
    return [tuple.__new__(ExportedAdministration, row) for row in fetched]


def fetch_administration_values_batch(
    *, session: Session, scope: ExportScope, patient_ids: list[int]
) -> list[AdministrationValues]:
    """The administrations `fetch_administration_text_batch` reads, with times in microseconds;
    their answers come from `fetch_answer_text_batch`."""
    connection = _batch_connection(session)
    bounds = {"patient_ids": patient_ids}
    fetched = _driver_rows(connection, _administrations_statement(scope, True, True), bounds)
    return [tuple.__new__(ExportedAdministration, row) for row in fetched]


def fetch_answer_text_batch(
    *,
    session: Session,
    scope: ExportScope,
    patient_ids: list[int],
    item_codes: tuple[str, ...],
    duration_item: str,
) -> dict[int, tuple[str | None, ...]]:
    """The answers of the text batch of `patient_ids`, pivoted as text: by
    administration id, the raw answer of `duration_item`, then the score of each of
    `item_codes` (None where unanswered). An administration without answers is absent."""
    connection = _batch_connection(session)
    statement = _answers_statement(scope, item_codes, duration_item, False, True)
    bounds = {"patient_ids": patient_ids}
    return {row[0]: row[1:] for row in _driver_rows(connection, statement, bounds)}


class AnswerText(NamedTuple):
    """One item's current answer read as the text CSV writes (see `AdministrationText`)."""

    item_code: str
    raw_value: str
    score: str
    version: int
    answered_at: str


def fetch_answer_detail_text_batch(
    *, session: Session, scope: ExportScope, patient_ids: list[int]
) -> dict[int, dict[str, AnswerText]]:
    """The answers of the text batch of `patient_ids`, one by item with its version and time,
    by administration id, as text (the long table's answer rows). An administration without
    answers is absent."""
    connection = _batch_connection(session)
    statement = _answers_statement(scope, (), "", True, True)
    bounds = {"patient_ids": patient_ids}
    found: dict[int, dict[str, AnswerText]] = {}
    for administration_id, *answer in _driver_rows(connection, statement, bounds):
        item = tuple.__new__(AnswerText, answer)
        found.setdefault(administration_id, {})[item.item_code] = item
    return found


def covered_patients(*, session: Session, scope: ExportScope) -> list[PatientRow]:
    """Every patient with at least one covered administration, with how many, in id order
    (callers put them in pseudonym order; one short row per patient)."""
    query = (
        select(col(Patient.id), col(Patient.research_id), func.count())
        .select_from(Administration)
        .join(Patient, col(Patient.id) == col(Administration.patient_id))
        .where(*_covered(scope))
        .group_by(col(Patient.id), col(Patient.research_id))
        .order_by(col(Patient.id))
    )
    return [PatientRow(*row) for row in session.execute(query)]


def fetch_referenced_lab_batch(
    *, session: Session, scope: ExportScope, patient_ids: list[int]
) -> list[LabRow]:
    """The lab values of `patient_ids` used by a covered administration's score, in patient id
    then draw time order. A lab value that fed several administrations comes once.
    """

    def used_as(reference: Any) -> ColumnElement[bool]:
        # One EXISTS per reference column, so each can use its index.
        return (
            exists()
            .where(
                reference == col(LabResult.id),
                col(Administration.id) == col(ScoreRecord.administration_id),
                col(Patient.id) == col(Administration.patient_id),
                *_covered(scope),
            )
            .correlate(LabResult)
        )

    used = or_(
        used_as(col(ScoreRecord.asdas_crp_lab_id)), used_as(col(ScoreRecord.asdas_esr_lab_id))
    )
    owner = aliased(Patient, name="owner")
    query = (
        core_select(
            col(LabResult.id),
            col(LabResult.patient_id),
            col(owner.research_id),
            col(LabResult.analyte),
            col(LabResult.value_normalised),
            col(LabResult.below_detection_limit),
            col(LabResult.drawn_at),
        )
        .join(owner, col(owner.id) == col(LabResult.patient_id))
        .where(
            col(LabResult.patient_id).in_(_PATIENT_IDS),
            # The same bound on the owner: see `_administrations_statement`.
            col(owner.id).in_(_PATIENT_IDS),
            col(LabResult.deleted_at).is_(None),
            or_(
                col(owner.status) != PatientStatus.WITHDRAWN.value,
                col(owner.withdrawn_at).is_(None),
                col(LabResult.drawn_at) <= col(owner.withdrawn_at),
            ),
            used,
        )
        .order_by(col(LabResult.patient_id), col(LabResult.drawn_at), col(LabResult.id))
    )
    _batch_connection(session)
    return [
        LabRow(lab_id, patient_id, research_id, analyte, value, bool(below), drawn_at)
        for lab_id, patient_id, research_id, analyte, value, below, drawn_at in session.execute(
            query, {"patient_ids": patient_ids}
        )
    ]


def instrument_versions(*, session: Session, scope: ExportScope) -> list[str]:
    """The distinct instrument versions of the covered administrations, sorted."""
    query = (
        select(col(Administration.instrument_version))
        .join(Patient, col(Patient.id) == col(Administration.patient_id))
        .where(*_covered(scope))
        .distinct()
        .order_by(col(Administration.instrument_version))
    )
    return list(session.exec(query))


def record_export(
    *,
    session: Session,
    at: datetime,
    by: str,
    format: str,
    filters: dict[str, Any],
    rows: int,
    sha256: str,
    destination: str | None,
) -> ExportAudit:
    """Appends one export to the audit trail (filters stored as sorted JSON)."""
    entry = ExportAudit(
        at=at,
        by=by,
        format=format,
        filters=json.dumps(filters, sort_keys=True, default=str),
        rows=rows,
        sha256=sha256,
        destination=destination,
    )
    session.add(entry)
    session.flush()
    return entry


def list_exports(*, session: Session, limit: int | None = None) -> list[ExportAudit]:
    """Audited exports, most recent first."""
    query = select(ExportAudit).order_by(col(ExportAudit.id).desc())
    if limit is not None:
        query = query.limit(limit)
    return list(session.exec(query))


def fetch_therapy_rows(
    *, session: Session, physician_id: int | None
) -> list[tuple[str, TherapyEpisodeRow]]:
    """Every therapy episode (clinical spec §7) of the patients an export may cover (all but
    those who asked for deletion), with the patient's research id, by patient and start."""
    query = (
        select(col(Patient.research_id), TherapyEpisodeRow)
        .join(Patient, col(Patient.id) == col(TherapyEpisodeRow.patient_id))
        .where(col(Patient.status) != PatientStatus.DELETED.value)
        .order_by(col(Patient.id), col(TherapyEpisodeRow.start_date), col(TherapyEpisodeRow.id))
    )
    if physician_id is not None:
        query = query.where(col(Patient.physician_id) == physician_id)
    return [(row[0], row[1]) for row in session.execute(query)]


def fetch_safety_answer_rows(
    *, session: Session, scope: ExportScope
) -> list[tuple[str, SafetyCheckin, SafetyAnswer]]:
    """Safety check-in answers (clinical spec §8) given in the scope's period, with the
    patient's research id; none of deleted patients, none given after a withdrawal."""
    query = (
        select(col(Patient.research_id), SafetyCheckin, SafetyAnswer)
        .join(SafetyCheckin, col(SafetyCheckin.id) == col(SafetyAnswer.checkin_id))
        .join(Patient, col(Patient.id) == col(SafetyCheckin.patient_id))
        .where(
            col(Patient.status) != PatientStatus.DELETED.value,
            or_(
                col(Patient.withdrawn_at).is_(None),
                col(SafetyAnswer.answered_at) <= col(Patient.withdrawn_at),
            ),
        )
        .order_by(col(Patient.id), col(SafetyAnswer.answered_at), col(SafetyAnswer.id))
    )
    if scope.physician_id is not None:
        query = query.where(col(Patient.physician_id) == scope.physician_id)
    if scope.since is not None:
        query = query.where(col(SafetyAnswer.answered_at) >= scope.since)
    if scope.until is not None:
        query = query.where(col(SafetyAnswer.answered_at) < scope.until)
    return [(row[0], row[1], row[2]) for row in session.execute(query)]
