"""The digest page (a physician's own digest as sent, an admin's choice of physician) and the
admin's audit trail page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from starlette.testclient import TestClient

from bot.context import AppContext
from bot.web.app import create_app
from storage import audit
from tests.conftest import T0
from tests.digest import builders
from tests.web.conftest import Staff, sign_in


@pytest.fixture
def clinic(web_ctx: AppContext, physician_id: int) -> dict[str, int]:
    """Dr. Lee's seed-case patient with a very high ASDAS last week; another physician's."""
    seed = builders.patient(web_ctx, physician_id, ref="SEED-1")
    done = T0 - timedelta(days=3)
    builders.completed(
        web_ctx, seed, done, item=3, back=5, peripheral=0, minutes=60, patient_global=5
    )
    builders.crp(web_ctx, seed, done, "64.6")
    other_physician = builders.physician(web_ctx, telegram_user_id=0)
    builders.patient(web_ctx, other_physician, ref="OTHER-3")
    return {"seed": seed, "other_physician": other_physician}


def _signed_in(ctx: AppContext, person: Staff) -> TestClient:
    client = TestClient(create_app(ctx), follow_redirects=False)
    assert sign_in(client, person) == 303
    return client


class TestDigestPage:
    def test_physician_reads_this_weeks_digest_as_sent(
        self, web_ctx: AppContext, staff: dict[str, Staff], clinic: dict[str, int]
    ) -> None:
        """The digest of the last complete week names the patient needing attention."""
        with _signed_in(web_ctx, staff["physician"]) as client:
            page = client.get("/digests")
        assert page.status_code == 200
        assert "2026-W09" in page.text
        assert "SEED-1" in page.text
        assert "OTHER-3" not in page.text
        assert "3.9" in page.text
        with web_ctx.session() as session:
            viewed = audit.list_events(session=session, entity="digest")
        assert [(e.actor, e.action) for e in viewed] == [
            (f"staff:{staff['physician'].account_id}", "view")
        ]

    def test_physician_cannot_read_another_physicians_digest(
        self, web_ctx: AppContext, staff: dict[str, Staff], clinic: dict[str, int]
    ) -> None:
        """Asking for another physician's digest is "not found"."""
        with _signed_in(web_ctx, staff["physician"]) as client:
            page = client.get("/digests", params={"physician": clinic["other_physician"]})
        assert page.status_code == 404

    def test_admin_chooses_the_physician_and_an_earlier_week(
        self,
        web_ctx: AppContext,
        staff: dict[str, Staff],
        clinic: dict[str, int],
        physician_id: int,
    ) -> None:
        """An admin reads any physician's digest, for any of the weeks offered."""
        with _signed_in(web_ctx, staff["admin"]) as client:
            page = client.get("/digests", params={"physician": physician_id, "week": "2026-W08"})
        assert page.status_code == 200
        assert "2026-W08" in page.text


class TestAuditPage:
    def test_admin_reads_who_opened_which_patient(
        self, web_ctx: AppContext, staff: dict[str, Staff], clinic: dict[str, int]
    ) -> None:
        """A patient page view appears with the account's e-mail, filterable by patient."""
        with _signed_in(web_ctx, staff["physician"]) as client:
            client.get("/patients/SEED-1")
        with _signed_in(web_ctx, staff["admin"]) as client:
            page = client.get("/audit", params={"ref": "SEED-1"})
            unknown = client.get("/audit", params={"ref": "NOPE"})
        assert page.status_code == 200
        assert staff["physician"].email in page.text
        assert "patient view" in page.text
        assert "No patient with this reference." in unknown.text

    @pytest.mark.parametrize("role", ["physician", "nurse", "researcher"])
    def test_only_admins_read_the_audit_trail(
        self, web_ctx: AppContext, staff: dict[str, Staff], role: str
    ) -> None:
        """Every other role gets 403."""
        with _signed_in(web_ctx, staff[role]) as client:
            assert client.get("/audit").status_code == 403
