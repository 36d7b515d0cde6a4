"""A local fake Telegram Bot API over real HTTP, for end-to-end, fault and benchmark runs."""

# The wait helpers take `timeout=` on purpose: the async and sync variants share one signature.
# ruff: noqa: ASYNC109

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import copy
import email.parser
import email.policy
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
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = [
    "BOT_USERNAME",
    "DEFAULT_TOKEN",
    "NOT_MODIFIED",
    "ApiError",
    "FakeBotApi",
    "FakeUser",
    "RecordedRequest",
    "RecordedUpdate",
    "UploadedFile",
    "format_text",
    "image_size",
    "main",
    "parse_request",
]

DEFAULT_TOKEN = "123456:TEST-TOKEN"
BOT_USERNAME = "spondy_test_bot"
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 64

_POLL_INTERVAL = 0.005
_FIRST_USER_ID = 700_000_001
_CALLBACK_ID_BASE = 8_000_000_000_000_000_000
_CHAT_INSTANCE_BASE = 6_000_000_000_000_000_000

_T = TypeVar("_T")
JSONDict = dict[str, Any]

# Parameters that Telegram treats as plain strings: never JSON-decode them, so text "7" stays "7".
_STRING_PARAMS = frozenset(
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
_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")
_INT_RE = re.compile(r"^-?\d+$")
_DEFAULT_DESCRIPTIONS = {
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
_SENT_METHODS = frozenset({"sendMessage", "sendPhoto", "sendDocument"})
# Methods whose target chat refuses delivery once the user has blocked the bot.
_BLOCKABLE_PREFIXES = ("send", "edit", "copy", "forward")


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


def _bad_request(detail: str) -> ApiError:
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
class _Fault:
    method: str
    status: int
    remaining: int
    retry_after: int | None
    description: str | None
    chat_id: int | None


@dataclass
class _Stall:
    method: str
    seconds: float
    remaining: int
    chat_id: int | None


@dataclass
class _Drop:
    method: str
    remaining: int
    chat_id: int | None


@dataclass
class _ChatEvent:
    seq: int
    kind: str  # "sent" | "edited" | "deleted"
    message_id: int
    snapshot: JSONDict


@dataclass
class _ChatState:
    chat: JSONDict
    messages: dict[int, JSONDict] = field(default_factory=dict)
    events: list[_ChatEvent] = field(default_factory=list)
    next_message_id: int = 1
    reply_keyboard: JSONDict | None = None
    blocked: bool = False
    started: bool = True
    last_user_update_id: int | None = None
    menu_button: JSONDict | None = None

    @property
    def chat_id(self) -> int:
        return int(self.chat["id"])


@dataclass
class _StoredFile:
    file_id: str
    file_unique_id: str
    content: bytes
    file_path: str
    photo_sizes: list[JSONDict] | None = None
    document: JSONDict | None = None


@dataclass
class _Described:
    """A successful result that Telegram accompanies with a description."""

    result: Any
    description: str


# --------------------------------------------------------------------------------------------
# Text formatting: Telegram parses parse_mode itself and answers with plain text + entities, and
# rejects malformed markup. Reproducing that catches escaping bugs before they reach patients.
# --------------------------------------------------------------------------------------------


def _u16(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def _entity_error(detail: str) -> ApiError:
    return _bad_request(f"can't parse entities: {detail}")


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


_HTML_SPACE = " \t\r\n\v\f\0"
_HTML_TAGS = {
    "a": "text_link",
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_HTML_ENTITY_RE = re.compile(r"&(?:#([0-9]{1,7})|#[xX]([0-9a-fA-F]{1,6})|(lt|gt|amp|quot));")
_NAMED_HTML_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


def _decode_html_entity(text: str, index: int) -> tuple[str, int] | None:
    match = _HTML_ENTITY_RE.match(text, index)
    if match is None:
        return None
    decimal, hexadecimal, named = match.groups()
    if named:
        return _NAMED_HTML_ENTITIES[named], match.end() - index
    code = int(decimal) if decimal else int(hexadecimal, 16)
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code), match.end() - index


def _parse_html(text: str) -> tuple[str, list[JSONDict]]:
    """Telegram's HTML parse mode (modelled on tdlib's parse_html), including its errors."""
    out: list[str] = []
    u16 = 0
    entities: list[JSONDict] = []
    stack: list[list[Any]] = []  # [tag, argument, start_u16]
    n = len(text)
    i = 0
    while i < n:
        char = text[i]
        if char == "&":
            decoded = _decode_html_entity(text, i)
            if decoded is not None:
                out.append(decoded[0])
                u16 += _u16(decoded[0])
                i += decoded[1]
                continue
        if char != "<":
            out.append(char)
            u16 += _u16(char)
            i += 1
            continue
        begin = i
        if i + 1 < n and text[i + 1] == "/":
            if not stack:
                raise _entity_error(
                    f"Unexpected end tag at byte offset {_byte_offset(text, begin)}"
                )
            j = i + 2
            while j < n and text[j] not in _HTML_SPACE and text[j] != ">":
                j += 1
            end_name = text[i + 2 : j].lower()
            while j < n and text[j] in _HTML_SPACE:
                j += 1
            if j >= n or text[j] != ">":
                raise _entity_error(f"Unclosed end tag at byte offset {_byte_offset(text, begin)}")
            tag, argument, start = stack.pop()
            if end_name and end_name != tag:
                raise _entity_error(
                    f"Unmatched end tag at byte offset {_byte_offset(text, begin)}, "
                    f'expected "</{tag}>", found "</{end_name}>"'
                )
            i = j + 1
            length = u16 - start
            if length <= 0:
                continue
            if tag == "code" and argument and stack and stack[-1][0] == "pre":
                stack[-1][1] = argument  # <pre><code class="language-x"> is one pre entity
                continue
            entity: JSONDict = {"type": _HTML_TAGS[tag], "offset": start, "length": length}
            if tag == "a":
                if not argument:
                    continue
                entity["url"] = argument
            elif tag == "pre" and argument:
                entity["language"] = argument
            elif tag == "blockquote" and argument:
                entity["type"] = "expandable_blockquote"
            elif tag == "tg-emoji":
                entity["custom_emoji_id"] = argument
            entities.append(entity)
            continue
        j = i + 1
        while j < n and text[j] not in _HTML_SPACE and text[j] != ">":
            j += 1
        if j >= n:
            raise _entity_error(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")
        name = text[i + 1 : j].lower()
        if name not in _HTML_TAGS:
            raise _entity_error(
                f'Unsupported start tag "{name}" at byte offset {_byte_offset(text, begin)}'
            )
        argument = ""
        while True:
            while j < n and text[j] in _HTML_SPACE:
                j += 1
            if j >= n:
                raise _entity_error(
                    f"Unclosed start tag at byte offset {_byte_offset(text, begin)}"
                )
            if text[j] == ">":
                break
            attr_begin = j
            while j < n and text[j] not in _HTML_SPACE and text[j] not in "=>":
                j += 1
            attribute = text[attr_begin:j].lower()
            if not attribute:
                raise _entity_error(
                    f'Empty attribute name in the tag "{name}" at byte offset '
                    f"{_byte_offset(text, begin)}"
                )
            while j < n and text[j] in _HTML_SPACE:
                j += 1
            if name == "blockquote" and attribute == "expandable" and (j >= n or text[j] != "="):
                argument = "1"
                continue
            if j >= n or text[j] != "=":
                raise _entity_error(
                    f'Expected equal sign in declaration of an attribute of the tag "{name}" at '
                    f"byte offset {_byte_offset(text, begin)}"
                )
            j += 1
            while j < n and text[j] in _HTML_SPACE:
                j += 1
            if j >= n:
                raise _entity_error(
                    f"Unclosed start tag at byte offset {_byte_offset(text, begin)}"
                )
            if text[j] in "'\"":
                quote = text[j]
                j += 1
                value_chars: list[str] = []
                while j < n and text[j] != quote:
                    if text[j] == "&":
                        decoded = _decode_html_entity(text, j)
                        if decoded is not None:
                            value_chars.append(decoded[0])
                            j += decoded[1]
                            continue
                    value_chars.append(text[j])
                    j += 1
                if j < n:
                    j += 1
                value = "".join(value_chars)
            else:
                token_begin = j
                while j < n and (text[j].isalnum() or text[j] in ".-"):
                    j += 1
                value = text[token_begin:j].lower()
                if j < n and text[j] not in _HTML_SPACE and text[j] != ">":
                    raise _entity_error(
                        f"Unexpected end of name token at byte offset {_byte_offset(text, j)}"
                    )
            if name == "a" and attribute == "href":
                argument = value
            elif name == "code" and attribute == "class" and value.startswith("language-"):
                argument = value.removeprefix("language-")
            elif name == "span" and attribute == "class" and value.startswith("tg-"):
                argument = value.removeprefix("tg-")
            elif name == "tg-emoji" and attribute == "emoji-id":
                argument = value
        if name == "span" and argument != "spoiler":
            raise _entity_error(
                f'Tag "span" must have class "tg-spoiler" at byte offset '
                f"{_byte_offset(text, begin)}"
            )
        stack.append([name, argument, u16])
        i = j + 1
    if stack:
        raise _entity_error(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    return "".join(out), entities


_MDV2_RESERVED = "_*[]()~`>#+-=|{}.!"
_MDV2_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "code": "Code",
    "pre": "Pre",
    "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji",
}


def _is_escapable(text: str, index: int) -> bool:
    return index < len(text) and 0 < ord(text[index]) <= 126


def _parse_markdown_v2(text: str) -> tuple[str, list[JSONDict]]:
    """Telegram's MarkdownV2 parse mode (modelled on tdlib), including reserved-character errors."""
    out: list[str] = []
    u16 = 0
    entities: list[JSONDict] = []
    stack: list[list[Any]] = []  # [type, argument, start_u16, begin_index, out_position]
    quote_start: int | None = None
    n = len(text)
    i = 0

    def at(index: int) -> str:
        return text[index] if index < n else ""

    while i < n:
        char = text[i]
        if char == "\\" and _is_escapable(text, i + 1):
            out.append(text[i + 1])
            u16 += 1
            i += 2
            continue
        if char == ">" and (i == 0 or text[i - 1] == "\n") and not stack:
            if quote_start is None:
                quote_start = u16
            i += 1
            continue
        if char == "\n" and quote_start is not None and at(i + 1) != ">":
            if u16 > quote_start:
                entities.append(
                    {"type": "blockquote", "offset": quote_start, "length": u16 - quote_start}
                )
            quote_start = None
        in_code = bool(stack) and stack[-1][0] in ("code", "pre")
        reserved = "`" if in_code else _MDV2_RESERVED
        if char not in reserved:
            out.append(char)
            u16 += _u16(char)
            i += 1
            continue
        top = stack[-1][0] if stack else None
        is_end = (
            (top == "bold" and char == "*")
            or (top == "italic" and char == "_" and at(i + 1) != "_")
            or (top == "code" and char == "`")
            or (top == "pre" and text.startswith("```", i))
            or (top in ("text_link", "custom_emoji") and char == "]")
            or (top == "underline" and text.startswith("__", i))
            or (top == "strikethrough" and char == "~")
            or (top == "spoiler" and text.startswith("||", i))
        )
        if not is_end:
            begin = i
            argument = ""
            if char == "_":
                if at(i + 1) == "_":
                    kind = "underline"
                    i += 1
                else:
                    kind = "italic"
            elif char == "*":
                kind = "bold"
            elif char == "~":
                kind = "strikethrough"
            elif char == "|" and at(i + 1) == "|":
                kind = "spoiler"
                i += 1
            elif char == "[":
                kind = "text_link"
            elif char == "!" and at(i + 1) == "[":
                kind = "custom_emoji"
                i += 1
            elif char == "`":
                if text.startswith("```", i):
                    kind = "pre"
                    i += 3
                    language_end = i
                    while (
                        language_end < n
                        and not text[language_end].isspace()
                        and text[language_end] != "`"
                    ):
                        language_end += 1
                    if i != language_end and language_end < n and text[language_end] != "`":
                        argument = text[i:language_end]
                        i = language_end
                    if at(i) in ("\n", "\r") and at(i):
                        if at(i + 1) in ("\n", "\r") and at(i + 1) and text[i] != text[i + 1]:
                            i += 2
                        else:
                            i += 1
                    i -= 1
                else:
                    kind = "code"
            else:
                raise _entity_error(
                    f"Character '{char}' is reserved and must be escaped with the preceding '\\'"
                )
            stack.append([kind, argument, u16, begin, len(out)])
            i += 1
            continue
        kind, argument, start, _begin, out_position = stack.pop()
        skip = u16 == start
        if kind in ("underline", "spoiler"):
            i += 1
        elif kind == "pre":
            i += 2
        elif kind in ("text_link", "custom_emoji"):
            if at(i + 1) != "(":
                url = "".join(out[out_position:])
            else:
                i += 2
                url_begin = i
                url_chars: list[str] = []
                while i < n and text[i] != ")":
                    if text[i] == "\\" and _is_escapable(text, i + 1):
                        url_chars.append(text[i + 1])
                        i += 2
                        continue
                    url_chars.append(text[i])
                    i += 1
                if i >= n:
                    raise _entity_error(
                        f"Can't find end of a URL at byte offset {_byte_offset(text, url_begin)}"
                    )
                url = "".join(url_chars)
            if kind == "custom_emoji":
                if not url.startswith("tg://emoji?id="):
                    raise _entity_error("Custom emoji entity must contain a tg://emoji URL")
                argument = url.removeprefix("tg://emoji?id=")
            elif not re.match(r"^(https?|tg)://\S+$|^[\w.-]+\.[a-z]{2,}(/\S*)?$", url, re.I):
                skip = True
            else:
                argument = url
        i += 1
        if skip:
            continue
        entity: JSONDict = {"type": kind, "offset": start, "length": u16 - start}
        if kind == "text_link":
            entity["url"] = argument
        elif kind == "pre" and argument:
            entity["language"] = argument
        elif kind == "custom_emoji":
            entity["custom_emoji_id"] = argument
        entities.append(entity)
    if stack:
        kind, _argument, _start, begin, _position = stack[-1]
        raise _entity_error(
            f"Can't find end of {_MDV2_NAMES[kind]} entity at byte offset "
            f"{_byte_offset(text, begin)}"
        )
    if quote_start is not None and u16 > quote_start:
        entities.append({"type": "blockquote", "offset": quote_start, "length": u16 - quote_start})
    return "".join(out), entities


def _parse_markdown_legacy(text: str) -> tuple[str, list[JSONDict]]:
    """Telegram's legacy Markdown parse mode: *bold*, _italic_, `code`, ```pre```, [text](url)."""
    out: list[str] = []
    u16 = 0
    entities: list[JSONDict] = []
    n = len(text)
    i = 0
    while i < n:
        char = text[i]
        if char == "\\" and i + 1 < n and text[i + 1] in "_*`[":
            out.append(text[i + 1])
            u16 += 1
            i += 2
            continue
        if char not in "_*`[":
            out.append(char)
            u16 += _u16(char)
            i += 1
            continue
        begin = i
        language = ""
        if text.startswith("```", i):
            kind, end_mark = "pre", "```"
            i += 3
            language_end = i
            while (
                language_end < n and not text[language_end].isspace() and text[language_end] != "`"
            ):
                language_end += 1
            if i != language_end and language_end < n and text[language_end] != "`":
                language = text[i:language_end]
                i = language_end
        else:
            kind, end_mark = {
                "_": ("italic", "_"),
                "*": ("bold", "*"),
                "`": ("code", "`"),
                "[": ("text_link", "]"),
            }[char]
            i += 1
        start = u16
        out_position = len(out)
        while i < n and not text.startswith(end_mark, i):
            out.append(text[i])
            u16 += _u16(text[i])
            i += 1
        if i >= n:
            raise _entity_error(
                f"Can't find end of the entity starting at byte offset {_byte_offset(text, begin)}"
            )
        i += len(end_mark)
        entity: JSONDict = {"type": kind, "offset": start, "length": u16 - start}
        if kind == "text_link":
            if i < n and text[i] == "(":
                close = text.find(")", i)
                if close < 0:
                    raise _entity_error(
                        f"Can't find end of a URL at byte offset {_byte_offset(text, i)}"
                    )
                entity["url"] = text[i + 1 : close]
                i = close + 1
            else:
                entity["url"] = "".join(out[out_position:])
        if language:
            entity["language"] = language
        if entity["length"] > 0:
            entities.append(entity)
    return "".join(out), entities


_TRIM_CHARS = " \t\r\n\v\f"


def _trim(text: str, entities: list[JSONDict]) -> tuple[str, list[JSONDict]]:
    """Strip surrounding whitespace like Telegram does, keeping entity offsets consistent."""
    stripped_left = text.lstrip(_TRIM_CHARS)
    lead = _u16(text) - _u16(stripped_left)
    result = stripped_left.rstrip(_TRIM_CHARS)
    total = _u16(result)
    fixed: list[JSONDict] = []
    for entity in entities:
        begin = max(int(entity["offset"]) - lead, 0)
        end = min(int(entity["offset"]) + int(entity["length"]) - lead, total)
        if end > begin:
            fixed.append({**entity, "offset": begin, "length": end - begin})
    fixed.sort(key=lambda e: (e["offset"], -e["length"]))
    return result, fixed


def format_text(
    text: str, parse_mode: str | None, entities: list[JSONDict] | None
) -> tuple[str, list[JSONDict]]:
    """Turn a text + parse_mode (or explicit entities) into what Telegram stores and echoes."""
    if entities:
        parsed_text, parsed = text, [dict(e) for e in entities]
    elif not parse_mode:
        parsed_text, parsed = text, []
    else:
        mode = parse_mode.lower()
        if mode == "html":
            parsed_text, parsed = _parse_html(text)
        elif mode == "markdownv2":
            parsed_text, parsed = _parse_markdown_v2(text)
        elif mode == "markdown":
            parsed_text, parsed = _parse_markdown_legacy(text)
        else:
            raise _bad_request("unsupported parse_mode")
    return _trim(parsed_text, parsed)


# --------------------------------------------------------------------------------------------
# Request parsing
# --------------------------------------------------------------------------------------------


def _decode_value(name: str, value: Any) -> Any:
    """PTB sends non-string parameters JSON-encoded inside form fields; undo that."""
    if not isinstance(value, str) or name in _STRING_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _clean_header_text(value: str) -> str:
    """Headers parsed from raw bytes keep non-ASCII as surrogates; recover the UTF-8 text."""
    try:
        return value.encode("utf-8", "surrogateescape").decode("utf-8")
    except UnicodeError:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def parse_request(
    content_type: str, body: bytes, query: str = ""
) -> tuple[JSONDict, dict[str, UploadedFile]]:
    """Decode a Bot API request body (JSON, url-encoded or multipart) into params and files."""
    raw: JSONDict = dict(parse_qsl(query, keep_blank_values=True))
    files: dict[str, UploadedFile] = {}
    media_type = content_type.split(";", 1)[0].strip().lower()
    if body:
        if media_type == "application/json":
            data = json.loads(body.decode("utf-8"))
            if not isinstance(data, dict):
                raise ValueError("JSON body must be an object")
            raw.update(data)
        elif media_type in ("application/x-www-form-urlencoded", ""):
            raw.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        elif media_type == "multipart/form-data":
            header = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(header + body)
            if not message.is_multipart():
                raise ValueError("malformed multipart body")
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                if not isinstance(name, str):
                    continue
                name = _clean_header_text(name)
                payload = part.get_payload(decode=True)
                if not isinstance(payload, bytes):
                    payload = b""
                filename = part.get_filename()
                if filename is None:
                    raw[name] = payload.decode("utf-8")
                    continue
                files[name] = UploadedFile(
                    field=name,
                    filename=_clean_header_text(filename),
                    content_type=part.get_content_type(),
                    content=payload,
                )
        else:
            raise ValueError(f"unsupported content type {media_type!r}")
    return {key: _decode_value(key, value) for key, value in raw.items()}, files


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INT_RE.match(value):
        return int(value)
    return None


def _chat_key(value: Any) -> int | str | None:
    if value is None or value == "":
        return None
    as_int = _as_int(value)
    return as_int if as_int is not None else str(value)


# --------------------------------------------------------------------------------------------
# Images: Telegram reports real dimensions and rejects bytes that are not an image.
# --------------------------------------------------------------------------------------------


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of a PNG, JPEG, GIF, BMP or WebP image, or None when not an image."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    if data.startswith(b"BM") and len(data) >= 26:
        width = int.from_bytes(data[18:22], "little", signed=True)
        height = int.from_bytes(data[22:26], "little", signed=True)
        return abs(width), abs(height)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        chunk = data[12:16]
        if chunk == b"VP8X":
            return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(
                data[27:30], "little"
            )
        if chunk == b"VP8 ":
            width = int.from_bytes(data[26:28], "little") & 0x3FFF
            return width, int.from_bytes(data[28:30], "little") & 0x3FFF
        if chunk == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        return None
    if data.startswith(b"\xff\xd8"):
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
                i += 1 if marker == 0xFF else 2
                continue
            length = int.from_bytes(data[i + 2 : i + 4], "big")
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                height = int.from_bytes(data[i + 5 : i + 7], "big")
                return int.from_bytes(data[i + 7 : i + 9], "big"), height
            i += 2 + length
        return None
    return None


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
        return self._api._chat_state(self.id).chat.copy()

    # -- building updates (push them later, e.g. with push_batch) --------------------------

    def text_update(
        self,
        text: str,
        *,
        entities: list[JSONDict] | None = None,
        reply_to_message_id: int | None = None,
    ) -> JSONDict:
        """An update carrying a text message from this user (not queued yet)."""
        return {"message": self._api._user_message(self, text, entities, reply_to_message_id)}

    def command_update(self, command: str, *args: str) -> JSONDict:
        """An update carrying "/command arg ..." with its bot_command entity (not queued yet)."""
        command = command if command.startswith("/") else f"/{command}"
        text = " ".join([command, *args])
        entity = {"type": "bot_command", "offset": 0, "length": _u16(command)}
        return self.text_update(text, entities=[entity])

    def press_update(
        self, callback_data: str, message_id: int | None = None, *, force: bool = False
    ) -> JSONDict:
        """An update carrying a button press (not queued yet); see `press`."""
        return {"callback_query": self._api._callback_query(self, callback_data, message_id, force)}

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
        message = self._api._keyboard_message(self.id, message_id, lambda b: b.get("text") == text)
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
        found = self._api._keyboard_message(self.id, message_id, lambda _b: True)
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
        return self._api._reply_keyboard(self.id)

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
        marker = self._api._reply_marker(self.id, after_update_id)
        return await self._api.wait_until(
            lambda: self._api._replies_after(self.id, marker, count),
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
        marker = self._api._reply_marker(self.id, after_update_id)
        return self._api.wait_until_sync(
            lambda: self._api._replies_after(self.id, marker, count),
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
        bot_id = _as_int(token.split(":", 1)[0])
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
                "editMessageCaption": self._editMessageCaption,
                "answerCallbackQuery": self._answerCallbackQuery,
                "sendPhoto": self._sendPhoto,
                "sendDocument": self._sendDocument,
                "setMyCommands": self._setMyCommands,
                "getMyCommands": self._getMyCommands,
                "deleteMyCommands": self._deleteMyCommands,
                "deleteMessage": self._deleteMessage,
                "deleteMessages": self._deleteMessages,
                "deleteWebhook": self._deleteWebhook,
                "setWebhook": self._setWebhook,
                "getWebhookInfo": self._getWebhookInfo,
                "close": self._ok,
                "logOut": self._ok,
                "sendChatAction": self._sendChatAction,
                "setChatMenuButton": self._setChatMenuButton,
                "getChatMenuButton": self._getChatMenuButton,
                "getChat": self._getChat,
                "getFile": self._getFile,
                "setMyName": self._bot_text_setter("name"),
                "getMyName": self._bot_text_getter("name"),
                "setMyDescription": self._bot_text_setter("description"),
                "getMyDescription": self._bot_text_getter("description"),
                "setMyShortDescription": self._bot_text_setter("short_description"),
                "getMyShortDescription": self._bot_text_getter("short_description"),
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
        self._chats: dict[int, _ChatState] = {}
        self._users: dict[int, FakeUser] = {}
        self._next_user_id = _FIRST_USER_ID
        self._pending: list[tuple[int, JSONDict]] = []
        self._updates: dict[int, RecordedUpdate] = {}
        self._update_seq: dict[int, int] = {}
        self._next_update_id = 1
        self._confirmed_offset = 0
        self._poll_generation = 0
        self._seq = 0
        self._sent: list[JSONDict] = []
        self._faults: list[_Fault] = []
        self._stalls: list[_Stall] = []
        self._drops: list[_Drop] = []
        self._offline = False
        self._callbacks: dict[str, JSONDict] = {}
        self._callback_counter = itertools.count(1)
        self._commands: dict[tuple[str, str], list[JSONDict]] = {}
        self._bot_texts: dict[tuple[str, str], str] = {}
        self._default_menu_button: JSONDict | None = None
        self._webhook: JSONDict | None = None
        self._files: dict[str, _StoredFile] = {}
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
            state = self._chats.setdefault(user_id, _ChatState(chat=chat))
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
            message_id = _as_int(message.get("message_id"))
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

    def _ensure_chat(self, chat: JSONDict) -> _ChatState:
        chat_id = int(chat["id"])
        state = self._chats.get(chat_id)
        if state is None:
            state = self._chats[chat_id] = _ChatState(chat=copy.deepcopy(chat))
        return state

    def _chat_state(self, chat_id: int) -> _ChatState:
        with self._lock:
            return self._chats[chat_id]

    def _user_message(
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

    def _keyboard_message(
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

    def _callback_query(
        self, user: FakeUser, data: str, message_id: int | None, force: bool
    ) -> JSONDict:
        with self._lock:
            message = self._keyboard_message(
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
            query_id = str(_CALLBACK_ID_BASE + next(self._callback_counter))
            return {
                "id": query_id,
                "from": user.to_dict(),
                "message": message,
                "chat_instance": str(-(_CHAT_INSTANCE_BASE + abs(user.id))),
                "data": data,
            }

    def _reply_keyboard(self, chat_id: int) -> list[list[str]] | None:
        with self._lock:
            state = self._chats.get(chat_id)
            if state is None or state.reply_keyboard is None:
                return None
            return [
                [b if isinstance(b, str) else str(b.get("text", "")) for b in row]
                for row in state.reply_keyboard.get("keyboard", [])
            ]

    def _reply_marker(self, chat_id: int, after_update_id: int | None) -> int:
        with self._lock:
            if after_update_id is None:
                state = self._chats.get(chat_id)
                after_update_id = state.last_user_update_id if state else None
            if after_update_id is None:
                return 0
            return self._update_seq[after_update_id]

    def _replies_after(self, chat_id: int, marker: int, count: int) -> list[JSONDict] | None:
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

    def request_times(self, method: str | None = None) -> list[float]:
        """Receive timestamps (time.time()) of all requests or of one method."""
        with self._lock:
            wanted = method.lower() if method else None
            return [r.time for r in self._requests if wanted is None or r.method.lower() == wanted]

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
                _Fault(method.lower(), status, times, retry_after, description, chat_id)
            )

    def stall_next(
        self, method: str, seconds: float, times: int = 1, chat_id: int | None = None
    ) -> None:
        """Sleep before answering the next calls; the call is still carried out afterwards,
        like a Telegram request that succeeded although the client timed out."""
        with self._lock:
            self._stalls.append(_Stall(method.lower(), seconds, times, chat_id))

    def drop_next(self, method: str, times: int = 1, chat_id: int | None = None) -> None:
        """Close the connection without any answer for the next calls (a network failure)."""
        with self._lock:
            self._drops.append(_Drop(method.lower(), times, chat_id))

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
            await asyncio.sleep(_POLL_INTERVAL)

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

    def wait_until_confirmed_sync(self, update_id: int | None = None, timeout: float = 5.0) -> None:
        """Blocking variant of wait_until_confirmed."""
        self.wait_until_sync(
            self._confirmed_check(update_id), timeout, description="offset confirmation"
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
        chat_id = _chat_key(params.get("chat_id"))
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
            if isinstance(result, _Described):
                body = {"ok": True, "result": result.result, "description": result.description}
            else:
                body = {"ok": True, "result": result}
            if name in _SENT_METHODS:
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
    def _fault_error(fault: _Fault) -> ApiError:
        description = fault.description
        if description is None:
            if fault.status == 429:
                description = f"Too Many Requests: retry after {fault.retry_after}"
            else:
                try:
                    default = HTTPStatus(fault.status).phrase
                except ValueError:
                    default = "Error"
                description = _DEFAULT_DESCRIPTIONS.get(fault.status, default)
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
        offset = _as_int(params.get("offset")) or 0
        limit = min(max(_as_int(params.get("limit")) or 100, 1), 100)
        try:
            timeout = max(float(params.get("timeout") or 0), 0.0)
        except (TypeError, ValueError):
            raise _bad_request("wrong parameter timeout") from None
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

    def _target_chat(self, params: JSONDict) -> _ChatState:
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise _bad_request("chat_id is empty")
        chat_id = _as_int(raw)
        state = self._chats.get(chat_id) if chat_id is not None else None
        if state is None:
            raise _bad_request("chat not found")
        return state

    def _writable_chat(self, params: JSONDict, method: str) -> _ChatState:
        state = self._target_chat(params)
        if method.startswith(_BLOCKABLE_PREFIXES) and state.chat["type"] == "private":
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
            raise _bad_request("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" not in markup:
            return None, markup
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise _bad_request(
                'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays'
            )
        for row in rows:
            for button in row:
                if not isinstance(button, dict) or not button.get("text"):
                    raise _bad_request("can't parse inline keyboard button: Text must be non-empty")
                if set(button) == {"text"}:
                    raise _bad_request("text buttons are unallowed in the inline keyboard")
                data = button.get("callback_data")
                if data is not None and (
                    not isinstance(data, str)
                    or not 1 <= len(data.encode("utf-8")) <= CALLBACK_DATA_LIMIT
                ):
                    raise _bad_request("BUTTON_DATA_INVALID")
        if not any(rows):
            return None, None
        return copy.deepcopy(markup), None

    @staticmethod
    def _apply_other_markup(state: _ChatState, markup: JSONDict | None) -> None:
        if markup is None:
            return
        if markup.get("remove_keyboard"):
            state.reply_keyboard = None
        elif "keyboard" in markup:
            state.reply_keyboard = copy.deepcopy(markup)

    def _new_bot_message(self, state: _ChatState, params: JSONDict) -> JSONDict:
        message: JSONDict = {
            "message_id": state.next_message_id,
            "from": copy.deepcopy(self.bot_user),
            "chat": copy.deepcopy(state.chat),
            "date": int(time.time()),
        }
        reply = params.get("reply_parameters")
        reply_id = _as_int(params.get("reply_to_message_id"))
        allow_missing = bool(params.get("allow_sending_without_reply"))
        if isinstance(reply, dict):
            reply_id = _as_int(reply.get("message_id"))
            allow_missing = bool(reply.get("allow_sending_without_reply"))
        if reply_id is not None:
            replied = state.messages.get(reply_id)
            if replied is not None:
                message["reply_to_message"] = _without_reply(replied)
            elif not allow_missing:
                raise _bad_request("message to be replied not found")
        if params.get("protect_content"):
            message["has_protected_content"] = True
        return message

    def _store_bot_message(self, state: _ChatState, message: JSONDict) -> JSONDict:
        state.next_message_id += 1
        state.messages[message["message_id"]] = message
        self._record_event(state, "sent", message)
        return copy.deepcopy(message)

    def _record_event(self, state: _ChatState, kind: str, message: JSONDict) -> None:
        self._seq += 1
        state.events.append(
            _ChatEvent(self._seq, kind, int(message["message_id"]), copy.deepcopy(message))
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
                raise _bad_request("message text is empty")
            return None, []
        entities = params.get(entities_key)
        if entities is not None and not isinstance(entities, list):
            raise _bad_request(f"can't parse {entities_key} JSON object")
        text, parsed = format_text(str(raw), params.get("parse_mode"), entities)
        if not text:
            if required:
                raise _bad_request("message text is empty")
            return None, []
        if _u16(text) > limit:
            raise _bad_request("message is too long" if required else "message caption is too long")
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
    ) -> UploadedFile | _StoredFile | str:
        """The uploaded file, a previously stored file (by file_id) or an HTTP URL."""
        value = params.get(key)
        if isinstance(value, str) and value.startswith("attach://"):
            attached = files.get(value.removeprefix("attach://"))
            if attached is None:
                raise _bad_request(f"wrong remote file identifier specified: {key}")
            return attached
        if key in files:
            return files[key]
        if value is None or value == "":
            raise _bad_request(f"there is no {key} in the request")
        if not isinstance(value, str):
            raise _bad_request(f"wrong type of the web page content for {key}")
        if value.startswith(("http://", "https://")):
            return value
        stored = self._files.get(value)
        if stored is None:
            raise _bad_request("wrong file identifier/HTTP URL specified")
        return stored

    def _store_file(self, content: bytes, path_prefix: str, extension: str) -> _StoredFile:
        number = next(self._file_counter)
        stored = _StoredFile(
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
        if isinstance(source, _StoredFile):
            if source.photo_sizes is None:
                raise _bad_request("type of file mismatch")
            sizes = copy.deepcopy(source.photo_sizes)
        else:
            content = b"" if isinstance(source, str) else source.content
            if isinstance(source, UploadedFile) and not content:
                raise _bad_request("file must be non-empty")
            dimensions = (800, 600) if isinstance(source, str) else image_size(content)
            if dimensions is None or min(dimensions) <= 0:
                raise _bad_request("IMAGE_PROCESS_FAILED")
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
        if isinstance(source, _StoredFile):
            if source.document is None:
                raise _bad_request("type of file mismatch")
            document = copy.deepcopy(source.document)
        else:
            if isinstance(source, str):
                filename, content, mime = source.rsplit("/", 1)[-1] or "file", b"", None
            else:
                filename, content, mime = source.filename, source.content, source.content_type
                if not content:
                    raise _bad_request("file must be non-empty")
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

    def _message_to_edit(self, params: JSONDict, method: str) -> tuple[_ChatState, JSONDict]:
        if params.get("inline_message_id"):
            raise _bad_request("MESSAGE_ID_INVALID")
        state = self._writable_chat(params, method)
        message_id = _as_int(params.get("message_id"))
        if message_id is None:
            raise _bad_request("message identifier is not specified")
        message = state.messages.get(message_id)
        if message is None:
            raise _bad_request("message to edit not found")
        if message.get("from", {}).get("id") != self.bot_user["id"]:
            raise _bad_request("message can't be edited")
        return state, message

    def _commit_edit(self, state: _ChatState, message: JSONDict, changes: JSONDict) -> JSONDict:
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
            raise _bad_request("there is no text in the message to edit")
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

    def _editMessageCaption(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        state, message = self._message_to_edit(params, "editMessageCaption")
        if "photo" not in message and "document" not in message:
            raise _bad_request("there is no caption in the message to edit")
        caption, entities = self._formatted(
            params, "caption", "caption_entities", CAPTION_LIMIT, required=False
        )
        inline, _other = self._markup(params)
        if (
            caption == message.get("caption")
            and entities == message.get("caption_entities", [])
            and inline == message.get("reply_markup")
        ):
            raise ApiError(400, NOT_MODIFIED)
        return self._commit_edit(
            state,
            message,
            {"caption": caption, "caption_entities": entities, "reply_markup": inline},
        )

    def _editMessageReplyMarkup(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        state, message = self._message_to_edit(params, "editMessageReplyMarkup")
        inline, _other = self._markup(params)
        if inline == message.get("reply_markup"):
            raise ApiError(400, NOT_MODIFIED)
        return self._commit_edit(state, message, {"reply_markup": inline})

    def _delete_one(self, state: _ChatState, message_id: int | None) -> None:
        if message_id is None:
            raise _bad_request("message identifier is not specified")
        message = state.messages.pop(message_id, None)
        if message is None:
            raise _bad_request("message to delete not found")
        self._record_event(state, "deleted", message)

    def _deleteMessage(self, params: JSONDict, files: dict[str, UploadedFile]) -> bool:
        state = self._target_chat(params)
        self._delete_one(state, _as_int(params.get("message_id")))
        return True

    def _deleteMessages(self, params: JSONDict, files: dict[str, UploadedFile]) -> bool:
        state = self._target_chat(params)
        ids = params.get("message_ids")
        if not isinstance(ids, list) or not ids:
            raise _bad_request("message identifiers are not specified")
        for message_id in ids:
            if _as_int(message_id) in state.messages:
                self._delete_one(state, _as_int(message_id))
        return True

    def _answerCallbackQuery(self, params: JSONDict, files: dict[str, UploadedFile]) -> bool:
        query = self._callbacks.get(str(params.get("callback_query_id", "")))
        if query is None or query["answered"] is not None:
            raise _bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        text = params.get("text")
        if isinstance(text, str) and len(text) > 200:
            raise _bad_request("MESSAGE_TOO_LONG")
        query["answered"] = copy.deepcopy(params)
        return True

    def _sendChatAction(self, params: JSONDict, files: dict[str, UploadedFile]) -> bool:
        self._writable_chat(params, "sendChatAction")
        if params.get("action") not in _CHAT_ACTIONS:
            raise _bad_request("wrong parameter action in request")
        return True

    def _command_key(self, params: JSONDict) -> tuple[str, str]:
        scope = params.get("scope")
        if scope is not None and not isinstance(scope, dict):
            raise _bad_request("can't parse BotCommandScope JSON object")
        language = params.get("language_code") or ""
        if language and not re.fullmatch(r"[a-z]{2}", str(language)):
            raise _bad_request("invalid language code specified")
        return _scope_key(scope), str(language)

    def _setMyCommands(self, params: JSONDict, files: dict[str, UploadedFile]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _bad_request("can't parse commands JSON object")
        if len(commands) > 100:
            raise _bad_request("too many commands specified")
        for command in commands:
            if not isinstance(command, dict) or not _COMMAND_RE.match(
                str(command.get("command", ""))
            ):
                raise _bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise _bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
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

    def _bot_text_setter(
        self, field_name: str
    ) -> Callable[[JSONDict, dict[str, UploadedFile]], bool]:
        def setter(params: JSONDict, files: dict[str, UploadedFile]) -> bool:
            key = (field_name, str(params.get("language_code") or ""))
            value = params.get(field_name)
            if value:
                self._bot_texts[key] = str(value)
            else:
                self._bot_texts.pop(key, None)
            return True

        return setter

    def _bot_text_getter(
        self, field_name: str
    ) -> Callable[[JSONDict, dict[str, UploadedFile]], JSONDict]:
        def getter(params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
            language = str(params.get("language_code") or "")
            value = self._bot_texts.get(
                (field_name, language), self._bot_texts.get((field_name, ""))
            )
            if value is None and field_name == "name":
                value = self.bot_user["first_name"]
            return {field_name: value or ""}

        return getter

    def _deleteWebhook(self, params: JSONDict, files: dict[str, UploadedFile]) -> _Described:
        had_webhook = self._webhook is not None
        self._webhook = None
        if params.get("drop_pending_updates"):
            self._drop_pending()
        return _Described(
            True, "Webhook was deleted" if had_webhook else "Webhook is already deleted"
        )

    def _setWebhook(self, params: JSONDict, files: dict[str, UploadedFile]) -> _Described:
        url = str(params.get("url") or "")
        if params.get("drop_pending_updates"):
            self._drop_pending()
        if not url:
            had_webhook = self._webhook is not None
            self._webhook = None
            return _Described(
                True, "Webhook was deleted" if had_webhook else "Webhook is already deleted"
            )
        if not url.startswith("https://"):
            raise _bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        self._webhook = {
            "url": url,
            "max_connections": _as_int(params.get("max_connections")) or 40,
            "allowed_updates": params.get("allowed_updates"),
        }
        self._changed()
        return _Described(True, "Webhook was set")

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

    def _setChatMenuButton(self, params: JSONDict, files: dict[str, UploadedFile]) -> bool:
        button = params.get("menu_button") or {"type": "default"}
        if not isinstance(button, dict) or "type" not in button:
            raise _bad_request("can't parse menu button JSON object")
        if params.get("chat_id") in (None, ""):
            self._default_menu_button = copy.deepcopy(button)
        else:
            self._target_chat(params).menu_button = copy.deepcopy(button)
        return True

    def _getChatMenuButton(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        if params.get("chat_id") in (None, ""):
            button = self._default_menu_button
        else:
            button = self._target_chat(params).menu_button or self._default_menu_button
        return copy.deepcopy(button) if button else {"type": "default"}

    def _getChat(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        state = self._target_chat(params)
        return {
            **copy.deepcopy(state.chat),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": True,
                "limited_gifts": True,
                "unique_gifts": True,
                "premium_subscription": True,
                "gifts_from_channels": True,
            },
        }

    def _getFile(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        stored = self._files.get(str(params.get("file_id", "")))
        if stored is None:
            raise _bad_request("invalid file_id")
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
        prog="python -m tests.fake_bot_api", description="Fake Telegram Bot API server"
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


if __name__ == "__main__":
    raise SystemExit(main())
