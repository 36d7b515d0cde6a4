"""The fake Bot API, driven by the real python-telegram-bot client it stands in for."""

from __future__ import annotations

import asyncio
import datetime as dtm
import json
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.ext import ApplicationBuilder, CommandHandler, ContextTypes
from telegram.request import HTTPXRequest

from tests.fake_telegram import (
    BOT_USERNAME,
    NOT_MODIFIED,
    ApiError,
    FakeBotApi,
    format_text,
    image_size,
    parse_request,
)

REPO_ROOT = Path(__file__).resolve().parent.parent


def png(width: int, height: int) -> bytes:
    """A valid RGB PNG, built with the standard library so no image package is needed."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    rows = b"".join(b"\x00" + b"\x10\x80\xf0" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def keyboard(*pairs: tuple[str, str]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(text, callback_data=data)] for text, data in pairs]
    )


def raw_call(
    api: FakeBotApi, method: str, body: bytes, content_type: str, token: str | None = None
) -> tuple[int, dict[str, Any]]:
    """A plain HTTP call, to check the wire format without PTB in between."""
    request = urllib.request.Request(
        f"{api.base_url}{token or api.token}/{method}",
        data=body,
        headers={"Content-Type": content_type},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


@pytest.fixture
def api() -> Iterator[FakeBotApi]:
    with FakeBotApi() as fake:
        yield fake
        assert fake.server_errors == []


@pytest.fixture
async def bot(api: FakeBotApi) -> AsyncIterator[Bot]:
    async with Bot(api.token, base_url=api.base_url, base_file_url=api.base_file_url) as client:
        yield client


async def test_get_me(api: FakeBotApi, bot: Bot) -> None:
    me = await bot.get_me()
    assert me.is_bot
    assert me.username == BOT_USERNAME
    assert me.id == 123456
    assert me.can_join_groups is True
    assert api.request_counts()["getMe"] >= 1
    with pytest.raises(InvalidToken):
        async with Bot("123456:WRONG", base_url=api.base_url):
            pass


async def test_send_edit_delete_message(api: FakeBotApi, bot: Bot) -> None:
    ana = api.new_user("Ana")
    sent = await bot.send_message(
        ana.id, "How tired?", reply_markup=keyboard(("Low", "f:1"), ("High", "f:9"))
    )
    assert sent.chat.id == ana.id
    assert sent.from_user is not None
    assert sent.from_user.username == BOT_USERNAME
    assert sent.reply_markup == keyboard(("Low", "f:1"), ("High", "f:9"))
    assert ana.buttons() == [("Low", "f:1"), ("High", "f:9")]
    assert api.sent_messages(ana.id)[0]["text"] == "How tired?"

    second = await bot.send_message(ana.id, "Second")
    assert second.message_id > sent.message_id

    edited = await bot.edit_message_text("Thanks", chat_id=ana.id, message_id=sent.message_id)
    assert isinstance(edited, type(sent))
    assert edited.text == "Thanks"
    assert edited.reply_markup is None  # an edit without reply_markup drops the keyboard
    assert [m["text"] for m in ana.messages()] == ["Thanks", "Second"]

    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_text("Thanks", chat_id=ana.id, message_id=sent.message_id)
    assert api.calls("editMessageText")[-1].response["description"] == NOT_MODIFIED
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_reply_markup(chat_id=ana.id, message_id=sent.message_id)
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("x", chat_id=ana.id, message_id=999)

    assert await bot.delete_message(ana.id, sent.message_id)
    assert [m["text"] for m in ana.messages()] == ["Second"]
    with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
        await bot.delete_message(ana.id, sent.message_id)
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await bot.send_message(42, "nobody")


async def test_html_is_parsed_into_entities_and_bad_markup_is_rejected(
    api: FakeBotApi, bot: Bot
) -> None:
    ana = api.new_user()
    message = await bot.send_message(
        ana.id, "<b>BASDAI</b> &lt;4 &#39;ok&#39; 😀 <i>x</i>\n", parse_mode=ParseMode.HTML
    )
    assert message.text == "BASDAI <4 'ok' 😀 x"
    assert [(e.type, e.offset, e.length) for e in message.entities] == [
        ("bold", 0, 6),
        ("italic", 18, 1),  # the emoji counts as two UTF-16 units
    ]
    with pytest.raises(BadRequest, match=r"(?i)Unsupported start tag"):
        await bot.send_message(ana.id, "score <5 points", parse_mode=ParseMode.HTML)
    # The bot speaks HTML only: another parse mode is refused, so a change to it is noticed.
    with pytest.raises(BadRequest, match=r"(?i)unsupported parse_mode"):
        await bot.send_message(ana.id, "*Done*", parse_mode=ParseMode.MARKDOWN_V2)
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(ana.id, "x" * 4097)
    with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
        await bot.send_message(ana.id, "  \n ")


def test_format_text_parsers() -> None:
    assert format_text("<a href='https://x.org/?a=1&amp;b=2'>link</a>", "HTML", None) == (
        "link",
        [{"type": "text_link", "offset": 0, "length": 4, "url": "https://x.org/?a=1&b=2"}],
    )
    assert format_text('<pre><code class="language-python">x = 1</code></pre>', "HTML", None) == (
        "x = 1",
        [{"type": "pre", "offset": 0, "length": 5, "language": "python"}],
    )
    with pytest.raises(ApiError, match=r"(?i)unsupported parse_mode"):
        format_text("*bold*", "MarkdownV2", None)
    with pytest.raises(
        Exception, match=r"""(?i)Can't find end tag corresponding to start tag "b"""
    ):
        format_text("<b>open", "HTML", None)
    assert format_text("  hi  ", None, [{"type": "bold", "offset": 0, "length": 6}]) == (
        "hi",
        [{"type": "bold", "offset": 0, "length": 2}],
    )


async def test_send_photo_and_document(api: FakeBotApi, bot: Bot) -> None:
    ana = api.new_user()
    image = png(1000, 500)
    assert image_size(image) == (1000, 500)
    message = await bot.send_photo(ana.id, image, caption="<b>Trend</b>", parse_mode=ParseMode.HTML)
    assert message.caption == "Trend"
    assert [(p.width, p.height) for p in message.photo] == [
        (90, 45),
        (320, 160),
        (800, 400),
        (1000, 500),
    ]
    largest = message.photo[-1]
    assert largest.file_size == len(image)
    request = api.calls("sendPhoto")[0]
    assert request.files["photo"].content == image
    assert request.params["caption"] == "<b>Trend</b>"
    assert request.chat_id == ana.id

    downloaded = await (await bot.get_file(largest.file_id)).download_as_bytearray()
    assert bytes(downloaded) == image
    again = await bot.send_photo(ana.id, largest.file_id)
    assert again.photo[-1].file_id == largest.file_id
    with pytest.raises(BadRequest, match=r"(?i)IMAGE_PROCESS_FAILED"):
        await bot.send_photo(ana.id, b"not an image")

    payload = bytes(range(256)) * 4 + b"\r\n--\r\n\n\r"
    document = await bot.send_document(ana.id, payload, filename="report.pdf", caption="Report")
    assert document.document is not None
    assert document.document.file_name == "report.pdf"
    assert document.document.mime_type == "application/pdf"
    assert document.document.file_size == len(payload)
    assert api.calls("sendDocument")[0].files["document"].content == payload
    assert [m["message_id"] for m in api.sent_messages(ana.id)] == [
        message.message_id,
        again.message_id,
        document.message_id,
    ]


async def test_retry_after_forbidden_and_server_error(
    api: FakeBotApi, bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without PTB_TIMEDELTA, PTB warns (PTBDeprecationWarning) when building RetryAfter.
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    ana = api.new_user()
    api.fail_next("sendMessage", 429, retry_after=7)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(ana.id, "hi")
    assert caught.value.retry_after == dtm.timedelta(seconds=7)
    body = api.calls("sendMessage")[-1].response
    assert body == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 7",
        "parameters": {"retry_after": 7},
    }

    api.fail_next("sendMessage", 403, chat_id=ana.id)
    with pytest.raises(Forbidden, match=r"(?i)bot was blocked by the user"):
        await bot.send_message(ana.id, "hi")
    api.fail_next("*", 500)
    with pytest.raises(NetworkError, match=r"(?i)Internal Server Error"):
        await bot.send_message(ana.id, "hi")
    assert (await bot.send_message(ana.id, "hi")).text == "hi"

    api.block_user(ana.id)
    with pytest.raises(Forbidden, match=r"(?i)bot was blocked by the user"):
        await bot.send_message(ana.id, "hi")
    api.unblock_user(ana.id)
    assert (await bot.send_message(ana.id, "back")).text == "back"

    shy = api.new_user("Bo", has_started=False)
    with pytest.raises(Forbidden, match=r"(?i)can't initiate conversation"):
        await bot.send_message(shy.id, "hi")
    shy.send_command("/start")
    assert (await bot.send_message(shy.id, "hi")).text == "hi"


async def test_stall_and_drop_surface_as_network_errors(api: FakeBotApi) -> None:
    ana = api.new_user()
    request = HTTPXRequest(read_timeout=0.1)
    async with Bot(api.token, base_url=api.base_url, request=request) as bot:
        api.stall_next("sendMessage", 0.3)
        with pytest.raises(TimedOut):
            await bot.send_message(ana.id, "slow")
        # Like Telegram, the stalled call still went through after the client gave up.
        await ana.wait_until(lambda messages: len(messages) == 1, timeout=2)

        api.drop_next("sendMessage")
        with pytest.raises(NetworkError):
            await bot.send_message(ana.id, "dropped")
        assert (await bot.send_message(ana.id, "back")).text == "back"


async def test_outage_restart_and_blocking_notifications(api: FakeBotApi, bot: Bot) -> None:
    ana = api.new_user()
    await bot.send_message(ana.id, "before")
    api.set_offline()
    with pytest.raises(NetworkError):
        await bot.send_message(ana.id, "lost")
    api.set_offline(False)
    port = api.port
    api.stop()
    with pytest.raises(NetworkError):
        await bot.send_message(ana.id, "refused")
    api.start()
    assert api.port == port
    await bot.send_message(ana.id, "after")
    assert [m["text"] for m in ana.messages()] == ["before", "after"]

    ana.block_bot(notify=True)
    (update,) = await bot.get_updates(timeout=0)
    assert update.my_chat_member is not None
    assert update.my_chat_member.new_chat_member.status == "kicked"


async def test_long_polling_delivers_a_callback_query(api: FakeBotApi, bot: Bot) -> None:
    ana = api.new_user("Ana")
    question = await bot.send_message(ana.id, "Pain?", reply_markup=keyboard(("3", "pain:3")))
    assert await bot.get_updates(timeout=0) == ()

    polling = asyncio.create_task(bot.get_updates(timeout=5))
    await api.wait_for_request("getUpdates", after=len(api.requests) - 1)
    await asyncio.sleep(0.05)
    started = time.monotonic()
    update_id = ana.press("pain:3")
    updates = await polling
    assert time.monotonic() - started < 1.0  # woken at once, not at the end of the timeout
    assert len(updates) == 1
    update = updates[0]
    assert isinstance(update, Update)
    assert update.update_id == update_id
    assert update.callback_query is not None
    assert update.callback_query.data == "pain:3"
    assert update.callback_query.from_user.id == ana.id
    assert update.callback_query.message is not None
    assert update.callback_query.message.message_id == question.message_id

    assert await update.callback_query.answer("Saved") is True
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await update.callback_query.answer()
    assert api.calls("answerCallbackQuery")[0].chat_id == ana.id

    # Not confirmed yet: delivered again until an offset passes it.
    assert [u.update_id for u in await bot.get_updates(timeout=0)] == [update_id]
    assert await bot.get_updates(offset=update_id + 1, timeout=0) == ()
    assert api.confirmed_offset == update_id + 1


async def test_redeliver_and_shuffled_batches(api: FakeBotApi, bot: Bot) -> None:
    ana = api.new_user()
    first = ana.send_text("7")
    (update,) = await bot.get_updates(timeout=0)
    assert update.message is not None
    assert update.message.text == "7"
    await bot.get_updates(offset=first + 1, timeout=0)

    (again,) = api.redeliver([first])
    assert again > first
    (repeat,) = await bot.get_updates(offset=first + 1, timeout=0)
    assert repeat.update_id == again
    assert repeat.message is not None
    assert repeat.message.message_id == update.message.message_id

    await bot.get_updates(offset=again + 1, timeout=0)
    assert api.redeliver([first], same_ids=True) == [first]
    assert await bot.get_updates(offset=again + 1, timeout=0) == ()  # a live bot skips it
    api.redeliver([first], same_ids=True)
    assert [u.update_id for u in await bot.get_updates(timeout=0)] == [first]  # a fresh one not

    texts = [ana.text_update(str(n)) for n in range(6)]
    ids = api.push_batch(texts, seed=3)
    delivered = await bot.get_updates(offset=again + 1, timeout=0)
    assert [u.update_id for u in delivered] == sorted(ids)
    order = [u.message.text or "" for u in delivered if u.message]
    assert sorted(order) == [str(n) for n in range(6)]
    assert order != sorted(order)


async def test_commands_webhook_and_misc_methods(api: FakeBotApi, bot: Bot) -> None:
    from telegram import BotCommand, BotCommandScopeAllPrivateChats

    scope = BotCommandScopeAllPrivateChats()
    assert await bot.set_my_commands([BotCommand("start", "Begin")], language_code="de")
    assert await bot.set_my_commands([BotCommand("help", "Help")], scope=scope)
    assert [c.command for c in await bot.get_my_commands(language_code="de")] == ["start"]
    assert [c.command for c in await bot.get_my_commands(scope=scope)] == ["help"]
    assert await bot.get_my_commands() == ()
    assert api.commands({"type": "all_private_chats"}) == [
        {"command": "help", "description": "Help"}
    ]
    with pytest.raises(BadRequest, match=r"(?i)BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand("Start", "Begin")])

    assert await bot.set_webhook("https://example.org/hook")
    assert (await bot.get_webhook_info()).url == "https://example.org/hook"
    with pytest.raises(Conflict, match=r"(?i)webhook is active"):
        await bot.get_updates(timeout=0)
    ana = api.new_user()
    ana.send_text("queued")
    assert await bot.delete_webhook(drop_pending_updates=True)
    assert await bot.get_updates(timeout=0) == ()

    # Methods the bot does not use are not imitated: calling one fails loudly.
    with pytest.raises(EndPointNotFound):
        await bot.do_api_request("noSuchMethod")


def test_wire_formats_and_errors(api: FakeBotApi) -> None:
    ana = api.new_user()
    markup = {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}
    status, body = raw_call(
        api,
        "sendMessage",
        json.dumps({"chat_id": ana.id, "text": "7", "reply_markup": markup}).encode(),
        "application/json",
    )
    assert status == 200
    assert body["ok"] is True
    result = body["result"]
    assert result["text"] == "7"
    assert result["reply_markup"] == markup
    assert set(result) >= {"message_id", "date", "chat", "from", "text"}
    assert result["chat"] == {"id": ana.id, "type": "private", "first_name": "Ana"}

    form = f"chat_id={ana.id}&text=8&reply_markup={json.dumps(markup)}".encode()
    status, body = raw_call(api, "sendmessage", form, "application/x-www-form-urlencoded")
    assert status == 200
    assert body["result"]["text"] == "8"
    assert api.calls("sendMessage")[-1].params["reply_markup"] == markup

    status, body = raw_call(api, "getMe", b"", "application/json", token="1:WRONG")
    assert (status, body) == (401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
    status, body = raw_call(api, "fooBar", b"", "application/json")
    assert (status, body) == (
        404,
        {"ok": False, "error_code": 404, "description": "Not Found: method not found"},
    )


def test_multipart_parsing_keeps_binary_and_decodes_fields() -> None:
    payload = bytes(range(256)) + b"\r\n\r\n--x\n"
    boundary = "b0undary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="chat_id"\r\n\r\n5\r\n',
        f'--{boundary}\r\nContent-Disposition: form-data; name="caption"\r\n\r\nÜbersicht 7\r\n',
        f'--{boundary}\r\nContent-Disposition: form-data; name="reply_markup"\r\n\r\n'
        '{"inline_keyboard": []}\r\n',
        f'--{boundary}\r\nContent-Disposition: form-data; name="photo"; filename="chart.png"\r\n'
        "Content-Type: image/png\r\n\r\n",
    ]
    body = "".join(parts).encode() + payload + f"\r\n--{boundary}--\r\n".encode()
    params, files = parse_request(f"multipart/form-data; boundary={boundary}", body)
    assert params == {
        "chat_id": 5,
        "caption": "Übersicht 7",
        "reply_markup": {"inline_keyboard": []},
    }
    assert files["photo"].content == payload
    assert files["photo"].filename == "chart.png"
    assert files["photo"].content_type == "image/png"


async def test_application_answers_a_command(api: FakeBotApi) -> None:
    async def ping(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text("pong")

    app = (
        ApplicationBuilder()
        .token(api.token)
        .base_url(api.base_url)
        .base_file_url(api.base_file_url)
        .build()
    )
    app.add_handler(CommandHandler("ping", ping))
    await app.initialize()
    await app.start()
    assert app.updater is not None
    await app.updater.start_polling(poll_interval=0, timeout=1)
    try:
        ana = api.new_user()
        update_id = ana.send_command("/ping")
        reply = await ana.wait_for_reply(after_update_id=update_id, timeout=5)
        assert reply["text"] == "pong"
        await api.wait_until_confirmed(update_id)
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()
    assert api.pending_updates() == []


def test_standalone_process_serves_until_terminated() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_telegram", "--port", "0"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")

        def post(path: str, payload: dict[str, Any]) -> Any:
            request = urllib.request.Request(
                f"{url}{path}",
                data=json.dumps(payload).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.loads(response.read())["result"]

        assert post("/bot123456:TEST-TOKEN/getMe", {})["username"] == BOT_USERNAME
        user = post("/_fake/new_user", {"first_name": "Ana"})
        assert post("/_fake/send_text", {"user_id": user["id"], "text": "hi"}) == 1
        updates = post("/bot123456:TEST-TOKEN/getUpdates", {"timeout": 0})
        assert updates[0]["message"]["text"] == "hi"
        assert post("/_fake/stats", {})["counts"]["getUpdates"] == 1
    finally:
        process.terminate()
        assert process.wait(timeout=5) == 0
        if process.stdout is not None:
            process.stdout.close()


def test_sync_waits_from_another_thread(api: FakeBotApi) -> None:
    ana = api.new_user()
    update_id = ana.send_text("hello")

    def reply_later() -> None:
        time.sleep(0.05)
        raw_call(
            api,
            "sendMessage",
            json.dumps({"chat_id": ana.id, "text": "hi back"}).encode(),
            "application/json",
        )

    import threading

    worker = threading.Thread(target=reply_later)
    worker.start()
    try:
        assert ana.wait_for_reply_sync(after_update_id=update_id, timeout=2)["text"] == "hi back"
    finally:
        worker.join()
    ana.send_text("anyone?")
    with pytest.raises(TimeoutError, match=r"(?i)hi back"):  # the transcript helps debugging
        ana.wait_for_reply_sync(timeout=0.1)
