"""Wire types, limits and errors of the fake Bot API."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TOKEN = "123456:TEST-TOKEN"
BOT_USERNAME = "spondy_test_bot"
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 64

POLL_INTERVAL = 0.005
FIRST_USER_ID = 700_000_001
CALLBACK_ID_BASE = 8_000_000_000_000_000_000
CHAT_INSTANCE_BASE = 6_000_000_000_000_000_000

JSONDict = dict[str, Any]

# Parameters that Telegram treats as plain strings: never JSON-decode them, so text "7" stays "7".
STRING_PARAMS = frozenset(
    {
        "action",
        "address",
        "business_connection_id",
        "callback_query_id",
        "caption",
        "certificate",
        "custom_emoji_id",
        "description",
        "emoji",
        "explanation",
        "file_id",
        "first_name",
        "inline_message_id",
        "ip_address",
        "language_code",
        "last_name",
        "message_effect_id",
        "name",
        "parse_mode",
        "phone_number",
        "query",
        "question",
        "secret_token",
        "short_description",
        "text",
        "title",
        "url",
        "vcard",
    }
)
COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")
INT_RE = re.compile(r"^-?\d+$")
DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request; make sure that only one bot "
    "instance is running",
    500: "Internal Server Error",
    502: "Bad Gateway",
    504: "Gateway Timeout",
}
SENT_METHODS = frozenset({"sendMessage", "sendPhoto", "sendDocument"})
# Methods whose target chat refuses delivery once the user has blocked the bot.
BLOCKABLE_PREFIXES = ("send", "edit", "copy", "forward")


class ApiError(Exception):
    """An error answer of the Bot API; raised inside method handlers."""

    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after

    def payload(self) -> JSONDict:
        """The JSON body Telegram sends for this error."""
        body: JSONDict = {"ok": False, "error_code": self.status, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def bad_request(detail: str) -> ApiError:
    return ApiError(400, f"Bad Request: {detail}")


@dataclass(frozen=True)
class UploadedFile:
    """One file part of a multipart request, exactly as received."""

    field: str
    filename: str
    content_type: str
    content: bytes


@dataclass
class RecordedRequest:
    """One Bot API call as the fake received it, plus how it was answered."""

    method: str
    params: JSONDict
    time: float
    chat_id: int | str | None
    files: dict[str, UploadedFile] = field(default_factory=dict)
    monotonic: float = 0.0
    status: int | None = None
    response: Any = None
    answered_at: float | None = None

    @property
    def ok(self) -> bool:
        """Whether the bot got a successful answer."""
        return self.status == 200

    def to_dict(self) -> JSONDict:
        """A JSON-safe view (file contents summarised) for the standalone control API."""
        return {
            "method": self.method,
            "params": self.params,
            "time": self.time,
            "chat_id": self.chat_id,
            "files": {
                name: {
                    "filename": f.filename,
                    "content_type": f.content_type,
                    "size": len(f.content),
                }
                for name, f in self.files.items()
            },
            "status": self.status,
            "response": self.response,
            "answered_at": self.answered_at,
        }


@dataclass
class RecordedUpdate:
    """An update the test queued, with when it was queued and first handed to the bot."""

    update_id: int
    update: JSONDict
    pushed_at: float
    delivered_at: float | None = None
    confirmed_at: float | None = None


@dataclass
class Fault:
    method: str
    status: int
    remaining: int
    retry_after: int | None
    description: str | None
    chat_id: int | None


@dataclass
class Stall:
    method: str
    seconds: float
    remaining: int
    chat_id: int | None


@dataclass
class Drop:
    method: str
    remaining: int
    chat_id: int | None


@dataclass
class ChatEvent:
    seq: int
    kind: str  # "sent" | "edited" | "deleted"
    message_id: int
    snapshot: JSONDict


@dataclass
class ChatState:
    chat: JSONDict
    messages: dict[int, JSONDict] = field(default_factory=dict)
    events: list[ChatEvent] = field(default_factory=list)
    next_message_id: int = 1
    reply_keyboard: JSONDict | None = None
    blocked: bool = False
    started: bool = True
    last_user_update_id: int | None = None

    @property
    def chat_id(self) -> int:
        return int(self.chat["id"])


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    content: bytes
    file_path: str
    photo_sizes: list[JSONDict] | None = None
    document: JSONDict | None = None


@dataclass
class Described:
    """A successful result that Telegram accompanies with a description."""

    result: Any
    description: str
