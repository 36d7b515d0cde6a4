"""Journeys a person takes in a real browser: sign in, open a patient, enter a CRP and see the
ASDAS with its state, upload a lab file with a bad line, print an enrollment sheet, download
an export, take a departed physician's access away, and be refused where the role does not
allow. Elements are found by role and label, as a screen reader would."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from bot.context import AppContext
from tests.conftest import T0
from tests.digest import builders
from tests.web.browser.conftest import database_kind, screenshot
from tests.web.conftest import Staff, make_staff

pytestmark = pytest.mark.slow

DONE = T0 - timedelta(days=1)
DRAWN = (DONE - timedelta(days=1)).date().isoformat()


@pytest.fixture
def clinic(web_ctx: AppContext, physician_id: int) -> dict[str, int]:
    """The seed case awaiting its CRP (spec §5), and a quiet patient with a low ASDAS."""
    seed = builders.patient(web_ctx, physician_id, ref="SEED-1")
    builders.completed(
        web_ctx, seed, DONE, item=3, back=5, peripheral=0, minutes=60, patient_global=5
    )
    quiet = builders.patient(web_ctx, physician_id, ref="QUIET-2")
    builders.completed(web_ctx, quiet, DONE - timedelta(days=7), item=1, patient_global=1)
    builders.completed(web_ctx, quiet, DONE, item=2, patient_global=1)
    builders.crp(web_ctx, quiet, DONE, "3")
    return {"seed": seed, "quiet": quiet}


def sign_in(page: Page, person: Staff) -> None:
    page.goto("/login")
    page.get_by_label("E-mail").fill(person.email)
    page.get_by_label("Password").fill(person.password)
    page.get_by_role("button", name="Sign in").click()


class TestJourneys:
    def test_physician_signs_in_and_opens_a_patient(
        self, page: Page, web_ctx: AppContext, staff: dict[str, Staff], clinic: dict[str, int]
    ) -> None:
        """Sign-in leads to the patient list; a patient's page shows course and answers."""
        page.goto("/login")
        screenshot(page, "login", database_kind(web_ctx))
        sign_in(page, staff["physician"])
        expect(page.get_by_role("heading", name="Patients")).to_be_visible()
        screenshot(page, "patients", database_kind(web_ctx))
        page.get_by_role("link", name="QUIET-2").click()
        expect(page.get_by_role("heading", name="QUIET-2")).to_be_visible()
        expect(page.get_by_role("img", name=re.compile("Course chart"))).to_be_visible()
        expect(page.get_by_text("low disease activity").first).to_be_visible()
        screenshot(page, "patient", database_kind(web_ctx))

    def test_crp_entry_previews_the_asdas_and_saves(
        self, page: Page, web_ctx: AppContext, staff: dict[str, Staff], clinic: dict[str, int]
    ) -> None:
        """CRP 64.6 for the seed case shows ASDAS-CRP 3.9, very high, before and after saving."""
        sign_in(page, staff["physician"])
        page.get_by_role("link", name="Lab entry").click()
        screenshot(page, "labs", database_kind(web_ctx))
        page.get_by_label("Patient reference 1", exact=True).fill("SEED-1")
        page.get_by_label("CRP 1", exact=True).fill("64.6")
        page.get_by_label("Drawn 1", exact=True).fill(DRAWN)
        page.get_by_role("button", name="Check", exact=True).click()
        expect(page.get_by_role("heading", name="Check before saving")).to_be_visible()
        expect(page.get_by_text("very high disease activity")).to_be_visible()
        expect(page.locator("strong", has_text="3.9")).to_be_visible()
        screenshot(page, "lab-preview", database_kind(web_ctx))
        page.get_by_role("button", name="Save", exact=True).click()
        expect(page.get_by_role("heading", name="Lab values saved")).to_be_visible()
        screenshot(page, "lab-saved", database_kind(web_ctx))
        page.goto("/patients/SEED-1")
        expect(page.get_by_text("uses 64.6 mg/L of").first).to_be_visible()

    def test_lab_file_with_a_bad_line(
        self,
        page: Page,
        web_ctx: AppContext,
        staff: dict[str, Staff],
        clinic: dict[str, int],
        tmp_path: Path,
    ) -> None:
        """The report names the bad line and why; confirming stores the good one."""
        lab_file = tmp_path / "morning.csv"
        lab_file.write_text(
            "Patient;Drawn;Test;Result;Unit\n"
            f"SEED-1;{DRAWN};CRP;64,6;mg/L\n"
            f"SEED-1;{DRAWN};ESR;-4;mm/h\n"
        )
        sign_in(page, staff["nurse"])
        page.goto("/labs")
        page.get_by_label("File", exact=True).set_input_files(str(lab_file))
        page.get_by_role("button", name="Check the file").click()
        expect(page.get_by_text("“-4” is negative")).to_be_visible()
        expect(page.get_by_role("row", name=re.compile("^3 SEED-1 ESR refused"))).to_be_visible()
        screenshot(page, "lab-report", database_kind(web_ctx))
        page.get_by_role("button", name="Import the 1 good line").click()
        expect(page.get_by_text("Imported: 1 line(s) stored")).to_be_visible()
        screenshot(page, "lab-imported", database_kind(web_ctx))

    def test_enrollment_sheet_prints(
        self, page: Page, web_ctx: AppContext, staff: dict[str, Staff], clinic: dict[str, int]
    ) -> None:
        """A nurse adds a patient; the sheet in Chinese has the code and QR and prints on A4."""
        sign_in(page, staff["nurse"])
        page.get_by_role("link", name="Enrollment").click()
        screenshot(page, "enroll", database_kind(web_ctx))
        page.get_by_label("Clinic reference").first.fill("NEW-7")
        page.get_by_label("Patient's language").select_option("zh")
        page.get_by_role("button", name="Add and print the sheet").click()
        expect(page.get_by_role("heading", name="每周与您的医生保持联系")).to_be_visible()
        expect(page.get_by_role("img", name="在 Telegram 中打开下方链接的二维码")).to_be_visible()
        expect(page.get_by_role("button", name="Print")).to_be_visible()  # the small script
        code = page.locator(".code").inner_text()
        assert re.fullmatch(r"[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{2}", code)
        screenshot(page, "sheet", database_kind(web_ctx))
        page.emulate_media(media="print")
        screenshot(page, "sheet-print", database_kind(web_ctx))
        expect(page.get_by_role("navigation")).to_be_hidden()
        assert page.pdf(prefer_css_page_size=True).startswith(b"%PDF")

    def test_researcher_downloads_an_export(
        self,
        page: Page,
        web_ctx: AppContext,
        staff: dict[str, Staff],
        clinic: dict[str, int],
        tmp_path: Path,
    ) -> None:
        """The export runs in the background; the page shows it done and it downloads."""
        sign_in(page, staff["researcher"])
        expect(page.get_by_role("heading", name="Research export")).to_be_visible()
        page.get_by_label("Format").select_option("wide")
        page.get_by_role("button", name="Start the export").click()
        link = page.get_by_role("link", name="Download")
        expect(link).to_be_visible(timeout=60_000)
        screenshot(page, "exports", database_kind(web_ctx))
        with page.expect_download() as waiting:
            link.click()
        saved = tmp_path / "export.csv"
        waiting.value.save_as(saved)
        content = saved.read_text()
        assert "SEED-1" not in content
        assert content.startswith("patient")

    def test_each_role_is_refused_where_it_does_not_belong(
        self, page: Page, web_ctx: AppContext, staff: dict[str, Staff], clinic: dict[str, int]
    ) -> None:
        """A nurse sees no patient pages; the menu offers only what the role opens."""
        sign_in(page, staff["nurse"])
        expect(page.get_by_role("link", name="Patients")).to_have_count(0)
        page.goto("/patients/SEED-1")
        expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
        screenshot(page, "refused", database_kind(web_ctx))

    def test_admin_pages_in_chinese(
        self, page: Page, web_ctx: AppContext, staff: dict[str, Staff], clinic: dict[str, int]
    ) -> None:
        """A Chinese-speaking admin reads every page in Chinese (screenshots of each)."""
        admin = make_staff(web_ctx, "admin", email="zh-admin@clinic.example", language="zh")
        page.goto("/login?lang=zh")
        screenshot(page, "login-zh", database_kind(web_ctx))
        page.get_by_label("电子邮箱").fill(admin.email)
        page.get_by_label("密码").fill(admin.password)
        page.get_by_role("button", name="登录").click()
        expect(page.get_by_role("heading", name="患者")).to_be_visible()
        screenshot(page, "patients-zh", database_kind(web_ctx))
        for path, heading, name in (
            ("/patients/QUIET-2", "QUIET-2", "patient-zh"),
            ("/labs", "化验录入", "labs-zh"),
            ("/enroll", "入组", "enroll-zh"),
            ("/digests", "每周周报", "digests-zh"),
            ("/exports", "研究数据导出", "exports-zh"),
            ("/staff", "工作人员账户", "staff-zh"),
            ("/audit", "审计记录", "audit-zh"),
        ):
            page.goto(path)
            expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
            screenshot(page, name, database_kind(web_ctx))

    def test_admin_deactivates_a_physician_who_left(
        self, page: Page, web_ctx: AppContext, staff: dict[str, Staff], clinic: dict[str, int]
    ) -> None:
        """An admin deactivates a physician from the staff page, after confirming; the page
        then links to that physician's patients, listed as needing a new physician."""
        sign_in(page, staff["admin"])
        page.goto("/staff")
        page.get_by_role("button", name="Deactivate Dr. Lee", exact=True).click()
        dialog = page.get_by_role("alertdialog", name="Please confirm")
        expect(dialog).to_contain_text("Their 2 patients keep being followed")
        screenshot(page, "staff-confirm-deactivate", database_kind(web_ctx))
        dialog.get_by_role("button", name="Yes, deactivate").click()
        expect(page.get_by_role("alertdialog")).to_have_count(0)
        expect(page.get_by_role("button", name="Deactivate Dr. Lee", exact=True)).to_have_count(0)
        page.get_by_role("link", name="2 need a new physician").click()
        expect(page.get_by_role("heading", name="Patients")).to_be_visible()
        expect(page.get_by_text("needs a new physician (theirs was deactivated)")).to_have_count(2)
        screenshot(page, "patients-need-physician", database_kind(web_ctx))
