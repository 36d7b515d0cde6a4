"""Entering, importing, correcting and deleting lab values: one path for every route.

The command line, the CSV import and the physician's chat all store through
`store_measurement`, which in the caller's transaction recognises a sample already stored,
stores the new one, appends it to the audit trail and recomputes the scores of every
administration it can affect (clinical spec §4: a late lab completes earlier ASDAS; a changed
or deleted one recomputes what depended on it). Scores themselves are computed only by
`bot.services.scores`.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import time
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, overload

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from bot.context import AppContext
from bot.domain import labs as lab_rules
from bot.domain.labs import LabInputError, LabParam, Measurement
from bot.domain.scoring import CRP_FLOOR_MG_L
from bot.services import digest as digest_service
from bot.services import scores as score_service
from bot.services.audit_trail import Values, record_change
from storage import labs, patients
from storage.db import has_single_writer
from storage.models import LabResult, Patient, PatientStatus

logger = logging.getLogger(__name__)

SOURCE_CLI = "cli"
SOURCE_CSV = "csv"
SOURCE_CHAT = "chat"
SOURCE_WEB = "web"

STORED = "stored"
DUPLICATE = "duplicate"
REFUSED = "refused"

AUDIT_ENTITY = "lab"


@dataclass(frozen=True)
class LabView:
    """One lab value as staff see it, with the administrations whose ASDAS it feeds."""

    lab_id: int
    patient_id: int
    clinic_ref: str
    analyte: str
    value: Decimal
    unit: str
    value_normalised: Decimal
    below_detection_limit: bool
    drawn_at: datetime
    source: str
    entered_by: str
    deleted: bool
    used_by: tuple[int, ...] = ()

    @property
    def floored(self) -> bool:
        """Whether ASDAS-CRP uses 2 mg/L instead of this value (clinical spec §2)."""
        return self.analyte == lab_rules.CRP and (
            self.below_detection_limit or self.value_normalised < CRP_FLOOR_MG_L
        )


@dataclass(frozen=True)
class StoreOutcome:
    """What happened to one value: `stored`, or `duplicate` of an identical stored sample."""

    status: str
    lab: LabView
    recomputed: tuple[int, ...] = ()


@dataclass(frozen=True)
class ChangeOutcome:
    """A corrected or deleted value: before and after, and the administrations recomputed."""

    before: LabView
    after: LabView
    recomputed: tuple[int, ...]


_NO_PARAMS: Final[dict[str, LabParam]] = {}
"""Shared by the report's rows that need no parameters (read only): a large import's report
keeps one row per line, so a dictionary each would be most of its memory."""


@dataclass(frozen=True, slots=True)
class ImportRow:
    """The fate of one line of a lab file; `reason` and `params` say why it was not stored."""

    line: int
    outcome: str
    clinic_ref: str = ""
    analyte: str = ""
    reason: str | None = None
    params: dict[str, LabParam] = field(default_factory=dict)
    lab_id: int | None = None


class ImportRows(Sequence[ImportRow]):
    """The rows of an import report, kept as a few numbers each: a 100,000-line file's report
    stays a few megabytes (docs/resilience.md). Each row is rebuilt when read."""

    def __init__(self) -> None:
        self._lines = array("q")
        self._lab_ids = array("q")
        self._kinds = array("l")
        """Index into `_distinct` of (outcome, clinic reference, analyte, reason)."""
        self._distinct: list[tuple[str, str, str, str | None]] = []
        self._index: dict[tuple[str, str, str, str | None], int] = {}
        self._params: dict[int, dict[str, LabParam]] = {}

    def append(self, row: ImportRow) -> None:
        kind = (row.outcome, row.clinic_ref, row.analyte, row.reason)
        index = self._index.setdefault(kind, len(self._distinct))
        if index == len(self._distinct):
            self._distinct.append(kind)
        if row.params:
            self._params[len(self._lines)] = row.params
        self._lines.append(row.line)
        self._lab_ids.append(-1 if row.lab_id is None else row.lab_id)
        self._kinds.append(index)

    def __len__(self) -> int:
        return len(self._lines)

    @overload
    def __getitem__(self, position: int) -> ImportRow: ...

    @overload
    def __getitem__(self, position: slice) -> Sequence[ImportRow]: ...

    def __getitem__(self, position: int | slice) -> ImportRow | Sequence[ImportRow]:
        if isinstance(position, slice):
            return [self[i] for i in range(*position.indices(len(self)))]
        if position < 0:
            position += len(self)
        outcome, clinic_ref, analyte, reason = self._distinct[self._kinds[position]]
        lab_id = self._lab_ids[position]
        return ImportRow(
            line=self._lines[position],
            outcome=outcome,
            clinic_ref=clinic_ref,
            analyte=analyte,
            reason=reason,
            params=self._params.get(position, _NO_PARAMS),
            lab_id=None if lab_id < 0 else lab_id,
        )


@dataclass(frozen=True)
class ImportReport:
    """Every line of a lab file with its outcome; nothing was written when `dry_run`."""

    rows: Sequence[ImportRow]
    dry_run: bool
    recomputed: int

    def count(self, outcome: str) -> int:
        return sum(1 for row in self.rows if row.outcome == outcome)

    @property
    def stored(self) -> int:
        return self.count(STORED)

    @property
    def duplicate(self) -> int:
        return self.count(DUPLICATE)

    @property
    def refused(self) -> int:
        return self.count(REFUSED)


def window(ctx: AppContext) -> timedelta:
    """The lab matching window, ±`LAB_WINDOW_DAYS` (clinical spec §4)."""
    return timedelta(days=ctx.settings.lab_window_days)


def view(session: Session, lab: LabResult, clinic_ref: str, *, usage: bool = True) -> LabView:
    """A stored lab result as a plain value (with the administrations it feeds if `usage`)."""
    assert lab.id is not None
    return LabView(
        lab_id=lab.id,
        patient_id=lab.patient_id,
        clinic_ref=clinic_ref,
        analyte=lab.analyte,
        value=lab.value,
        unit=lab.unit,
        value_normalised=lab.value_normalised,
        below_detection_limit=lab.below_detection_limit,
        drawn_at=lab.drawn_at,
        source=lab.source,
        entered_by=lab.entered_by,
        deleted=lab.deleted_at is not None,
        used_by=tuple(labs.administrations_using(session=session, lab_id=lab.id)) if usage else (),
    )


def _audit_values(lab: LabResult) -> dict[str, Any]:
    return {
        "analyte": lab.analyte,
        "value": lab.value,
        "unit": lab.unit,
        "value_normalised": lab.value_normalised,
        "below_detection_limit": lab.below_detection_limit,
        "drawn_at": lab.drawn_at.isoformat(),
        "source": lab.source,
        "entered_by": lab.entered_by,
    }


def find_patient(session: Session, clinic_ref: str) -> Patient:
    """The patient a clinic reference names; deleted patients take no more lab values."""
    ref = clinic_ref.strip()
    if not ref:
        raise LabInputError("patient_missing")
    patient = patients.get_patient_by_ref(session=session, clinic_ref=ref)
    if patient is None or patient.status == PatientStatus.DELETED.value:
        raise LabInputError("patient_unknown", ref=ref[:64])
    return patient


def recompute(
    session: Session,
    *,
    patient_id: int,
    moments: Iterable[datetime],
    administration_ids: Iterable[int] = (),
    window: timedelta,
    now: datetime,
) -> tuple[int, ...]:
    """Recomputes every completed administration within ±window of the given draw times, and
    the listed administrations (those that used a value before it changed)."""
    done: set[int] = set()
    for moment in moments:
        for record in score_service.recompute_around_lab(
            session, patient_id=patient_id, drawn_at=moment, window=window, now=now
        ):
            done.add(record.administration_id)
    for administration_id in administration_ids:
        if administration_id not in done:
            score_service.recompute_administration(
                session, administration_id=administration_id, window=window, now=now
            )
            done.add(administration_id)
    return tuple(sorted(done))


def _differs(stored: LabResult) -> LabInputError:
    """The refusal of a second, different value for a sample already stored."""
    assert stored.id is not None
    return LabInputError(
        "same_sample_differs",
        lab_id=stored.id,
        stored=stored.value,
        unit=stored.unit,
    )


def _same_value(lab: LabResult, measurement: Measurement) -> bool:
    return (
        lab.value_normalised == measurement.value_normalised
        and lab.below_detection_limit == measurement.below_detection_limit
    )


def store_measurement(
    session: Session,
    *,
    patient: Patient,
    measurement: Measurement,
    drawn_at: datetime,
    source: str,
    entered_by: str,
    now: datetime,
    window: timedelta,
    source_key: str | None = None,
    note: dict[str, Any] | None = None,
    usage: bool = True,
) -> StoreOutcome:
    """Stores one value, audits it and recomputes the scores it can affect, in `session`.

    The same sample (patient, analyte and draw time) already stored with the same value is a
    duplicate and changes nothing; with a different value it is refused, since silently
    keeping either would hide a discrepancy: `lab fix` corrects a stored value. A value
    imported before under the same `source_key` is a duplicate even if it was later corrected
    or deleted, so re-importing a file never undoes staff's corrections.
    """
    assert patient.id is not None
    if source_key is not None:
        imported = labs.get_by_source_key(session=session, source_key=source_key)
        if imported is not None:
            return StoreOutcome(DUPLICATE, view(session, imported, patient.clinic_ref, usage=usage))
    same = labs.find_same_sample(
        session=session, patient_id=patient.id, analyte=measurement.analyte, drawn_at=drawn_at
    )
    if same is not None:
        if _same_value(same, measurement):
            return StoreOutcome(DUPLICATE, view(session, same, patient.clinic_ref, usage=usage))
        raise _differs(same)
    try:
        with session.begin_nested():
            lab = labs.add_lab_result(
                session=session,
                patient_id=patient.id,
                analyte=measurement.analyte,
                value=measurement.value,
                unit=measurement.unit,
                value_normalised=measurement.value_normalised,
                below_detection_limit=measurement.below_detection_limit,
                drawn_at=drawn_at,
                source=source,
                entered_by=entered_by,
                now=now,
                source_key=source_key,
            )
    except IntegrityError:
        # Another writer stored this sample, or imported this line, a moment ago.
        raced = (
            None
            if source_key is None
            else labs.get_by_source_key(session=session, source_key=source_key)
        )
        if raced is None:
            raced = labs.find_same_sample(
                session=session,
                patient_id=patient.id,
                analyte=measurement.analyte,
                drawn_at=drawn_at,
            )
            assert raced is not None
            if not _same_value(raced, measurement):
                raise _differs(raced) from None
        return StoreOutcome(DUPLICATE, view(session, raced, patient.clinic_ref, usage=usage))
    assert lab.id is not None
    audited = (None, {**_audit_values(lab), **(note or {})})
    record_change(
        session,
        AUDIT_ENTITY,
        lab.id,
        patient,
        actor=entered_by,
        action="create",
        values=audited,
        now=now,
    )
    recomputed = recompute(
        session, patient_id=patient.id, moments=[drawn_at], window=window, now=now
    )
    # A late value can complete a very high ASDAS or a worsening: alert as at completion.
    digest_service.queue_lab_alerts(session, lab_id=lab.id, administration_ids=recomputed, now=now)
    logger.info(
        "lab value stored",
        extra={"fields": {"lab_id": lab.id, "source": source, "recomputed": len(recomputed)}},
    )
    return StoreOutcome(STORED, view(session, lab, patient.clinic_ref, usage=usage), recomputed)


def add_lab_values(
    ctx: AppContext,
    *,
    clinic_ref: str,
    drawn: str,
    entered_by: str,
    crp: str | None = None,
    crp_unit: str | None = lab_rules.CRP_UNIT_MG_L,
    crp_below_detection_limit: bool = False,
    esr: str | None = None,
    source: str = SOURCE_CLI,
) -> list[StoreOutcome]:
    """Stores a CRP and/or ESR of one sample in one transaction; refuses all if one is bad.

    A date without a time is noon clinic time (`bot.domain.labs.DATE_ONLY_TIME`).
    """
    if crp is None and esr is None:
        raise LabInputError("values_missing")
    now = ctx.clock.now()
    measurements: list[Measurement] = []
    if crp is not None:
        measurements.append(
            lab_rules.read_measurement(
                lab_rules.CRP, crp, crp_unit, below_detection_limit=crp_below_detection_limit
            )
        )
    if esr is not None:
        measurements.append(lab_rules.read_measurement(lab_rules.ESR, esr, None))
    drawn_at = lab_rules.drawn_instant(drawn, timezone=ctx.settings.clinic_timezone, now=now)
    with ctx.session() as session:
        patient = find_patient(session, clinic_ref)
        return [
            store_measurement(
                session,
                patient=patient,
                measurement=measurement,
                drawn_at=drawn_at,
                source=source,
                entered_by=entered_by,
                now=now,
                window=window(ctx),
            )
            for measurement in measurements
        ]


def _source_key(patient_id: int, row: lab_rules.FileRow, measurement: Measurement) -> str:
    """What identifies one imported line across re-imports: its patient, test, sample time
    and value as the lab wrote them (not the file name or line number, which change)."""
    text = "|".join(
        [
            "csv",
            str(patient_id),
            measurement.analyte,
            row.drawn.strip(),
            lab_rules.display_value(measurement.value),
            measurement.unit,
            str(measurement.below_detection_limit),
        ]
    )
    return "csv:" + hashlib.sha256(text.encode()).hexdigest()


def _import_row(
    ctx: AppContext,
    session: Session,
    row: lab_rules.FileRow,
    *,
    entered_by: str,
    now: datetime,
    known: dict[str, Patient],
    allowed_physicians: frozenset[int] | None = None,
    dry_run_stored: set[str] | None = None,
) -> tuple[ImportRow, tuple[int, ...]]:
    # One string per patient, however many of their lines a large file has.
    ref = sys.intern(row.patient.strip()[:64])
    if row.error is not None:
        refused = ImportRow(
            line=row.line,
            outcome=REFUSED,
            clinic_ref=ref,
            reason=row.error.code,
            params=row.error.params,
        )
        return refused, ()
    analyte = ""
    try:
        analyte = lab_rules.parse_analyte(row.test)
        measurement = lab_rules.read_measurement(analyte, row.value, row.unit)
        drawn_at = lab_rules.drawn_instant(
            row.drawn, timezone=ctx.settings.clinic_timezone, now=now
        )
        patient = known.get(ref) or find_patient(session, row.patient)
        if allowed_physicians is not None and patient.physician_id not in allowed_physicians:
            raise LabInputError("patient_unknown", ref=ref)  # not theirs: as if unknown
        known[ref] = patient
        assert patient.id is not None
        source_key = _source_key(patient.id, row, measurement)
        if dry_run_stored is not None and source_key in dry_run_stored:
            # Stored by an earlier batch of this dry run, which was rolled back.
            return ImportRow(row.line, DUPLICATE, ref, analyte, params=_NO_PARAMS), ()
        outcome = store_measurement(
            session,
            patient=patient,
            measurement=measurement,
            drawn_at=drawn_at,
            source=SOURCE_CSV,
            entered_by=entered_by,
            now=now,
            window=window(ctx),
            source_key=source_key,
            note={"line": row.line},
            usage=False,
        )
    except LabInputError as error:
        refused = ImportRow(
            line=row.line,
            outcome=REFUSED,
            clinic_ref=ref,
            analyte=analyte,
            reason=error.code,
            params=error.params,
        )
        return refused, ()
    if dry_run_stored is not None and outcome.status == STORED:
        dry_run_stored.add(source_key)
    reason = "deleted_earlier" if outcome.status == DUPLICATE and outcome.lab.deleted else None
    result = ImportRow(
        line=row.line,
        outcome=outcome.status,
        clinic_ref=ref,
        analyte=analyte,
        reason=reason,
        params=_NO_PARAMS,
        lab_id=outcome.lab.lab_id,
    )
    return result, outcome.recomputed


IMPORT_BATCH_ROWS: Final = 200
IMPORT_BATCH_SECONDS: Final = 0.4
"""A transaction of the import ends after this many lines or seconds, whichever comes first."""
IMPORT_PAUSE_SECONDS: Final = 0.12
"""On SQLite the import pauses this long between transactions: longer than a waiting writer's
longest poll (100 ms), so the bot's writes get in and wait about half a second at most."""


def import_lab_file(
    ctx: AppContext,
    *,
    data: bytes | Path,
    entered_by: str,
    dry_run: bool = False,
    allowed_physicians: frozenset[int] | None = None,
) -> ImportReport:
    """Imports a lab file (format in README, "Lab values"): good lines are stored, bad ones
    reported with their line number and reason, lines already imported are duplicates.

    The file is read twice, line by line, and never held in memory: first to check that it
    is a lab file at all (else `LabInputError`, and nothing is stored), then to store it in
    short transactions (IMPORT_BATCH_ROWS lines or IMPORT_BATCH_SECONDS), pausing between them
    on SQLite, so the bot keeps answering during a large import.
    Importing is idempotent (a line already stored is a duplicate), so an interrupted import
    is finished by running it again. A dry run goes through exactly the same steps, rolling
    each batch back, so its report is what the real import would do.
    With `allowed_physicians`, lines of other physicians' patients are refused as unknown
    references (a nurse imports only for the physicians they work for).
    """

    def lines() -> Iterator[bytes]:
        if isinstance(data, bytes):
            yield from data.splitlines(keepends=True)
            return
        with data.open("rb") as handle:
            yield from handle

    for _row in lab_rules.iter_lab_file(lines()):
        pass
    now = ctx.clock.now()
    rows = ImportRows()
    recomputed: set[int] = set()
    dry_run_stored: set[str] | None = set() if dry_run else None
    file_rows = lab_rules.iter_lab_file(lines())
    pause = IMPORT_PAUSE_SECONDS if has_single_writer(ctx.engine) else 0.0
    finished = False
    while not finished:
        finished = True
        began = time.monotonic()
        known: dict[str, Patient] = {}
        with ctx.session() as session:
            for count, row in enumerate(file_rows, start=1):
                result, administrations = _import_row(
                    ctx,
                    session,
                    row,
                    entered_by=entered_by,
                    now=now,
                    known=known,
                    dry_run_stored=dry_run_stored,
                    allowed_physicians=allowed_physicians,
                )
                rows.append(result)
                recomputed.update(administrations)
                if count >= IMPORT_BATCH_ROWS or time.monotonic() - began >= IMPORT_BATCH_SECONDS:
                    finished = False
                    break
            if dry_run:
                session.rollback()
        if not finished:
            time.sleep(pause)
    logger.info(
        "lab file imported",
        extra={
            "fields": {
                "rows": len(rows),
                "stored": sum(1 for r in rows if r.outcome == STORED),
                "dry_run": dry_run,
            }
        },
    )
    return ImportReport(rows=rows, dry_run=dry_run, recomputed=len(recomputed))


def _lab_for_change(session: Session, lab_id: int) -> tuple[LabResult, Patient, LabView]:
    """The stored value to correct or delete, its patient, and how it reads before the change."""
    lab = labs.get_lab_result(session=session, lab_id=lab_id)
    if lab is None:
        raise LabInputError("lab_unknown", lab_id=lab_id)
    if lab.deleted_at is not None:
        raise LabInputError("lab_deleted", lab_id=lab_id)
    patient = patients.get_patient(session=session, patient_id=lab.patient_id)
    assert patient is not None
    assert patient.id is not None
    return lab, patient, view(session, lab, patient.clinic_ref)


def fix_lab_value(
    ctx: AppContext,
    *,
    lab_id: int,
    actor: str,
    value: str | None = None,
    unit: str | None = None,
    drawn: str | None = None,
    below_detection_limit: bool | None = None,
    reason: str | None = None,
) -> ChangeOutcome:
    """Corrects a stored value; the old one stays in the audit trail.

    A new `value` is read like any entry ("<0.5" marks it below the detection limit); a new
    `unit` alone re-reads the stored number in that unit (the usual mg/L–mg/dL mix-up).
    Every administration the value fed, or can feed at its old or new draw time, is
    recomputed in the same transaction (clinical spec §4).
    """
    if value is None and unit is None and drawn is None and below_detection_limit is None:
        raise LabInputError("fix_nothing")
    now = ctx.clock.now()
    with ctx.session() as session:
        found = _lab_for_change(session, lab_id)
        lab, patient, _ = found
        assert patient.id is not None
        before_values = _audit_values(lab)
        if value is not None:
            reading = lab_rules.parse_reading(value)
        else:
            reading = lab_rules.Reading(lab.value, lab.below_detection_limit)
        if below_detection_limit is not None:
            reading = lab_rules.Reading(reading.value, below_detection_limit)
        new_unit = lab_rules.parse_unit(lab.analyte, unit if unit is not None else lab.unit)
        measurement = lab_rules.measurement(lab.analyte, reading, new_unit)
        drawn_at = (
            lab.drawn_at
            if drawn is None
            else lab_rules.drawn_instant(drawn, timezone=ctx.settings.clinic_timezone, now=now)
        )
        if drawn_at != lab.drawn_at:
            other = labs.find_same_sample(
                session=session, patient_id=patient.id, analyte=lab.analyte, drawn_at=drawn_at
            )
            if other is not None:
                raise _differs(other)
        old_drawn_at = lab.drawn_at
        try:
            with session.begin_nested():
                labs.change_lab_result(
                    session=session,
                    lab=lab,
                    value=measurement.value,
                    unit=measurement.unit,
                    value_normalised=measurement.value_normalised,
                    below_detection_limit=measurement.below_detection_limit,
                    drawn_at=drawn_at,
                )
        except IntegrityError:
            # Another writer stored a value for the new draw time a moment ago.
            other = labs.find_same_sample(
                session=session, patient_id=patient.id, analyte=lab.analyte, drawn_at=drawn_at
            )
            assert other is not None
            raise _differs(other) from None
        after_values = _audit_values(lab)
        if after_values == before_values:
            raise LabInputError("fix_nothing")
        return _audited_change(
            ctx,
            session,
            found,
            action="correct",
            audited=(before_values, {**after_values, **({"reason": reason} if reason else {})}),
            moments=[old_drawn_at, drawn_at],
            actor=actor,
            now=now,
        )


def _audited_change(
    ctx: AppContext,
    session: Session,
    found: tuple[LabResult, Patient, LabView],
    *,
    action: str,
    audited: Values,
    moments: list[datetime],
    actor: str,
    now: datetime,
) -> ChangeOutcome:
    """Records a correction or deletion in the audit trail (`audited`: the values before and
    after) and recomputes every administration the value fed or now could feed, in the
    caller's transaction (clinical spec §4)."""
    lab, patient, before = found
    assert patient.id is not None
    record_change(
        session, AUDIT_ENTITY, lab.id, patient, actor=actor, action=action, values=audited, now=now
    )
    recomputed = recompute(
        session,
        patient_id=patient.id,
        moments=moments,
        administration_ids=before.used_by,
        window=window(ctx),
        now=now,
    )
    return ChangeOutcome(
        before=before, after=view(session, lab, patient.clinic_ref), recomputed=recomputed
    )


def delete_lab_value(
    ctx: AppContext, *, lab_id: int, actor: str, reason: str | None = None
) -> ChangeOutcome:
    """Withdraws a value from every score; it stays in the audit trail and in the table (marked
    deleted), and every administration it fed or could feed is recomputed (clinical spec §4)."""
    now = ctx.clock.now()
    with ctx.session() as session:
        found = _lab_for_change(session, lab_id)
        lab = found[0]
        labs.mark_deleted(session=session, lab=lab, now=now)
        return _audited_change(
            ctx,
            session,
            found,
            action="delete",
            audited=(_audit_values(lab), {"reason": reason} if reason else None),
            moments=[lab.drawn_at],
            actor=actor,
            now=now,
        )


@dataclass(frozen=True)
class LabPage:
    """One page of the clinic's latest lab values, newest first; `more` if another follows."""

    page: int
    labs: list[LabView]
    more: bool


def latest_lab_values(
    ctx: AppContext, *, page: int = 1, page_size: int = 20, include_deleted: bool = False
) -> LabPage:
    """The latest lab values across the clinic, most recently drawn first, a page at a time
    (`lab list` without a patient: what has come in lately)."""
    with ctx.session() as session:
        rows = labs.latest_lab_results_of_clinic(
            session=session,
            offset=(page - 1) * page_size,
            limit=page_size + 1,
            include_deleted=include_deleted,
        )
        shown = [view(session, lab, clinic_ref) for lab, clinic_ref in rows[:page_size]]
    return LabPage(page=page, labs=shown, more=len(rows) > page_size)


def list_lab_values(
    ctx: AppContext, *, clinic_ref: str, include_deleted: bool = False
) -> list[LabView]:
    """A patient's lab values, oldest first, with the administrations each one feeds."""
    with ctx.session() as session:
        patient = find_patient(session, clinic_ref)
        assert patient.id is not None
        return [
            view(session, lab, patient.clinic_ref)
            for lab in labs.list_lab_results(
                session=session, patient_id=patient.id, include_deleted=include_deleted
            )
        ]
