"""The published case (clinical spec §5, §7) entered through the CLI reads as the case report."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from bot.context import AppContext
from bot.present.charts import can_render
from bot.present.course import CourseWords
from bot.present.course_report import course_report_pdf
from bot.present.render import default_renderer
from bot.services import therapy
from tests.therapy.conftest import CASE_AFTER, CASE_BEFORE, Clinic, invoke, typed_questionnaire

# Upadacitinib added to adalimumab on 2025-03-03; the baseline questionnaire three days
# earlier, the follow-up in week 23 ("within six months"), each with a CRP drawn that day.
BEFORE = datetime(2025, 2, 28, 10, 0, tzinfo=UTC)
AFTER = datetime(2025, 8, 15, 10, 0, tzinfo=UTC)


def enter_case(ctx: AppContext, clinic: Clinic) -> None:
    """The case as a clinic enters it: two episodes and two CRP values on the command line,
    two questionnaires answered by the patient."""
    for args in (
        ("--drug", "adalimumab", "--class", "tnf_inhibitor", "--dose", "40 mg every 2 weeks",
         "--start", "2024-06-03"),
        ("--drug", "upadacitinib", "--class", "jak_inhibitor", "--dose", "15 mg daily",
         "--start", "2025-03-03"),
    ):  # fmt: skip
        code, _, err = invoke("therapy", "add", "--patient", "MRN-0001", *args)
        assert code == 0, err
    for crp, drawn in (("64.6", "2025-02-28 09:00"), ("7.59", "2025-08-15 09:00")):
        code, _, err = invoke("lab", "add", "--patient", "MRN-0001", "--crp", crp, "--drawn", drawn)
        assert code == 0, err
    typed_questionnaire(ctx, patient_id=clinic.patient_1, completed_at=BEFORE, answers=CASE_BEFORE)
    typed_questionnaire(ctx, patient_id=clinic.patient_1, completed_at=AFTER, answers=CASE_AFTER)


class TestSeedCase:
    def test_reading_in_words(self, cli: Path, ctx: AppContext, clinic: Clinic) -> None:
        """Baseline ASDAS-CRP 3.9 very high → 1.8 low disease activity, major improvement,
        target reached; BASDAI 3.8 → 1.4 with BASDAI50 and ASAS/EULAR response; CRP 64.6 →
        7.59 mg/L. Adalimumab, started long before, has no baseline and says so."""
        enter_case(ctx, clinic)
        code, out, err = invoke("therapy", "list", "--patient", "MRN-0001")
        assert code == 0, err
        lines = out.strip().splitlines()
        assert lines[0].endswith(
            "adalimumab 40 mg every 2 weeks (TNF inhibitor), 2024-06-03 → ongoing"
        )
        assert lines[1].strip().startswith("no baseline")
        assert lines[2].endswith("upadacitinib 15 mg daily (JAK inhibitor), 2025-03-03 → ongoing")
        assert lines[3:] == [
            "    baseline ASDAS-CRP 3.9 (very high disease activity), BASDAI 3.8, 2025-02-28",
            "    week 23 (2025-08-15): ASDAS-CRP 3.9 → 1.8 (low disease activity), "
            "CRP 64.6 → 7.59 mg/L: major improvement, low disease activity target reached",
            "    BASDAI 3.8 → 1.4: BASDAI50 met; ASAS/EULAR response met",
        ]

    def test_reading_exact_for_scripts(self, cli: Path, ctx: AppContext, clinic: Clinic) -> None:
        """--json carries the unrounded scores: 3.876… and 1.767… (clinical spec §5)."""
        enter_case(ctx, clinic)
        code, out, _ = invoke("therapy", "list", "--patient", "MRN-0001", "--json")
        assert code == 0
        adalimumab, upadacitinib = json.loads(out)["therapies"]
        assert adalimumab["reading"]["judgement"] == "no baseline"
        reading = upadacitinib["reading"]
        assert reading["judgement"] == "response"
        assert reading["baseline"]["asdas_state"] == "very high disease activity"
        assert reading["baseline"]["asdas"].startswith("3.876")
        assessment = reading["assessment"]
        assert assessment["asdas_after"].startswith("1.767")
        assert (assessment["asdas_state"], assessment["asdas_change"]) == (
            "low disease activity", "major improvement",
        )  # fmt: skip
        assert assessment["low_activity_target"] is True
        assert (assessment["basdai_before"], assessment["basdai_after"]) == ("3.8", "1.4")
        assert assessment["basdai50"] is True
        assert assessment["asas_eular_basdai_response"] is True
        assert (assessment["crp_before_mg_l"], assessment["crp_after_mg_l"]) == ("64.6", "7.59")
        assert reading["loss_of_response"] is None


class TestCourseReport:
    def test_one_page_pdf_with_the_reading(
        self, cli: Path, ctx: AppContext, clinic: Clinic, tmp_path: Path
    ) -> None:
        """`spondybot patient report` writes one PDF page holding the §7 reading's numbers."""
        enter_case(ctx, clinic)
        out = tmp_path / "course.pdf"
        code, stdout, err = invoke("patient", "report", "MRN-0001", "--out", str(out))
        assert code == 0, err
        assert stdout.strip() == f"course report for MRN-0001 written to {out}"
        pdf = out.read_bytes()
        assert pdf.startswith(b"%PDF")
        assert (
            pdf.count(b"/Type /Page\n") + pdf.count(b"/Type /Page ") + pdf.count(b"/Type/Page\n")
            >= 1
        )
        report = therapy.course_report(ctx, clinic_ref="MRN-0001")
        words = CourseWords(default_renderer(), report.language)
        upadacitinib = report.course.episodes[1]
        assert "3.9 → 1.8" in " ".join(words.reading(upadacitinib.reading))
        assert [str(line.crp_mg_l) for line in report.scores] == ["64.6", "7.59"]

    def test_german_report_reads_the_case_in_german(
        self, cli: Path, ctx: AppContext, clinic: Clinic
    ) -> None:
        """For a German-speaking physician the reading and the PDF are in German: the report
        keeps German (Latin letters, umlauts included, need no extra font) rather than falling
        back to English, and drawing it raises no missing-glyph warning."""
        enter_case(ctx, clinic)
        report = replace(therapy.course_report(ctx, clinic_ref="MRN-0001"), language="de")
        words = CourseWords(default_renderer(), "de")
        reading = " ".join(words.reading(report.course.episodes[1].reading))
        assert "sehr hohe Krankheitsaktivität" in reading
        assert "deutliche Verbesserung" in reading
        assert "Ziel niedrige Krankheitsaktivität erreicht" in reading
        assert "BASDAI50 erreicht" in reading
        assert can_render([default_renderer().text("therapy.reading.major", "de")])
        assert course_report_pdf(default_renderer(), report).startswith(b"%PDF")

    def test_unknown_patient_is_one_line(self, cli: Path, tmp_path: Path) -> None:
        code, _, err = invoke("patient", "report", "MRN-9999", "--out", str(tmp_path / "x.pdf"))
        assert (code, err.strip()) == (2, "error: no patient with reference “MRN-9999”")
        assert not (tmp_path / "x.pdf").exists()
