"""Taking staff access away: a revoked account's next command or button is refused at once, a
deactivated physician's patients are still followed and shown as needing a new physician."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from bot.cli import app
from bot.services import labs, staff, staff_access
from storage import digest as digest_storage
from storage.models import AuditEvent
from tests.bot.e2e import RunningBot
from tests.conftest import TEST_PSEUDONYM_KEY
from tests.labs.conftest import Clinic
from tests.labs.test_physician_chat import NOT_AVAILABLE, ask, joined, texts

pytestmark = pytest.mark.slow

ACTOR = "cli:test"


def audit_actions(bot: RunningBot, physician_id: int) -> list[tuple[str, str]]:
    with bot.ctx.session() as session:
        events = session.exec(
            select(AuditEvent).where(
                AuditEvent.entity == "physician", AuditEvent.entity_id == physician_id
            )
        )
        return [(event.action, event.actor) for event in events]


class TestUnlink:
    async def test_next_command_and_button_are_refused(
        self, running_bot: RunningBot, clinic: Clinic
    ) -> None:
        """After unlinking, the account's next command gets "not available" and a Save button
        shown before stores nothing; the change is audited."""
        dr_a = await joined(running_bot, clinic.codes["dr_a"], "DrA")
        await ask(running_bot, dr_a, "/crp", "MRN-0001", "7.59")
        change = staff_access.unlink_account(
            running_bot.ctx, physician_id=clinic.physician_a, actor=ACTOR
        )
        assert change.changed
        dr_a.press_button("Save")
        await running_bot.settle()
        assert labs.list_lab_values(running_bot.ctx, clinic_ref="MRN-0001") == []
        assert texts(await ask(running_bot, dr_a, "/patients")) == [NOT_AVAILABLE]
        assert audit_actions(running_bot, clinic.physician_a) == [("unlink_account", ACTOR)]
        again = staff_access.unlink_account(
            running_bot.ctx, physician_id=clinic.physician_a, actor=ACTOR
        )
        assert not again.changed
        # A new code links a new account.
        code = staff.new_physician_code(running_bot.ctx, physician_id=clinic.physician_a)
        new_phone = await joined(running_bot, code.code, "DrANewPhone")
        assert "MRN-0001" in texts(await ask(running_bot, new_phone, "/patients"))[0]


class TestRemoveAdmin:
    async def test_admin_sees_only_own_patients_at_once(
        self, running_bot: RunningBot, clinic: Clinic
    ) -> None:
        """An admin whose rights are removed no longer sees another physician's patient."""
        created = staff.add_physician(running_bot.ctx, display_name="Admin", admin=True)
        admin = await joined(running_bot, created.code.code, "Admin")
        assert "MRN-0003" in texts(await ask(running_bot, admin, "/patients"))[0]
        change = staff_access.remove_admin(
            running_bot.ctx, physician_id=created.physician_id, actor=ACTOR
        )
        assert change.changed
        listing = texts(await ask(running_bot, admin, "/patients"))[0]
        assert "MRN-0003" not in listing
        await ask(running_bot, admin, "/crp", "MRN-0003", "4")
        assert admin.buttons() == []
        assert labs.list_lab_values(running_bot.ctx, clinic_ref="MRN-0003") == []
        assert audit_actions(running_bot, created.physician_id) == [("remove_admin", ACTOR)]


class TestDeactivate:
    async def test_refused_patients_followed_and_flagged_for_the_admin(
        self, running_bot: RunningBot, clinic: Clinic
    ) -> None:
        """A deactivated physician is refused, gets no digest and no new code; their patients
        stay active, and the admin sees them as needing a new physician."""
        dr_a = await joined(running_bot, clinic.codes["dr_a"], "DrA")
        ana = await joined(running_bot, clinic.codes["MRN-0001"], "Ana")
        for data in ("o:lang:en", "o:consent:yes", "o:tz:Europe/Berlin", "o:day:0", "o:time:18:00"):
            ana.press(data)
            await running_bot.settle()
        created = staff.add_physician(running_bot.ctx, display_name="Admin", admin=True)
        admin = await joined(running_bot, created.code.code, "Admin")
        change = staff_access.deactivate(
            running_bot.ctx, physician_id=clinic.physician_a, actor=ACTOR
        )
        assert change.changed
        assert texts(await ask(running_bot, dr_a, "/patients")) == [NOT_AVAILABLE]
        with pytest.raises(staff.StaffError, match="deactivated"):
            staff.new_physician_code(running_bot.ctx, physician_id=clinic.physician_a)
        with running_bot.ctx.session() as session:
            digest_recipients = {
                row.physician.id for row in digest_storage.physicians_with_chats(session=session)
            }
        assert clinic.physician_a not in digest_recipients
        assert clinic.physician_b in digest_recipients
        listing = texts(await ask(running_bot, admin, "/patients"))[0]
        assert "needs a new physician" in listing
        rows = {row.clinic_ref: row for row in staff.list_patients(running_bot.ctx)}
        assert rows["MRN-0001"].needs_physician
        assert not rows["MRN-0003"].needs_physician
        ana.send_command("/checkin")
        await running_bot.settle()
        assert "Question 1" in str(ana.last_message()["text"])
        assert audit_actions(running_bot, clinic.physician_a) == [("deactivate", ACTOR)]


class TestCommandLine:
    def test_commands_are_audited_and_say_what_they_did(
        self, monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path
    ) -> None:
        """`physician unlink`, `deactivate` and `remove-admin` report the change (or that
        there was nothing to take away) and name an unknown physician in one line."""
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("DATABASE_URL", database_url)
        monkeypatch.setenv("PSEUDONYM_KEY", TEST_PSEUDONYM_KEY)
        runner = CliRunner()
        assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
        runner.invoke(app, ["physician", "add", "--name", "Dr", "--admin"])
        removed = runner.invoke(app, ["physician", "remove-admin", "1", "--json"])
        assert json.loads(removed.output)["changed"] is True
        assert "was not an admin" in runner.invoke(app, ["physician", "remove-admin", "1"]).output
        assert "no Telegram account" in runner.invoke(app, ["physician", "unlink", "1"]).output
        assert "deactivated" in runner.invoke(app, ["physician", "deactivate", "1"]).output
        unknown = runner.invoke(app, ["physician", "deactivate", "9"])
        assert unknown.exit_code != 0
        assert "no physician with id 9" in unknown.output
