"""Taking a physician's Telegram access away from the staff page: unlink, remove admin rights,
deactivate; each asked to be confirmed, audited as the admin, refused to everyone else."""

from __future__ import annotations

import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from bot.context import AppContext
from bot.services import enrollment, staff, staff_access
from bot.services.physician_panel import viewer_of
from bot.web.app import create_app
from storage.models import AuditEvent
from tests.factories import make_patient
from tests.web.conftest import Staff, form_token, make_staff, sign_in

DR_TELEGRAM_ID = 7_000_001


@pytest.fixture
def doctor(web_ctx: AppContext) -> int:
    """An admin physician linked to a Telegram account, following two patients."""
    created = staff.add_physician(web_ctx, display_name="Dr. Gone", admin=True)
    linked = enrollment.enroll(
        web_ctx,
        telegram_user_id=DR_TELEGRAM_ID,
        chat_id=DR_TELEGRAM_ID,
        code_text=created.code.code,
        language="en",
    )
    assert linked.outcome is enrollment.Outcome.PHYSICIAN_LINKED, linked
    make_patient(web_ctx, physician_id=created.physician_id, ref="LEFT-1")
    make_patient(web_ctx, physician_id=created.physician_id, ref="LEFT-2")
    return created.physician_id


def _signed_in(ctx: AppContext, person: Staff) -> TestClient:
    client = TestClient(create_app(ctx), follow_redirects=False)
    assert sign_in(client, person) == 303
    return client


def _access(ctx: AppContext, physician_id: int) -> staff_access.PhysicianAccess:
    return next(row for row in staff_access.list_access(ctx) if row.physician_id == physician_id)


def _audited(ctx: AppContext, physician_id: int) -> list[tuple[str, str]]:
    with ctx.session() as session:
        events = session.exec(
            select(AuditEvent).where(
                AuditEvent.entity == "physician", AuditEvent.entity_id == physician_id
            )
        )
        return [(event.action, event.actor) for event in events]


def _is_viewer(ctx: AppContext) -> bool:
    with ctx.session() as session:
        return viewer_of(session, DR_TELEGRAM_ID) is not None


def _ask_then_confirm(client: TestClient, physician_id: int, action: str) -> tuple[str, int]:
    """Presses the action's button (the page asks to confirm), then confirms; returns the
    confirmation page and the status of the confirmed request."""
    token = form_token(client, "/staff")
    asked = client.post(f"/staff/physicians/{physician_id}/{action}", data={"csrf_token": token})
    assert asked.status_code == 200, asked.text
    assert 'role="alertdialog"' in asked.text
    done = client.post(
        f"/staff/physicians/{physician_id}/{action}",
        data={"csrf_token": token, "confirm": "yes"},
    )
    return asked.text, done.status_code


class TestAdminTakesAccessAway:
    def test_unlink_telegram_after_confirming(
        self, web_ctx: AppContext, staff: dict[str, Staff], doctor: int
    ) -> None:
        """Asking first changes nothing; confirmed, the account is unlinked (its next command
        is refused) and the audit trail names the admin."""
        admin = staff["admin"]
        with _signed_in(web_ctx, admin) as client:
            token = form_token(client, "/staff")
            asked = client.post(
                f"/staff/physicians/{doctor}/unlink-telegram", data={"csrf_token": token}
            )
            assert "Unlink the Telegram account of Dr. Gone" in asked.text
            assert _access(web_ctx, doctor).telegram_linked
            assert _is_viewer(web_ctx)
            done = client.post(
                f"/staff/physicians/{doctor}/unlink-telegram",
                data={"csrf_token": token, "confirm": "yes"},
            )
            assert done.status_code == 303
            page = client.get("/staff")
        assert not _access(web_ctx, doctor).telegram_linked
        assert not _is_viewer(web_ctx)
        assert _audited(web_ctx, doctor) == [("unlink_account", f"staff:{admin.account_id}")]
        assert "not linked" in page.text

    def test_remove_admin_rights(
        self, web_ctx: AppContext, staff: dict[str, Staff], doctor: int
    ) -> None:
        """Confirmed, the physician keeps their account but loses clinic-admin rights."""
        admin = staff["admin"]
        with _signed_in(web_ctx, admin) as client:
            asked, status = _ask_then_confirm(client, doctor, "remove-admin")
        assert "Remove the clinic-admin rights of Dr. Gone" in asked
        assert status == 303
        row = _access(web_ctx, doctor)
        assert not row.admin
        assert row.telegram_linked
        assert not row.deactivated
        assert _audited(web_ctx, doctor) == [("remove_admin", f"staff:{admin.account_id}")]

    def test_deactivate_lists_their_patients_as_needing_a_new_physician(
        self, web_ctx: AppContext, staff: dict[str, Staff], doctor: int
    ) -> None:
        """Confirmed, the physician is deactivated and unlinked; the staff page and the patient
        list show their two patients as needing a new physician; no action is offered again."""
        admin = staff["admin"]
        with _signed_in(web_ctx, admin) as client:
            asked, status = _ask_then_confirm(client, doctor, "deactivate")
            staff_page = client.get("/staff")
            patients = client.get("/patients")
        assert "Their 2 patients keep being followed" in asked
        assert status == 303
        row = _access(web_ctx, doctor)
        assert row.deactivated
        assert not row.telegram_linked
        assert row.patients_needing_physician == 2
        assert not _is_viewer(web_ctx)
        assert _audited(web_ctx, doctor) == [("deactivate", f"staff:{admin.account_id}")]
        assert "2 need a new physician" in staff_page.text
        assert f"/staff/physicians/{doctor}/" not in staff_page.text
        assert patients.text.count("needs a new physician (theirs was deactivated)") == 2

    def test_deactivating_ends_the_physicians_web_account_too(
        self, web_ctx: AppContext, staff: dict[str, Staff], physician_id: int
    ) -> None:
        """A physician who left no longer reads their patients on the web either: their web
        account is deactivated and its open session ends at once."""
        with _signed_in(web_ctx, staff["physician"]) as theirs:
            assert theirs.get("/patients").status_code == 200
            with _signed_in(web_ctx, staff["admin"]) as client:
                _asked, status = _ask_then_confirm(client, physician_id, "deactivate")
            assert status == 303
            after = theirs.get("/patients")
        assert after.status_code == 303
        assert after.headers["location"].startswith("/login")
        assert (
            sign_in(TestClient(create_app(web_ctx), follow_redirects=False), staff["physician"])
            != 303
        )
        assert [action for action, _actor in _audited(web_ctx, physician_id)] == ["deactivate"]

    def test_in_chinese(self, web_ctx: AppContext, doctor: int) -> None:
        """The section, its buttons and the confirmation come from the Chinese catalogue."""
        admin = make_staff(web_ctx, "admin", email="zh-admin@clinic.example", language="zh")
        with _signed_in(web_ctx, admin) as client:
            page = client.get("/staff")
            asked, _status = _ask_then_confirm(client, doctor, "deactivate")
        assert "Telegram 中的医生" in page.text
        assert "停用 Dr. Gone" in page.text
        assert "其 2 位患者将继续随访" in asked

    def test_unknown_physician_or_action(
        self, web_ctx: AppContext, staff: dict[str, Staff], doctor: int
    ) -> None:
        """A physician that does not exist and an action that does not exist change nothing."""
        with _signed_in(web_ctx, staff["admin"]) as client:
            token = form_token(client, "/staff")
            missing = client.post(
                "/staff/physicians/999999/deactivate", data={"csrf_token": token, "confirm": "yes"}
            )
            asked = client.post("/staff/physicians/999999/deactivate", data={"csrf_token": token})
            odd = client.post(
                f"/staff/physicians/{doctor}/delete", data={"csrf_token": token, "confirm": "yes"}
            )
        assert missing.status_code == 404
        assert asked.status_code == 404
        assert odd.status_code == 404
        assert _audited(web_ctx, doctor) == []


class TestRefused:
    @pytest.mark.parametrize("action", ["unlink-telegram", "remove-admin", "deactivate"])
    @pytest.mark.parametrize("role", ["physician", "nurse", "researcher"])
    def test_other_roles_are_refused(
        self, web_ctx: AppContext, staff: dict[str, Staff], doctor: int, role: str, action: str
    ) -> None:
        """Only an admin takes access away: everyone else gets 403 and nothing changes."""
        with _signed_in(web_ctx, staff[role]) as client:
            token = form_token(client, "/exports" if role == "researcher" else "/labs")
            response = client.post(
                f"/staff/physicians/{doctor}/{action}",
                data={"csrf_token": token, "confirm": "yes"},
            )
        assert response.status_code == 403
        row = _access(web_ctx, doctor)
        assert row.admin
        assert row.telegram_linked
        assert not row.deactivated
        assert _audited(web_ctx, doctor) == []

    @pytest.mark.parametrize("action", ["unlink-telegram", "remove-admin", "deactivate"])
    def test_without_the_csrf_token(
        self, web_ctx: AppContext, staff: dict[str, Staff], doctor: int, action: str
    ) -> None:
        """An admin's browser posting without the session's token (a forged form) changes
        nothing."""
        with _signed_in(web_ctx, staff["admin"]) as client:
            response = client.post(f"/staff/physicians/{doctor}/{action}", data={"confirm": "yes"})
        assert response.status_code == 403
        row = _access(web_ctx, doctor)
        assert row.admin
        assert row.telegram_linked
        assert not row.deactivated
        assert _audited(web_ctx, doctor) == []

    def test_signed_out(self, web_ctx: AppContext, client: TestClient, doctor: int) -> None:
        """Without a session the request is sent to sign in and changes nothing."""
        response = client.post(f"/staff/physicians/{doctor}/deactivate", data={"confirm": "yes"})
        assert response.status_code == 303
        assert response.headers["location"] == "/login"
        assert not _access(web_ctx, doctor).deactivated
        assert _audited(web_ctx, doctor) == []
