"""The weekly physician digest: who needs attention, who is improving, every patient's line.

`build_digest` reads a physician's panel with a fixed number of queries (storage.digest) and
judges each patient with the pure rules of `bot.domain.attention`. The week covered is an ISO
week in the physician's time zone: a digest delivered in week W covers week W-1, the last
complete week. Delivery is claimed per physician, channel and week in the delivery log, so
it goes out once however many processes tick (`due_digests`, `claim_digest`).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from operator import attrgetter
from typing import Final
from zoneinfo import ZoneInfo

from sqlmodel import Session

from bot.config import PatientIdentifier
from bot.context import AppContext
from bot.domain import attention, scoring, treatment
from bot.domain import safety as safety_rules
from bot.domain.treatment import AsdasVariant, EpisodeReading
from bot.services import therapy as therapy_service
from bot.services.identifiers import identifier_of
from storage import administrations, deliveries, physicians, scores, therapies
from storage import digest as digest_storage
from storage import safety as safety_storage
from storage.db import planned_for_index_reads
from storage.models import (
    AdministrationKind,
    AdministrationStatus,
    Patient,
    PatientStatus,
    Physician,
    TherapyEpisodeRow,
)

# Re-exported, so senders record outcomes without importing storage themselves.
from storage.models import DeliveryStatus as DeliveryStatus

LISTED_STATUSES: Final = (PatientStatus.ACTIVE.value, PatientStatus.PAUSED.value)
"""Patients a digest lists: enrolled and not withdrawn (paused ones are marked as such)."""

# The stored values compared for every questionnaire of a panel's year, looked up once.
_COMPLETED: Final = AdministrationStatus.COMPLETED.value
_MISSED: Final = AdministrationStatus.MISSED.value
_OPEN: Final = AdministrationStatus.OPEN.value
_SCHEDULED: Final = AdministrationKind.SCHEDULED.value

CHART_WEEKS: Final = 12
COMPLETION_WEEKS: Final = 4
TELEGRAM_KIND: Final = "digest"
EMAIL_KIND: Final = "digest_email"
ALERT_KIND: Final = "alert"
LAB_ALERT_KIND: Final = "alert_lab"
_WEEK_RE = re.compile(r"^(\d{4})-?W(\d{1,2})$", re.IGNORECASE)


class DigestError(ValueError):
    """A digest request that cannot be carried out; the message is shown as is."""


@dataclass(frozen=True, order=True)
class IsoWeek:
    """An ISO 8601 week (Monday to Sunday), written like 2026-W14."""

    year: int
    week: int

    @classmethod
    def parse(cls, text: str) -> IsoWeek:
        """The week written as "2026-W14" (or "2026W14"); ValueError when malformed."""
        match = _WEEK_RE.match(text.strip())
        if match is None:
            raise ValueError(f"week must look like 2026-W14, got {text!r}")
        year, week = int(match.group(1)), int(match.group(2))
        try:
            date.fromisocalendar(year, week, 1)
        except ValueError:
            raise ValueError(f"{year} has no ISO week {week}") from None
        return cls(year, week)

    @classmethod
    def containing(cls, day: date) -> IsoWeek:
        year, week, _ = day.isocalendar()
        return cls(year, week)

    def monday(self) -> date:
        return date.fromisocalendar(self.year, self.week, 1)

    def sunday(self) -> date:
        return self.monday() + timedelta(days=6)

    def previous(self) -> IsoWeek:
        return IsoWeek.containing(self.monday() - timedelta(days=7))

    def next(self) -> IsoWeek:
        return IsoWeek.containing(self.monday() + timedelta(days=7))

    def start(self, timezone: str) -> datetime:
        """Monday 00:00 in the time zone, as aware UTC."""
        local = datetime.combine(self.monday(), time(0, 0), tzinfo=ZoneInfo(timezone))
        return local.astimezone(UTC)

    def end(self, timezone: str) -> datetime:
        """The next Monday 00:00 in the time zone (exclusive), as aware UTC."""
        return self.next().start(timezone)

    def __str__(self) -> str:
        return f"{self.year}-W{self.week:02d}"


def covered_week(now: datetime, timezone: str) -> IsoWeek:
    """The week a digest built at `now` covers: the last complete ISO week in the time zone."""
    return IsoWeek.containing(now.astimezone(ZoneInfo(timezone)).date()).previous()


def due_at(week: IsoWeek, *, weekday: int, at: time, timezone: str) -> datetime:
    """When a physician's digest falls due in a given week: weekday and local time, in UTC."""
    day = week.monday() + timedelta(days=weekday)
    return datetime.combine(day, at, tzinfo=ZoneInfo(timezone)).astimezone(UTC)


class WeekStatus(StrEnum):
    """How a patient did in one week's scheduled questionnaire."""

    COMPLETED = "completed"
    MISSED = "missed"
    OPEN = "open"
    NONE = "none"


@dataclass(frozen=True)
class PatientLine:
    """One patient in the digest: latest scores with their states, changes and flags.

    Changes are since the previous score of the same kind; `basdai_at` and `asdas_at` are
    the questionnaire slots the scores come from (ASDAS needs a CRP, so it can be older than
    the latest BASDAI). `asdas` is of `asdas_variant` (ASDAS-CRP, or ASDAS-ESR for a patient
    with only ESR values) and is shown with `asdas_drawn_at`, its lab value's date; with
    both variants, `asdas_esr` is the ASDAS-ESR of the same questionnaire (spec §6).
    """

    patient_id: int
    identifier: str
    clinic_ref: str
    paused: bool
    basdai: Decimal | None
    basdai_at: datetime | None
    basdai_active: bool
    basdai_change: Decimal | None
    asdas: Decimal | None
    asdas_state: scoring.AsdasState | None
    asdas_at: datetime | None
    asdas_change: Decimal | None
    trend: attention.Trend
    last_weeks: tuple[WeekStatus, ...]
    concerns: tuple[attention.Flag, ...]
    progress: tuple[attention.Flag, ...]
    history: tuple[attention.Observation, ...]
    severity: tuple[int, ...]
    asdas_variant: attention.Variant = attention.Variant.CRP
    asdas_drawn_at: datetime | None = None
    asdas_esr: Decimal | None = None
    asdas_esr_state: scoring.AsdasState | None = None
    asdas_esr_drawn_at: datetime | None = None
    baseline_drug: str | None = None
    baseline_start: date | None = None


@dataclass(frozen=True)
class CurrentBaseline:
    """The current therapy episode of a patient and its §7 baseline, which "improving" is
    measured against (clinical spec §7)."""

    therapy: therapy_service.TherapyView
    baseline: treatment.Baseline


@dataclass(frozen=True)
class Digest:
    """A physician's digest for one ISO week, ready to be rendered in their language."""

    physician_id: int
    language: str
    timezone: str
    email: str | None
    week: IsoWeek
    first_day: date
    last_day: date
    patients_active: int
    patients_paused: int
    completed: int
    missed: int
    pending: int
    completion_rate: Fraction | None
    """The share of this week's finished questionnaires that were completed, exact (0 to 1);
    None when none was due."""
    attention: tuple[PatientLine, ...]
    improving: tuple[PatientLine, ...]
    patients: tuple[PatientLine, ...]
    no_crp_weeks: int
    chart_weeks: int = CHART_WEEKS
    treatment: tuple[TreatmentNote, ...] = ()
    safety: tuple[SafetyNote, ...] = ()


TREATMENT_DUE_AHEAD_WEEKS: Final = 4
"""Response assessments due within this many weeks after the digest's week are listed."""


class TreatmentKind(StrEnum):
    """Why an episode is in the digest's treatment section (clinical spec §7)."""

    ASSESSED = "assessed"  # response assessed this week (with the numbers)
    NO_RESPONSE = "no_response"  # primary non-response at the assessment this week
    LOSS = "loss"  # loss of response confirmed this week
    DUE = "due"  # assessment window open, or opening in the coming weeks


@dataclass(frozen=True)
class TreatmentNote:
    """One episode's news for the physician this week."""

    patient_id: int
    identifier: str
    kind: TreatmentKind
    therapy: therapy_service.TherapyView
    reading: EpisodeReading


@dataclass(frozen=True)
class SafetyNote:
    """One "yes" in a safety check-in this week (clinical spec §8), with its date."""

    patient_id: int
    identifier: str
    answered_at: datetime
    question: str
    note: str | None
    alerted_now: bool


def _share(part: int, whole: int) -> Fraction | None:
    return None if whole == 0 else Fraction(part, whole)


def _observation(row: digest_storage.AdministrationRow) -> attention.Observation:
    return attention.Observation(
        row.slot_at, row.basdai, row.asdas_crp, row.asdas_esr, row.crp_drawn_at, row.esr_drawn_at
    )


def _week_status(rows: list[digest_storage.AdministrationRow]) -> WeekStatus:
    statuses = {row.status for row in rows}
    for status, result in (
        (AdministrationStatus.COMPLETED.value, WeekStatus.COMPLETED),
        (AdministrationStatus.OPEN.value, WeekStatus.OPEN),
        (AdministrationStatus.MISSED.value, WeekStatus.MISSED),
    ):
        if status in statuses:
            return result
    return WeekStatus.NONE


def _patient_line(
    patient: Patient,
    rows: list[digest_storage.AdministrationRow],
    *,
    last_crp_at: datetime | None,
    week: IsoWeek,
    timezone: str,
    identifier: PatientIdentifier,
    no_crp_weeks: int,
    current: CurrentBaseline | None = None,
) -> PatientLine:
    as_of = week.end(timezone)
    completed = [row for row in rows if row.status == _COMPLETED]
    base = None if current is None else current.baseline
    asdas_baseline_at = (
        None
        if base is None or base.asdas is None or base.asdas_variant is None
        else _baseline_moment(
            completed,
            base.asdas,
            lambda row: row.asdas_crp if base.asdas_variant is AsdasVariant.CRP else row.asdas_esr,
            timezone,
        )
    )
    basdai_baseline_at = (
        None
        if base is None or base.basdai is None
        else _baseline_moment(completed, base.basdai, lambda row: row.basdai, timezone)
    )
    measured_from_episode = asdas_baseline_at is not None or basdai_baseline_at is not None
    scheduled = [row for row in rows if row.kind == _SCHEDULED]
    facts = attention.PatientFacts(
        as_of=as_of,
        observations=[_observation(row) for row in completed],
        scheduled_missed=[row.status == _MISSED for row in scheduled if row.status != _OPEN],
        unreachable_since=patient.unreachable_since,
        last_crp_at=last_crp_at,
        baseline_at=patient.baseline_date,
        asdas_baseline_at=asdas_baseline_at,
        basdai_baseline_at=basdai_baseline_at,
    )
    judged = attention.assess(facts, no_crp_weeks=no_crp_weeks)
    weeks = [week]
    for _ in range(COMPLETION_WEEKS - 1):
        weeks.insert(0, weeks[0].previous())
    by_week: dict[IsoWeek, list[digest_storage.AdministrationRow]] = defaultdict(list)
    zone = ZoneInfo(timezone)
    shown_from = weeks[0].start(timezone)
    for row in scheduled:
        # Only the weeks shown are sorted into weeks, not the whole history.
        if shown_from <= row.slot_at < as_of:
            by_week[IsoWeek.containing(row.slot_at.astimezone(zone).date())].append(row)
    chart_from = week.start(timezone) - timedelta(weeks=CHART_WEEKS - 1)
    latest_basdai, previous_basdai = judged.latest_basdai, judged.previous_basdai
    latest_asdas, previous_asdas = judged.latest_asdas, judged.previous_asdas
    variant = judged.variant
    asdas_value = judged.latest_asdas_value
    # With both variants, ASDAS-CRP drives the flags and ASDAS-ESR is shown beside it.
    esr_beside = (
        latest_asdas.asdas_esr
        if latest_asdas is not None and variant is attention.Variant.CRP
        else None
    )
    basdai_value = None if latest_basdai is None else latest_basdai.basdai
    return PatientLine(
        patient_id=patient.id or 0,
        identifier=identifier_of(patient, identifier),
        clinic_ref=patient.clinic_ref,
        paused=patient.status == PatientStatus.PAUSED.value,
        basdai=basdai_value,
        basdai_at=None if latest_basdai is None else latest_basdai.at,
        basdai_active=basdai_value is not None and scoring.basdai_active(basdai_value),
        basdai_change=_change(latest_basdai, previous_basdai, "basdai"),
        asdas=asdas_value,
        asdas_state=None if asdas_value is None else scoring.asdas_category(asdas_value),
        asdas_at=None if latest_asdas is None else latest_asdas.at,
        asdas_change=_asdas_change(latest_asdas, previous_asdas, variant),
        trend=judged.trend,
        last_weeks=tuple(_week_status(by_week.get(each, [])) for each in weeks),
        concerns=judged.concerns,
        progress=judged.progress,
        history=tuple(
            observation
            for observation in facts.observations
            if chart_from <= observation.at < as_of
        ),
        severity=judged.severity_key(),
        asdas_variant=variant,
        asdas_drawn_at=None if latest_asdas is None else latest_asdas.lab_at(variant),
        asdas_esr=esr_beside,
        asdas_esr_state=None if esr_beside is None else scoring.asdas_category(esr_beside),
        asdas_esr_drawn_at=(
            None
            if esr_beside is None or latest_asdas is None
            else latest_asdas.lab_at(attention.Variant.ESR)
        ),
        baseline_drug=current.therapy.drug if current and measured_from_episode else None,
        baseline_start=current.therapy.start if current and measured_from_episode else None,
    )


def _baseline_moment(
    completed: list[digest_storage.AdministrationRow],
    value: treatment.BaselineValue,
    value_of: Callable[[digest_storage.AdministrationRow], Decimal | None],
    timezone: str,
) -> datetime | None:
    """The questionnaire that is an episode's baseline score (clinical spec §7): completed on
    the baseline's clinic day with that score; the last of that day before the start, the
    first after it, as §7 chooses. Its `slot_at` is the moment the attention rules compare."""
    zone = ZoneInfo(timezone)
    same = [
        row
        for row in completed
        # The score first: it rules out nearly every row before any time zone arithmetic.
        if value_of(row) == value.value
        and row.completed_at is not None
        and row.completed_at.astimezone(zone).date() == value.day
    ]
    if not same:
        return None
    chosen = same[0] if value.after_start else same[-1]
    return chosen.slot_at


def _asdas_change(
    latest: attention.Observation | None,
    previous: attention.Observation | None,
    variant: attention.Variant,
) -> Decimal | None:
    """The change since the previous ASDAS of the same variant (clinical spec §6)."""
    if latest is None or previous is None:
        return None
    after, before = latest.asdas_of(variant), previous.asdas_of(variant)
    if after is None or before is None:
        return None
    return attention.difference(after, before)


def _change(
    latest: attention.Observation | None,
    previous: attention.Observation | None,
    attribute: str,
) -> Decimal | None:
    if latest is None or previous is None:
        return None
    after, before = getattr(latest, attribute), getattr(previous, attribute)
    if after is None or before is None:
        return None
    return attention.difference(after, before)


def _attention_order(line: PatientLine) -> tuple[object, ...]:
    """Most severe first; among equals, higher ASDAS, then higher BASDAI, then by name."""
    asdas = line.asdas if line.asdas is not None else Decimal(-1)
    basdai = line.basdai if line.basdai is not None else Decimal(-1)
    return (line.severity, -asdas, -basdai, line.identifier.casefold())


_PROGRESS_RANK = {kind: rank for rank, kind in enumerate(attention.Progress)}


def _improving_order(line: PatientLine) -> tuple[object, ...]:
    best = min(_PROGRESS_RANK[attention.Progress(flag.kind)] for flag in line.progress)
    return (best, line.identifier.casefold())


def build_digest(
    ctx: AppContext, *, physician_id: int, week: IsoWeek | None = None
) -> Digest | None:
    """The physician's digest for `week` (default: the last complete week in their time
    zone); None when they have no enrolled patients yet, who would get an empty digest."""
    with ctx.session() as session:
        # A panel's year of questionnaires and scores is read by index, whatever the size of
        # the registry around it.
        planned_for_index_reads(session)
        physician = physicians.get_physician(session=session, physician_id=physician_id)
        if physician is None:
            raise DigestError(f"no physician with id {physician_id}")
        timezone = physician.timezone
        week = week or covered_week(ctx.clock.now(), timezone)
        end = week.end(timezone)
        panel = digest_storage.patients_of(
            session=session, physician_id=physician_id, statuses=LISTED_STATUSES
        )
        if not panel:
            return None
        history = digest_storage.administration_history(
            session=session, before=end, physician_id=physician_id, statuses=LISTED_STATUSES
        )
        crp = digest_storage.last_crp_drawn(session=session, physician_id=physician_id, before=end)
        episodes = therapies.list_therapies_of_many(
            session=session, patient_ids=[p.id for p in panel if p.id is not None]
        )
        # The treated patients' courses (clinical spec §7) are read from the history rather
        # than again: every questionnaire completed by the week's end has its slot before it,
        # and nothing completed later is looked at.
        points_of = therapy_service.score_points_by_patient(
            sorted(
                (
                    row
                    for row in history
                    if row.status == _COMPLETED
                    and row.score_id is not None
                    and row.completed_at is not None
                ),
                key=attrgetter("completed_at", "administration_id"),
            ),
            patient_ids=[patient_id for patient_id, rows in episodes.items() if rows],
            timezone=timezone,
        )
        treatment_notes = _treatment_notes(
            panel,
            episodes,
            points_of,
            week=week,
            identifier=ctx.settings.patient_identifier,
        )
        current = _current_baselines(panel, episodes, points_of, week=week)
        safety_notes = _safety_notes(
            session, panel, week=week, timezone=timezone, identifier=ctx.settings.patient_identifier
        )

    rows_of: dict[int, list[digest_storage.AdministrationRow]] = defaultdict(list)
    for row in history:
        rows_of[row.patient_id].append(row)
    settings = ctx.settings
    lines = [
        _patient_line(
            patient,
            rows_of.get(patient.id or 0, []),
            last_crp_at=crp.get(patient.id or 0),
            week=week,
            timezone=timezone,
            identifier=settings.patient_identifier,
            no_crp_weeks=settings.digest_no_crp_weeks,
            current=current.get(patient.id or 0),
        )
        for patient in panel
    ]
    start = week.start(timezone)
    this_week = [row for row in history if row.kind == _SCHEDULED and start <= row.slot_at < end]
    completed = sum(row.status == _COMPLETED for row in this_week)
    missed = sum(row.status == _MISSED for row in this_week)
    return Digest(
        physician_id=physician_id,
        language=physician.language,
        timezone=timezone,
        email=physician.email,
        week=week,
        first_day=week.monday(),
        last_day=week.sunday(),
        patients_active=sum(not line.paused for line in lines),
        patients_paused=sum(line.paused for line in lines),
        completed=completed,
        missed=missed,
        pending=len(this_week) - completed - missed,
        completion_rate=_share(completed, completed + missed),
        attention=tuple(sorted((ln for ln in lines if ln.concerns), key=_attention_order)),
        improving=tuple(sorted((ln for ln in lines if ln.progress), key=_improving_order)),
        patients=tuple(sorted(lines, key=lambda ln: (ln.identifier.casefold(), ln.patient_id))),
        no_crp_weeks=settings.digest_no_crp_weeks,
        treatment=treatment_notes,
        safety=safety_notes,
    )


def _current_baselines(
    panel: list[Patient],
    episodes: dict[int, list[TherapyEpisodeRow]],
    points_of: dict[int, list[treatment.ScorePoint]],
    *,
    week: IsoWeek,
) -> dict[int, CurrentBaseline]:
    """Each treated patient's current episode (the latest started of those ongoing at the
    week's end) with its §7 baseline, when that baseline has a score (clinical spec §7)."""
    last = week.sunday()
    found: dict[int, CurrentBaseline] = {}
    for patient in panel:
        if patient.id is None:
            continue
        ongoing = [
            row
            for row in episodes.get(patient.id, [])
            if row.start_date <= last and (row.stop_date is None or row.stop_date > last)
        ]
        if not ongoing:
            continue
        row = max(ongoing, key=lambda each: (each.start_date, each.id or 0))
        view = therapy_service.therapy_view(row, patient.clinic_ref)
        points = [point for point in points_of.get(patient.id, []) if point.day <= last]
        base = treatment.baseline(view.episode, points)
        if base.asdas is not None or base.basdai is not None:
            found[patient.id] = CurrentBaseline(therapy=view, baseline=base)
    return found


def _treatment_notes(
    panel: list[Patient],
    episodes: dict[int, list[TherapyEpisodeRow]],
    points_of: dict[int, list[treatment.ScorePoint]],
    *,
    week: IsoWeek,
    identifier: PatientIdentifier,
) -> tuple[TreatmentNote, ...]:
    """The §7 news of the week: responses assessed (and primary non-response), losses of
    response, and assessments due now or within `TREATMENT_DUE_AHEAD_WEEKS` weeks."""
    first, last = week.monday(), week.sunday()
    ahead = last + timedelta(weeks=TREATMENT_DUE_AHEAD_WEEKS)
    notes: list[TreatmentNote] = []
    for patient in panel:
        rows = episodes.get(patient.id or 0, [])
        if not rows or patient.id is None:
            continue
        # As the week stood, even for a digest of an earlier week.
        points = [point for point in points_of[patient.id] if point.day <= last]
        for row in rows:
            view = therapy_service.therapy_view(row, patient.clinic_ref)
            reading = treatment.read_episode(view.episode, points, today=last)
            kinds: list[TreatmentKind] = []
            assessment = reading.assessment
            if assessment is not None and first <= assessment.day <= last:
                kinds.append(
                    TreatmentKind.NO_RESPONSE
                    if reading.judgement is treatment.Judgement.NO_RESPONSE
                    else TreatmentKind.ASSESSED
                )
            if reading.loss is not None and first <= reading.loss.day <= last:
                kinds.append(TreatmentKind.LOSS)
            if reading.judgement is treatment.Judgement.DUE or (
                reading.judgement is treatment.Judgement.NOT_YET_DUE
                and reading.assessment_from <= ahead
            ):
                kinds.append(TreatmentKind.DUE)
            notes.extend(
                TreatmentNote(
                    patient_id=patient.id,
                    identifier=identifier_of(patient, identifier),
                    kind=kind,
                    therapy=view,
                    reading=reading,
                )
                for kind in kinds
            )
    order = list(TreatmentKind)
    return tuple(
        sorted(notes, key=lambda n: (order.index(n.kind), n.identifier.casefold(), n.therapy.start))
    )


def _safety_notes(
    session: Session,
    panel: list[Patient],
    *,
    week: IsoWeek,
    timezone: str,
    identifier: PatientIdentifier,
) -> tuple[SafetyNote, ...]:
    """Every "yes" of the week's safety check-ins, oldest first (clinical spec §8)."""
    by_id = {p.id: p for p in panel if p.id is not None}
    rows = safety_storage.yes_answers_between(
        session=session,
        patient_ids=list(by_id),
        since=week.start(timezone),
        until=week.end(timezone),
    )
    return tuple(
        SafetyNote(
            patient_id=checkin.patient_id,
            identifier=identifier_of(by_id[checkin.patient_id], identifier),
            answered_at=answer.answered_at,
            question=answer.question_code,
            note=answer.note,
            alerted_now=safety_rules.question(answer.question_code).alert_physician_now,
        )
        for checkin, answer in rows
    )


# -- delivery --------------------------------------------------------------------------------


class Channel(StrEnum):
    TELEGRAM = "telegram"
    EMAIL = "email"


def dedupe_key(physician_id: int, week: IsoWeek, channel: Channel) -> str:
    """The delivery-log key that makes a digest go out once per physician, week and channel."""
    prefix = "digest" if channel is Channel.TELEGRAM else "digest-email"
    return f"{prefix}:{physician_id}:{week}"


@dataclass(frozen=True)
class DueDigest:
    """A physician whose digest for `week` is due and not yet claimed on some channel."""

    physician_id: int
    week: IsoWeek
    language: str
    chat_id: int | None
    email: str | None


def due_digests(ctx: AppContext, now: datetime) -> list[DueDigest]:
    """Physicians whose weekly digest time has passed this week (in their own time zone),
    who have enrolled patients, and whose digest for the week is still unclaimed on a
    channel they can be reached on (Telegram, or e-mail when SMTP is configured)."""
    smtp = _email_configured(ctx)
    candidates: list[tuple[Physician, int | None, IsoWeek]] = []
    with ctx.session() as session:
        sizes = digest_storage.panel_sizes(session=session, statuses=LISTED_STATUSES)
        for row in digest_storage.physicians_with_chats(session=session):
            physician = row.physician
            if physician.id is None or sizes.get(physician.id, 0) == 0:
                continue
            local_week = IsoWeek.containing(now.astimezone(ZoneInfo(physician.timezone)).date())
            moment = due_at(
                local_week,
                weekday=physician.digest_weekday,
                at=physician.digest_time,
                timezone=physician.timezone,
            )
            if now >= moment:
                candidates.append((physician, row.chat_id, local_week.previous()))
        keys = [
            dedupe_key(physician.id or 0, week, channel)
            for physician, _, week in candidates
            for channel in Channel
        ]
        taken = digest_storage.existing_keys(session=session, dedupe_keys=keys)
    due = []
    for physician, chat_id, week in candidates:
        physician_id = physician.id or 0
        chat = (
            chat_id
            if chat_id is not None and dedupe_key(physician_id, week, Channel.TELEGRAM) not in taken
            else None
        )
        email = (
            physician.email
            if smtp
            and physician.email
            and dedupe_key(physician_id, week, Channel.EMAIL) not in taken
            else None
        )
        if chat is not None or email is not None:
            due.append(DueDigest(physician_id, week, physician.language, chat, email))
    return due


def claim_digest(
    ctx: AppContext, *, physician_id: int, week: IsoWeek, channel: Channel, now: datetime
) -> int | None:
    """Claims one physician's digest for a week on one channel; the delivery id, or None
    when another process (or an earlier run) already has it."""
    with ctx.session() as session:
        claimed = deliveries.claim_delivery(
            session=session,
            dedupe_key=dedupe_key(physician_id, week, channel),
            kind=TELEGRAM_KIND if channel is Channel.TELEGRAM else EMAIL_KIND,
            now=now,
            physician_id=physician_id,
        )
        return None if claimed is None else claimed.id


def finish_delivery(
    ctx: AppContext,
    *,
    delivery_id: int,
    status: DeliveryStatus,
    attempts: int = 1,
    error: str | None = None,
) -> None:
    """Records how a claimed digest or alert ended."""
    with ctx.session() as session:
        deliveries.finish_delivery(
            session=session,
            delivery_id=delivery_id,
            status=status,
            now=ctx.clock.now(),
            attempts=attempts,
            error=error,
        )


@dataclass(frozen=True)
class Recipients:
    """Where a physician's digest goes: their Telegram chat and, when e-mail is configured,
    their e-mail address (either may be None)."""

    physician_id: int
    chat_id: int | None
    email: str | None


def recipients(ctx: AppContext, *, physician_id: int) -> Recipients:
    """Where a physician can receive the digest; DigestError if there is no such physician."""
    with ctx.session() as session:
        rows = digest_storage.physicians_with_chats(session=session, physician_id=physician_id)
    if not rows:
        raise DigestError(f"no physician with id {physician_id}")
    physician = rows[0].physician
    return Recipients(
        physician_id=physician_id,
        chat_id=rows[0].chat_id,
        email=physician.email if _email_configured(ctx) and physician.email else None,
    )


def _email_configured(ctx: AppContext) -> bool:
    settings = ctx.settings
    return bool(settings.smtp_host) and bool(settings.smtp_from or settings.smtp_user)


# -- the /digest settings --------------------------------------------------------------------


@dataclass(frozen=True)
class DigestSchedule:
    """When a physician's digest arrives, and whether immediate alerts are on."""

    physician_id: int
    language: str
    timezone: str
    weekday: int
    at: time
    alerts_enabled: bool
    chat_id: int | None


def _schedule(row: digest_storage.PhysicianRow) -> DigestSchedule:
    physician = row.physician
    return DigestSchedule(
        physician_id=physician.id or 0,
        language=physician.language,
        timezone=physician.timezone,
        weekday=physician.digest_weekday,
        at=physician.digest_time,
        alerts_enabled=physician.alerts_enabled,
        chat_id=row.chat_id,
    )


def schedule_for_account(ctx: AppContext, *, telegram_user_id: int) -> DigestSchedule | None:
    """The digest schedule of the physician this Telegram account belongs to; None for
    anyone who is not a physician."""
    with ctx.session() as session:
        row = digest_storage.physician_of_account(
            session=session, telegram_user_id=telegram_user_id
        )
        return None if row is None else _schedule(row)


def change_schedule(
    ctx: AppContext,
    *,
    telegram_user_id: int,
    weekday: int | None = None,
    at: time | None = None,
    alerts_enabled: bool | None = None,
) -> DigestSchedule | None:
    """Changes the weekday, the local time or the alerts of the account's physician; None
    for anyone who is not a physician."""
    if weekday is not None and not 0 <= weekday <= 6:
        raise DigestError("weekday must be 0 (Monday) to 6 (Sunday)")
    with ctx.session() as session:
        row = digest_storage.physician_of_account(
            session=session, telegram_user_id=telegram_user_id
        )
        if row is None or row.physician.id is None:
            return None
        physician, physician_id = row.physician, row.physician.id
        if weekday is not None or at is not None:
            physicians.set_digest_schedule(
                session=session,
                physician_id=physician_id,
                weekday=physician.digest_weekday if weekday is None else weekday,
                at=physician.digest_time if at is None else at,
            )
        if alerts_enabled is not None:
            physicians.update_physician(
                session=session, physician_id=physician_id, alerts_enabled=alerts_enabled
            )
        return _schedule(digest_storage.PhysicianRow(physician=physician, chat_id=row.chat_id))


# -- immediate alerts ------------------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    """One short message for a physician about a questionnaire just completed."""

    physician_id: int
    chat_id: int
    language: str
    administration_id: int
    patient_identifier: str
    flags: tuple[attention.Flag, ...]
    completed_at: datetime | None = None
    timezone: str = "UTC"
    late_lab: bool = False
    """True when a lab value entered after the questionnaire completed its ASDAS (spec §6)."""

    @property
    def dedupe_key(self) -> str:
        return f"alert:{self.administration_id}"


def alerts_for_completion(ctx: AppContext, administration_id: int) -> list[Alert]:
    """Alerts a completed questionnaire raises: very high activity (ASDAS > 3.5) or a
    clinically important worsening (ASDAS up ≥ 0.9), for a physician who turned alerts on
    and whose Telegram is linked (clinical spec §3, §6). Empty when nothing is to be said."""
    with ctx.session() as session:
        return _alerts_of(session, ctx.settings.patient_identifier, administration_id)


def _alerts_of(
    session: Session,
    identifier: PatientIdentifier,
    administration_id: int,
    *,
    late_lab: bool = False,
) -> list[Alert]:
    """The alert one completed questionnaire's scores raise now, if its physician wants it."""
    administration = administrations.get_administration(
        session=session, administration_id=administration_id
    )
    if administration is None or administration.status != AdministrationStatus.COMPLETED.value:
        return []
    patient = session.get(Patient, administration.patient_id)
    if patient is None:
        return []
    rows = digest_storage.physicians_with_chats(session=session, physician_id=patient.physician_id)
    if not rows or not rows[0].physician.alerts_enabled or rows[0].chat_id is None:
        return []
    history = digest_storage.administration_history(
        session=session,
        before=administration.slot_at + timedelta(microseconds=1),
        patient_id=patient.id,
    )
    completed = [
        _observation(row)
        for row in history
        if row.status == AdministrationStatus.COMPLETED.value
        and row.administration_id != administration_id
    ]
    this = next(row for row in history if row.administration_id == administration_id)
    flags = attention.completion_alerts([*completed, _observation(this)])
    if not flags:
        return []
    physician, chat_id = rows[0].physician, rows[0].chat_id
    return [
        Alert(
            physician_id=physician.id or 0,
            chat_id=chat_id,
            language=physician.language,
            administration_id=administration_id,
            patient_identifier=identifier_of(patient, identifier),
            flags=flags,
            completed_at=administration.completed_at,
            timezone=physician.timezone,
            late_lab=late_lab,
        )
    ]


def queue_lab_alerts(
    session: Session,
    *,
    lab_id: int,
    administration_ids: Sequence[int],
    now: datetime,
) -> int:
    """In the transaction that stores a lab value: queues an alert for every questionnaire
    whose ASDAS this value completed and which is now very high or a clinically important
    worsening (clinical spec §6: alerts fire whenever a new score crosses the line, not only
    at completion). A tick sends them (`lab_alerts_due`); returns how many were queued."""
    queued = 0
    for administration_id in administration_ids:
        record = scores.get_score(session=session, administration_id=administration_id)
        if record is None or lab_id not in (record.asdas_crp_lab_id, record.asdas_esr_lab_id):
            continue
        # Only whether to alert is decided here; the words are chosen when it is sent.
        alerts = _alerts_of(session, PatientIdentifier.CLINIC_REF, administration_id, late_lab=True)
        for alert in alerts:
            claimed = deliveries.claim_delivery(
                session=session,
                dedupe_key=f"alert-lab:{administration_id}:{lab_id}",
                kind=LAB_ALERT_KIND,
                now=now,
                physician_id=alert.physician_id,
                administration_id=administration_id,
                status=DeliveryStatus.QUEUED,
            )
            queued += claimed is not None
    return queued


@dataclass(frozen=True)
class QueuedAlert:
    """A queued alert this process has claimed, with what it says now."""

    delivery_id: int
    alert: Alert | None
    """None when the scores no longer cross the line (say, the lab value was deleted since)."""


def lab_alerts_due(ctx: AppContext) -> list[QueuedAlert]:
    """Claims the queued late-lab alerts and words them from the scores as they are now."""
    due: list[QueuedAlert] = []
    with ctx.session() as session:
        taken = deliveries.take_queued(session=session, kind=LAB_ALERT_KIND, now=ctx.clock.now())
        for delivery in taken:
            assert delivery.id is not None
            alerts = (
                []
                if delivery.administration_id is None
                else _alerts_of(
                    session,
                    ctx.settings.patient_identifier,
                    delivery.administration_id,
                    late_lab=True,
                )
            )
            due.append(QueuedAlert(delivery.id, alerts[0] if alerts else None))
    return due


def claim_alert(ctx: AppContext, alert: Alert) -> int | None:
    """Claims an alert so it is sent once even if the completion is processed twice."""
    with ctx.session() as session:
        claimed = deliveries.claim_delivery(
            session=session,
            dedupe_key=alert.dedupe_key,
            kind=ALERT_KIND,
            now=ctx.clock.now(),
            physician_id=alert.physician_id,
            administration_id=alert.administration_id,
        )
        return None if claimed is None else claimed.id
