"""Lab entry in the web app: the preview shows what will be stored and the ASDAS it completes,
nothing is stored before confirming, files get a dry-run report, fixes and deletions need a
reason; each role enters values only for the patients it may."""

from __future__ import annotations

from datetime import timedelta

import pytest
from starlette.testclient import TestClient

from bot.context import AppContext
from bot.services import labs as lab_service
from bot.web.app import create_app
from storage import audit
from tests.conftest import T0
from tests.digest import builders
from tests.web.conftest import Staff, form_token, make_staff, sign_in

DONE = T0 - timedelta(days=1)
DRAWN = (DONE - timedelta(days=1)).date().isoformat()


@pytest.fixture
def clinic(web_ctx: AppContext, physician_id: int) -> dict[str, int]:
    """Dr. Lee's seed-case patient awaiting CRP, and another physician's patient."""
    seed = builders.patient(web_ctx, physician_id, ref="SEED-1")
    builders.completed(
        web_ctx, seed, DONE, item=3, back=5, peripheral=0, minutes=60, patient_global=5
    )
    other_physician = builders.physician(web_ctx, telegram_user_id=0)
    other = builders.patient(web_ctx, other_physician, ref="OTHER-3")
    return {"seed": seed, "other": other, "other_physician": other_physician}


def _signed_in(ctx: AppContext, person: Staff) -> TestClient:
    client = TestClient(create_app(ctx), follow_redirects=False)
    assert sign_in(client, person) == 303
    return client


def _entry(token: str, *lines: tuple[str, str, str, str, str]) -> dict[str, object]:
    return {
        "csrf_token": token,
        "ref": [line[0] for line in lines],
        "crp": [line[1] for line in lines],
        "unit": [line[2] for line in lines],
        "esr": [line[3] for line in lines],
        "drawn": [line[4] for line in lines],
    }


def _stored(ctx: AppContext, ref: str) -> list[lab_service.LabView]:
    return lab_service.list_lab_values(ctx, clinic_ref=ref)


class TestEntry:
    def test_preview_shows_the_asdas_and_stores_nothing(
        self, web_ctx: AppContext, staff: dict[str, Staff], clinic: dict[str, int]
    ) -> None:
        """The seed case's CRP 64.6 completes ASDAS-CRP 3.9, very high: shown, not stored."""
        with _signed_in(web_ctx, staff["physician"]) as client:
            token = form_token(client, "/labs")
            page = client.post(
                "/labs/preview", data=_entry(token, ("SEED-1", "64.6", "mg/L", "", DRAWN))
            )
        assert page.status_code == 200
        assert "CRP 64.6 mg/L" in page.text
        assert "ASDAS-CRP <strong>3.9</strong>" in page.text
        assert "very high disease activity" in page.text
        assert _stored(web_ctx, "SEED-1") == []

    def test_save_stores_exactly_the_preview_and_audits_the_person(
        self, web_ctx: AppContext, staff: dict[str, Staff], clinic: dict[str, int]
    ) -> None:
        """Saving stores the value once, entered by this account, in mg/L from mg/dL."""
        with _signed_in(web_ctx, staff["physician"]) as client:
            token = form_token(client, "/labs")
            data = _entry(token, ("SEED-1", "6.46", "mg/dL", "12", DRAWN))
            preview = client.post("/labs/preview", data=data)
            assert "(= 64.6 mg/L)" in preview.text
            saved = client.post("/labs/save", data=data)
            again = client.post("/labs/save", data=data)
        assert saved.status_code == 200
        assert "Lab values saved" in saved.text
        assert "already stored with this value" in again.text
        values = _stored(web_ctx, "SEED-1")
        assert sorted((v.analyte, str(v.value_normalised)) for v in values) == [
            ("crp", "64.6"),
            ("esr", "12"),
        ]
        assert {v.entered_by for v in values} == {f"staff:{staff['physician'].account_id}"}
        assert {v.source for v in values} == {"web"}

    def test_one_bad_line_stores_nothing(
        self, web_ctx: AppContext, staff: dict[str, Staff], clinic: dict[str, int]
    ) -> None:
        """A save with a refused line stores none of the lines, and says why."""
        with _signed_in(web_ctx, staff["physician"]) as client:
            token = form_token(client, "/labs")
            data = _entry(
                token, ("SEED-1", "64.6", "mg/L", "", DRAWN), ("SEED-1", "-3", "mg/L", "", DRAWN)
            )
            response = client.post("/labs/save", data=data)
        assert response.status_code == 400
        assert "is negative" in response.text
        assert _stored(web_ctx, "SEED-1") == []

    def test_nurse_enters_only_for_assigned_physicians(
        self, web_ctx: AppContext, staff: dict[str, Staff], clinic: dict[str, int]
    ) -> None:
        """Another physician's patient reads as an unknown reference to the nurse."""
        with _signed_in(web_ctx, staff["nurse"]) as client:
            token = form_token(client, "/labs")
            own = client.post("/labs/save", data=_entry(token, ("SEED-1", "5", "mg/L", "", DRAWN)))
            other = client.post(
                "/labs/save", data=_entry(token, ("OTHER-3", "5", "mg/L", "", DRAWN))
            )
        assert own.status_code == 200
        assert other.status_code == 400
        assert "no patient with reference “OTHER-3”" in other.text
        assert _stored(web_ctx, "OTHER-3") == []

    def test_form_without_csrf_token_stores_nothing(
        self, web_ctx: AppContext, staff: dict[str, Staff], clinic: dict[str, int]
    ) -> None:
        """A save posted from elsewhere is refused."""
        with _signed_in(web_ctx, staff["physician"]) as client:
            data = _entry("", ("SEED-1", "64.6", "mg/L", "", DRAWN))
            assert client.post("/labs/save", data=data).status_code == 403
        assert _stored(web_ctx, "SEED-1") == []


LAB_FILE = (
    "Patient;Drawn;Test;Result;Unit\n"
    f"SEED-1;{DRAWN};CRP;64,6;mg/L\n"
    f"SEED-1;{DRAWN};ESR;-4;mm/h\n"
    f"OTHER-3;{DRAWN};CRP;3;mg/L\n"
).encode()


class TestLabFile:
    def test_dry_run_report_then_confirm_stores_the_good_lines(
        self, web_ctx: AppContext, staff: dict[str, Staff], clinic: dict[str, int]
    ) -> None:
        """Each bad line is reported with its reason; only the confirm step stores."""
        with _signed_in(web_ctx, staff["nurse"]) as client:
            token = form_token(client, "/labs")
            report = client.post(
                "/labs/upload",
                data={"csrf_token": token},
                files={"file": ("labs.csv", LAB_FILE, "text/csv")},
            )
            assert report.status_code == 200
            assert "1 line(s) would be stored" in report.text
            assert "“-4” is negative" in report.text
            assert "no patient with reference “OTHER-3”" in report.text
            assert _stored(web_ctx, "SEED-1") == []
            data = report.text.split('name="data" value="', 1)[1].split('"', 1)[0]
            done = client.post("/labs/upload/confirm", data={"csrf_token": token, "data": data})
        assert done.status_code == 200
        assert "Imported: 1 line(s) stored" in done.text
        assert [str(v.value_normalised) for v in _stored(web_ctx, "SEED-1")] == ["64.6"]
        assert _stored(web_ctx, "OTHER-3") == []

    def test_a_file_that_is_no_lab_file_says_why(
        self, web_ctx: AppContext, staff: dict[str, Staff], clinic: dict[str, int]
    ) -> None:
        """A file without the needed columns is refused with the missing column named."""
        with _signed_in(web_ctx, staff["physician"]) as client:
            token = form_token(client, "/labs")
            report = client.post(
                "/labs/upload",
                data={"csrf_token": token},
                files={"file": ("x.csv", b"a;b\n1;2\n", "text/csv")},
            )
        assert report.status_code == 400
        assert "the header lacks the column" in report.text


class TestFixAndDelete:
    def _lab(self, web_ctx: AppContext, staff: dict[str, Staff]) -> int:
        with _signed_in(web_ctx, staff["physician"]) as client:
            token = form_token(client, "/labs")
            client.post("/labs/save", data=_entry(token, ("SEED-1", "64.6", "mg/L", "", DRAWN)))
        return _stored(web_ctx, "SEED-1")[0].lab_id

    def test_fix_needs_a_reason_and_is_audited(
        self, web_ctx: AppContext, staff: dict[str, Staff], clinic: dict[str, int]
    ) -> None:
        """A correction without a reason changes nothing; with one it is recorded."""
        lab_id = self._lab(web_ctx, staff)
        with _signed_in(web_ctx, staff["physician"]) as client:
            token = form_token(client, "/labs/patient?ref=SEED-1")
            base = {"csrf_token": token, "ref": "SEED-1", "value": "7.59"}
            missing = client.post(f"/labs/{lab_id}/fix", data={**base, "reason": " "})
            assert missing.status_code == 400
            assert "give the reason" in missing.text
            fixed = client.post(f"/labs/{lab_id}/fix", data={**base, "reason": "typo"})
            assert fixed.status_code == 303
        assert [str(v.value) for v in _stored(web_ctx, "SEED-1")] == ["7.59"]
        with web_ctx.session() as session:
            events = audit.list_events(session=session, entity="lab", entity_id=lab_id)
        assert events[-1].action == "correct"
        assert '"reason": "typo"' in (events[-1].after or "")
        assert events[-1].actor == f"staff:{staff['physician'].account_id}"

    def test_delete_withdraws_the_value_from_the_asdas(
        self, web_ctx: AppContext, staff: dict[str, Staff], clinic: dict[str, int]
    ) -> None:
        """After deletion the questionnaire has no ASDAS-CRP any more."""
        lab_id = self._lab(web_ctx, staff)
        with _signed_in(web_ctx, staff["physician"]) as client:
            token = form_token(client, "/labs/patient?ref=SEED-1")
            response = client.post(
                f"/labs/{lab_id}/delete",
                data={"csrf_token": token, "ref": "SEED-1", "reason": "wrong patient"},
            )
            assert response.status_code == 303
            record = client.get("/patients/SEED-1").text
        assert _stored(web_ctx, "SEED-1") == []
        assert "3.9" not in record

    def test_another_physicians_lab_value_is_not_found(
        self, web_ctx: AppContext, staff: dict[str, Staff], clinic: dict[str, int]
    ) -> None:
        """Another physician can neither see nor delete a lab value of Dr. Lee's patient."""
        lab_id = self._lab(web_ctx, staff)
        stranger = make_staff(
            web_ctx, "physician", physician_id=clinic["other_physician"], email="o@clinic.example"
        )
        with _signed_in(web_ctx, stranger) as client:
            assert client.get("/labs/patient?ref=SEED-1").status_code == 404
            token = form_token(client, "/labs")
            response = client.post(
                f"/labs/{lab_id}/delete",
                data={"csrf_token": token, "ref": "SEED-1", "reason": "mine now"},
            )
        assert response.status_code == 404
        assert len(_stored(web_ctx, "SEED-1")) == 1


class TestLabValuesAudit:
    def test_showing_a_patients_lab_values_is_audited(
        self, web_ctx: AppContext, staff: dict[str, Staff], clinic: dict[str, int]
    ) -> None:
        """The nurse's look at a patient's lab values is recorded like a patient page."""
        with _signed_in(web_ctx, staff["nurse"]) as client:
            assert client.get("/labs/patient?ref=SEED-1").status_code == 200
            assert client.get("/labs/patient?ref=OTHER-3").status_code == 404
        with web_ctx.session() as session:
            events = [
                (event.actor, event.patient_id)
                for event in audit.list_events(session=session, entity="patient")
                if event.action == "view_labs"
            ]
        assert events == [(f"staff:{staff['nurse'].account_id}", clinic["seed"])]
