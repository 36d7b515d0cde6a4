"""The one code path that computes an administration's scores (clinical spec §2–§4).

Whatever route an answer or a lab value arrived by (chat, CLI, CSV import), its effects on
scores go through `recompute_administration` (or `score_completed`, its second half, when the
confirming press has the administration and its answers in hand), so stored scores are always
consistent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlmodel import Session

from bot.domain import scoring
from bot.domain.merging import LabCandidate, nearest_lab
from storage import administrations, labs, scores
from storage.administrations import AdministrationRecord, StoredAnswer
from storage.models import (
    Administration,
    AdministrationStatus,
    Analyte,
    LabResult,
    ScoreRecord,
)

BASDAI_ITEMS = ("q1", "q2", "q3", "q4", "q5", "q6")
ASDAS_ITEMS = ("q2", "q3", "q6", "patient_global")


@dataclass(frozen=True)
class ComputedScores:
    """Scores of one administration; None where an input is missing (never imputed)."""

    basdai: Decimal | None
    asdas_crp: Decimal | None
    crp_lab: LabResult | None
    crp_floored: bool
    asdas_esr: Decimal | None
    esr_lab: LabResult | None


def compute_scores(
    answers: dict[str, Decimal], crp_lab: LabResult | None, esr_lab: LabResult | None
) -> ComputedScores:
    """Scores from item values on the 0–10 scale and the matched lab values."""
    basdai = (
        scoring.basdai(*(answers[item] for item in BASDAI_ITEMS))
        if all(item in answers for item in BASDAI_ITEMS)
        else None
    )
    has_asdas_items = all(item in answers for item in ASDAS_ITEMS)
    asdas_crp = None
    floored = False
    if has_asdas_items and crp_lab is not None:
        _, floored = scoring.effective_crp(
            crp_lab.value_normalised, below_detection_limit=crp_lab.below_detection_limit
        )
        asdas_crp = scoring.asdas_crp(
            back_pain=answers["q2"],
            stiffness_duration=answers["q6"],
            patient_global=answers["patient_global"],
            peripheral_pain=answers["q3"],
            crp_mg_l=crp_lab.value_normalised,
            crp_below_detection_limit=crp_lab.below_detection_limit,
        )
    asdas_esr = None
    if has_asdas_items and esr_lab is not None:
        asdas_esr = scoring.asdas_esr(
            back_pain=answers["q2"],
            stiffness_duration=answers["q6"],
            patient_global=answers["patient_global"],
            peripheral_pain=answers["q3"],
            esr_mm_h=esr_lab.value_normalised,
        )
    return ComputedScores(
        basdai=basdai,
        asdas_crp=asdas_crp,
        crp_lab=crp_lab if asdas_crp is not None else None,
        crp_floored=floored and asdas_crp is not None,
        asdas_esr=asdas_esr,
        esr_lab=esr_lab if asdas_esr is not None else None,
    )


def _matched_labs(
    session: Session,
    administration: Administration | AdministrationRecord,
    window: timedelta,
) -> tuple[LabResult | None, LabResult | None]:
    """The CRP and the ESR nearest the administration's completion within ±window (clinical
    spec §4), from one read of the patient's lab results in the window."""
    assert administration.completed_at is not None
    candidates = labs.labs_in_window(
        session=session,
        patient_id=administration.patient_id,
        around=administration.completed_at,
        window=window,
    )
    return (
        _nearest(candidates, Analyte.CRP, administration.completed_at, window),
        _nearest(candidates, Analyte.ESR, administration.completed_at, window),
    )


def _nearest(
    candidates: list[LabResult], analyte: Analyte, completed_at: datetime, window: timedelta
) -> LabResult | None:
    by_id = {lab.id: lab for lab in candidates if lab.id is not None and lab.analyte == analyte}
    chosen = nearest_lab(
        [LabCandidate(lab_id, lab.drawn_at) for lab_id, lab in by_id.items()],
        completed_at,
        window,
    )
    return None if chosen is None else by_id[chosen.lab_id]


def recompute_administration(
    session: Session, *, administration_id: int, window: timedelta, now: datetime
) -> ScoreRecord | None:
    """Recomputes and stores the scores of a completed administration; None if not completed."""
    administration = administrations.get_administration(
        session=session, administration_id=administration_id
    )
    if administration is None or administration.status != AdministrationStatus.COMPLETED.value:
        return None
    stored = administrations.answers_of(session=session, administration_id=administration_id)
    return score_completed(
        session, administration=administration, stored=stored, window=window, now=now
    )


def score_completed(
    session: Session,
    *,
    administration: Administration | AdministrationRecord,
    stored: Mapping[str, StoredAnswer],
    window: timedelta,
    now: datetime,
) -> ScoreRecord:
    """Computes and stores the scores of a completed administration from its answers, both as
    this unit of work has them (the confirming press has just read them)."""
    assert administration.id is not None
    administration_id = administration.id
    answers = {code: answer.score for code, answer in stored.items()}
    if "q6" in stored:
        # The 0–10 value of a duration is recomputed from the minutes, exactly (spec §1).
        answers["q6"] = scoring.stiffness_minutes_to_score(stored["q6"].raw_value)
    computed = compute_scores(answers, *_matched_labs(session, administration, window))
    return scores.upsert_score(
        session=session,
        administration_id=administration_id,
        basdai=computed.basdai,
        asdas_crp=computed.asdas_crp,
        asdas_crp_lab_id=None if computed.crp_lab is None else computed.crp_lab.id,
        crp_floored=computed.crp_floored,
        asdas_esr=computed.asdas_esr,
        asdas_esr_lab_id=None if computed.esr_lab is None else computed.esr_lab.id,
        now=now,
    )


def recompute_around_lab(
    session: Session, *, patient_id: int, drawn_at: datetime, window: timedelta, now: datetime
) -> list[ScoreRecord]:
    """Recomputes every completed administration a lab value drawn at `drawn_at` could affect.

    Called when a lab value is added, corrected (with both the old and the new date) or
    deleted, so a late lab completes earlier ASDAS and a changed one replaces what it fed.
    """
    records = []
    for administration in scores.completed_near(
        session=session, patient_id=patient_id, around=drawn_at, window=window
    ):
        assert administration.id is not None
        record = recompute_administration(
            session, administration_id=administration.id, window=window, now=now
        )
        if record is not None:
            records.append(record)
    return records
