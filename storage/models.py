"""Table models: the single definition of spondybot's schema (Alembic migrations mirror it).

Identifying data is confined: a patient's clinic reference and display name live on `Patient`,
Telegram user and chat ids only on `ChatLink`. Everything else refers to the patient by row id.
"""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    Index,
    Integer,
    String,
    Table,
    Text,
    Time,
    UniqueConstraint,
    text,
)
from sqlmodel import Field, SQLModel

from storage.column_types import ExactDecimal, UTCDateTime


class Role(StrEnum):
    """Who an enrollment code or a physician account is for."""

    PATIENT = "patient"
    PHYSICIAN = "physician"
    ADMIN = "admin"


class PatientStatus(StrEnum):
    """Where a patient stands; only ACTIVE patients are sent questionnaires."""

    INVITED = "invited"  # clinic created the record; Telegram not linked yet
    ONBOARDING = "onboarding"  # linked; consent or preferences still missing
    ACTIVE = "active"
    PAUSED = "paused"
    WITHDRAWN = "withdrawn"  # stopped, answers kept for the clinic
    DELETED = "deleted"  # stopped, answers and link deleted


class AdministrationStatus(StrEnum):
    """Life of one questionnaire; MISSED keeps partial answers (reported as incomplete)."""

    OPEN = "open"
    COMPLETED = "completed"
    MISSED = "missed"


class AdministrationKind(StrEnum):
    SCHEDULED = "scheduled"
    CHECKIN = "checkin"


class Analyte(StrEnum):
    CRP = "crp"
    ESR = "esr"


class DeliveryStatus(StrEnum):
    # Queued: written in the transaction that made it due (a late lab value's alert), waiting
    # for a tick to claim and send it.
    QUEUED = "queued"
    CLAIMED = "claimed"
    SENT = "sent"
    FAILED = "failed"
    UNREACHABLE = "unreachable"


def _dt(*, nullable: bool = True, index: bool = False) -> Column[datetime]:
    return Column(UTCDateTime(), nullable=nullable, index=index)


def _dec(*, nullable: bool = True) -> Column[Decimal]:
    return Column(ExactDecimal(), nullable=nullable)


class Physician(SQLModel, table=True):
    """A physician (or clinic admin) who follows patients and receives the digest."""

    id: int | None = Field(default=None, primary_key=True)
    display_name: str = Field(max_length=200)
    email: str | None = Field(default=None, max_length=320)
    role: str = Field(default=Role.PHYSICIAN.value, max_length=16)
    language: str = Field(default="en", max_length=8)
    timezone: str = Field(default="UTC", max_length=64)
    digest_weekday: int = Field(default=0)
    digest_time: time = Field(default=time(8, 0), sa_column=Column(Time(), nullable=False))
    alerts_enabled: bool = Field(default=False)
    created_at: datetime = Field(sa_column=_dt(nullable=False))
    deactivated_at: datetime | None = Field(default=None, sa_column=_dt())
    """Set when the physician left the clinic: no access, no digest; their patients are still
    followed and shown to admins as needing a new physician."""


class Patient(SQLModel, table=True):
    """A patient followed by one physician; `clinic_ref` and `display_name` identify them."""

    __table_args__ = (UniqueConstraint("clinic_ref", name="uq_patient_clinic_ref"),)

    id: int | None = Field(default=None, primary_key=True)
    physician_id: int = Field(foreign_key="physician.id", index=True)
    clinic_ref: str = Field(max_length=64)
    display_name: str | None = Field(default=None, max_length=200)
    research_id: str = Field(max_length=64, unique=True)
    language: str = Field(default="en", max_length=8)
    timezone: str = Field(default="UTC", max_length=64)
    schedule_weekday: int = Field(default=0)
    schedule_time: time = Field(default=time(18, 0), sa_column=Column(Time(), nullable=False))
    status: str = Field(default=PatientStatus.INVITED.value, max_length=16, index=True)
    onboarding_step: str | None = Field(default=None, max_length=32)
    consent_version: str | None = Field(default=None, max_length=32)
    consent_at: datetime | None = Field(default=None, sa_column=_dt())
    paused_until: datetime | None = Field(default=None, sa_column=_dt())
    unreachable_since: datetime | None = Field(default=None, sa_column=_dt())
    withdrawn_at: datetime | None = Field(default=None, sa_column=_dt())
    baseline_date: datetime | None = Field(default=None, sa_column=_dt())
    # The clinic's choice for the weekly safety check-in; None follows clinical spec §8's
    # default (on while a TNF, IL-17 or JAK inhibitor episode is open).
    safety_checkin: bool | None = Field(default=None)
    created_at: datetime = Field(sa_column=_dt(nullable=False))
    # No weekly slot can fall due before this instant (a lower bound, kept by the tick), so an
    # idle tick reads only the patients whose check has come; None: not known, compute it.
    # Cleared whenever something that decides the slots changes (storage.patients).
    next_check_at: datetime | None = Field(default=None, sa_column=_dt(index=True))


class EnrollmentCode(SQLModel, table=True):
    """A one-time code; only its HMAC under the server secret is stored, so a database leak
    reveals no usable code and cannot be searched offline."""

    id: int | None = Field(default=None, primary_key=True)
    code_hash: str = Field(max_length=64, unique=True)
    role: str = Field(max_length=16)
    patient_id: int | None = Field(default=None, foreign_key="patient.id", index=True)
    physician_id: int | None = Field(default=None, foreign_key="physician.id", index=True)
    created_at: datetime = Field(sa_column=_dt(nullable=False))
    expires_at: datetime = Field(sa_column=_dt(nullable=False))
    used_at: datetime | None = Field(default=None, sa_column=_dt())
    revoked_at: datetime | None = Field(default=None, sa_column=_dt())


class EnrollmentAttempt(SQLModel, table=True):
    """A failed code entry, keyed by a keyed hash of the account so no Telegram id is kept here."""

    id: int | None = Field(default=None, primary_key=True)
    account_hash: str = Field(max_length=64, index=True)
    attempted_at: datetime = Field(sa_column=_dt(nullable=False, index=True))


class ChatLink(SQLModel, table=True):
    """The only table holding Telegram user and chat ids; one account links one person."""

    id: int | None = Field(default=None, primary_key=True)
    telegram_user_id: int = Field(sa_column=Column(BigInteger(), nullable=False, unique=True))
    chat_id: int = Field(sa_column=Column(BigInteger(), nullable=False))
    patient_id: int | None = Field(default=None, foreign_key="patient.id", unique=True)
    physician_id: int | None = Field(default=None, foreign_key="physician.id", unique=True)
    linked_at: datetime = Field(sa_column=_dt(nullable=False))


class Administration(SQLModel, table=True):
    """One questionnaire sent to one patient for one slot; its row is the conversation state."""

    __table_args__ = (
        UniqueConstraint("patient_id", "kind", "slot_at", name="uq_administration_slot"),
        Index("ix_administration_status_patient", "status", "patient_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    kind: str = Field(default=AdministrationKind.SCHEDULED.value, max_length=16)
    slot_at: datetime = Field(sa_column=_dt(nullable=False))
    status: str = Field(default=AdministrationStatus.OPEN.value, max_length=16)
    current_item: str | None = Field(default=None, max_length=32)
    return_to_summary: bool = Field(default=False)
    instrument_version: str = Field(max_length=64)
    language: str = Field(max_length=8)
    opened_at: datetime = Field(sa_column=_dt(nullable=False))
    started_at: datetime | None = Field(default=None, sa_column=_dt())
    completed_at: datetime | None = Field(default=None, sa_column=_dt())
    expires_at: datetime = Field(sa_column=_dt(nullable=False, index=True))
    next_reminder_at: datetime | None = Field(default=None, sa_column=_dt(index=True))
    reminders_sent: int = Field(default=0)
    question_message_id: int | None = Field(default=None, sa_column=Column(BigInteger()))


class Answer(SQLModel, table=True):
    """One item's current answer; corrections update it and the audit trail keeps the history."""

    __table_args__ = (UniqueConstraint("administration_id", "item_code", name="uq_answer_item"),)

    id: int | None = Field(default=None, primary_key=True)
    administration_id: int = Field(foreign_key="administration.id", index=True)
    item_code: str = Field(max_length=32)
    raw_value: Decimal = Field(sa_column=_dec(nullable=False))
    score: Decimal = Field(sa_column=_dec(nullable=False))
    version: int = Field(default=1)
    answered_at: datetime = Field(sa_column=_dt(nullable=False))


class LabResult(SQLModel, table=True):
    """A CRP or ESR value from the clinic's lab; `value_normalised` is mg/L (CRP) or mm/h (ESR)."""

    __table_args__ = (
        Index("ix_lab_patient_analyte_drawn", "patient_id", "analyte", "drawn_at"),
        # One current value per sample (patient, analyte, draw time), even with two writers;
        # a deleted value no longer blocks entering the right one.
        Index(
            "uq_lab_current_sample",
            "patient_id",
            "analyte",
            "drawn_at",
            unique=True,
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patient.id")
    analyte: str = Field(max_length=8)
    value: Decimal = Field(sa_column=_dec(nullable=False))
    unit: str = Field(max_length=16)
    value_normalised: Decimal = Field(sa_column=_dec(nullable=False))
    below_detection_limit: bool = Field(default=False)
    drawn_at: datetime = Field(sa_column=_dt(nullable=False))
    source: str = Field(max_length=16)
    source_key: str | None = Field(default=None, max_length=128, unique=True)
    entered_by: str = Field(max_length=120)
    created_at: datetime = Field(sa_column=_dt(nullable=False))
    deleted_at: datetime | None = Field(default=None, sa_column=_dt())


class PendingLabEntry(SQLModel, table=True):
    """A lab entry a physician typed in chat, shown for confirmation and stored only on "Save".

    Kept here rather than in process memory so the Save button works after a restart and from
    any process; the button carries only this row's id.
    """

    id: int | None = Field(default=None, primary_key=True)
    physician_id: int = Field(foreign_key="physician.id", index=True)
    patient_id: int = Field(foreign_key="patient.id")
    crp_value: Decimal = Field(sa_column=_dec(nullable=False))
    crp_unit: str = Field(max_length=16)
    crp_below_detection_limit: bool = Field(default=False)
    esr_value: Decimal | None = Field(default=None, sa_column=_dec())
    drawn_at: datetime = Field(sa_column=_dt(nullable=False))
    status: str = Field(default="pending", max_length=16)
    created_at: datetime = Field(sa_column=_dt(nullable=False))
    expires_at: datetime = Field(sa_column=_dt(nullable=False))
    resolved_at: datetime | None = Field(default=None, sa_column=_dt())


class ScoreRecord(SQLModel, table=True):
    """Scores of one administration with the lab values they used (provenance), recomputed
    whenever an answer or a lab value in its window changes."""

    id: int | None = Field(default=None, primary_key=True)
    administration_id: int = Field(foreign_key="administration.id", unique=True)
    basdai: Decimal | None = Field(default=None, sa_column=_dec())
    asdas_crp: Decimal | None = Field(default=None, sa_column=_dec())
    # Indexed: "which scores used this lab value" is asked on lab changes and by the export.
    asdas_crp_lab_id: int | None = Field(default=None, foreign_key="labresult.id", index=True)
    crp_floored: bool = Field(default=False)
    asdas_esr: Decimal | None = Field(default=None, sa_column=_dec())
    asdas_esr_lab_id: int | None = Field(default=None, foreign_key="labresult.id", index=True)
    computed_at: datetime = Field(sa_column=_dt(nullable=False))


class TherapyColumns(SQLModel):
    """The columns a therapy episode and a change waiting for Save share (clinical spec §7):
    declared once, so the two tables cannot drift apart."""

    drug: str = Field(max_length=120)
    therapy_class: str = Field(max_length=32)
    dose: str | None = Field(default=None, max_length=120)
    start_date: date = Field(sa_type=Date)
    stop_date: date | None = Field(default=None, sa_type=Date)
    stop_reason: str | None = Field(default=None, max_length=32)


class TherapyEpisodeRow(TherapyColumns, table=True):
    """One drug a patient takes from `start_date` to `stop_date` (open while None), clinical
    spec §7; overlapping rows are a combination. Corrections change the row and the audit
    trail keeps the old values."""

    __tablename__ = "therapyepisode"
    __table_args__ = (Index("ix_therapyepisode_patient_start", "patient_id", "start_date"),)

    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patient.id")
    entered_by: str = Field(max_length=120)
    created_at: datetime = Field(sa_column=_dt(nullable=False))
    updated_at: datetime = Field(sa_column=_dt(nullable=False))


class PendingTherapyChange(TherapyColumns, table=True):
    """A therapy episode a physician typed in chat (`/therapy <ref> add|stop …`), shown for
    confirmation and applied only on "Save" (clinical spec §7).

    Kept here rather than in process memory, like `PendingLabEntry`, so the Save button works
    after a restart and from any process; the button carries only this row's id.
    """

    __tablename__ = "pendingtherapychange"

    id: int | None = Field(default=None, primary_key=True)
    physician_id: int = Field(foreign_key="physician.id", index=True)
    patient_id: int = Field(foreign_key="patient.id")
    action: str = Field(max_length=8)
    therapy_id: int | None = Field(default=None, foreign_key="therapyepisode.id")
    status: str = Field(default="pending", max_length=16)
    created_at: datetime = Field(sa_column=_dt(nullable=False))
    expires_at: datetime = Field(sa_column=_dt(nullable=False))
    resolved_at: datetime | None = Field(default=None, sa_column=_dt())


class SafetyCheckin(SQLModel, table=True):
    """One safety check-in (clinical spec §8): the weekly one after a questionnaire, or an event
    the patient reports any time. Its row is the conversation state, like an administration's.

    `current_question` is the question being asked, or "summary" once all are answered.
    """

    __table_args__ = (
        UniqueConstraint("administration_id", name="uq_safetycheckin_administration"),
        Index("ix_safetycheckin_patient_status", "patient_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patient.id")
    administration_id: int | None = Field(default=None, foreign_key="administration.id")
    kind: str = Field(max_length=16)
    status: str = Field(default="open", max_length=16)
    current_question: str | None = Field(default=None, max_length=32)
    version: str = Field(max_length=32)
    language: str = Field(max_length=8)
    opened_at: datetime = Field(sa_column=_dt(nullable=False))
    confirmed_at: datetime | None = Field(default=None, sa_column=_dt())


class SafetyAnswer(SQLModel, table=True):
    """One yes/no answer of a safety check-in, stored the moment it is given, with the
    question set's version; a change before confirming updates it (the audit keeps the old)."""

    __table_args__ = (
        UniqueConstraint("checkin_id", "question_code", name="uq_safetyanswer_question"),
    )

    id: int | None = Field(default=None, primary_key=True)
    checkin_id: int = Field(foreign_key="safetycheckin.id", index=True)
    question_code: str = Field(max_length=32)
    answer_yes: bool
    note: str | None = Field(default=None, max_length=500)
    version: str = Field(max_length=32)
    answered_at: datetime = Field(sa_column=_dt(nullable=False))


class AuditEvent(SQLModel, table=True):
    """Append-only trail of every change to answers, lab values and patient records."""

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_column=_dt(nullable=False, index=True))
    actor: str = Field(max_length=120)
    entity: str = Field(max_length=32)
    entity_id: int | None = Field(default=None)
    patient_id: int | None = Field(default=None, index=True)
    action: str = Field(max_length=32)
    before: str | None = Field(default=None, sa_column=Column(Text()))
    after: str | None = Field(default=None, sa_column=Column(Text()))


class Delivery(SQLModel, table=True):
    """One scheduled outgoing message, claimed by its dedupe key before it is sent."""

    id: int | None = Field(default=None, primary_key=True)
    dedupe_key: str = Field(max_length=160, unique=True)
    kind: str = Field(max_length=32)
    patient_id: int | None = Field(default=None, foreign_key="patient.id", index=True)
    physician_id: int | None = Field(default=None, foreign_key="physician.id", index=True)
    administration_id: int | None = Field(default=None, foreign_key="administration.id")
    status: str = Field(default=DeliveryStatus.CLAIMED.value, max_length=16, index=True)
    claimed_at: datetime = Field(sa_column=_dt(nullable=False))
    sent_at: datetime | None = Field(default=None, sa_column=_dt())
    attempts: int = Field(default=0)
    error: str | None = Field(default=None, sa_column=Column(String(500)))


class SchedulerMark(SQLModel, table=True):
    """How far in time the scheduler's due work has been handled by a completed tick.

    Weekly slots up to `handled_until` were seen by a running scheduler; a slot after it fell
    into downtime and is caught up once. This tells downtime apart from a patient who was
    paused (or not yet active) at their slot, whose slot is rightly skipped.
    """

    name: str = Field(primary_key=True, max_length=32)
    handled_until: datetime = Field(sa_column=_dt(nullable=False))


class SendBudget(SQLModel, table=True):
    """Scheduled messages sent in one wall-clock second by every process together, so that
    two ticking processes share SEND_RATE_PER_SECOND instead of each sending at it."""

    second: int = Field(sa_column=Column(BigInteger(), primary_key=True, autoincrement=False))
    used: int = Field(default=0)


class ProcessedUpdate(SQLModel, table=True):
    """Telegram update ids already handled, so a re-delivered update changes nothing.

    `message_key` names what the update carries (`m:<chat>:<message>` for a message,
    `q:<user>:<callback query id>` for a button press), so the same message delivered again
    under a new update id is recognised too. It names a Telegram account, so deleting a
    patient's data clears it (`storage.patients.delete_patient_data`).
    """

    update_id: int = Field(sa_column=Column(BigInteger(), primary_key=True, autoincrement=False))
    message_key: str | None = Field(default=None, max_length=64, unique=True)
    processed_at: datetime = Field(sa_column=_dt(nullable=False, index=True))


class ExportAudit(SQLModel, table=True):
    """Who exported what, when, and the SHA-256 of what left the clinic."""

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_column=_dt(nullable=False))
    by: str = Field(max_length=120)
    format: str = Field(max_length=16)
    filters: str = Field(sa_column=Column(Text(), nullable=False))
    rows: int = Field(sa_column=Column(Integer(), nullable=False))
    sha256: str = Field(max_length=64)
    destination: str | None = Field(default=None, max_length=500)


class StaffRole(StrEnum):
    """What a clinic web app account may do (docs/web.md, "Roles")."""

    ADMIN = "admin"  # staff accounts, physicians, every patient
    PHYSICIAN = "physician"  # their own patients only
    NURSE = "nurse"  # enrollment and lab entry for the physicians they are assigned to
    RESEARCHER = "researcher"  # exports only, never an identifier


class SessionStage(StrEnum):
    """How far a web session got through sign-in; only FULL opens the clinic's pages."""

    SECOND_FACTOR = "second_factor"  # password right, TOTP code still due
    SETUP_SECOND_FACTOR = "setup_second_factor"  # the role requires TOTP; none set up yet
    FULL = "full"


class StaffAccount(SQLModel, table=True):
    """A person who signs in to the clinic web app; deactivated, never deleted.

    `physician_id` ties a physician's account to the physician record whose patients they
    follow. Only the Argon2 hash of the password is kept.
    """

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, unique=True)
    role: str = Field(max_length=16)
    language: str = Field(default="en", max_length=8)
    physician_id: int | None = Field(default=None, foreign_key="physician.id", index=True)
    password_hash: str | None = Field(default=None, sa_column=Column(Text()))
    totp_secret: str | None = Field(default=None, max_length=64)
    active: bool = Field(default=True)
    created_at: datetime = Field(sa_column=_dt(nullable=False))
    deactivated_at: datetime | None = Field(default=None, sa_column=_dt())


class NurseAssignment(SQLModel, table=True):
    """A nurse works for a physician: enrollment and lab entry for that physician's patients."""

    __table_args__ = (UniqueConstraint("account_id", "physician_id", name="uq_nurse_assignment"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="staffaccount.id", index=True)
    physician_id: int = Field(foreign_key="physician.id")


class PasswordLink(SQLModel, table=True):
    """A one-time link that sets an account's password; only the token's SHA-256 is kept."""

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="staffaccount.id", index=True)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(sa_column=_dt(nullable=False))
    expires_at: datetime = Field(sa_column=_dt(nullable=False))
    used_at: datetime | None = Field(default=None, sa_column=_dt())


class WebSession(SQLModel, table=True):
    """A signed-in browser, kept server-side so it can be revoked; the cookie holds a token
    whose SHA-256 is `token_hash`. Idle and absolute timeouts are checked on every request."""

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    account_id: int = Field(foreign_key="staffaccount.id", index=True)
    stage: str = Field(max_length=24)
    csrf_token: str = Field(max_length=64)
    pending_totp_secret: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(sa_column=_dt(nullable=False))
    last_seen_at: datetime = Field(sa_column=_dt(nullable=False))
    expires_at: datetime = Field(sa_column=_dt(nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=_dt())


class LoginFailure(SQLModel, table=True):
    """A failed sign-in, under a keyed hash of the account's e-mail or of the address it came
    from, so throttling works across processes without keeping addresses in clear."""

    id: int | None = Field(default=None, primary_key=True)
    key_hash: str = Field(max_length=64, index=True)
    at: datetime = Field(sa_column=_dt(nullable=False, index=True))


class RolePolicy(SQLModel, table=True):
    """What an admin requires of every account of a role (today: a TOTP second factor)."""

    role: str = Field(primary_key=True, max_length=16)
    totp_required: bool = Field(default=False)


class ExportJobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class ExportJob(SQLModel, table=True):
    """A research export asked for in the web app and run in the background; its progress is
    here, so any web process can show it, and its file is downloaded by the person who asked
    (or an admin). What left the clinic is in `exportaudit`, as for every export."""

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="staffaccount.id", index=True)
    format: str = Field(max_length=16)
    filters: str = Field(sa_column=Column(Text(), nullable=False))
    status: str = Field(default=ExportJobStatus.QUEUED.value, max_length=16)
    total: int = Field(default=0)
    done: int = Field(default=0)
    rows: int | None = Field(default=None)
    sha256: str | None = Field(default=None, max_length=64)
    audit_id: int | None = Field(default=None, foreign_key="exportaudit.id")
    file_name: str | None = Field(default=None, max_length=200)
    error: str | None = Field(default=None, sa_column=Column(String(500)))
    created_at: datetime = Field(sa_column=_dt(nullable=False))
    updated_at: datetime = Field(sa_column=_dt(nullable=False))
    finished_at: datetime | None = Field(default=None, sa_column=_dt())


def table_of(model: type[SQLModel]) -> Table:
    """The Core table of a model, for statements built once at import (SQLModel does not
    declare `__table__` to type checkers)."""
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, Table)
    return table
