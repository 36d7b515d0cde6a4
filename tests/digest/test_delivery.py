"""Weekly delivery in Telegram: on the physician's own schedule, exactly once per week."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest

from bot.app import TICK_TASKS
from bot.context import AppContext
from bot.present.digest.text import render_digest
from bot.services.digest import DeliveryStatus
from bot.telegram.delivery import RetryPolicy
from bot.telegram.digest_sending import (
    DIGESTS_AT_ONCE,
    at_most,
    deliver_due_digests,
    render,
    send_due_digests,
    send_to_chat,
)
from bot.telegram.tick import run_tick
from storage import deliveries, physicians
from storage.db import make_engine
from tests.bot.e2e import RunningBot
from tests.digest import builders as b
from tests.digest import samples
from tests.fake_telegram import FakeUser

FAST = RetryPolicy(attempts=3, first_backoff=0.01, max_backoff=0.05, read_timeout=5.0)
# Monday 2 March 2026: 08:00 in Berlin is 07:00 UTC.
DUE = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)


def slot(weeks_before: int = 0) -> datetime:
    return datetime(2026, 2, 23, 17, 0, tzinfo=UTC) - timedelta(weeks=weeks_before)


async def physician_with_panel(
    running_bot: RunningBot, ref_prefix: str = "MRN", **kwargs: Any
) -> tuple[FakeUser, int]:
    """A linked physician with one flaring and one quiet patient (`<ref_prefix>-42`, `-43`)."""
    user, doctor = await running_bot.linked_physician(**kwargs)
    ctx = running_bot.ctx
    flaring = b.patient(ctx, doctor, ref=f"{ref_prefix}-42")
    b.crp(ctx, flaring, slot(1), 2)
    b.completed(ctx, flaring, slot(1), item=2)
    b.crp(ctx, flaring, slot(), 60)
    b.completed(ctx, flaring, slot(), item=7, patient_global=8)
    quiet = b.patient(ctx, doctor, ref=f"{ref_prefix}-43")
    b.crp(ctx, quiet, slot(), 1)
    b.completed(ctx, quiet, slot(), item=1)
    return user, doctor


def digests_in(user: FakeUser) -> list[dict[str, Any]]:
    return [m for m in user.messages() if "Weekly digest" in m.get("text", "")]


def photos_in(user: FakeUser) -> list[dict[str, Any]]:
    return [m for m in user.messages() if "photo" in m]


async def deliver(ctx: AppContext, running_bot: RunningBot, now: datetime) -> Any:
    return await deliver_due_digests(
        running_bot.application.bot, ctx, running_bot.renderer, now, FAST
    )


class TestWeeklyDelivery:
    async def test_arrives_at_the_physicians_time_with_its_chart(
        self, running_bot: RunningBot
    ) -> None:
        """Not a minute before Monday 08:00 local time; then the text and the chart photo."""
        user, _ = await physician_with_panel(running_bot)
        early = await deliver(running_bot.ctx, running_bot, DUE - timedelta(minutes=1))
        assert early.physicians == []
        assert digests_in(user) == []
        run = await deliver(running_bot.ctx, running_bot, DUE)
        assert run.sent == 1
        (text,) = digests_in(user)
        assert "2026-W09" in text["text"]
        assert "MRN-42: very high disease activity" in text["text"]
        (photo,) = photos_in(user)
        assert "Needs attention 1–1 of 1" in photo["caption"]

    async def test_a_german_physician_gets_it_in_german(self, running_bot: RunningBot) -> None:
        """A physician whose language is German receives the digest and its chart caption in
        German, with the German state names."""
        user, _ = await physician_with_panel(running_bot, name="Dr. Weber", language="de")
        run = await deliver(running_bot.ctx, running_bot, DUE)
        assert run.sent == 1
        (text,) = [m for m in user.messages() if "Wochenbericht" in m.get("text", "")]
        assert "2026-W09" in text["text"]
        assert "MRN-42: sehr hohe Krankheitsaktivität" in text["text"]
        assert digests_in(user) == []  # nothing in English
        (photo,) = photos_in(user)
        assert "Auffällig 1–1 von 1" in photo["caption"]

    async def test_the_tick_sends_it_once(self, running_bot: RunningBot) -> None:
        """The scheduler's tick includes the digest; ticking again sends nothing twice."""
        assert send_due_digests in TICK_TASKS
        user, _ = await physician_with_panel(running_bot)
        for minutes in (0, 0, 1, 60):
            report = await run_tick(
                running_bot.application,
                running_bot.ctx,
                DUE + timedelta(minutes=minutes),
                policy=FAST,
            )
            assert report.errors == []
        assert len(digests_in(user)) == 1
        assert len(photos_in(user)) == 1

    async def test_a_restart_does_not_send_it_again(
        self, running_bot: RunningBot, database_url: str
    ) -> None:
        """After a restart (new process, new connections) the week's digest is not repeated."""
        user, doctor = await physician_with_panel(running_bot)
        await deliver(running_bot.ctx, running_bot, DUE)
        await running_bot.restart()
        engine = make_engine(running_bot.ctx.settings.database_url)
        try:
            fresh = AppContext(settings=running_bot.ctx.settings, engine=engine)
            run = await deliver(fresh, running_bot, DUE + timedelta(hours=2))
        finally:
            engine.dispose()
        assert run.physicians == []
        assert len(digests_in(user)) == 1
        with running_bot.ctx.session() as session:
            record = deliveries.get_delivery(
                session=session, dedupe_key=f"digest:{doctor}:2026-W09"
            )
        assert record is not None
        assert record.status == DeliveryStatus.SENT.value

    async def test_two_processes_at_once_send_it_once(self, running_bot: RunningBot) -> None:
        """Two schedulers ticking at the same moment on the same database: one digest."""
        user, _ = await physician_with_panel(running_bot)
        engine = make_engine(running_bot.ctx.settings.database_url)
        try:
            other = AppContext(settings=running_bot.ctx.settings, engine=engine)
            runs = await asyncio.gather(
                deliver(running_bot.ctx, running_bot, DUE), deliver(other, running_bot, DUE)
            )
        finally:
            engine.dispose()
        assert sorted(run.sent for run in runs) == [0, 1]
        assert len(digests_in(user)) == 1

    async def test_several_physicians_in_one_round_each_get_their_own(
        self, running_bot: RunningBot
    ) -> None:
        """More physicians than are served at once: every one gets exactly their own digest,
        and the round lists them in the order they were due."""
        names = ("Ames", "Berg", "Cole", "Dahl", "Eder")
        panels = [
            await physician_with_panel(running_bot, ref_prefix=name.upper(), name=f"Dr. {name}")
            for name in names
        ]
        assert len(panels) > DIGESTS_AT_ONCE
        run = await deliver(running_bot.ctx, running_bot, DUE)
        assert run.sent == len(panels)
        assert run.physicians == sorted(doctor for _, doctor in panels)
        for name, (user, _) in zip(names, panels, strict=True):
            (text,) = digests_in(user)
            assert f"{name.upper()}-42: very high disease activity" in text["text"]
            assert all(other.upper() not in text["text"] for other in names if other != name)
            assert len(photos_in(user)) == 1

    async def test_drawing_waits_for_the_digest_being_drawn(self, running_bot: RunningBot) -> None:
        """A digest built while another is being drawn is drawn only once that one is done."""
        _, doctor = await physician_with_panel(running_bot)
        drawing = asyncio.Lock()
        await drawing.acquire()
        pending = asyncio.create_task(
            render(running_bot.ctx, running_bot.renderer, physician_id=doctor, drawing=drawing)
        )
        await asyncio.sleep(3.0)  # building and drawing this panel take a fraction of that
        assert not pending.done()
        drawing.release()
        rendered = await asyncio.wait_for(pending, timeout=30)
        assert rendered is not None
        assert len(rendered.charts) == 1

    async def test_the_next_week_has_its_own_digest(self, running_bot: RunningBot) -> None:
        """A week later the new week's digest goes out."""
        user, _ = await physician_with_panel(running_bot)
        await deliver(running_bot.ctx, running_bot, DUE)
        await deliver(running_bot.ctx, running_bot, DUE + timedelta(days=7))
        weeks = [m["text"].split("\n")[0] for m in digests_in(user)]
        assert weeks == [
            "Weekly digest · 2026-W09 (23 Feb – 1 Mar 2026)",
            "Weekly digest · 2026-W10 (2 Mar – 8 Mar 2026)",
        ]

    async def test_own_weekday_time_and_time_zone(self, running_bot: RunningBot) -> None:
        """Wednesday 17:00 in Shanghai is 09:00 UTC; the digest waits for it."""
        user, doctor = await physician_with_panel(running_bot)
        with running_bot.ctx.session() as session:
            physicians.update_physician(
                session=session, physician_id=doctor, timezone="Asia/Shanghai"
            )
            physicians.set_digest_schedule(
                session=session, physician_id=doctor, weekday=2, at=time(17, 0)
            )
        wednesday = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)
        for moment in (DUE, wednesday - timedelta(seconds=1)):
            assert (await deliver(running_bot.ctx, running_bot, moment)).physicians == []
        assert (await deliver(running_bot.ctx, running_bot, wednesday)).sent == 1
        assert len(digests_in(user)) == 1

    async def test_no_patients_no_digest(self, running_bot: RunningBot) -> None:
        """A physician with no enrolled patients gets nothing, and nothing is claimed."""
        user, doctor = await running_bot.linked_physician()
        b.patient(running_bot.ctx, doctor, status=b.PatientStatus.INVITED)
        run = await deliver(running_bot.ctx, running_bot, DUE)
        assert run.physicians == []
        assert digests_in(user) == []
        with running_bot.ctx.session() as session:
            assert (
                deliveries.get_delivery(session=session, dedupe_key=f"digest:{doctor}:2026-W09")
                is None
            )

    async def test_a_blocked_physician_is_recorded_unreachable(
        self, running_bot: RunningBot
    ) -> None:
        """When the physician has blocked the bot the digest is recorded as unreachable."""
        user, doctor = await physician_with_panel(running_bot)
        user.block_bot()
        run = await deliver(running_bot.ctx, running_bot, DUE)
        assert run.unreachable == 1
        with running_bot.ctx.session() as session:
            record = deliveries.get_delivery(
                session=session, dedupe_key=f"digest:{doctor}:2026-W09"
            )
        assert record is not None
        assert record.status == DeliveryStatus.UNREACHABLE.value

    async def test_a_passing_failure_is_retried(self, running_bot: RunningBot) -> None:
        """A Telegram server error is retried and the digest still arrives once."""
        user, _ = await physician_with_panel(running_bot)
        running_bot.api.fail_next("sendMessage", 502, chat_id=user.chat_id)
        run = await deliver(running_bot.ctx, running_bot, DUE)
        assert run.sent == 1
        assert len(digests_in(user)) == 1


class TestLongDigests:
    async def test_a_very_long_digest_goes_as_summary_and_document(
        self, running_bot: RunningBot
    ) -> None:
        """Four hundred patients: one summary message, the full HTML file, then the charts."""
        user = running_bot.api.new_user("Lee")
        rendered = render_digest(samples.mixed_panel(400), running_bot.renderer)
        result = await send_to_chat(running_bot.application.bot, user.chat_id, rendered, FAST)
        assert result.status is DeliveryStatus.SENT
        kinds = [
            "document" if "document" in m else "photo" if "photo" in m else "text"
            for m in user.messages()
        ]
        assert kinds == ["text", "document", *["photo"] * len(rendered.charts)]
        (upload,) = running_bot.api.calls("sendDocument")
        content = upload.files["document"].content.decode()
        assert "MRN-00400" in content
        assert content.count("data:image/png;base64,") == len(rendered.charts)


class TestAtMost:
    async def test_results_keep_the_order_and_the_bound_holds(self) -> None:
        """Items finishing out of order still give their results in order; never more than
        the bound run at once."""
        running = 0
        most = 0

        async def handle(item: int) -> int:
            nonlocal running, most
            running += 1
            most = max(most, running)
            await asyncio.sleep(0.01 * (item % 3))
            running -= 1
            return item * 10

        assert await at_most(2, list(range(9)), handle) == [item * 10 for item in range(9)]
        assert most == 2

    async def test_a_failure_is_raised_and_the_rest_cancelled(self) -> None:
        """The first failure is raised as it is; items not yet done are cancelled, not left
        running behind the caller."""
        finished: list[int] = []

        async def handle(item: int) -> int:
            if item == 1:
                raise ValueError("broken")
            await asyncio.sleep(0.05)
            finished.append(item)
            return item

        with pytest.raises(ValueError, match=r"^broken$"):
            await at_most(2, [0, 1, 2, 3], handle)
        await asyncio.sleep(0.2)
        assert finished == []
