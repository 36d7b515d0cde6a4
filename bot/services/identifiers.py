"""How physician-facing results name a patient, for every service that names one."""

from __future__ import annotations

from bot.config import PatientIdentifier
from storage.models import Patient


def identifier_of(patient: Patient, choice: PatientIdentifier) -> str:
    """The clinic reference, unless the clinic opted in to display names (and the patient
    has one)."""
    if choice is PatientIdentifier.DISPLAY_NAME and patient.display_name:
        return patient.display_name
    return patient.clinic_ref
