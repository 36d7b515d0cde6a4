"""The export page: an export runs in the background with its progress in the database, is
downloaded only by the person who asked (or an admin), carries no identifier, and is audited."""

from __future__ import annotations

import io
import re
import zipfile
from datetime import timedelta

import pytest
from starlette.testclient import TestClient

from bot.context import AppContext
from bot.web.app import create_app
from tests.conftest import T0
from tests.digest import builders
from tests.web.conftest import Staff, form_token, make_staff, sign_in


@pytest.fixture
def clinic(web_ctx: AppContext, physician_id: int) -> None:
    seed = builders.patient(web_ctx, physician_id, ref="SEED-1", name="Ana Identifiable")
    done = T0 - timedelta(days=3)
    builders.completed(
        web_ctx, seed, done, item=3, back=5, peripheral=0, minutes=60, patient_global=5
    )
    builders.crp(web_ctx, seed, done, "64.6")


def _signed_in(ctx: AppContext, person: Staff) -> TestClient:
    client = TestClient(create_app(ctx), follow_redirects=False)
    assert sign_in(client, person) == 303
    return client


def _start(client: TestClient, **fields: str) -> int:
    token = form_token(client, "/exports")
    return client.post("/exports", data={"csrf_token": token, **fields}).status_code


def _download_link(page: str) -> str:
    found = re.search(r'href="(/exports/\d+/download)"', page)
    assert found is not None, page
    return found.group(1)


class TestExportPage:
    def test_researcher_exports_downloads_and_the_export_is_audited(
        self, web_ctx: AppContext, staff: dict[str, Staff], clinic: None
    ) -> None:
        """A wide CSV with the seed case's ASDAS, without reference or name, in the trail."""
        with _signed_in(web_ctx, staff["researcher"]) as client:
            assert _start(client, format="wide", shift_dates="yes") == 303
            page = client.get("/exports").text
            assert "100 %" in page
            assert "1 row" in page
            assert "1 row(s)" not in page
            download = client.get(_download_link(page))
        assert download.status_code == 200
        assert "attachment" in download.headers["content-disposition"]
        body = download.content.decode()
        assert "3.876" in body  # ASDAS-CRP unrounded, spec §5
        assert "SEED-1" not in body
        assert "Identifiable" not in body
        assert f"{staff['researcher'].email} (web)" in page  # the audit trail

    def test_fhir_export_is_one_zip(
        self, web_ctx: AppContext, staff: dict[str, Staff], clinic: None
    ) -> None:
        """FHIR's NDJSON files and manifest come as one archive."""
        with _signed_in(web_ctx, staff["admin"]) as client:
            assert _start(client, format="fhir") == 303
            download = client.get(_download_link(client.get("/exports").text))
        names = zipfile.ZipFile(io.BytesIO(download.content)).namelist()
        assert "manifest.json" in names

    def test_only_the_requester_or_an_admin_downloads(
        self, web_ctx: AppContext, staff: dict[str, Staff], clinic: None
    ) -> None:
        """Another researcher gets "not found" for the file; an admin gets it."""
        with _signed_in(web_ctx, staff["researcher"]) as client:
            _start(client, format="long")
            link = _download_link(client.get("/exports").text)
        other = make_staff(web_ctx, "researcher", email="r2@clinic.example")
        with _signed_in(web_ctx, other) as client:
            assert client.get(link).status_code == 404
            assert "/download" not in client.get("/exports").text
        with _signed_in(web_ctx, staff["admin"]) as client:
            assert client.get(link).status_code == 200

    def test_bad_period_is_refused_with_the_reason(
        self, web_ctx: AppContext, staff: dict[str, Staff], clinic: None
    ) -> None:
        """A start after the end queues nothing."""
        with _signed_in(web_ctx, staff["researcher"]) as client:
            token = form_token(client, "/exports")
            response = client.post(
                "/exports",
                data={
                    "csrf_token": token,
                    "format": "wide",
                    "since": "2026-03-01",
                    "until": "2026-02-01",
                },
            )
        assert response.status_code == 400
        assert "The start date is after the end date" in response.text
        assert "No exports yet." in response.text

    @pytest.mark.parametrize("role", ["physician", "nurse"])
    def test_clinical_roles_cannot_export(
        self, web_ctx: AppContext, staff: dict[str, Staff], role: str
    ) -> None:
        """Exports are for researchers and admins only."""
        with _signed_in(web_ctx, staff[role]) as client:
            assert client.get("/exports").status_code == 403
            assert client.get("/exports/1/download").status_code == 403
