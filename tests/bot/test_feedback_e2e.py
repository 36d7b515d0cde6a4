"""What a patient reads after a questionnaire never reassures against the ASDAS (spec §6)."""

from __future__ import annotations

from datetime import timedelta

from bot.services import labs
from tests.bot.e2e import RunningBot
from tests.bot.test_account_e2e import complete_checkin, patient_row


async def _lab(bot: RunningBot, patient_id: int, crp: str) -> None:
    """The clinic enters a CRP drawn two hours ago."""
    labs.add_lab_values(
        bot.ctx,
        clinic_ref=patient_row(bot, patient_id).clinic_ref,
        drawn=(bot.clock.now() - timedelta(hours=2)).isoformat(timespec="minutes"),
        entered_by="test",
        crp=crp,
        crp_unit="mg/L",
    )


class TestFeedbackAfterQuestionnaire:
    async def test_low_basdai_with_very_high_asdas_is_not_called_low_activity(
        self, running_bot: RunningBot
    ) -> None:
        """BASDAI 3.3 with a CRP of 64.6 (ASDAS-CRP 3.9): the ASDAS state is named, not "lower"."""
        ana, patient_id = await running_bot.onboarded_patient()
        await _lab(running_bot, patient_id, "64.6")
        await complete_checkin(running_bot, ana, ["4", "5", "0", "3", "4", "60", "5"])
        result = ana.last_message()["text"]
        assert "Your BASDAI today is 3.3" in result
        assert "lower disease activity" not in result
        assert "very high disease activity (ASDAS-CRP 3.9)" in result

    async def test_asdas_of_the_previous_questionnaire_in_the_window_counts(
        self, running_bot: RunningBot
    ) -> None:
        """A high ASDAS from three days ago still stops the reassuring sentence."""
        li, patient_id = await running_bot.onboarded_patient(
            language="zh", timezone="Asia/Shanghai"
        )
        await _lab(running_bot, patient_id, "64.6")
        await complete_checkin(running_bot, li, ["4", "5", "0", "3", "4", "60", "5"])
        running_bot.clock.advance(timedelta(days=8))
        await _lab(running_bot, patient_id, "64.6")
        running_bot.clock.advance(timedelta(days=1))
        await complete_checkin(running_bot, li, ["4", "5", "0", "3", "4", "60", "5"])
        result = li.last_message()["text"]
        assert "疾病活动度较低" not in result
        assert "极高疾病活动（ASDAS-CRP 3.9）" in result

    async def test_small_basdai_change_is_about_the_same(self, running_bot: RunningBot) -> None:
        """BASDAI 3.3 then 3.1 (a 0.2 change) reads "about the same", not "lower"."""
        ana, _patient_id = await running_bot.onboarded_patient()
        await complete_checkin(running_bot, ana, ["4", "5", "0", "3", "4", "60", "5"])
        running_bot.clock.advance(timedelta(days=7))
        await complete_checkin(running_bot, ana, ["3", "5", "0", "3", "4", "60", "5"])
        result = ana.last_message()["text"]
        assert "Your BASDAI today is 3.1" in result
        assert "lower than last time" not in result
        assert "about the same as last time (3.3 on 02 Mar 2026)" in result

    async def test_change_of_one_point_is_lower(self, running_bot: RunningBot) -> None:
        """BASDAI 3.3 then 2.3 (exactly 1 point) reads "lower than last time"."""
        ana, _patient_id = await running_bot.onboarded_patient()
        await complete_checkin(running_bot, ana, ["4", "5", "0", "3", "4", "60", "5"])
        running_bot.clock.advance(timedelta(days=7))
        await complete_checkin(running_bot, ana, ["4", "5", "0", "0", "0", "60", "5"])
        result = ana.last_message()["text"]
        assert "Your BASDAI today is 2.3" in result
        assert "That is lower than last time (3.3 on 02 Mar 2026)" in result
