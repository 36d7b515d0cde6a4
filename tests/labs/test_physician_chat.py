"""The physician commands in Telegram, end to end: the real bot against the fake Bot API.

Every physician command and button is tried by a patient, by an unknown account and by a
physician who does not follow the patient: none of them learns anything.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.services import labs, staff
from tests.bot.e2e import RunningBot
from tests.bot.helpers import toasts
from tests.factories import make_patient
from tests.fake_telegram import FakeUser
from tests.labs.conftest import Clinic, questionnaire

NOT_AVAILABLE = "This command is not available."
DONE = datetime(2026, 2, 20, 18, 0, tzinfo=UTC)

pytestmark = pytest.mark.slow


async def joined(bot: RunningBot, code: str, name: str, language: str = "en") -> FakeUser:
    """A Telegram user who sent `/start <code>`."""
    user = bot.api.new_user(name, language_code=language)
    user.send_command("/start", code)
    await bot.settle()
    return user


async def ask(bot: RunningBot, user: FakeUser, command: str, *args: str) -> list[dict[str, object]]:
    """Sends a command and returns the bot's messages sent in reply."""
    before = len(user.messages())
    user.send_command(command, *args)
    await bot.settle()
    return user.messages()[before:]


def texts(messages: list[dict[str, object]]) -> list[str]:
    return [str(m.get("text") or m.get("caption") or "") for m in messages]


@pytest.fixture
async def dr_a(running_bot: RunningBot, clinic: Clinic) -> FakeUser:
    return await joined(running_bot, clinic.codes["dr_a"], "DrA")


@pytest.fixture
async def dr_b(running_bot: RunningBot, clinic: Clinic) -> FakeUser:
    return await joined(running_bot, clinic.codes["dr_b"], "DrB", language="zh")


@pytest.fixture
async def patient(running_bot: RunningBot, clinic: Clinic) -> FakeUser:
    return await joined(running_bot, clinic.codes["MRN-0001"], "Ana")


@pytest.fixture
def stranger(running_bot: RunningBot) -> FakeUser:
    return running_bot.api.new_user("Eve")


PHYSICIAN_COMMANDS = [
    ("/patients",),
    ("/patient", "MRN-0001"),
    ("/patient", "MRN-9999"),
    ("/patient",),
    ("/crp", "MRN-0001", "7.59"),
    ("/crp", "MRN-9999", "7.59"),
    ("/crp",),
]


class TestNotForPatientsOrStrangers:
    @pytest.mark.parametrize("command", PHYSICIAN_COMMANDS)
    @pytest.mark.parametrize("who", ["patient", "stranger"])
    async def test_every_command_is_not_available(
        self,
        running_bot: RunningBot,
        patient: FakeUser,
        stranger: FakeUser,
        command: tuple[str, ...],
        who: str,
    ) -> None:
        """A patient or an unknown account gets exactly "not available", whatever the
        reference, and nothing is kept."""
        user = patient if who == "patient" else stranger
        replies = await ask(running_bot, user, *command)
        assert texts(replies) == [NOT_AVAILABLE], user.transcript()
        assert running_bot.api.calls("sendPhoto") == []
        assert labs.list_lab_values(running_bot.ctx, clinic_ref="MRN-0001") == []

    @pytest.mark.parametrize("who", ["patient", "stranger"])
    async def test_buttons_are_not_available(
        self,
        running_bot: RunningBot,
        dr_a: FakeUser,
        patient: FakeUser,
        stranger: FakeUser,
        who: str,
    ) -> None:
        """Forged Save, Cancel and paging presses from others change nothing."""
        await ask(running_bot, dr_a, "/crp", "MRN-0001", "7.59")
        (_, save), (_, cancel) = dr_a.buttons()
        user = patient if who == "patient" else stranger
        for data in (save, cancel, "p:page:1"):
            user.press(data, force=True)
            await running_bot.settle()
        assert toasts(running_bot.api, user) == [NOT_AVAILABLE] * 3
        assert labs.list_lab_values(running_bot.ctx, clinic_ref="MRN-0001") == []
        dr_a.press(save)
        await running_bot.settle()
        assert "Saved" in str(dr_a.messages()[-1]["text"])


class TestAnotherPhysiciansPatient:
    async def test_looks_exactly_like_an_unknown_reference(
        self, running_bot: RunningBot, dr_b: FakeUser
    ) -> None:
        """Dr B asking about Dr A's patient gets the reply for a reference that does not
        exist, for both /patient and /crp."""
        for command in ("/patient", "/crp"):
            extra = ("7",) if command == "/crp" else ()
            (foreign,) = texts(await ask(running_bot, dr_b, command, "MRN-0001", *extra))
            (missing,) = texts(await ask(running_bot, dr_b, command, "MRN-0404", *extra))
            assert foreign.replace("MRN-0001", "REF") == missing.replace("MRN-0404", "REF")
            assert "MRN-0001" in foreign
        assert dr_b.buttons() == []
        assert running_bot.api.calls("sendPhoto") == []

    async def test_list_holds_only_own_patients(
        self, running_bot: RunningBot, dr_a: FakeUser, dr_b: FakeUser
    ) -> None:
        """/patients lists one's own patients only, in one's own language."""
        (own,) = texts(await ask(running_bot, dr_a, "/patients"))
        assert "MRN-0001" in own
        assert "MRN-0002" in own
        assert "MRN-0003" not in own
        (other,) = texts(await ask(running_bot, dr_b, "/patients"))
        assert "您的患者" in other
        assert "MRN-0003" in other
        assert "MRN-0001" not in other

    async def test_save_of_another_physicians_entry_changes_nothing(
        self, running_bot: RunningBot, dr_a: FakeUser, dr_b: FakeUser
    ) -> None:
        """Dr B pressing Dr A's Save button is told the entry is gone; nothing is stored."""
        await ask(running_bot, dr_a, "/crp", "MRN-0001", "7.59")
        save = dr_a.buttons()[0][1]
        dr_b.press(save, force=True)
        await running_bot.settle()
        assert labs.list_lab_values(running_bot.ctx, clinic_ref="MRN-0001") == []

    async def test_clinic_admin_sees_everyone(
        self, running_bot: RunningBot, clinic: Clinic, dr_a: FakeUser
    ) -> None:
        """A clinic admin sees and enters data for any physician's patient."""
        created = staff.add_physician(running_bot.ctx, display_name="Admin", admin=True)
        admin = await joined(running_bot, created.code.code, "Admin")
        (listing,) = texts(await ask(running_bot, admin, "/patients"))
        assert "All patients" in listing
        assert all(ref in listing for ref in ("MRN-0001", "MRN-0002", "MRN-0003"))
        await ask(running_bot, admin, "/crp", "MRN-0003", "4")
        admin.press_button("Save")
        await running_bot.settle()
        (stored,) = labs.list_lab_values(running_bot.ctx, clinic_ref="MRN-0003")
        assert stored.entered_by == f"physician:{created.physician_id}"


class TestPatientsCommand:
    async def test_scores_states_and_flags(
        self, running_bot: RunningBot, clinic: Clinic, dr_a: FakeUser
    ) -> None:
        """The list shows BASDAI and ASDAS-CRP to one decimal with the state, and a patient
        without CRP as awaiting CRP."""
        questionnaire(running_bot.ctx, patient_id=clinic.patient_1, completed_at=DONE)
        labs.add_lab_values(
            running_bot.ctx, clinic_ref="MRN-0001", drawn="2026-02-19", entered_by="x", crp="7.59"
        )
        questionnaire(running_bot.ctx, patient_id=clinic.patient_2, completed_at=DONE)
        (text,) = texts(await ask(running_bot, dr_a, "/patients"))
        assert "MRN-0001  BASDAI 1.3 · ASDAS-CRP 1.8 (low disease activity)" in text
        assert "MRN-0002  BASDAI 1.3 · ASDAS-CRP awaiting CRP" in text
        assert "latest awaiting CRP" in text

    async def test_long_lists_are_paged_with_buttons(
        self, running_bot: RunningBot, clinic: Clinic, dr_a: FakeUser
    ) -> None:
        """With ten patients the list has two pages; "Next ›" shows the second in place."""
        for number in range(8):
            make_patient(running_bot.ctx, physician_id=clinic.physician_a, ref=f"MRN-1{number:03d}")
        (first,) = await ask(running_bot, dr_a, "/patients")
        assert "page 1 of 2" in str(first["text"])
        assert "MRN-1007" not in str(first["text"])
        dr_a.press_button("Next ›")
        await running_bot.settle()
        shown = dr_a.messages()[-1]
        assert shown["message_id"] == first["message_id"]
        assert "page 2 of 2" in str(shown["text"])
        assert "MRN-1007" in str(shown["text"])
        assert [text for text, _ in dr_a.buttons()] == ["‹ Previous"]


class TestPatientCommand:
    async def test_chart_scores_lab_and_answers(
        self, running_bot: RunningBot, clinic: Clinic, dr_a: FakeUser
    ) -> None:
        """/patient sends the trend chart, then the scores with the CRP used (floor shown as
        such) and the last answers."""
        questionnaire(running_bot.ctx, patient_id=clinic.patient_1, completed_at=DONE)
        labs.add_lab_values(
            running_bot.ctx, clinic_ref="MRN-0001", drawn="2026-02-19", entered_by="x", crp="<0.5"
        )
        photo, message = await ask(running_bot, dr_a, "/patient", "MRN-0001")
        assert photo.get("photo")
        assert "MRN-0001" in str(photo.get("caption"))
        text = str(message["text"])
        assert "ASDAS-CRP 1.2: inactive disease" in text
        assert "CRP <0.5 mg/L, drawn 2026-02-19: below the detection limit, 2 mg/L used" in text
        assert "Morning stiffness, duration: 15 min (1.3/10)" in text
        assert "Back, neck or hip pain: 2" in text

    async def test_without_questionnaires_no_chart(
        self, running_bot: RunningBot, dr_a: FakeUser
    ) -> None:
        """A patient who has answered nothing yet gets a text and no chart."""
        (message,) = await ask(running_bot, dr_a, "/patient", "MRN-0002")
        assert "No completed questionnaire yet." in str(message["text"])

    async def test_display_name_is_never_shown_by_default(
        self, running_bot: RunningBot, dr_a: FakeUser
    ) -> None:
        """Physician messages name patients by clinic reference unless the clinic opts in."""
        replies = await ask(running_bot, dr_a, "/patient", "MRN-0001")
        replies += await ask(running_bot, dr_a, "/patients")
        assert all("Ana Ortiz" not in text for text in texts(replies))


class TestCrpCommand:
    async def test_preview_then_save(
        self, running_bot: RunningBot, clinic: Clinic, dr_a: FakeUser
    ) -> None:
        """/crp shows what will be stored with Save and Cancel; Save stores it with the
        physician as the one who entered it and completes the ASDAS."""
        questionnaire(running_bot.ctx, patient_id=clinic.patient_1, completed_at=DONE)
        (preview,) = await ask(
            running_bot, dr_a, "/crp", "MRN-0001", "0,759", "mg/dL", "2026-02-19", "esr", "12"
        )
        text = str(preview["text"])
        assert "CRP 0.759 mg/dL (= 7.59 mg/L)" in text
        assert "ESR 12 mm/h" in text
        assert "Drawn: 2026-02-19" in text
        assert [label for label, _ in dr_a.buttons()] == ["Save", "Cancel"]
        assert labs.list_lab_values(running_bot.ctx, clinic_ref="MRN-0001") == []
        dr_a.press_button("Save")
        await running_bot.settle()
        saved = dr_a.messages()[-1]
        assert saved["message_id"] == preview["message_id"]
        assert "Saved" in str(saved["text"])
        assert "ASDAS-CRP 1.8 (low disease activity)" in str(saved["text"])
        assert dr_a.buttons() == []
        crp, esr = labs.list_lab_values(running_bot.ctx, clinic_ref="MRN-0001")
        assert crp.entered_by == esr.entered_by == f"physician:{clinic.physician_a}"

    async def test_cancel_stores_nothing(self, running_bot: RunningBot, dr_a: FakeUser) -> None:
        """Cancel replaces the preview with a notice and stores nothing."""
        await ask(running_bot, dr_a, "/crp", "MRN-0001", "7.59")
        dr_a.press_button("Cancel")
        await running_bot.settle()
        assert "Cancelled" in str(dr_a.messages()[-1]["text"])
        assert labs.list_lab_values(running_bot.ctx, clinic_ref="MRN-0001") == []

    async def test_save_works_after_a_restart(
        self, running_bot: RunningBot, dr_a: FakeUser
    ) -> None:
        """A preview made before a restart is saved by a new process, once; a second tap
        leaves the confirmation in place and is answered with a short notice."""
        await ask(running_bot, dr_a, "/crp", "MRN-0001", "7.59")
        save = dr_a.buttons()[0][1]
        await running_bot.restart()
        dr_a.press(save)
        await running_bot.settle()
        dr_a.press(save, force=True)
        await running_bot.settle()
        assert "Saved" in str(dr_a.messages()[-1]["text"])
        notice = running_bot.api.calls("answerCallbackQuery")[-1].params.get("text", "")
        assert "no longer open" in str(notice)
        assert len(labs.list_lab_values(running_bot.ctx, clinic_ref="MRN-0001")) == 1

    async def test_mistakes_are_explained(self, running_bot: RunningBot, dr_a: FakeUser) -> None:
        """An unreadable or implausible value is explained with the usage; nothing kept."""
        (bad,) = texts(await ask(running_bot, dr_a, "/crp", "MRN-0001", "seven"))
        assert "“seven” is not a number" in bad
        assert "Usage: /crp" in bad
        (implausible,) = texts(await ask(running_bot, dr_a, "/crp", "MRN-0001", "700"))
        assert "CRP 700 mg/L is implausible" in implausible
        assert dr_a.buttons() == []

    async def test_in_chinese_for_a_chinese_speaking_physician(
        self, running_bot: RunningBot, dr_b: FakeUser
    ) -> None:
        """A physician whose language is Chinese gets the preview and buttons in Chinese."""
        (preview,) = texts(await ask(running_bot, dr_b, "/crp", "MRN-0003", "<5"))
        assert "保存此化验值" in preview
        assert "低于检测下限" in preview
        assert [label for label, _ in dr_b.buttons()] == ["保存", "取消"]
