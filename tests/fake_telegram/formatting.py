"""Text formatting as Telegram does it: parse_mode HTML into plain text and entities."""

from __future__ import annotations

import re
from typing import Any

from tests.fake_telegram.records import ApiError, JSONDict, bad_request

# --------------------------------------------------------------------------------------------
# Text formatting: Telegram parses parse_mode itself and answers with plain text + entities, and
# rejects malformed markup. Reproducing that catches escaping bugs before they reach patients.
# --------------------------------------------------------------------------------------------


def utf16_length(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def _entity_error(detail: str) -> ApiError:
    return bad_request(f"can't parse entities: {detail}")


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
                u16 += utf16_length(decoded[0])
                i += decoded[1]
                continue
        if char != "<":
            out.append(char)
            u16 += utf16_length(char)
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


_TRIM_CHARS = " \t\r\n\v\f"


def _trim(text: str, entities: list[JSONDict]) -> tuple[str, list[JSONDict]]:
    """Strip surrounding whitespace like Telegram does, keeping entity offsets consistent."""
    stripped_left = text.lstrip(_TRIM_CHARS)
    lead = utf16_length(text) - utf16_length(stripped_left)
    result = stripped_left.rstrip(_TRIM_CHARS)
    total = utf16_length(result)
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
        else:
            # The bot sends HTML only (Defaults(parse_mode=HTML)); another mode is a change to
            # notice, so it is refused rather than imitated.
            raise bad_request("unsupported parse_mode")
    return _trim(parsed_text, parsed)
