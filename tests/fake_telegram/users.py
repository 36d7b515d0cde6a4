"""The fake Telegram user: sends texts, commands and presses, and reads the chat."""

# The wait helpers take `timeout=` on purpose: the async and sync variants share one signature.
# ruff: noqa: ASYNC109

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING

from tests.fake_telegram.formatting import utf16_length
from tests.fake_telegram.records import JSONDict

if TYPE_CHECKING:
    from tests.fake_telegram.server import FakeBotApi

# --------------------------------------------------------------------------------------------
# The fake user
# --------------------------------------------------------------------------------------------


class FakeUser:
    """A person chatting with the bot privately; its chat id equals its user id."""

    def __init__(self, api: FakeBotApi, user: JSONDict) -> None:
        self._api = api
        self._user = user

    def __repr__(self) -> str:
        return f"FakeUser(id={self.id}, first_name={self.first_name!r})"

    @property
    def id(self) -> int:
        return int(self._user["id"])

    @property
    def chat_id(self) -> int:
        return self.id

    @property
    def first_name(self) -> str:
        return str(self._user["first_name"])

    @property
    def language_code(self) -> str | None:
        return self._user.get("language_code")

    def to_dict(self) -> JSONDict:
        """The Telegram User object."""
        return dict(self._user)

    def chat(self) -> JSONDict:
        """The Telegram Chat object of the private chat."""
        return self._api.chat_state(self.id).chat.copy()

    # -- building updates (push them later, e.g. with push_batch) --------------------------

    def text_update(
        self,
        text: str,
        *,
        entities: list[JSONDict] | None = None,
        reply_to_message_id: int | None = None,
    ) -> JSONDict:
        """An update carrying a text message from this user (not queued yet)."""
        return {"message": self._api.user_message(self, text, entities, reply_to_message_id)}

    def command_update(self, command: str, *args: str) -> JSONDict:
        """An update carrying "/command arg ..." with its bot_command entity (not queued yet)."""
        command = command if command.startswith("/") else f"/{command}"
        text = " ".join([command, *args])
        entity = {"type": "bot_command", "offset": 0, "length": utf16_length(command)}
        return self.text_update(text, entities=[entity])

    def press_update(
        self, callback_data: str, message_id: int | None = None, *, force: bool = False
    ) -> JSONDict:
        """An update carrying a button press (not queued yet); see `press`."""
        return {
            "callback_query": self._api.callback_query_update(
                self, callback_data, message_id, force
            )
        }

    # -- acting ------------------------------------------------------------------------------

    def send_text(self, text: str, *, reply_to_message_id: int | None = None) -> int:
        """The user types a message; returns its update_id."""
        return self._api.push_update(
            self.text_update(text, reply_to_message_id=reply_to_message_id)
        )

    def send_command(self, command: str, *args: str) -> int:
        """The user sends a command such as ("/start", "ABC123"); returns its update_id."""
        return self._api.push_update(self.command_update(command, *args))

    def press(
        self, callback_data: str, message_id: int | None = None, *, force: bool = False
    ) -> int:
        """The user presses an inline button; returns its update_id.

        Without message_id the newest bot message whose keyboard holds callback_data is used.
        force=True skips the check that such a button is on screen (for stale/forged presses).
        """
        return self._api.push_update(self.press_update(callback_data, message_id, force=force))

    def press_button(self, text: str, message_id: int | None = None) -> int:
        """The user presses the inline button labelled `text`; returns its update_id."""
        message = self._api.keyboard_message(self.id, message_id, lambda b: b.get("text") == text)
        if message is None:
            raise LookupError(f"no button labelled {text!r} in chat {self.id}")
        for row in message["reply_markup"]["inline_keyboard"]:
            for button in row:
                if button.get("text") == text and "callback_data" in button:
                    return self.press(button["callback_data"], message["message_id"])
        raise LookupError(f"button {text!r} carries no callback_data")

    def block_bot(self, *, notify: bool = False) -> None:
        """The user blocks the bot: sends to this chat fail with 403 until unblock_bot."""
        self._api.block_user(self.id, notify=notify)

    def unblock_bot(self, *, notify: bool = False) -> None:
        """The user unblocks the bot."""
        self._api.unblock_user(self.id, notify=notify)

    # -- observing ---------------------------------------------------------------------------

    def messages(self) -> list[JSONDict]:
        """The bot's messages in this chat as they look now (after edits and deletions)."""
        return self._api.messages(self.id)

    def history(self) -> list[JSONDict]:
        """Every message in this chat, the user's included, in order."""
        return self._api.messages(self.id, include_user=True)

    def last_message(self) -> JSONDict | None:
        """The newest bot message still in the chat."""
        messages = self.messages()
        return messages[-1] if messages else None

    def keyboard(self, message: JSONDict | int | None = None) -> list[list[JSONDict]]:
        """Rows of inline buttons of `message` (default: the newest bot message with a keyboard)."""
        message_id = message["message_id"] if isinstance(message, dict) else message
        found = self._api.keyboard_message(self.id, message_id, lambda _b: True)
        if found is None:
            return []
        return copy.deepcopy(found["reply_markup"]["inline_keyboard"])

    def buttons(self, message: JSONDict | int | None = None) -> list[tuple[str, str]]:
        """(text, callback_data) of the callback buttons of the latest (or given) keyboard."""
        return [
            (str(b["text"]), str(b["callback_data"]))
            for row in self.keyboard(message)
            for b in row
            if "callback_data" in b
        ]

    def reply_keyboard(self) -> list[list[str]] | None:
        """Labels of the custom reply keyboard currently shown, or None."""
        return self._api.reply_keyboard_of(self.id)

    def transcript(self) -> str:
        """The chat as readable lines, for assertion messages."""
        return self._api.transcript(self.id)

    # -- waiting -----------------------------------------------------------------------------

    async def wait_for_reply(
        self, after_update_id: int | None = None, timeout: float = 5.0
    ) -> JSONDict:
        """The first message the bot sent or edited in this chat after the given update.

        Defaults to the newest update from this user. Polls without blocking the event loop.
        """
        return (await self.wait_for_replies(1, after_update_id, timeout))[0]

    async def wait_for_replies(
        self, count: int, after_update_id: int | None = None, timeout: float = 5.0
    ) -> list[JSONDict]:
        """The first `count` messages sent or edited in this chat after the given update."""
        marker = self._api.reply_marker(self.id, after_update_id)
        return await self._api.wait_until(
            lambda: self._api.replies_after(self.id, marker, count),
            timeout,
            description=f"{count} reply(ies) in chat {self.id}",
            chat_id=self.id,
            only_on_change=True,
        )

    async def wait_until(
        self, predicate: Callable[[list[JSONDict]], bool], timeout: float = 5.0
    ) -> list[JSONDict]:
        """Wait until predicate(bot messages in this chat) holds; returns those messages."""

        def check() -> tuple[list[JSONDict]] | None:
            messages = self.messages()
            return (messages,) if predicate(messages) else None  # a tuple: truthy when empty

        found = await self._api.wait_until(
            check, timeout, description="chat predicate", chat_id=self.id, only_on_change=True
        )
        return found[0]

    def wait_for_reply_sync(
        self, after_update_id: int | None = None, timeout: float = 5.0
    ) -> JSONDict:
        """Blocking variant of wait_for_reply, for tests driving a bot subprocess."""
        return self.wait_for_replies_sync(1, after_update_id, timeout)[0]

    def wait_for_replies_sync(
        self, count: int, after_update_id: int | None = None, timeout: float = 5.0
    ) -> list[JSONDict]:
        """Blocking variant of wait_for_replies."""
        marker = self._api.reply_marker(self.id, after_update_id)
        return self._api.wait_until_sync(
            lambda: self._api.replies_after(self.id, marker, count),
            timeout,
            description=f"{count} reply(ies) in chat {self.id}",
            chat_id=self.id,
        )

    def wait_until_sync(
        self, predicate: Callable[[list[JSONDict]], bool], timeout: float = 5.0
    ) -> list[JSONDict]:
        """Blocking variant of wait_until."""

        def check() -> tuple[list[JSONDict]] | None:
            messages = self.messages()
            return (messages,) if predicate(messages) else None

        found = self._api.wait_until_sync(
            check, timeout, description="chat predicate", chat_id=self.id
        )
        return found[0]
