"""FHIR R4 resources of the research export, written as NDJSON in the Bulk Data layout.

One `Questionnaire` per instrument version, one `QuestionnaireResponse` per administration,
`Observation`s for BASDAI, ASDAS-CRP and ASDAS-ESR (local code system: they have no LOINC code
we could confirm) and for CRP (LOINC 1988-5, mg/L) and ESR (LOINC 30341-2, mm/h), and
`Patient`s that carry nothing but the pseudonym. Codes and systems are explained in
docs/export.md.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from pathlib import Path
from typing import IO, Any, Final

from bot.domain import scoring
from bot.domain.instruments import ITEM_CODES
from bot.export.columns import TherapyRow
from bot.export.records import ExportRecord, ExportStatus, LabValue
from bot.export.tables import HashingWriter, iso_utc
from storage.models import AdministrationStatus, Analyte

FHIR_VERSION: Final = "4.0.1"

UCUM: Final = "http://unitsofmeasure.org"
LOINC: Final = "http://loinc.org"
OBSERVATION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"

PSEUDONYM_SYSTEM: Final = "urn:spondybot:fhir:identifier:patient-pseudonym"
"""Identifier system of `Patient.identifier`: the export pseudonym (depends on PSEUDONYM_KEY)."""
ADMINISTRATION_SYSTEM: Final = "urn:spondybot:fhir:identifier:administration"
"""Identifier system of `QuestionnaireResponse.identifier`: the wide table's administration_id."""
SCORE_SYSTEM: Final = "urn:spondybot:fhir:CodeSystem:score"
"""Local code system for the scores: basdai, asdas-crp, asdas-esr, and the component crp-floored."""
STATE_SYSTEM: Final = "urn:spondybot:fhir:CodeSystem:disease-activity"
"""Local code system for interpretations: ASDAS states and BASDAI active/not-active."""
QUESTIONNAIRE_URL: Final = "urn:spondybot:fhir:Questionnaire:basdai-asdas"
"""Canonical URL of the questionnaire; each instrument version is a `Questionnaire.version`."""
SCHEDULED_FOR_EXTENSION: Final = "urn:spondybot:fhir:StructureDefinition:scheduled-for"
"""Extension on `QuestionnaireResponse` giving the slot the questionnaire was scheduled for."""

CRP_LOINC: Final = ("1988-5", "C reactive protein [Mass/volume] in Serum or Plasma")
ESR_LOINC: Final = ("30341-2", "Erythrocyte sedimentation rate")
"""30341-2 states no method; 4537-7 is Westergren only, and the method is not recorded."""

RESOURCE_TYPES: Final = (
    "Patient",
    "Questionnaire",
    "QuestionnaireResponse",
    "Observation",
    "MedicationStatement",
)
"""NDJSON files in the order they are written; each file holds one resource type."""

_ITEM_LABELS: Final = {
    "q1": "BASDAI 1: fatigue (0-10)",
    "q2": "BASDAI 2: neck, back or hip pain (0-10)",
    "q3": "BASDAI 3: peripheral joint pain/swelling (0-10)",
    "q4": "BASDAI 4: areas tender to touch (0-10)",
    "q5": "BASDAI 5: morning stiffness severity (0-10)",
    "q6": "BASDAI 6: morning stiffness duration (minutes)",
    "patient_global": "ASDAS patient global: disease activity (0-10)",
}
"""Short labels, not the licensed question wording (clinical spec §1, licensing)."""

# FHIR decimals allow at most 18 integer and 17 fractional digits (the decimal regex).
_FHIR_FRACTION: Final = Decimal(1).scaleb(-17)
_DECIMAL_MARK: Final = "\x00decimal:"
_DECIMAL_PATTERN: Final = re.compile(r'"\\u0000decimal:(-?[0-9.]+)"')


def fhir_decimal(value: Decimal) -> str:
    """A decimal as FHIR allows it: at most 17 fractional digits, no trailing zeros."""
    with localcontext(Context(prec=60)):
        rounded = value.quantize(_FHIR_FRACTION, rounding=ROUND_HALF_EVEN).normalize()
    text = format(rounded, "f")
    return "0" if text in ("-0", "") else text


def _marked(value: Decimal) -> str:
    """A marker that `dumps` turns into a bare JSON number with every digit kept."""
    return _DECIMAL_MARK + fhir_decimal(value)


def dumps(resource: dict[str, Any]) -> str:
    """One resource as one NDJSON line; decimals are written as exact JSON numbers."""
    text = json.dumps(resource, ensure_ascii=False, separators=(",", ":"))
    return _DECIMAL_PATTERN.sub(r"\1", text)


def _coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    coding = {"system": system, "code": code}
    if display is not None:
        coding["display"] = display
    return coding


def _category(code: str) -> list[dict[str, Any]]:
    return [{"coding": [_coding(OBSERVATION_CATEGORY, code)]}]


def _patient_ref(pseudonym: str) -> dict[str, str]:
    return {"reference": f"Patient/{pseudonym}"}


def questionnaire_id(version: str) -> str:
    """A valid FHIR id for an instrument version, unique by a short hash of the version."""
    slug = re.sub(r"[^A-Za-z0-9.-]+", "-", version).strip("-")[:50] or "instrument"
    return f"{slug}-{hashlib.sha256(version.encode()).hexdigest()[:8]}"


def patient(pseudonym: str) -> dict[str, Any]:
    """A Patient carrying only the pseudonym (as its id and its one identifier)."""
    return {
        "resourceType": "Patient",
        "id": pseudonym,
        "identifier": [{"system": PSEUDONYM_SYSTEM, "value": pseudonym}],
    }


def questionnaire(version: str) -> dict[str, Any]:
    """The questionnaire of one instrument version: BASDAI items 1-6 and the ASDAS global.

    Items carry short labels; the licensed wording stays in the clinic's templates.
    """
    items = []
    for code in ITEM_CODES:
        item: dict[str, Any] = {
            "linkId": code,
            "text": _ITEM_LABELS[code],
            "type": "quantity" if code == "q6" else "integer",
            "required": True,
        }
        items.append(item)
    return {
        "resourceType": "Questionnaire",
        "id": questionnaire_id(version),
        "url": QUESTIONNAIRE_URL,
        "version": version,
        "name": "BASDAI_ASDAS_patient_items",
        "title": "BASDAI and ASDAS patient-reported items",
        "status": "active",
        "subjectType": ["Patient"],
        "item": items,
    }


def _answer_value(code: str, raw: Decimal, score: Decimal) -> dict[str, Any]:
    if code == "q6":
        return {
            "valueQuantity": {"value": _marked(raw), "unit": "min", "system": UCUM, "code": "min"}
        }
    if score == score.to_integral_value():
        return {"valueInteger": int(score)}
    return {"valueDecimal": _marked(score)}


def _response_status(record: ExportRecord) -> str:
    """completed, amended (an answer changed after completion), in-progress or stopped."""
    if record.status is ExportStatus.COMPLETED:
        completed = record.completed_at
        amended = completed is not None and any(
            answer.answered_at is not None and answer.answered_at > completed
            for answer in record.answers.values()
        )
        return "amended" if amended else "completed"
    if record.stored_status == AdministrationStatus.OPEN.value:
        return "in-progress"
    return "stopped"


def questionnaire_response(record: ExportRecord) -> dict[str, Any]:
    """The answers of one administration, in item order, with its status and dates."""
    items = [
        {
            "linkId": code,
            "answer": [_answer_value(code, answer.raw_value, answer.score)],
        }
        for code in ITEM_CODES
        if (answer := record.answers.get(code)) is not None
    ]
    resource: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "id": response_id(record),
        "extension": [
            {"url": SCHEDULED_FOR_EXTENSION, "valueDateTime": iso_utc(record.scheduled_for)}
        ],
        "identifier": {"system": ADMINISTRATION_SYSTEM, "value": str(record.administration_id)},
        "questionnaire": f"{QUESTIONNAIRE_URL}|{record.instrument_version}",
        "status": _response_status(record),
        "subject": _patient_ref(record.pseudonym),
        "language": record.language,
    }
    times = [answer.answered_at for answer in record.answers.values() if answer.answered_at]
    authored = record.completed_at or (max(times) if times else None)
    if authored is not None:
        resource["authored"] = iso_utc(authored)
    if items:
        resource["item"] = items
    return resource


def response_id(record: ExportRecord) -> str:
    """The QuestionnaireResponse id of an administration: its keyed record id, never the
    database id (docs/security.md, "Date shifting")."""
    return f"qr-{record.administration_id}"


def lab_id(lab: LabValue) -> str:
    """The Observation id of a lab value, from its keyed record id."""
    return f"{lab.analyte}-{lab.lab_id}"


def lab_observation(pseudonym: str, lab: LabValue) -> dict[str, Any]:
    """A CRP (mg/L) or ESR (mm/h) value with its LOINC code and UCUM unit.

    A CRP reported below the detection limit is the limit with the comparator "<".
    """
    if lab.analyte == Analyte.CRP.value:
        (code, display), unit = CRP_LOINC, "mg/L"
    else:
        (code, display), unit = ESR_LOINC, "mm/h"
    quantity: dict[str, Any] = {
        "value": _marked(lab.value),
        "unit": unit,
        "system": UCUM,
        "code": unit,
    }
    if lab.below_detection_limit:
        quantity["comparator"] = "<"
    return {
        "resourceType": "Observation",
        "id": lab_id(lab),
        "status": "final",
        "category": _category("laboratory"),
        "code": {"coding": [_coding(LOINC, code, display)], "text": display},
        "subject": _patient_ref(pseudonym),
        "effectiveDateTime": iso_utc(lab.drawn_at),
        "valueQuantity": quantity,
    }


def _score_observation(
    record: ExportRecord,
    code: str,
    display: str,
    value: Decimal,
    interpretation: tuple[str, str],
    derived_from: list[str],
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f"{code}-{record.administration_id}",
        "status": "final",
        "category": _category("survey"),
        "code": {"coding": [_coding(SCORE_SYSTEM, code, display)], "text": display},
        "subject": _patient_ref(record.pseudonym),
        "valueQuantity": {
            "value": _marked(value),
            "unit": "score",
            "system": UCUM,
            "code": "{score}",
        },
        "interpretation": [
            {"coding": [_coding(STATE_SYSTEM, interpretation[0], interpretation[1])]}
        ],
        "derivedFrom": [{"reference": reference} for reference in derived_from],
    }
    if record.completed_at is not None:
        resource["effectiveDateTime"] = iso_utc(record.completed_at)
    return resource


def _asdas_state(value: Decimal) -> tuple[str, str]:
    state = scoring.asdas_category(value)
    return state.key.replace("_", "-"), state.value


def score_observations(record: ExportRecord) -> list[dict[str, Any]]:
    """BASDAI, ASDAS-CRP and ASDAS-ESR of one administration (those that exist), unrounded
    to FHIR's 17 fractional digits, each with its state and what it was derived from."""
    response = f"QuestionnaireResponse/{response_id(record)}"
    observations = []
    if record.basdai is not None:
        active = scoring.basdai_active(record.basdai)
        observations.append(
            _score_observation(
                record,
                "basdai",
                "BASDAI",
                record.basdai,
                ("active", "active disease (BASDAI ≥ 4)")
                if active
                else ("not-active", "BASDAI below 4"),
                [response],
            )
        )
    if record.asdas_crp is not None and record.crp is not None:
        observation = _score_observation(
            record,
            "asdas-crp",
            "ASDAS-CRP",
            record.asdas_crp,
            _asdas_state(record.asdas_crp),
            [response, f"Observation/{lab_id(record.crp)}"],
        )
        observation["component"] = [
            {
                "code": {"coding": [_coding(SCORE_SYSTEM, "crp-floored", "CRP floored at 2 mg/L")]},
                "valueBoolean": bool(record.crp_floored),
            }
        ]
        observations.append(observation)
    if record.asdas_esr is not None and record.esr is not None:
        observations.append(
            _score_observation(
                record,
                "asdas-esr",
                "ASDAS-ESR",
                record.asdas_esr,
                _asdas_state(record.asdas_esr),
                [response, f"Observation/{lab_id(record.esr)}"],
            )
        )
    return observations


THERAPY_CLASS_SYSTEM: Final = "urn:spondybot:fhir:CodeSystem:therapy-class"
STOP_REASON_SYSTEM: Final = "urn:spondybot:fhir:CodeSystem:therapy-stop-reason"


def medication_statement(row: TherapyRow) -> dict[str, Any]:
    """A therapy episode (clinical spec §7) as an R4 MedicationStatement: the drug as text, its
    class as a category, the (shifted) period, the dose and why it stopped."""
    if row.stop is None:
        status = "active"
    elif row.stop_reason == "remission_or_taper":
        status = "completed"
    else:
        status = "stopped"
    resource: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "id": f"{row.pseudonym}-therapy-{row.episode}",
        "status": status,
        "category": {"coding": [_coding(THERAPY_CLASS_SYSTEM, row.therapy_class)]},
        "medicationCodeableConcept": {"text": row.drug},
        "subject": _patient_ref(row.pseudonym),
        "effectivePeriod": {"start": row.start.isoformat()},
    }
    if row.stop is not None:
        resource["effectivePeriod"]["end"] = row.stop.isoformat()
    if row.stop_reason is not None:
        resource["statusReason"] = [
            {"coding": [_coding(STOP_REASON_SYSTEM, row.stop_reason)], "text": row.stop_reason}
        ]
    if row.dose:
        resource["dosage"] = [{"text": row.dose}]
    return resource


def manifest(
    *,
    transaction_time: datetime,
    counts: dict[str, int],
    hashes: dict[str, str],
    shifted: bool,
    filters: dict[str, Any],
) -> dict[str, Any]:
    """The export summary, shaped like a FHIR Bulk Data manifest.

    `url`s are file names relative to the manifest; `transactionTime` is left out when dates
    are shifted; the `extension` object says whether dates are shifted, which filters were
    applied (real dates withheld when shifted), the code systems used and each file's SHA-256.
    """
    written = [kind for kind in RESOURCE_TYPES if counts.get(kind)]
    output = [{"type": kind, "url": f"{kind}.ndjson", "count": counts[kind]} for kind in written]
    # With shifted dates the real time of the export would bound every offset (a shifted date
    # after it is a forward shift), so it is left out.
    when = {} if shifted else {"transactionTime": iso_utc(transaction_time)}
    return {
        **when,
        "request": "spondybot export --format fhir",
        "requiresAccessToken": False,
        "output": output,
        "error": [],
        "extension": {
            "spondybot": {
                "fhirVersion": FHIR_VERSION,
                "datesShifted": shifted,
                "filters": filters,
                "sha256": {f"{kind}.ndjson": hashes[kind] for kind in written},
                "systems": {
                    "patientPseudonym": PSEUDONYM_SYSTEM,
                    "administration": ADMINISTRATION_SYSTEM,
                    "score": SCORE_SYSTEM,
                    "diseaseActivity": STATE_SYSTEM,
                    "questionnaire": QUESTIONNAIRE_URL,
                    "scheduledFor": SCHEDULED_FOR_EXTENSION,
                    "therapyClass": THERAPY_CLASS_SYSTEM,
                    "therapyStopReason": STOP_REASON_SYSTEM,
                },
                "dictionary": "docs/export.md",
            }
        },
    }


class NdjsonDirectory:
    """One NDJSON file per resource type in a directory, with counts and SHA-256 per file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.counts = dict.fromkeys(RESOURCE_TYPES, 0)
        self._files: dict[str, tuple[IO[bytes], HashingWriter, io.TextIOWrapper]] = {}
        for kind in RESOURCE_TYPES:
            raw = (directory / f"{kind}.ndjson").open("wb")
            hashing = HashingWriter(raw)
            text = io.TextIOWrapper(
                io.BufferedWriter(hashing, buffer_size=1 << 16), encoding="utf-8", newline="\n"
            )
            self._files[kind] = (raw, hashing, text)

    def write(self, resource: dict[str, Any]) -> None:
        """Appends one resource to the file of its type."""
        kind = resource["resourceType"]
        self._files[kind][2].write(dumps(resource) + "\n")
        self.counts[kind] += 1

    def close(self) -> dict[str, str]:
        """Flushes and closes every file, removes those left empty; returns SHA-256 by type."""
        hashes = {}
        for kind, (raw, hashing, text) in self._files.items():
            text.close()
            raw.close()
            hashes[kind] = hashing.sha256.hexdigest()
            if self.counts[kind] == 0:
                (self.directory / f"{kind}.ndjson").unlink()
        self._files.clear()
        return hashes

    def abort(self) -> None:
        """Closes every file without caring about their content (the export failed)."""
        for raw, _hashing, text in self._files.values():
            try:
                text.close()
            finally:
                raw.close()
        self._files.clear()
