"""Request parsing (query, JSON, multipart) and image checks of the fake Bot API."""

from __future__ import annotations

import email.parser
import email.policy
import json
from typing import Any
from urllib.parse import parse_qsl

from tests.fake_telegram.records import INT_RE, STRING_PARAMS, JSONDict, UploadedFile

# --------------------------------------------------------------------------------------------
# Request parsing
# --------------------------------------------------------------------------------------------


def _decode_value(name: str, value: Any) -> Any:
    """PTB sends non-string parameters JSON-encoded inside form fields; undo that."""
    if not isinstance(value, str) or name in STRING_PARAMS:
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


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and INT_RE.match(value):
        return int(value)
    return None


def chat_key(value: Any) -> int | str | None:
    if value is None or value == "":
        return None
    number = as_int(value)
    return number if number is not None else str(value)


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
