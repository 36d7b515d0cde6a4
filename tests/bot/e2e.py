"""End-to-end harness: the real `Application` against the local fake Bot API, on a test database.

Use the `running_bot` fixture (tests/conftest.py), which yields a started `RunningBot`:

    async def test_something(running_bot: RunningBot) -> None:
        api, application, ctx = running_bot            # unpacks like a tuple
        ana, patient_id = await running_bot.onboarded_patient()
        ana.send_command("/checkin")                   # typed text: ana.send_text("7")
        await running_bot.settle()                     # every queued update fully handled
        assert "Question 1 of 7" in ana.last_message()["text"]

What it gives you:

* `api` (`tests.fake_telegram.FakeBotApi`), `application` (built by `bot.app.build_application`
  with the real handlers), `ctx` (an `AppContext` whose `clock` is a `FixedClock` at
  `tests.conftest.T0`), and `renderer`.
* `settle()` waits until the bot has fetched and completely handled every update queued so far,
  so a test never races the bot. `restart()` stops the Application and builds a fresh one on
  the same database (as after a crash or deploy).
* People: `patient(...)` creates a record (through the staff service, as the CLI does) and a
  Telegram user; `onboarded_patient(...)` also takes them through `/start <code>`, language,
  consent, time zone, weekday and time; `linked_physician(...)` links a physician.
* The scheduler's repeating tick is NOT installed (time stands still in tests); call
  `bot.telegram.tick.run_tick(...)` yourself, or pass `with_tick=True` to `start()`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from bot.app import build_application
from bot.clock import FixedClock
from bot.context import AppContext
from bot.present.render import Renderer, default_renderer
from bot.telegram.handlers import patient
from tests.factories import make_patient, make_physician
from tests.fake_telegram import FakeBotApi, FakeUser

SETTLE_TIMEOUT = 15.0


@dataclass
class RunningBot:
    """The bot under test, the fake Telegram it talks to, and the database behind it."""

    api: FakeBotApi
    ctx: AppContext
    clock: FixedClock
    renderer: Renderer = field(default_factory=default_renderer)
    application: Any = None

    def __iter__(self) -> Iterator[Any]:
        yield self.api
        yield self.application
        yield self.ctx

    async def start(self, *, with_tick: bool = False) -> None:
        """Builds and starts an Application polling the fake API (command menu registered)."""
        application = build_application(self.ctx, renderer=self.renderer, rate_limit=False)
        await application.initialize()
        if with_tick:
            assert application.post_init is not None
            await application.post_init(application)
        else:
            await patient.publish_commands(application)
        await application.start()
        assert application.updater is not None
        await application.updater.start_polling(poll_interval=0, timeout=1)
        self.application = application

    async def stop(self) -> None:
        """Stops polling and the Application; the database and its engine stay open."""
        application = self.application
        if application is None:
            return
        self.application = None
        assert application.updater is not None
        if application.updater.running:
            await application.updater.stop()
        if application.running:
            await application.stop()
        await application.shutdown()
        await self.ctx.aclose()  # connections made on this test's event loop

    async def restart(self) -> None:
        """A fresh Application (no memory of the old one) on the same database."""
        await self.stop()
        await self.start()

    async def settle(self) -> None:
        """Waits until every update queued so far has been fetched and completely handled."""
        if self.api.pushed_updates:
            await self.api.wait_until_confirmed(timeout=SETTLE_TIMEOUT)
        assert self.application is not None
        async with asyncio.timeout(SETTLE_TIMEOUT):
            await self.application.update_queue.join()

    # -- people --------------------------------------------------------------------------

    def patient(
        self, *, language: str = "en", timezone: str | None = None, name: str = "Ana"
    ) -> tuple[FakeUser, int, str]:
        """A new patient record with its one-time code, and a Telegram user (not linked yet)."""
        physician = make_physician(self.ctx)
        created = make_patient(
            self.ctx, physician_id=physician.physician_id, language=language, timezone=timezone
        )
        user = self.api.new_user(name, language_code="zh-hans" if language == "zh" else language)
        return user, created.patient_id, created.code.code

    async def onboarded_patient(
        self, *, language: str = "en", timezone: str = "Europe/Berlin", weekday: int = 0
    ) -> tuple[FakeUser, int]:
        """A patient linked through `/start <code>` who has agreed and set their schedule
        (18:00 on `weekday`) by pressing the real buttons; returns (user, patient id)."""
        user, patient_id, code = self.patient(language=language)
        user.send_command("/start", code)
        await self.settle()
        for data in (
            f"o:lang:{language}",
            "o:consent:yes",
            f"o:tz:{timezone}",
            f"o:day:{weekday}",
            "o:time:18:00",
        ):
            user.press(data)
            await self.settle()
        return user, patient_id

    async def linked_physician(
        self, *, name: str = "Dr. Lee", language: str = "en"
    ) -> tuple[FakeUser, int]:
        """A physician linked through `/start <code>`; returns (user, physician id)."""
        created = make_physician(self.ctx, name=name, language=language)
        user = self.api.new_user(name.replace(" ", ""), language_code=language)
        user.send_command("/start", created.code.code)
        await self.settle()
        return user, created.physician_id
