"""Enrollment in the web app: adding a patient prints a sheet with a working one-time code,
its t.me link and QR code in the patient's language; renewing invalidates the old code."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from bot.context import AppContext
from bot.services import enrollment
from bot.web.app import create_app
from tests.web.conftest import Staff, form_token, make_staff, sign_in


def _signed_in(ctx: AppContext, person: Staff) -> TestClient:
    client = TestClient(create_app(ctx), follow_redirects=False)
    assert sign_in(client, person) == 303
    return client


def _code(page: str) -> str:
    found = re.search(r'<div class="code">([A-Z0-9]{4})-([A-Z0-9]{4})-([A-Z0-9]{2})</div>', page)
    assert found is not None, page
    return "".join(found.groups())


def _add(client: TestClient, physician_id: int, **fields: str) -> tuple[int, str]:
    token = form_token(client, "/enroll")
    data = {"csrf_token": token, "physician_id": str(physician_id), "ref": "NEW-1", **fields}
    response = client.post("/enroll", data=data)
    return response.status_code, response.text


class TestEnrollment:
    def test_sheet_carries_a_working_code_link_and_qr_in_the_patients_language(
        self, web_ctx: AppContext, staff: dict[str, Staff], physician_id: int
    ) -> None:
        """A nurse adds a Chinese-speaking patient; the sheet is in Chinese and its code links
        the patient's Telegram account."""
        with _signed_in(web_ctx, staff["nurse"]) as client:
            status, page = _add(client, physician_id, language="zh", paper="letter")
        assert status == 200
        code = _code(page)
        assert f"https://t.me/spondy_test_bot?start={code}" in page
        assert 'src="data:image/svg+xml' in page
        assert "每周与您的医生保持联系" in page
        assert "/static/print-letter.css" in page
        assert "Print the sheet now" in page  # the nurse's own words stay English
        linked = enrollment.enroll(
            web_ctx, telegram_user_id=5501, chat_id=5501, code_text=code, language="zh"
        )
        assert linked.outcome is enrollment.Outcome.PATIENT_LINKED

    def test_german_patient_gets_a_german_sheet(
        self, web_ctx: AppContext, staff: dict[str, Staff], physician_id: int
    ) -> None:
        """German is offered in the language list; the sheet of a German-speaking patient is
        in German and declares lang="de", while the nurse's own words stay English."""
        with _signed_in(web_ctx, staff["nurse"]) as client:
            form = client.get("/enroll").text
            status, page = _add(client, physician_id, language="de", paper="a4")
        assert '<option value="de">Deutsch</option>' in form
        assert status == 200
        assert 'lang="de"' in page
        assert "Ihr wöchentlicher Austausch mit Ihrer Ärztin oder Ihrem Arzt" in page
        assert "Print the sheet now" in page

    def test_renewing_invalidates_the_old_code(
        self, web_ctx: AppContext, staff: dict[str, Staff], physician_id: int
    ) -> None:
        """Only the newest code works."""
        with _signed_in(web_ctx, staff["physician"]) as client:
            _, first = _add(client, physician_id)
            token = form_token(client, "/enroll")
            renewed = client.post("/enroll/renew", data={"csrf_token": token, "ref": "NEW-1"})
        old, new = _code(first), _code(renewed.text)
        assert old != new
        refused = enrollment.enroll(
            web_ctx, telegram_user_id=5502, chat_id=5502, code_text=old, language="en"
        )
        assert refused.outcome is not enrollment.Outcome.PATIENT_LINKED
        linked = enrollment.enroll(
            web_ctx, telegram_user_id=5502, chat_id=5502, code_text=new, language="en"
        )
        assert linked.outcome is enrollment.Outcome.PATIENT_LINKED

    def test_duplicate_reference_is_refused_with_the_reason(
        self, web_ctx: AppContext, staff: dict[str, Staff], physician_id: int
    ) -> None:
        """The same reference twice is refused and says so."""
        with _signed_in(web_ctx, staff["admin"]) as client:
            _add(client, physician_id)
            status, page = _add(client, physician_id)
        assert status == 400
        assert "exists already" in page

    def test_nobody_enrolls_for_a_physician_they_do_not_serve(
        self, web_ctx: AppContext, staff: dict[str, Staff], physician_id: int
    ) -> None:
        """A nurse not assigned to the physician, or another physician, is refused; their
        renewal of a code of that physician's patient reads as an unknown patient."""
        other = make_staff(web_ctx, "nurse", email="other-nurse@clinic.example")
        with _signed_in(web_ctx, staff["admin"]) as client:
            _add(client, physician_id)
        with _signed_in(web_ctx, other) as client:
            status, page = _add(client, physician_id, ref="NEW-2")
            token = form_token(client, "/enroll")
            renewal = client.post("/enroll/renew", data={"csrf_token": token, "ref": "NEW-1"})
        assert status == 400
        assert "Choose one of the physicians listed" in page
        assert renewal.status_code == 404

    @pytest.mark.parametrize("role", ["researcher"])
    def test_role_without_enrollment_is_refused(
        self, web_ctx: AppContext, staff: dict[str, Staff], physician_id: int, role: str
    ) -> None:
        """A researcher never reaches the enrollment forms."""
        with _signed_in(web_ctx, staff[role]) as client:
            assert client.get("/enroll").status_code == 403
            assert client.post("/enroll", data={}).status_code == 403
