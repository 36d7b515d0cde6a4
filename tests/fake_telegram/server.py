"""A local fake Telegram Bot API over real HTTP, for end-to-end, fault and benchmark runs."""

# The wait helpers take `timeout=` on purpose: the async and sync variants share one signature.
# ruff: noqa: ASYNC109

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import copy
import itertools
import json
import mimetypes
import random
import re
import signal
import socket
import socketserver
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from tests.fake_telegram.formatting import format_text, utf16_length
from tests.fake_telegram.records import (
    BLOCKABLE_PREFIXES,
    BOT_USERNAME,
    CALLBACK_DATA_LIMIT,
    CALLBACK_ID_BASE,
    CAPTION_LIMIT,
    CHAT_INSTANCE_BASE,
    COMMAND_RE,
    DEFAULT_DESCRIPTIONS,
    DEFAULT_TOKEN,
    FIRST_USER_ID,
    NOT_MODIFIED,
    POLL_INTERVAL,
    SENT_METHODS,
    TEXT_LIMIT,
    ApiError,
    ChatEvent,
    ChatState,
    Described,
    Drop,
    Fault,
    JSONDict,
    RecordedRequest,
    RecordedUpdate,
    Stall,
    StoredFile,
    UploadedFile,
    bad_request,
)
from tests.fake_telegram.users import FakeUser
from tests.fake_telegram.wire import as_int, chat_key, image_size, parse_request

_T = TypeVar("_T")

# --------------------------------------------------------------------------------------------
# The fake API
# --------------------------------------------------------------------------------------------


class FakeBotApi:
    """Fake Telegram Bot API on 127.0.0.1, serving real HTTP from a background thread.

    All test-side methods are thread-safe; the state lives behind one re-entrant lock.
    """

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        bot_first_name: str = "Spondy",
        bot_username: str = BOT_USERNAME,
    ) -> None:
        self.token = token
        self.host = host
        self._port = port
        bot_id = as_int(token.split(":", 1)[0])
        self.bot_user: JSONDict = {
            "id": bot_id if bot_id is not None else 123456,
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._stop_event = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._reset_state()
        self._handlers: dict[
            str, tuple[str, Callable[[JSONDict, dict[str, UploadedFile]], Any]]
        ] = {
            name.lower(): (name, handler)
            for name, handler in {
                "getMe": self._getMe,
                "getUpdates": self._getUpdates,
                "sendMessage": self._sendMessage,
                "editMessageText": self._editMessageText,
                "editMessageReplyMarkup": self._editMessageReplyMarkup,
                "answerCallbackQuery": self._answerCallbackQuery,
                "sendPhoto": self._sendPhoto,
                "sendDocument": self._sendDocument,
                "setMyCommands": self._setMyCommands,
                "getMyCommands": self._getMyCommands,
                "deleteMyCommands": self._deleteMyCommands,
                "deleteMessage": self._deleteMessage,
                "deleteWebhook": self._deleteWebhook,
                "setWebhook": self._setWebhook,
                "getWebhookInfo": self._getWebhookInfo,
                "close": self._ok,
                "logOut": self._ok,
                "getFile": self._getFile,
            }.items()
        }

    def _changed(self) -> None:
        """Wake long polls and waiters; the version lets async waiters skip idle re-checks."""
        self._version += 1
        self._cond.notify_all()

    def _reset_state(self) -> None:
        self._version = 0
        self._requests: list[RecordedRequest] = []
        self._counts: Counter[str] = Counter()
        self._chats: dict[int, ChatState] = {}
        self._users: dict[int, FakeUser] = {}
        self._next_user_id = FIRST_USER_ID
        self._pending: list[tuple[int, JSONDict]] = []
        self._updates: dict[int, RecordedUpdate] = {}
        self._update_seq: dict[int, int] = {}
        self._next_update_id = 1
        self._confirmed_offset = 0
        self._poll_generation = 0
        self._seq = 0
        self._sent: list[JSONDict] = []
        self._faults: list[Fault] = []
        self._stalls: list[Stall] = []
        self._drops: list[Drop] = []
        self._offline = False
        self._callbacks: dict[str, JSONDict] = {}
        self._callback_counter = itertools.count(1)
        self._commands: dict[tuple[str, str], list[JSONDict]] = {}
        self._webhook: JSONDict | None = None
        self._files: dict[str, StoredFile] = {}
        self._file_counter = itertools.count(1)
        self.server_errors: list[BaseException] = []

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeBotApi:
        """Bind and serve in a daemon thread. A restarted server keeps its port and state."""
        if self._server is not None:
            return self
        self._stop_event.clear()
        with self._lock:
            self._stopping = False
        server = _Server((self.host, self._port), self)
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-bot-api:{self._port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake long polls and stalls, close connections and join all threads."""
        server, thread = self._server, self._thread
        if server is None:
            return
        with self._cond:
            self._stopping = True
            self._changed()
        self._stop_event.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeBotApi:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("FakeBotApi is not started")
        return self._port

    @property
    def url(self) -> str:
        """E.g. "http://127.0.0.1:PORT"."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """For ApplicationBuilder().base_url(...): PTB appends the token."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        """For ApplicationBuilder().base_file_url(...)."""
        return f"{self.url}/file/bot"

    # -- users and chats ---------------------------------------------------------------------

    def new_user(
        self,
        first_name: str = "Ana",
        language_code: str | None = "en",
        *,
        last_name: str | None = None,
        username: str | None = None,
        user_id: int | None = None,
        has_started: bool = True,
    ) -> FakeUser:
        """A new person with a private chat. has_started=False: the bot may not write first."""
        with self._cond:
            if user_id is None:
                while self._next_user_id in self._chats:
                    self._next_user_id += 1
                user_id = self._next_user_id
                self._next_user_id += 1
            elif user_id in self._users:
                raise ValueError(f"user {user_id} exists already")
            user: JSONDict = {"id": user_id, "is_bot": False, "first_name": first_name}
            chat: JSONDict = {"id": user_id, "type": "private", "first_name": first_name}
            if last_name is not None:
                user["last_name"] = chat["last_name"] = last_name
            if username is not None:
                user["username"] = chat["username"] = username
            if language_code is not None:
                user["language_code"] = language_code
            state = self._chats.setdefault(user_id, ChatState(chat=chat))
            state.started = has_started
            fake = FakeUser(self, user)
            self._users[user_id] = fake
            return fake

    def user(self, user_id: int) -> FakeUser:
        """The FakeUser created with new_user for this id."""
        with self._lock:
            return self._users[user_id]

    def users(self) -> list[FakeUser]:
        with self._lock:
            return list(self._users.values())

    def messages(self, chat_id: int, *, include_user: bool = False) -> list[JSONDict]:
        """Messages currently in a chat (bot's only unless include_user), oldest first."""
        with self._lock:
            state = self._chats.get(chat_id)
            if state is None:
                return []
            bot_id = self.bot_user["id"]
            return [
                copy.deepcopy(state.messages[message_id])
                for message_id in sorted(state.messages)
                if include_user or state.messages[message_id].get("from", {}).get("id") == bot_id
            ]

    def transcript(self, chat_id: int) -> str:
        """A chat rendered as lines ("bot: ...", "user: ..."), for readable failures."""
        lines = []
        bot_id = self.bot_user["id"]
        for m in self.messages(chat_id, include_user=True):
            who = "bot" if m.get("from", {}).get("id") == bot_id else "user"
            body = m.get("text") or m.get("caption") or ("<photo>" if "photo" in m else "<media>")
            keyboard = m.get("reply_markup", {}).get("inline_keyboard", [])
            labels = [b.get("text") for row in keyboard for b in row]
            suffix = f" {labels}" if labels else ""
            lines.append(f"#{m['message_id']} {who}: {body}{suffix}")
        return "\n".join(lines) or "(empty chat)"

    # -- update queue ------------------------------------------------------------------------

    def push_update(self, update: JSONDict) -> int:
        """Queue an update for getUpdates; a fresh update_id is assigned and returned."""
        with self._cond:
            update_id = self._enqueue(update)
            self._changed()
            return update_id

    def push_batch(
        self, updates: Sequence[JSONDict], *, shuffled: bool = True, seed: int | None = None
    ) -> list[int]:
        """Queue several updates at once, optionally in shuffled delivery order.

        Ids increase in delivery order (as Telegram guarantees) so the content order differs
        from the delivery order. Returns the update_ids in the order of `updates`.
        """
        order = list(range(len(updates)))
        if shuffled:
            random.Random(seed).shuffle(order)
        ids = [0] * len(updates)
        with self._cond:
            for index in order:
                ids[index] = self._enqueue(updates[index])
            self._changed()
        return ids

    def redeliver(self, update_ids: Iterable[int], *, same_ids: bool = False) -> list[int]:
        """Queue earlier updates again, as Telegram does when a bot crashed before confirming.

        same_ids=False: duplicates get new update_ids (a running bot sees them again).
        same_ids=True: the original ids are re-queued; only a bot polling from an offset not
        past them (e.g. a restarted process) receives them.
        """
        with self._cond:
            result = []
            for update_id in update_ids:
                record = self._updates[update_id]
                if same_ids:
                    if all(uid != update_id for uid, _ in self._pending):
                        bisect.insort(self._pending, (update_id, record.update), key=lambda p: p[0])
                    self._confirmed_offset = min(self._confirmed_offset, update_id)
                    result.append(update_id)
                else:
                    payload = {k: v for k, v in record.update.items() if k != "update_id"}
                    result.append(self._enqueue(copy.deepcopy(payload)))
            self._changed()
            return result

    def pending_updates(self) -> list[JSONDict]:
        """Updates queued and not yet confirmed by an offset."""
        with self._lock:
            return [copy.deepcopy(u) for _, u in self._pending]

    @property
    def pushed_updates(self) -> list[RecordedUpdate]:
        """Every update queued so far, with push/delivery/confirmation times."""
        with self._lock:
            return list(self._updates.values())

    @property
    def confirmed_offset(self) -> int:
        """The highest offset the bot has confirmed with getUpdates."""
        with self._lock:
            return self._confirmed_offset

    def _enqueue(self, update: JSONDict) -> int:
        update_id = self._next_update_id
        self._next_update_id += 1
        payload = {"update_id": update_id, **{k: v for k, v in update.items() if k != "update_id"}}
        self._absorb_update(update_id, payload)
        self._pending.append((update_id, payload))
        self._updates[update_id] = RecordedUpdate(update_id, payload, time.time())
        self._seq += 1
        self._update_seq[update_id] = self._seq
        return update_id

    def _absorb_update(self, update_id: int, update: JSONDict) -> None:
        """Learn chats, messages and callback ids that an update reveals."""
        for key in ("message", "edited_message"):
            message = update.get(key)
            if not isinstance(message, dict) or not isinstance(message.get("chat"), dict):
                continue
            state = self._ensure_chat(message["chat"])
            message_id = as_int(message.get("message_id"))
            if message_id is not None:
                state.messages[message_id] = copy.deepcopy(message)
                state.next_message_id = max(state.next_message_id, message_id + 1)
            if message.get("from", {}).get("id") != self.bot_user["id"]:
                state.started = True
                state.last_user_update_id = update_id
        query = update.get("callback_query")
        if isinstance(query, dict):
            message = query.get("message")
            chat = message.get("chat") if isinstance(message, dict) else None
            chat_id = chat["id"] if isinstance(chat, dict) else query.get("from", {}).get("id")
            if isinstance(chat, dict):
                self._ensure_chat(chat)
            if query.get("id") is not None and str(query["id"]) not in self._callbacks:
                self._callbacks[str(query["id"])] = {"chat_id": chat_id, "answered": None}
            query_chat = self._chats.get(chat_id) if chat_id is not None else None
            if query_chat is not None:
                query_chat.last_user_update_id = update_id

    def _ensure_chat(self, chat: JSONDict) -> ChatState:
        chat_id = int(chat["id"])
        state = self._chats.get(chat_id)
        if state is None:
            state = self._chats[chat_id] = ChatState(chat=copy.deepcopy(chat))
        return state

    def chat_state(self, chat_id: int) -> ChatState:
        with self._lock:
            return self._chats[chat_id]

    def user_message(
        self,
        user: FakeUser,
        text: str,
        entities: list[JSONDict] | None,
        reply_to_message_id: int | None,
    ) -> JSONDict:
        with self._lock:
            state = self._chats[user.id]
            message: JSONDict = {
                "message_id": state.next_message_id,
                "from": user.to_dict(),
                "chat": copy.deepcopy(state.chat),
                "date": int(time.time()),
                "text": text,
            }
            state.next_message_id += 1
            if entities:
                message["entities"] = entities
            if reply_to_message_id is not None:
                replied = state.messages.get(reply_to_message_id)
                if replied is None:
                    raise LookupError(f"no message {reply_to_message_id} in chat {user.id}")
                message["reply_to_message"] = _without_reply(replied)
            return message

    def keyboard_message(
        self, chat_id: int, message_id: int | None, accept: Callable[[JSONDict], bool]
    ) -> JSONDict | None:
        with self._lock:
            state = self._chats.get(chat_id)
            if state is None:
                return None
            bot_id = self.bot_user["id"]
            if message_id is not None:
                candidates = [state.messages[message_id]] if message_id in state.messages else []
            else:
                candidates = [state.messages[key] for key in sorted(state.messages, reverse=True)]
            for message in candidates:
                if message.get("from", {}).get("id") != bot_id:
                    continue
                rows = message.get("reply_markup", {}).get("inline_keyboard", [])
                if any(accept(button) for row in rows for button in row):
                    return copy.deepcopy(message)
            return None

    def callback_query_update(
        self, user: FakeUser, data: str, message_id: int | None, force: bool
    ) -> JSONDict:
        with self._lock:
            message = self.keyboard_message(
                user.id, message_id, lambda b: b.get("callback_data") == data
            )
            if message is None:
                if not force:
                    raise LookupError(
                        f"no button with callback_data {data!r} on "
                        f"{'message ' + str(message_id) if message_id else 'any bot message'} "
                        f"in chat {user.id}:\n{self.transcript(user.id)}"
                    )
                state = self._chats[user.id]
                if message_id is not None and message_id in state.messages:
                    message = copy.deepcopy(state.messages[message_id])
                else:  # Telegram sends an InaccessibleMessage (date 0) for vanished messages
                    message = {
                        "message_id": message_id or 0,
                        "chat": copy.deepcopy(state.chat),
                        "date": 0,
                    }
            query_id = str(CALLBACK_ID_BASE + next(self._callback_counter))
            return {
                "id": query_id,
                "from": user.to_dict(),
                "message": message,
                "chat_instance": str(-(CHAT_INSTANCE_BASE + abs(user.id))),
                "data": data,
            }

    def reply_keyboard_of(self, chat_id: int) -> list[list[str]] | None:
        with self._lock:
            state = self._chats.get(chat_id)
            if state is None or state.reply_keyboard is None:
                return None
            return [
                [b if isinstance(b, str) else str(b.get("text", "")) for b in row]
                for row in state.reply_keyboard.get("keyboard", [])
            ]

    def reply_marker(self, chat_id: int, after_update_id: int | None) -> int:
        with self._lock:
            if after_update_id is None:
                state = self._chats.get(chat_id)
                after_update_id = state.last_user_update_id if state else None
            if after_update_id is None:
                return 0
            return self._update_seq[after_update_id]

    def replies_after(self, chat_id: int, marker: int, count: int) -> list[JSONDict] | None:
        with self._lock:
            state = self._chats.get(chat_id)
            if state is None:
                return None
            found = [
                copy.deepcopy(e.snapshot)
                for e in state.events
                if e.seq > marker and e.kind in ("sent", "edited")
            ]
            return found[:count] if len(found) >= count else None

    # -- request log and counters ------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order (a snapshot)."""
        with self._lock:
            return list(self._requests)

    def calls(self, method: str) -> list[RecordedRequest]:
        """Requests of one method (case-insensitive), in arrival order."""
        wanted = method.lower()
        with self._lock:
            return [r for r in self._requests if r.method.lower() == wanted]

    def sent_messages(self, chat_id: int | None = None) -> list[JSONDict]:
        """Results of successful sendMessage/sendPhoto/sendDocument, in order, as returned."""
        with self._lock:
            return [
                copy.deepcopy(m)
                for m in self._sent
                if chat_id is None or m["chat"]["id"] == chat_id
            ]

    def request_counts(self) -> dict[str, int]:
        """Total requests received per method."""
        with self._lock:
            return dict(self._counts)

    def reset_requests(self) -> None:
        """Forget the request log and counters (e.g. between benchmark phases)."""
        with self._lock:
            self._requests.clear()
            self._counts.clear()
            self._sent.clear()

    def commands(self, scope: JSONDict | None = None, language_code: str = "") -> list[JSONDict]:
        """The command list the bot set for a scope and language."""
        with self._lock:
            return copy.deepcopy(self._commands.get((_scope_key(scope), language_code), []))

    @property
    def webhook_url(self) -> str:
        with self._lock:
            return self._webhook["url"] if self._webhook else ""

    # -- fault injection ---------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        status: int,
        times: int = 1,
        retry_after: int | None = None,
        description: str | None = None,
        chat_id: int | None = None,
    ) -> None:
        """Answer the next `times` calls of method ("*" = any) with an error.

        429 always carries parameters.retry_after (default 1 s). chat_id limits it to one chat.
        """
        if status == 429 and retry_after is None:
            retry_after = 1
        with self._lock:
            self._faults.append(
                Fault(method.lower(), status, times, retry_after, description, chat_id)
            )

    def stall_next(
        self, method: str, seconds: float, times: int = 1, chat_id: int | None = None
    ) -> None:
        """Sleep before answering the next calls; the call is still carried out afterwards,
        like a Telegram request that succeeded although the client timed out."""
        with self._lock:
            self._stalls.append(Stall(method.lower(), seconds, times, chat_id))

    def drop_next(self, method: str, times: int = 1, chat_id: int | None = None) -> None:
        """Close the connection without any answer for the next calls (a network failure)."""
        with self._lock:
            self._drops.append(Drop(method.lower(), times, chat_id))

    def set_offline(self, offline: bool = True) -> None:
        """While offline every Bot API request is dropped unanswered and long polls end."""
        with self._cond:
            self._offline = offline
            self._changed()

    def block_user(self, user_id: int, *, notify: bool = False) -> None:
        """The user blocks the bot: sends to that chat answer 403 until unblock_user.

        notify=True also queues the my_chat_member update Telegram sends.
        """
        self._set_blocked(user_id, True, notify)

    def unblock_user(self, user_id: int, *, notify: bool = False) -> None:
        self._set_blocked(user_id, False, notify)

    def _set_blocked(self, user_id: int, blocked: bool, notify: bool) -> None:
        with self._cond:
            state = self._chats.get(user_id)
            if state is None:
                raise LookupError(f"unknown chat {user_id}")
            state.blocked = blocked
            if notify:
                old, new = ("member", "kicked") if blocked else ("kicked", "member")
                now = int(time.time())
                member: JSONDict = {"user": copy.deepcopy(self.bot_user), "status": new}
                if blocked:
                    member["until_date"] = 0
                user = self._users[user_id].to_dict() if user_id in self._users else state.chat
                self._enqueue(
                    {
                        "my_chat_member": {
                            "chat": copy.deepcopy(state.chat),
                            "from": copy.deepcopy(user),
                            "date": now,
                            "old_chat_member": {
                                "user": copy.deepcopy(self.bot_user),
                                "status": old,
                                **({"until_date": 0} if old == "kicked" else {}),
                            },
                            "new_chat_member": member,
                        }
                    }
                )
            self._changed()

    def clear_faults(self) -> None:
        """Remove pending failures, stalls and drops, unblock everyone and go online."""
        with self._cond:
            self._faults.clear()
            self._stalls.clear()
            self._drops.clear()
            self._offline = False
            for state in self._chats.values():
                state.blocked = False
            self._changed()

    @staticmethod
    def _take(rules: list[Any], method: str, chat_id: int | str | None) -> Any:
        for rule in rules:
            if rule.method not in ("*", method.lower()):
                continue
            if rule.chat_id is not None and rule.chat_id != chat_id:
                continue
            rule.remaining -= 1
            if rule.remaining <= 0:
                rules.remove(rule)
            return rule
        return None

    # -- waiting -----------------------------------------------------------------------------

    async def wait_until(
        self,
        predicate: Callable[[], _T | None],
        timeout: float = 5.0,
        *,
        description: str = "condition",
        chat_id: int | None = None,
        only_on_change: bool = False,
    ) -> _T:
        """Poll predicate (without blocking the event loop) until it returns something truthy.

        only_on_change=True re-evaluates only after the fake's state changed; use it when the
        predicate looks at nothing but the fake, so hundreds of waiters stay cheap.
        """
        deadline = time.monotonic() + timeout
        seen = -1
        while True:
            version = self._version
            if not only_on_change or version != seen:
                seen = version
                result = predicate()
                if result:
                    return result
            if time.monotonic() >= deadline:
                raise TimeoutError(self._timeout_message(timeout, description, chat_id))
            await asyncio.sleep(POLL_INTERVAL)

    def wait_until_sync(
        self,
        predicate: Callable[[], _T | None],
        timeout: float = 5.0,
        *,
        description: str = "condition",
        chat_id: int | None = None,
    ) -> _T:
        """Blocking variant of wait_until; wakes whenever the fake's state changes."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                result = predicate()
                if result:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(self._timeout_message(timeout, description, chat_id))
                self._cond.wait(min(remaining, 0.05))

    def _timeout_message(self, timeout: float, description: str, chat_id: int | None) -> str:
        message = f"timed out after {timeout}s waiting for {description}"
        if chat_id is not None:
            message += f"; chat {chat_id}:\n{self.transcript(chat_id)}"
        with self._lock:
            recent = [f"{r.method}->{r.status}" for r in self._requests[-15:]]
        return f"{message}\nrecent requests: {recent}"

    def _request_matcher(
        self, method: str, predicate: Callable[[RecordedRequest], bool] | None, after: int
    ) -> Callable[[], RecordedRequest | None]:
        wanted = method.lower()

        def find() -> RecordedRequest | None:
            with self._lock:
                for request in self._requests[after:]:
                    if request.method.lower() == wanted and (
                        predicate is None or predicate(request)
                    ):
                        return request
            return None

        return find

    async def wait_for_request(
        self,
        method: str,
        predicate: Callable[[RecordedRequest], bool] | None = None,
        timeout: float = 5.0,
        *,
        after: int = 0,
    ) -> RecordedRequest:
        """The first request of `method` (from log index `after`) satisfying predicate."""
        return await self.wait_until(
            self._request_matcher(method, predicate, after),
            timeout,
            description=method,
            only_on_change=True,
        )

    def wait_for_request_sync(
        self,
        method: str,
        predicate: Callable[[RecordedRequest], bool] | None = None,
        timeout: float = 5.0,
        *,
        after: int = 0,
    ) -> RecordedRequest:
        """Blocking variant of wait_for_request."""
        return self.wait_until_sync(
            self._request_matcher(method, predicate, after), timeout, description=method
        )

    def _confirmed_check(self, update_id: int | None) -> Callable[[], bool]:
        def check() -> bool:
            with self._lock:
                target = self._next_update_id - 1 if update_id is None else update_id
                return self._confirmed_offset > target

        return check

    async def wait_until_confirmed(
        self, update_id: int | None = None, timeout: float = 5.0
    ) -> None:
        """Wait until the bot confirmed (via offset) update_id, default the newest update."""
        await self.wait_until(
            self._confirmed_check(update_id),
            timeout,
            description="offset confirmation",
            only_on_change=True,
        )

    # -- request handling (server threads) ---------------------------------------------------

    def handle(
        self,
        token: str,
        method: str,
        params: JSONDict,
        files: dict[str, UploadedFile],
    ) -> tuple[int, JSONDict] | None:
        """Answer one Bot API call; None means "drop the connection without answering"."""
        received, mono = time.time(), time.monotonic()
        known = self._handlers.get(method.lower())
        name = known[0] if known else method
        chat_id = chat_key(params.get("chat_id"))
        with self._cond:
            if chat_id is None and name == "answerCallbackQuery":
                chat_id = self._callbacks.get(str(params.get("callback_query_id")), {}).get(
                    "chat_id"
                )
            record = RecordedRequest(name, params, received, chat_id, files, mono)
            self._requests.append(record)
            self._counts[name] += 1
            self._changed()
            stall = None
            if token == self.token and known is not None and not self._offline:
                stall = self._take(self._stalls, name, chat_id)
        if stall is not None:
            self._stop_event.wait(stall.seconds)
        with self._cond:
            try:
                if token != self.token:
                    raise ApiError(401, "Unauthorized")
                if known is None:
                    raise ApiError(404, "Not Found: method not found")
                if self._offline or self._stopping or self._take(self._drops, name, chat_id):
                    return self._finish(record, 0, None)
                fault = self._take(self._faults, name, chat_id)
                if fault is not None:
                    raise self._fault_error(fault)
                result = known[1](params, files)
                if self._offline or self._stopping:  # the link went down during a long poll
                    return self._finish(record, 0, None)
            except ApiError as error:
                return self._finish(record, error.status, error.payload())
            if isinstance(result, Described):
                body = {"ok": True, "result": result.result, "description": result.description}
            else:
                body = {"ok": True, "result": result}
            if name in SENT_METHODS:
                self._sent.append(copy.deepcopy(result))
            return self._finish(record, 200, body)

    def _finish(
        self, record: RecordedRequest, status: int, body: JSONDict | None
    ) -> tuple[int, JSONDict] | None:
        record.status = status
        record.response = copy.deepcopy(body)
        record.answered_at = time.time()
        self._changed()
        return None if body is None else (status, body)

    @staticmethod
    def _fault_error(fault: Fault) -> ApiError:
        description = fault.description
        if description is None:
            if fault.status == 429:
                description = f"Too Many Requests: retry after {fault.retry_after}"
            else:
                try:
                    default = HTTPStatus(fault.status).phrase
                except ValueError:
                    default = "Error"
                description = DEFAULT_DESCRIPTIONS.get(fault.status, default)
        return ApiError(fault.status, description, fault.retry_after)

    def control(self, action: str, args: JSONDict) -> Any:
        """The standalone server's /_fake/<action> endpoint: drive the fake from another process."""

        def user() -> FakeUser:
            return self.user(int(args.pop("user_id")))

        if action == "new_user":
            return self.new_user(**args).to_dict()
        if action == "send_text":
            return user().send_text(args["text"])
        if action == "send_command":
            return user().send_command(args["command"], *args.get("args", []))
        if action == "press":
            return user().press(**args)
        if action == "push_update":
            return self.push_update(args["update"])
        if action == "messages":
            return self.messages(int(args["chat_id"]), include_user=bool(args.get("include_user")))
        if action == "sent_messages":
            return self.sent_messages(args.get("chat_id"))
        if action == "requests":
            method = args.get("method")
            return [r.to_dict() for r in (self.calls(method) if method else self.requests)]
        if action == "stats":
            with self._lock:
                return {
                    "counts": dict(self._counts),
                    "pending_updates": len(self._pending),
                    "confirmed_offset": self._confirmed_offset,
                }
        if action in {
            "fail_next",
            "stall_next",
            "drop_next",
            "block_user",
            "unblock_user",
            "clear_faults",
            "set_offline",
            "reset_requests",
        }:
            getattr(self, action)(**args)
            return True
        raise KeyError(action)

    # -- Bot API methods ---------------------------------------------------------------------

    def _ok(self, params: JSONDict, files: dict[str, UploadedFile]) -> bool:
        return True

    def _getMe(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        return copy.deepcopy(self.bot_user)

    def _getUpdates(self, params: JSONDict, files: dict[str, UploadedFile]) -> list[JSONDict]:
        if self._webhook is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use "
                "deleteWebhook to delete the webhook first",
            )
        offset = as_int(params.get("offset")) or 0
        limit = min(max(as_int(params.get("limit")) or 100, 1), 100)
        try:
            timeout = max(float(params.get("timeout") or 0), 0.0)
        except (TypeError, ValueError):
            raise bad_request("wrong parameter timeout") from None
        deadline = time.monotonic() + timeout
        self._poll_generation += 1
        generation = self._poll_generation
        self._changed()  # an older long poll is terminated with 409, as on Telegram
        now = time.time()
        if offset > 0:
            for update_id, _ in self._pending:
                if update_id < offset:
                    self._updates[update_id].confirmed_at = now
            self._pending = [p for p in self._pending if p[0] >= offset]
            self._confirmed_offset = max(self._confirmed_offset, offset)
        elif offset < 0:
            forgotten = self._pending[:offset]
            self._pending = self._pending[offset:]
            for update_id, _ in forgotten:
                self._updates[update_id].confirmed_at = now
            if forgotten:
                self._confirmed_offset = max(self._confirmed_offset, forgotten[-1][0] + 1)
        while True:
            if generation != self._poll_generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one "
                    "bot instance is running",
                )
            batch = self._pending[:limit]
            if batch:
                now = time.time()
                for update_id, _ in batch:
                    record = self._updates[update_id]
                    if record.delivered_at is None:
                        record.delivered_at = now
                return [copy.deepcopy(u) for _, u in batch]
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._stopping or self._offline:
                return []
            self._cond.wait(remaining)

    def _target_chat(self, params: JSONDict) -> ChatState:
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise bad_request("chat_id is empty")
        chat_id = as_int(raw)
        state = self._chats.get(chat_id) if chat_id is not None else None
        if state is None:
            raise bad_request("chat not found")
        return state

    def _writable_chat(self, params: JSONDict, method: str) -> ChatState:
        state = self._target_chat(params)
        if method.startswith(BLOCKABLE_PREFIXES) and state.chat["type"] == "private":
            if state.blocked:
                raise ApiError(403, "Forbidden: bot was blocked by the user")
            if not state.started:
                raise ApiError(403, "Forbidden: bot can't initiate conversation with a user")
        return state

    def _markup(self, params: JSONDict) -> tuple[JSONDict | None, JSONDict | None]:
        """Split reply_markup into an inline keyboard (echoed in the Message) and the rest."""
        markup = params.get("reply_markup")
        if markup is None or markup == "":
            return None, None
        if not isinstance(markup, dict):
            raise bad_request("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" not in markup:
            return None, markup
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise bad_request(
                'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays'
            )
        for row in rows:
            for button in row:
                if not isinstance(button, dict) or not button.get("text"):
                    raise bad_request("can't parse inline keyboard button: Text must be non-empty")
                if set(button) == {"text"}:
                    raise bad_request("text buttons are unallowed in the inline keyboard")
                data = button.get("callback_data")
                if data is not None and (
                    not isinstance(data, str)
                    or not 1 <= len(data.encode("utf-8")) <= CALLBACK_DATA_LIMIT
                ):
                    raise bad_request("BUTTON_DATA_INVALID")
        if not any(rows):
            return None, None
        return copy.deepcopy(markup), None

    @staticmethod
    def _apply_other_markup(state: ChatState, markup: JSONDict | None) -> None:
        if markup is None:
            return
        if markup.get("remove_keyboard"):
            state.reply_keyboard = None
        elif "keyboard" in markup:
            state.reply_keyboard = copy.deepcopy(markup)

    def _new_bot_message(self, state: ChatState, params: JSONDict) -> JSONDict:
        message: JSONDict = {
            "message_id": state.next_message_id,
            "from": copy.deepcopy(self.bot_user),
            "chat": copy.deepcopy(state.chat),
            "date": int(time.time()),
        }
        reply = params.get("reply_parameters")
        reply_id = as_int(params.get("reply_to_message_id"))
        allow_missing = bool(params.get("allow_sending_without_reply"))
        if isinstance(reply, dict):
            reply_id = as_int(reply.get("message_id"))
            allow_missing = bool(reply.get("allow_sending_without_reply"))
        if reply_id is not None:
            replied = state.messages.get(reply_id)
            if replied is not None:
                message["reply_to_message"] = _without_reply(replied)
            elif not allow_missing:
                raise bad_request("message to be replied not found")
        if params.get("protect_content"):
            message["has_protected_content"] = True
        return message

    def _store_bot_message(self, state: ChatState, message: JSONDict) -> JSONDict:
        state.next_message_id += 1
        state.messages[message["message_id"]] = message
        self._record_event(state, "sent", message)
        return copy.deepcopy(message)

    def _record_event(self, state: ChatState, kind: str, message: JSONDict) -> None:
        self._seq += 1
        state.events.append(
            ChatEvent(self._seq, kind, int(message["message_id"]), copy.deepcopy(message))
        )

    def _formatted(
        self,
        params: JSONDict,
        key: str,
        entities_key: str,
        limit: int,
        *,
        required: bool,
    ) -> tuple[str | None, list[JSONDict]]:
        raw = params.get(key)
        if raw is None or raw == "":
            if required:
                raise bad_request("message text is empty")
            return None, []
        entities = params.get(entities_key)
        if entities is not None and not isinstance(entities, list):
            raise bad_request(f"can't parse {entities_key} JSON object")
        text, parsed = format_text(str(raw), params.get("parse_mode"), entities)
        if not text:
            if required:
                raise bad_request("message text is empty")
            return None, []
        if utf16_length(text) > limit:
            raise bad_request("message is too long" if required else "message caption is too long")
        return text, parsed

    def _sendMessage(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        state = self._writable_chat(params, "sendMessage")
        text, entities = self._formatted(params, "text", "entities", TEXT_LIMIT, required=True)
        inline, other = self._markup(params)
        message = self._new_bot_message(state, params)
        message["text"] = text
        if entities:
            message["entities"] = entities
        if inline is not None:
            message["reply_markup"] = inline
        self._apply_other_markup(state, other)
        return self._store_bot_message(state, message)

    def _add_caption(self, message: JSONDict, params: JSONDict) -> None:
        caption, entities = self._formatted(
            params, "caption", "caption_entities", CAPTION_LIMIT, required=False
        )
        if caption is not None:
            message["caption"] = caption
            if entities:
                message["caption_entities"] = entities

    def _input_file(
        self, params: JSONDict, files: dict[str, UploadedFile], key: str
    ) -> UploadedFile | StoredFile | str:
        """The uploaded file, a previously stored file (by file_id) or an HTTP URL."""
        value = params.get(key)
        if isinstance(value, str) and value.startswith("attach://"):
            attached = files.get(value.removeprefix("attach://"))
            if attached is None:
                raise bad_request(f"wrong remote file identifier specified: {key}")
            return attached
        if key in files:
            return files[key]
        if value is None or value == "":
            raise bad_request(f"there is no {key} in the request")
        if not isinstance(value, str):
            raise bad_request(f"wrong type of the web page content for {key}")
        if value.startswith(("http://", "https://")):
            return value
        stored = self._files.get(value)
        if stored is None:
            raise bad_request("wrong file identifier/HTTP URL specified")
        return stored

    def _store_file(self, content: bytes, path_prefix: str, extension: str) -> StoredFile:
        number = next(self._file_counter)
        stored = StoredFile(
            file_id=f"FAKE{path_prefix[:2].upper()}{number:010d}",
            file_unique_id=f"U{number:09d}",
            content=content,
            file_path=f"{path_prefix}/file_{number}{extension}",
        )
        self._files[stored.file_id] = stored
        return stored

    def _sendPhoto(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        state = self._writable_chat(params, "sendPhoto")
        source = self._input_file(params, files, "photo")
        message = self._new_bot_message(state, params)
        if isinstance(source, StoredFile):
            if source.photo_sizes is None:
                raise bad_request("type of file mismatch")
            sizes = copy.deepcopy(source.photo_sizes)
        else:
            content = b"" if isinstance(source, str) else source.content
            if isinstance(source, UploadedFile) and not content:
                raise bad_request("file must be non-empty")
            dimensions = (800, 600) if isinstance(source, str) else image_size(content)
            if dimensions is None or min(dimensions) <= 0:
                raise bad_request("IMAGE_PROCESS_FAILED")
            sizes = self._photo_sizes(content, *dimensions)
        self._add_caption(message, params)
        inline, other = self._markup(params)
        message["photo"] = sizes
        if inline is not None:
            message["reply_markup"] = inline
        self._apply_other_markup(state, other)
        return self._store_bot_message(state, message)

    def _photo_sizes(self, content: bytes, width: int, height: int) -> list[JSONDict]:
        """Telegram's thumbnails: 90/320/800/1280/2560 px on the long side, up to the original."""
        sizes: list[JSONDict] = []
        longest = max(width, height)
        total = max(len(content), 1)
        for limit in (90, 320, 800, 1280, 2560):
            scale = min(1.0, limit / longest)
            w, h = max(1, round(width * scale)), max(1, round(height * scale))
            stored = self._store_file(content, "photos", ".jpg")
            sizes.append(
                {
                    "file_id": stored.file_id,
                    "file_unique_id": stored.file_unique_id,
                    "width": w,
                    "height": h,
                    "file_size": max(1, round(total * scale * scale)),
                }
            )
            if longest <= limit:
                break
        for size in sizes:
            self._files[size["file_id"]].photo_sizes = sizes
        return copy.deepcopy(sizes)

    def _sendDocument(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        state = self._writable_chat(params, "sendDocument")
        source = self._input_file(params, files, "document")
        message = self._new_bot_message(state, params)
        if isinstance(source, StoredFile):
            if source.document is None:
                raise bad_request("type of file mismatch")
            document = copy.deepcopy(source.document)
        else:
            if isinstance(source, str):
                filename, content, mime = source.rsplit("/", 1)[-1] or "file", b"", None
            else:
                filename, content, mime = source.filename, source.content, source.content_type
                if not content:
                    raise bad_request("file must be non-empty")
            if not mime or mime == "application/octet-stream":
                mime = mimetypes.guess_type(filename)[0] or "application/octet-stream"
            extension = "." + filename.rsplit(".", 1)[-1] if "." in filename else ""
            stored = self._store_file(content, "documents", extension)
            document = {
                "file_name": filename,
                "mime_type": mime,
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "file_size": len(content),
            }
            stored.document = document
        self._add_caption(message, params)
        inline, other = self._markup(params)
        message["document"] = copy.deepcopy(document)
        if inline is not None:
            message["reply_markup"] = inline
        self._apply_other_markup(state, other)
        return self._store_bot_message(state, message)

    def _message_to_edit(self, params: JSONDict, method: str) -> tuple[ChatState, JSONDict]:
        if params.get("inline_message_id"):
            raise bad_request("MESSAGE_ID_INVALID")
        state = self._writable_chat(params, method)
        message_id = as_int(params.get("message_id"))
        if message_id is None:
            raise bad_request("message identifier is not specified")
        message = state.messages.get(message_id)
        if message is None:
            raise bad_request("message to edit not found")
        if message.get("from", {}).get("id") != self.bot_user["id"]:
            raise bad_request("message can't be edited")
        return state, message

    def _commit_edit(self, state: ChatState, message: JSONDict, changes: JSONDict) -> JSONDict:
        for key, value in changes.items():
            if value is None or value == []:
                message.pop(key, None)
            else:
                message[key] = value
        message["edit_date"] = int(time.time())
        self._record_event(state, "edited", message)
        return copy.deepcopy(message)

    def _editMessageText(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        state, message = self._message_to_edit(params, "editMessageText")
        if "text" not in message:
            raise bad_request("there is no text in the message to edit")
        text, entities = self._formatted(params, "text", "entities", TEXT_LIMIT, required=True)
        inline, _other = self._markup(params)
        if (
            text == message["text"]
            and entities == message.get("entities", [])
            and inline == message.get("reply_markup")
        ):
            raise ApiError(400, NOT_MODIFIED)
        return self._commit_edit(
            state, message, {"text": text, "entities": entities, "reply_markup": inline}
        )

    def _editMessageReplyMarkup(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        state, message = self._message_to_edit(params, "editMessageReplyMarkup")
        inline, _other = self._markup(params)
        if inline == message.get("reply_markup"):
            raise ApiError(400, NOT_MODIFIED)
        return self._commit_edit(state, message, {"reply_markup": inline})

    def _delete_one(self, state: ChatState, message_id: int | None) -> None:
        if message_id is None:
            raise bad_request("message identifier is not specified")
        message = state.messages.pop(message_id, None)
        if message is None:
            raise bad_request("message to delete not found")
        self._record_event(state, "deleted", message)

    def _deleteMessage(self, params: JSONDict, files: dict[str, UploadedFile]) -> bool:
        state = self._target_chat(params)
        self._delete_one(state, as_int(params.get("message_id")))
        return True

    def _answerCallbackQuery(self, params: JSONDict, files: dict[str, UploadedFile]) -> bool:
        query = self._callbacks.get(str(params.get("callback_query_id", "")))
        if query is None or query["answered"] is not None:
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        text = params.get("text")
        if isinstance(text, str) and len(text) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        query["answered"] = copy.deepcopy(params)
        return True

    def _command_key(self, params: JSONDict) -> tuple[str, str]:
        scope = params.get("scope")
        if scope is not None and not isinstance(scope, dict):
            raise bad_request("can't parse BotCommandScope JSON object")
        language = params.get("language_code") or ""
        if language and not re.fullmatch(r"[a-z]{2}", str(language)):
            raise bad_request("invalid language code specified")
        return _scope_key(scope), str(language)

    def _setMyCommands(self, params: JSONDict, files: dict[str, UploadedFile]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise bad_request("can't parse commands JSON object")
        if len(commands) > 100:
            raise bad_request("too many commands specified")
        for command in commands:
            if not isinstance(command, dict) or not COMMAND_RE.match(
                str(command.get("command", ""))
            ):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        key = self._command_key(params)
        if commands:
            self._commands[key] = [
                {"command": c["command"], "description": c["description"]} for c in commands
            ]
        else:
            self._commands.pop(key, None)
        return True

    def _getMyCommands(self, params: JSONDict, files: dict[str, UploadedFile]) -> list[JSONDict]:
        return copy.deepcopy(self._commands.get(self._command_key(params), []))

    def _deleteMyCommands(self, params: JSONDict, files: dict[str, UploadedFile]) -> bool:
        self._commands.pop(self._command_key(params), None)
        return True

    def _deleteWebhook(self, params: JSONDict, files: dict[str, UploadedFile]) -> Described:
        had_webhook = self._webhook is not None
        self._webhook = None
        if params.get("drop_pending_updates"):
            self._drop_pending()
        return Described(
            True, "Webhook was deleted" if had_webhook else "Webhook is already deleted"
        )

    def _setWebhook(self, params: JSONDict, files: dict[str, UploadedFile]) -> Described:
        url = str(params.get("url") or "")
        if params.get("drop_pending_updates"):
            self._drop_pending()
        if not url:
            had_webhook = self._webhook is not None
            self._webhook = None
            return Described(
                True, "Webhook was deleted" if had_webhook else "Webhook is already deleted"
            )
        if not url.startswith("https://"):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        self._webhook = {
            "url": url,
            "max_connections": as_int(params.get("max_connections")) or 40,
            "allowed_updates": params.get("allowed_updates"),
        }
        self._changed()
        return Described(True, "Webhook was set")

    def _drop_pending(self) -> None:
        now = time.time()
        for update_id, _ in self._pending:
            self._updates[update_id].confirmed_at = now
        if self._pending:
            self._confirmed_offset = max(self._confirmed_offset, self._pending[-1][0] + 1)
        self._pending.clear()

    def _getWebhookInfo(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        info: JSONDict = {
            "url": self._webhook["url"] if self._webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending),
        }
        if self._webhook:
            info["max_connections"] = self._webhook["max_connections"]
            if self._webhook.get("allowed_updates"):
                info["allowed_updates"] = self._webhook["allowed_updates"]
        return info

    def _getFile(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        stored = self._files.get(str(params.get("file_id", "")))
        if stored is None:
            raise bad_request("invalid file_id")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.content),
            "file_path": stored.file_path,
        }

    def file_content(self, token: str, file_path: str) -> bytes | None:
        """Bytes served at base_file_url + token + "/" + file_path, or None when unknown."""
        if token != self.token:
            return None
        with self._lock:
            for stored in self._files.values():
                if stored.file_path == file_path:
                    return stored.content
        return None


def _scope_key(scope: JSONDict | None) -> str:
    return json.dumps(scope or {"type": "default"}, sort_keys=True)


def _without_reply(message: JSONDict) -> JSONDict:
    """Telegram nests reply_to_message only one level deep."""
    nested = copy.deepcopy(message)
    nested.pop("reply_to_message", None)
    return nested


# --------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    """Threaded HTTP server that tracks its connections so stop() can close idle keep-alives."""

    daemon_threads = True
    block_on_close = True  # server_close() joins every handler thread
    allow_reuse_address = True
    # socketserver's default backlog of 5 resets connections when a bot opens dozens at once.
    request_queue_size = 512

    def __init__(self, address: tuple[str, int], api: FakeBotApi) -> None:
        self.api = api
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._closing = False
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn), which can hang offline.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            if self._closing:  # accepted just before stop(): do not let it hold a thread
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        with self._connections_lock:
            self._closing = True
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, OSError):  # client went away: normal for cancelled long polls
            return
        if error is not None:
            self.api.server_errors.append(error)
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet; the request log is on FakeBotApi."""

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Error"
        head = (
            f"{self.protocol_version} {status} {reason}\r\n"
            f"Server: fake-bot-api\r\nDate: {self.date_time_string()}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        # One write for head and body: two small writes hit Nagle + delayed ACK (~40 ms).
        self.wfile.write(head.encode("latin-1") + body)

    def _send_json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload, ensure_ascii=False).encode("utf-8"))

    def _dispatch(self) -> None:
        api = self.server.api
        parts = urlsplit(self.path)
        body = self._read_body()
        path = unquote(parts.path)
        try:
            if path.startswith("/_fake/"):
                self._control(path.removeprefix("/_fake/"), body)
            elif path.startswith("/file/bot"):
                token, _, file_path = path.removeprefix("/file/bot").partition("/")
                content = api.file_content(token, file_path)
                if content is None:
                    self._send_json(
                        404, {"ok": False, "error_code": 404, "description": "Not Found"}
                    )
                else:
                    self._send(200, content, "application/octet-stream")
            elif path.startswith("/bot") and "/" in path.removeprefix("/bot"):
                token, _, method = path.removeprefix("/bot").partition("/")
                try:
                    params, files = parse_request(
                        self.headers.get("Content-Type", ""), body, parts.query
                    )
                except (ValueError, UnicodeDecodeError) as error:
                    self._send_json(400, ApiError(400, f"Bad Request: {error}").payload())
                    return
                outcome = api.handle(token, method, params, files)
                if outcome is None:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self._send_json(*outcome)
            else:
                self._send_json(404, {"ok": False, "error_code": 404, "description": "Not Found"})
        except OSError:
            self.close_connection = True
        except Exception as error:  # a bug in the fake must be visible, not a hang
            api.server_errors.append(error)
            self._send_json(
                500, {"ok": False, "error_code": 500, "description": f"fake error: {error!r}"}
            )

    def _control(self, action: str, body: bytes) -> None:
        try:
            args = json.loads(body) if body else {}
            result = self.server.api.control(action, dict(args))
        except (KeyError, LookupError, TypeError, ValueError) as error:
            self._send_json(400, {"ok": False, "error_code": 400, "description": repr(error)})
            return
        self._send_json(200, {"ok": True, "result": result})


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT; print the URL (one line) so a benchmark can read it."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.fake_telegram", description="Fake Telegram Bot API server"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    args = parser.parse_args(argv)
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    with FakeBotApi(args.token, host=args.host, port=args.port) as api:
        print(api.url, flush=True)
        while not stop.wait(0.5):
            pass
    return 0
