"""The digest by e-mail, sent to a real local SMTP server and read back as it arrived."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from telegram import Bot

from bot.context import AppContext
from bot.present.digest.text import render_digest
from bot.present.render import default_renderer
from bot.services.digest import DeliveryStatus, build_digest
from bot.telegram.delivery import RetryPolicy
from bot.telegram.digest_sending import deliver_due_digests, send_by_email
from storage import deliveries
from tests.conftest import TEST_TOKEN
from tests.digest import builders as b
from tests.digest.conftest import Inbox, free_port

FAST = RetryPolicy(attempts=2, first_backoff=0.0, max_backoff=0.0, read_timeout=5.0)
# The physicians here have no Telegram account: the bot is never called.
UNUSED_BOT = Bot(TEST_TOKEN)
# Monday 2 March 2026, 08:30 in Berlin: the digests of the week before are due.
MONDAY_MORNING = datetime(2026, 3, 2, 7, 30, tzinfo=UTC)


@pytest.fixture
def mail_ctx(ctx: AppContext, inbox: tuple[Inbox, int]) -> AppContext:
    """The test context with SMTP pointed at the local server, STARTTLS off."""
    ctx.settings = ctx.settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": inbox[1],
            "smtp_starttls": False,
            "smtp_from": "digest@clinic.example",
        }
    )
    return ctx


def slot(weeks_before: int = 0) -> datetime:
    return datetime(2026, 2, 23, 17, 0, tzinfo=UTC) - timedelta(weeks=weeks_before)


def flaring_panel(ctx: AppContext, *, telegram: bool = True) -> int:
    doctor = b.physician(ctx, email="lee@clinic.example", telegram_user_id=None if telegram else 0)
    who = b.patient(ctx, doctor, ref="MRN-42")
    b.crp(ctx, who, slot(1), 2)
    b.completed(ctx, who, slot(1), item=2)
    b.crp(ctx, who, slot(), 60)
    b.completed(ctx, who, slot(), item=7, patient_global=8)
    b.patient(ctx, doctor, ref="MRN-43")
    return doctor


class TestEmail:
    async def test_multipart_with_text_html_and_inline_chart(
        self, mail_ctx: AppContext, inbox: tuple[Inbox, int]
    ) -> None:
        """The e-mail has a text part, an HTML part and the chart inline, referenced by cid."""
        doctor = flaring_panel(mail_ctx)
        built = build_digest(mail_ctx, physician_id=doctor)
        assert built is not None
        rendered = render_digest(built, default_renderer())
        result = await send_by_email(mail_ctx, "lee@clinic.example", rendered, FAST)
        assert result.status is DeliveryStatus.SENT
        ((sender, recipients, message),) = inbox[0].messages
        assert sender == "digest@clinic.example"
        assert recipients == ["lee@clinic.example"]
        assert message["Subject"] == "Weekly digest 2026-W09"
        assert message.get_content_type() == "multipart/alternative"
        text = message.get_body(preferencelist=("plain",))
        html = message.get_body(preferencelist=("html",))
        assert text is not None
        assert html is not None
        assert "MRN-42: very high disease activity" in text.get_content()
        assert "<b>" not in text.get_content()
        html_source = html.get_content()
        assert "<h1>Weekly digest · 2026-W09</h1>" in html_source
        images = [part for part in message.walk() if part.get_content_type() == "image/png"]
        assert len(images) == 1
        content_id = images[0]["Content-ID"].strip("<>")
        assert f'src="cid:{content_id}"' in html_source
        assert images[0].get_content() == rendered.charts[0].png

    async def test_the_tick_emails_once_per_week(
        self, mail_ctx: AppContext, inbox: tuple[Inbox, int]
    ) -> None:
        """A physician without Telegram gets the weekly digest by e-mail, once, however often
        the scheduler ticks."""
        doctor = flaring_panel(mail_ctx, telegram=False)
        renderer = default_renderer()
        first = await deliver_due_digests(UNUSED_BOT, mail_ctx, renderer, MONDAY_MORNING, FAST)
        again = await deliver_due_digests(
            UNUSED_BOT,
            mail_ctx,
            renderer,
            MONDAY_MORNING + timedelta(minutes=1),
            FAST,
        )
        assert (first.sent, again.sent) == (1, 0)
        assert first.physicians == [doctor]
        assert len(inbox[0].messages) == 1
        with mail_ctx.session() as session:
            record = deliveries.get_delivery(
                session=session, dedupe_key=f"digest-email:{doctor}:2026-W09"
            )
        assert record is not None
        assert record.status == DeliveryStatus.SENT.value

    async def test_unreachable_server_is_recorded_as_failed(self, ctx: AppContext) -> None:
        """When the SMTP server cannot be reached the delivery fails with the reason."""
        ctx.settings = ctx.settings.model_copy(
            update={"smtp_host": "127.0.0.1", "smtp_port": free_port(), "smtp_from": "d@x.example"}
        )
        doctor = flaring_panel(ctx, telegram=False)
        run = await deliver_due_digests(UNUSED_BOT, ctx, default_renderer(), MONDAY_MORNING, FAST)
        assert (run.sent, run.failed) == (0, 1)
        with ctx.session() as session:
            record = deliveries.get_delivery(
                session=session, dedupe_key=f"digest-email:{doctor}:2026-W09"
            )
        assert record is not None
        assert record.status == DeliveryStatus.FAILED.value
        assert record.error
        assert record.attempts == FAST.attempts

    async def test_no_smtp_no_email(self, ctx: AppContext) -> None:
        """Without SMTP settings nothing is claimed for e-mail."""
        flaring_panel(ctx, telegram=False)
        run = await deliver_due_digests(UNUSED_BOT, ctx, default_renderer(), MONDAY_MORNING, FAST)
        assert run.physicians == []
