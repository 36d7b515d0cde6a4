"""`/digest` in chat and the immediate alerts, through the real bot and a fake Telegram."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from bot.context import AppContext
from bot.services import digest, labs
from bot.telegram.delivery import RetryPolicy
from bot.telegram.digest_sending import send_completion_alerts
from bot.telegram.tick import run_tick
from storage import deliveries, enrollment, physicians
from storage.models import Patient
from tests.bot.e2e import RunningBot
from tests.bot.helpers import toasts
from tests.conftest import T0
from tests.digest import builders as b
from tests.fake_telegram import FakeUser

FAST = RetryPolicy(attempts=2, first_backoff=0.0, max_backoff=0.0, read_timeout=5.0)


def schedule_of(ctx: AppContext, physician_id: int) -> tuple[int, time, bool]:
    with ctx.session() as session:
        found = physicians.get_physician(session=session, physician_id=physician_id)
        assert found is not None
        return found.digest_weekday, found.digest_time, found.alerts_enabled


class TestDigestCommand:
    async def test_shows_the_schedule_with_buttons(self, running_bot: RunningBot) -> None:
        """A physician sees when the digest arrives, and buttons to change it or get it now."""
        lee, _ = await running_bot.linked_physician()
        lee.send_command("/digest")
        await running_bot.settle()
        shown = lee.last_message()
        assert shown is not None
        assert "every Monday at 08:00 (Europe/Berlin)" in shown["text"]
        assert "Immediate alerts" in shown["text"]
        assert [label for label, _ in lee.buttons()] == [
            "Change weekday",
            "Change time",
            "Send the digest now",
            "Turn alerts on",
        ]

    async def test_change_weekday_and_time(self, running_bot: RunningBot) -> None:
        """Picking Friday and then 17:00 is saved and shown."""
        lee, doctor = await running_bot.linked_physician()
        lee.send_command("/digest")
        await running_bot.settle()
        for label in ("Change weekday", "Friday", "Change time", "17:00"):
            lee.press_button(label)
            await running_bot.settle()
        assert schedule_of(running_bot.ctx, doctor)[:2] == (4, time(17, 0))
        text = lee.last_message()["text"]  # type: ignore[index]
        assert text.startswith("Saved.")
        assert "every Friday at 17:00" in text

    async def test_back_returns_to_the_settings_unchanged(self, running_bot: RunningBot) -> None:
        """Opening the weekday choice and going back changes nothing."""
        lee, doctor = await running_bot.linked_physician()
        lee.send_command("/digest")
        await running_bot.settle()
        lee.press_button("Change weekday")
        await running_bot.settle()
        assert lee.last_message()["text"] == "On which weekday should the digest arrive?"  # type: ignore[index]
        lee.press_button("Back")
        await running_bot.settle()
        text = lee.last_message()["text"]  # type: ignore[index]
        assert text.startswith("Weekly digest")
        assert schedule_of(running_bot.ctx, doctor)[:2] == (0, time(8, 0))

    async def test_alerts_on_and_off(self, running_bot: RunningBot) -> None:
        """Immediate alerts are off by default and toggled by the button."""
        lee, doctor = await running_bot.linked_physician()
        assert schedule_of(running_bot.ctx, doctor)[2] is False
        lee.send_command("/digest")
        await running_bot.settle()
        lee.press_button("Turn alerts on")
        await running_bot.settle()
        assert schedule_of(running_bot.ctx, doctor)[2] is True
        assert "Turn alerts off" in [label for label, _ in lee.buttons()]
        lee.press_button("Turn alerts off")
        await running_bot.settle()
        assert schedule_of(running_bot.ctx, doctor)[2] is False

    async def test_send_now(self, running_bot: RunningBot) -> None:
        """ "Send the digest now" delivers the current digest without using up the week's."""
        lee, doctor = await running_bot.linked_physician()
        who = b.patient(running_bot.ctx, doctor, ref="MRN-7")
        b.completed(running_bot.ctx, who, T0 - timedelta(days=6), item=5)
        lee.send_command("/digest")
        await running_bot.settle()
        lee.press_button("Send the digest now")
        await running_bot.settle()
        texts = [m["text"] for m in lee.messages() if "text" in m]
        assert any(t.startswith("Weekly digest · 2026-W09") for t in texts)
        assert "Preparing this week's digest…" in toasts(running_bot.api, lee)
        due = digest.due_digests(running_bot.ctx, datetime(2026, 3, 2, 7, 0, tzinfo=UTC))
        assert [item.physician_id for item in due] == [doctor]

    async def test_send_now_without_patients(self, running_bot: RunningBot) -> None:
        """A physician with no enrolled patients is told there is no digest."""
        lee, _ = await running_bot.linked_physician()
        lee.send_command("/digest")
        await running_bot.settle()
        lee.press_button("Send the digest now")
        await running_bot.settle()
        assert "no enrolled patients yet" in lee.last_message()["text"]  # type: ignore[index]

    async def test_in_chinese(self, running_bot: RunningBot) -> None:
        """A Chinese-speaking physician reads the settings in Chinese."""
        li, _ = await running_bot.linked_physician(name="Dr. Li", language="zh")
        li.send_command("/digest")
        await running_bot.settle()
        assert "每周摘要" in li.last_message()["text"]  # type: ignore[index]
        assert "星期一" in li.last_message()["text"]  # type: ignore[index]

    async def test_not_for_patients_or_strangers(self, running_bot: RunningBot) -> None:
        """Anyone who is not a physician gets "not available", and forged buttons do nothing."""
        stranger = running_bot.api.new_user("Sam")
        stranger.send_command("/digest")
        await running_bot.settle()
        assert stranger.last_message()["text"] == "This command is not available."  # type: ignore[index]
        ana, _ = await running_bot.onboarded_patient()
        ana.send_command("/digest")
        await running_bot.settle()
        assert ana.last_message()["text"] == "This command is not available."  # type: ignore[index]
        ana.press("p:dg_day:4", force=True)
        await running_bot.settle()
        assert "This command is not available." in toasts(running_bot.api, ana)


async def linked_physician_of(
    running_bot: RunningBot, patient_id: int, *, alerts: bool
) -> tuple[FakeUser, int]:
    """Links the patient's physician to a new Telegram user and sets their alerts."""
    ctx = running_bot.ctx
    user = running_bot.api.new_user("Lee")
    with ctx.session() as session:
        patient = session.get(Patient, patient_id)
        assert patient is not None
        enrollment.create_link(
            session=session,
            telegram_user_id=user.id,
            chat_id=user.chat_id,
            now=T0,
            physician_id=patient.physician_id,
        )
        physicians.update_physician(
            session=session, physician_id=patient.physician_id, alerts_enabled=alerts
        )
        return user, patient.physician_id


async def complete_spec_case(running_bot: RunningBot, user: FakeUser) -> None:
    """Answers the published case of clinical spec §5 (back pain 5, stiffness 1 h, global 5)."""
    user.send_command("/checkin")
    await running_bot.settle()
    for label in ("4", "5", "0", "3", "4", "1 h", "5", "✅ Confirm"):
        user.press_button(label)
        await running_bot.settle()


class TestImmediateAlerts:
    async def test_very_high_activity_alerts_the_physician(self, running_bot: RunningBot) -> None:
        """With alerts on, a questionnaire giving ASDAS 3.9 sends the physician one message."""
        ana, patient_id = await running_bot.onboarded_patient()
        lee, _ = await linked_physician_of(running_bot, patient_id, alerts=True)
        b.crp(running_bot.ctx, patient_id, T0 - timedelta(days=1), "64.6")
        await complete_spec_case(running_bot, ana)
        assert "Your BASDAI today is 3.3" in ana.last_message()["text"]  # type: ignore[index]
        (alert,) = lee.messages()
        assert "has just completed a questionnaire" in alert["text"]
        assert "very high disease activity (ASDAS-CRP 3.9)" in alert["text"]

    async def test_off_by_default(self, running_bot: RunningBot) -> None:
        """Without alerts turned on the physician hears nothing until the digest."""
        ana, patient_id = await running_bot.onboarded_patient()
        lee, _ = await linked_physician_of(running_bot, patient_id, alerts=False)
        b.crp(running_bot.ctx, patient_id, T0 - timedelta(days=1), "64.6")
        await complete_spec_case(running_bot, ana)
        assert lee.messages() == []

    async def test_worsening_alerts_once(self, running_bot: RunningBot) -> None:
        """An ASDAS 0.9 or more above the previous alerts, once even if processed twice."""
        ctx = running_bot.ctx
        lee, doctor = await running_bot.linked_physician()
        with ctx.session() as session:
            physicians.update_physician(session=session, physician_id=doctor, alerts_enabled=True)
        who = b.patient(ctx, doctor, ref="MRN-9")
        b.crp(ctx, who, T0 - timedelta(days=14), 2)
        b.completed(ctx, who, T0 - timedelta(days=14), item=1, patient_global=1)
        later = b.completed(ctx, who, T0 - timedelta(days=1), item=4, patient_global=5)
        b.crp(ctx, who, T0 - timedelta(days=1), 3)
        alerts = digest.alerts_for_completion(ctx, later)
        assert [flag.kind.value for flag in alerts[0].flags] == ["asdas_worsening"]
        sent = [
            await send_completion_alerts(
                running_bot.application.bot, ctx, running_bot.renderer, later, FAST
            )
            for _ in range(2)
        ]
        assert sent == [1, 0]
        (alert,) = [m for m in lee.messages() if "just completed" in m.get("text", "")]
        assert "clinically important worsening (ASDAS-CRP 1.0 → 2.4)" in alert["text"]
        with ctx.session() as session:
            record = deliveries.get_delivery(session=session, dedupe_key=f"alert:{later}")
        assert record is not None
        assert record.status == "sent"

    async def test_nothing_to_say(self, ctx: AppContext) -> None:
        """No alert without ASDAS, for a quiet score, or for an unlinked physician."""
        doctor = b.physician(ctx, telegram_user_id=0)
        with ctx.session() as session:
            physicians.update_physician(session=session, physician_id=doctor, alerts_enabled=True)
        who = b.patient(ctx, doctor)
        b.crp(ctx, who, T0, 80)
        flaring = b.completed(ctx, who, T0, item=8, patient_global=9)
        assert digest.alerts_for_completion(ctx, flaring) == []
        linked = b.physician(ctx)
        with ctx.session() as session:
            physicians.update_physician(session=session, physician_id=linked, alerts_enabled=True)
        other = b.patient(ctx, linked)
        no_lab = b.completed(ctx, other, T0, item=9, patient_global=9)
        assert digest.alerts_for_completion(ctx, no_lab) == []
        b.crp(ctx, other, T0 + timedelta(days=30), 1)
        quiet = b.completed(ctx, other, T0 + timedelta(days=30), item=1, patient_global=1)
        assert digest.alerts_for_completion(ctx, quiet) == []
        assert digest.alerts_for_completion(ctx, 9999) == []

    async def test_a_completion_knows_whether_its_physician_takes_alerts(
        self, ctx: AppContext
    ) -> None:
        """Only a physician with alerts on, not deactivated and with Telegram linked could be
        alerted; for any other the completion looks no further."""

        def takes_alerts(physician_id: int) -> bool:
            who = b.patient(ctx, physician_id)
            with ctx.session() as session:
                return physicians.physician_takes_alerts(session=session, patient_id=who)

        def with_alerts(physician_id: int) -> int:
            with ctx.session() as session:
                physicians.update_physician(
                    session=session, physician_id=physician_id, alerts_enabled=True
                )
            return physician_id

        assert takes_alerts(with_alerts(b.physician(ctx)))
        assert not takes_alerts(b.physician(ctx))
        assert not takes_alerts(with_alerts(b.physician(ctx, telegram_user_id=0)))
        gone = with_alerts(b.physician(ctx))
        with ctx.session() as session:
            physicians.deactivate_physician(session=session, physician_id=gone, now=T0)
        assert not takes_alerts(gone)


def alerts_in(user: FakeUser) -> list[dict[str, Any]]:
    """The alert messages a physician received (the tick may also bring the weekly digest)."""
    return [m for m in user.messages() if m.get("text", "").startswith("⚠️")]


class TestLateLabAlerts:
    """Clinical spec §6: alerts fire when a late lab value completes an ASDAS that crosses the
    line, not only at questionnaire completion."""

    async def test_a_late_crp_completing_a_very_high_asdas_alerts_once(
        self, running_bot: RunningBot
    ) -> None:
        """No CRP at completion, no alert; the CRP entered later alerts at the next tick, once."""
        ana, patient_id = await running_bot.onboarded_patient()
        lee, _ = await linked_physician_of(running_bot, patient_id, alerts=True)
        await complete_spec_case(running_bot, ana)
        assert lee.messages() == []
        with running_bot.ctx.session() as session:
            patient = session.get(Patient, patient_id)
            assert patient is not None
            ref = patient.clinic_ref
        running_bot.clock.advance(timedelta(hours=3))
        labs.add_lab_values(
            running_bot.ctx,
            clinic_ref=ref,
            drawn=(running_bot.clock.now() - timedelta(hours=1)).isoformat(timespec="minutes"),
            entered_by="test",
            crp="64.6",
            crp_unit="mg/L",
        )
        for _ in range(2):
            await run_tick(
                running_bot.application, running_bot.ctx, running_bot.clock.now(), policy=FAST
            )
            await running_bot.settle()
        (alert,) = alerts_in(lee)
        assert "a lab value entered later completes the ASDAS" in alert["text"]
        assert "very high disease activity (ASDAS-CRP 3.9)" in alert["text"]

    async def test_a_late_value_for_a_quiet_score_says_nothing(
        self, running_bot: RunningBot
    ) -> None:
        """A late CRP giving low disease activity sends no alert."""
        ana, patient_id = await running_bot.onboarded_patient()
        lee, _ = await linked_physician_of(running_bot, patient_id, alerts=True)
        await complete_spec_case(running_bot, ana)
        with running_bot.ctx.session() as session:
            patient = session.get(Patient, patient_id)
            assert patient is not None
            ref = patient.clinic_ref
        labs.add_lab_values(
            running_bot.ctx,
            clinic_ref=ref,
            drawn=(running_bot.clock.now() - timedelta(hours=1)).isoformat(timespec="minutes"),
            entered_by="test",
            crp="<0.5",
            crp_unit="mg/L",
        )
        await run_tick(
            running_bot.application, running_bot.ctx, running_bot.clock.now(), policy=FAST
        )
        await running_bot.settle()
        assert alerts_in(lee) == []
