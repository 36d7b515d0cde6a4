"""A small, realistic clinic for export tests, built through the real write paths.

Expected scores are worked out by hand from the clinical specification (docs/clinical.md §2, §5)
and written down here as the formulas a reader can check, independently of the scoring code.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from bot.clock import FixedClock
from bot.context import AppContext
from bot.domain import instruments
from bot.export.pseudonyms import Pseudonymizer
from bot.export.service import ExportRequest, ExportResult, run_export
from bot.services import labs as lab_service
from bot.services import scores, staff
from storage import administrations, enrollment, patients, schedule
from storage.models import AdministrationKind, PatientStatus
from tests.conftest import TEST_PSEUDONYM_KEY

NURSE = "Nurse Florence Testington"
LAB_WINDOW = timedelta(days=7)


def at(text: str) -> datetime:
    """A UTC moment written as 2026-01-05 18:00."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass
class Dataset:
    """Ids of what was created and every identifying value that must never be exported."""

    physician_a: int
    physician_b: int
    alice: int
    bob: int
    carol_deleted: int
    dan_withdrawn: int
    admin: dict[str, int] = field(default_factory=dict)
    identifying: list[str] = field(default_factory=list)
    research_ids: dict[int, str] = field(default_factory=dict)


def run_questionnaire(
    ctx: AppContext,
    clock: FixedClock,
    *,
    patient_id: int,
    slot: datetime,
    language: str,
    answers: list[tuple[str, int]],
    outcome: str,
) -> int:
    """Opens an administration at `slot`, records the answers one minute apart (a repeated item
    is a correction), then completes it, marks it missed or leaves it open."""
    clock.set(slot)
    with ctx.session() as session:
        created = administrations.create_administration(
            session=session,
            patient_id=patient_id,
            kind=AdministrationKind.SCHEDULED.value,
            slot_at=slot,
            now=slot,
            expires_at=slot + timedelta(days=3),
            instrument_version=instruments.INSTRUMENT_VERSION,
            language=language,
            current_item="q1",
        )
        assert created is not None
        assert created.id is not None
        administration_id = created.id
    moment = slot + timedelta(hours=1)
    for code, value in answers:
        moment += timedelta(minutes=1)
        # Typed as a patient may type it; for q6 a bare number is minutes (12 is no button).
        parsed = instruments.parse_typed_answer(code, str(value))
        assert parsed is not None, (code, value)
        with ctx.session() as session:
            administrations.save_answer(
                session=session,
                administration_id=administration_id,
                item_code=code,
                raw_value=parsed.raw_value,
                score=parsed.score,
                now=moment,
            )
    clock.set(moment + timedelta(minutes=1))
    with ctx.session() as session:
        if outcome == "completed":
            assert administrations.move_current_item(
                session=session,
                administration_id=administration_id,
                expected_item="q1",
                new_item="summary",
                return_to_summary=False,
                now=clock.now(),
            )
            assert administrations.complete_administration(
                session=session,
                administration_id=administration_id,
                expected_item="summary",
                now=clock.now(),
            )
            scores.recompute_administration(
                session, administration_id=administration_id, window=LAB_WINDOW, now=clock.now()
            )
        elif outcome == "missed":
            # The scheduler's own expiry: open questionnaires past their time become missed.
            schedule.expire_open_administrations(session=session, now=slot + timedelta(days=3))
    return administration_id


def _link(ctx: AppContext, telegram_id: int, **owner: int) -> None:
    with ctx.session() as session:
        enrollment.create_link(
            session=session,
            telegram_user_id=telegram_id,
            chat_id=telegram_id + 1,
            now=ctx.clock.now(),
            **owner,
        )


def _lab(ctx: AppContext, clock: FixedClock, ref: str, drawn: str, **values: object) -> None:
    clock.set(at(drawn) + timedelta(hours=2))
    lab_service.add_lab_values(
        ctx, clinic_ref=ref, drawn=drawn.replace(" ", "T") + "Z", entered_by=NURSE, **values
    )


# The worked example of clinical spec §5 (Front. Immunol. 2025): baseline and six months later.
BASELINE = [("q1", 6), ("q2", 5), ("q3", 0), ("q4", 3), ("q5", 5), ("q6", 60)]
BASELINE += [("patient_global", 5)]
FOLLOW_UP = [("q1", 3), ("q2", 2), ("q3", 0), ("q4", 1), ("q5", 3), ("q6", 12)]
FOLLOW_UP += [("patient_global", 2), ("q1", 2)]  # q1 corrected from 3 to 2

# BASDAI = (q1 + q2 + q3 + q4 + (q5 + q6/12 min) / 2) / 5
BASELINE_BASDAI = (Decimal(6) + 5 + 0 + 3 + (Decimal(5) + Decimal(60) / 12) / 2) / 5  # 3.8
FOLLOW_UP_BASDAI = (Decimal(2) + 2 + 0 + 1 + (Decimal(3) + Decimal(12) / 12) / 2) / 5  # 1.4
# ASDAS-CRP = 0.12·q2 + 0.06·q6 + 0.11·global + 0.07·q3 + 0.58·ln(CRP + 1)
BASELINE_ASDAS_CRP = (
    Decimal("0.12") * 5 + Decimal("0.06") * 5 + Decimal("0.11") * 5 + Decimal("0.07") * 0
) + Decimal("0.58") * Decimal("65.6").ln()  # 3.876
FOLLOW_UP_ASDAS_CRP = (
    Decimal("0.12") * 2 + Decimal("0.06") * 1 + Decimal("0.11") * 2 + Decimal("0.07") * 0
) + Decimal("0.58") * Decimal("8.59").ln()  # 1.767
# ASDAS-ESR = 0.08·q2 + 0.07·q6 + 0.11·global + 0.09·q3 + 0.29·√ESR, ESR 16 mm/h: exactly 1.61
FOLLOW_UP_ASDAS_ESR = (
    Decimal("0.08") * 2 + Decimal("0.07") * 1 + Decimal("0.11") * 2 + Decimal("0.29") * Decimal(4)
)

# Bob: CRP "<0.5" mg/L is floored at 2 mg/L (spec §2); q6 30 min = 2.5.
BOB = [("q1", 5), ("q2", 3), ("q3", 2), ("q4", 2), ("q5", 4), ("q6", 30), ("patient_global", 4)]
BOB_BASDAI = (Decimal(5) + 3 + 2 + 2 + (Decimal(4) + Decimal("2.5")) / 2) / 5  # 3.05
BOB_ASDAS_CRP = (
    (Decimal("0.12") * 3 + Decimal("0.06") * Decimal("2.5") + Decimal("0.11") * 4)
    + Decimal("0.07") * 2
    + Decimal("0.58") * Decimal(3).ln()
)  # 1.727

IDENTIFYING_NAMES = {
    "physician_a": ("Dr. Ada Quillfeather", "ada.quillfeather@clinic-test.example"),
    "physician_b": ("Dr. Bo Xiaoming", "bo.xiaoming@clinic-test.example"),
}


def build_dataset(ctx: AppContext, clock: FixedClock) -> Dataset:
    """Four patients of two physicians: the worked example, a floored CRP with partial and
    missed weeks, a patient who asked for deletion and one who withdrew."""
    clock.set(at("2025-12-01 08:00"))
    name_a, email_a = IDENTIFYING_NAMES["physician_a"]
    name_b, email_b = IDENTIFYING_NAMES["physician_b"]
    doctor_a = staff.add_physician(ctx, display_name=name_a, email=email_a)
    doctor_b = staff.add_physician(ctx, display_name=name_b, email=email_b, language="zh")
    people = {
        "alice": ("MRN-ALPHA-7731", "Alice Wonderly", doctor_a.physician_id, "en"),
        "bob": ("MRN-BETA-5520", "Bob Marchetti", doctor_b.physician_id, "zh"),
        "carol": ("MRN-GAMMA-0193", "Carol Deletewright", doctor_a.physician_id, "en"),
        "dan": ("MRN-DELTA-4242", "Dan Withdrawson", doctor_a.physician_id, "en"),
    }
    ids = {}
    data_identifying = [name_a, email_a, name_b, email_b, NURSE]
    for key, (ref, name, physician_id, language) in people.items():
        created = staff.add_patient(
            ctx, physician_id=physician_id, clinic_ref=ref, display_name=name, language=language
        )
        ids[key] = created.patient_id
        data_identifying += [ref, name, created.code.code]
    telegram_ids = {"alice": 700100200301, "bob": 700100200401, "carol": 700100200501}
    for key, telegram_id in telegram_ids.items():
        _link(ctx, telegram_id, patient_id=ids[key])
        data_identifying += [str(telegram_id), str(telegram_id + 1)]
    _link(ctx, 700100200601, physician_id=doctor_a.physician_id)
    data_identifying += ["700100200601", "700100200602"]

    dataset = Dataset(
        physician_a=doctor_a.physician_id,
        physician_b=doctor_b.physician_id,
        alice=ids["alice"],
        bob=ids["bob"],
        carol_deleted=ids["carol"],
        dan_withdrawn=ids["dan"],
        identifying=data_identifying,
    )
    alice, bob = ids["alice"], ids["bob"]
    dataset.admin["alice_baseline"] = run_questionnaire(
        ctx, clock, patient_id=alice, slot=at("2026-01-05 18:00"), language="en",
        answers=BASELINE, outcome="completed",
    )  # fmt: skip
    _lab(ctx, clock, "MRN-ALPHA-7731", "2026-01-07 09:30", crp="64.6")
    dataset.admin["alice_follow_up"] = run_questionnaire(
        ctx, clock, patient_id=alice, slot=at("2026-06-29 18:00"), language="en",
        answers=FOLLOW_UP, outcome="completed",
    )  # fmt: skip
    _lab(ctx, clock, "MRN-ALPHA-7731", "2026-06-30 08:15", crp="7.59", esr="16")
    dataset.admin["bob_floored"] = run_questionnaire(
        ctx, clock, patient_id=bob, slot=at("2026-02-02 12:00"), language="zh",
        answers=BOB, outcome="completed",
    )  # fmt: skip
    _lab(ctx, clock, "MRN-BETA-5520", "2026-02-01 10:00", crp="<0.5")
    dataset.admin["bob_partial"] = run_questionnaire(
        ctx, clock, patient_id=bob, slot=at("2026-02-09 12:00"), language="zh",
        answers=[("q1", 7), ("q2", 6)], outcome="missed",
    )  # fmt: skip
    dataset.admin["bob_missed"] = run_questionnaire(
        ctx, clock, patient_id=bob, slot=at("2026-02-16 12:00"), language="zh",
        answers=[], outcome="missed",
    )  # fmt: skip
    dataset.admin["bob_open_unanswered"] = run_questionnaire(
        ctx, clock, patient_id=bob, slot=at("2026-02-23 12:00"), language="zh",
        answers=[], outcome="open",
    )  # fmt: skip
    dataset.admin["bob_open_started"] = run_questionnaire(
        ctx, clock, patient_id=bob, slot=at("2026-03-02 12:00"), language="zh",
        answers=[("q1", 1)], outcome="open",
    )  # fmt: skip
    dataset.admin["carol"] = run_questionnaire(
        ctx, clock, patient_id=ids["carol"], slot=at("2026-01-12 18:00"), language="en",
        answers=BASELINE, outcome="completed",
    )  # fmt: skip
    _lab(ctx, clock, "MRN-GAMMA-0193", "2026-01-13 09:00", crp="12")
    dataset.admin["dan_before"] = run_questionnaire(
        ctx, clock, patient_id=ids["dan"], slot=at("2026-02-02 18:00"), language="en",
        answers=BASELINE, outcome="completed",
    )  # fmt: skip
    dataset.admin["dan_after"] = run_questionnaire(
        ctx, clock, patient_id=ids["dan"], slot=at("2026-02-16 18:00"), language="en",
        answers=BASELINE, outcome="completed",
    )  # fmt: skip
    # Drawn after the withdrawal but within the lab window of the first administration.
    _lab(ctx, clock, "MRN-DELTA-4242", "2026-02-08 09:00", crp="30")
    _lab(ctx, clock, "MRN-DELTA-4242", "2026-02-03 09:00", esr="25")
    with ctx.session() as session:
        carol = patients.get_patient(session=session, patient_id=ids["carol"])
        dan = patients.get_patient(session=session, patient_id=ids["dan"])
        assert carol is not None
        assert dan is not None
        # Rows are left in place on purpose: the export itself must leave the patient out.
        carol.status = PatientStatus.DELETED.value
        dan.status = PatientStatus.WITHDRAWN.value
        dan.withdrawn_at = at("2026-02-06 12:00")
        patients.save_patient(session=session, patient=carol)
        patients.save_patient(session=session, patient=dan)
        for patient_id in ids.values():
            patient = patients.get_patient(session=session, patient_id=patient_id)
            assert patient is not None
            dataset.research_ids[patient_id] = patient.research_id
    clock.set(at("2026-07-06 09:00"))
    return dataset


@pytest.fixture
def dataset(ctx: AppContext, clock: FixedClock) -> Dataset:
    """The small clinic, on the test's database."""
    return build_dataset(ctx, clock)


def export_csv(ctx: AppContext, fmt: str, **options: object) -> tuple[str, ExportResult]:
    """Runs a CSV export to a byte stream, as `spondybot export` does to standard output."""
    sink = io.BytesIO()
    request = ExportRequest(format=fmt, by="researcher", **options)  # type: ignore[arg-type]
    result = run_export(ctx, request, stdout=sink)
    return sink.getvalue().decode("utf-8"), result


def csv_rows(text: str) -> list[dict[str, str]]:
    """Data rows of an exported CSV by column name, skipping the dates-shifted comment."""
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    return list(csv.DictReader(lines))


_TEST_KEY = Pseudonymizer(TEST_PSEUDONYM_KEY.encode("utf-8"))


def exported_id(kind: str, row_id: int) -> str:
    """The id an export under the test key gives a stored row ("administration" or "lab")."""
    return _TEST_KEY.record_id(kind, row_id)


def db_id(exported: str, kind: str = "administration") -> int:
    """The database id behind an exported id, found among the few ids a test database has."""
    for row_id in range(1, 10_000):
        if exported_id(kind, row_id) == exported:
            return row_id
    raise AssertionError(f"{exported} is no {kind} id of the test database")


def wide_by_id(text: str) -> dict[int, dict[str, str]]:
    """Wide CSV rows keyed by the database id of their administration."""
    return {db_id(row["administration_id"]): row for row in csv_rows(text)}
