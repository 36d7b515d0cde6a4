"""Structured logging that never carries tokens, names, clinic references or answers.

Log calls pass ids and event names only; as a second line of defence the filters below
withhold what python-telegram-bot's own lines would quote of an update (a message's text) and
mask anything shaped like a bot token (python-telegram-bot and httpx log request URLs, which
contain the token).
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

_TOKEN = re.compile(r"\d{5,}:[A-Za-z0-9_-]{20,}|bot\d+:[A-Za-z0-9_-]+")


class RedactTokens(logging.Filter):
    """Masks bot tokens in every record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _TOKEN.search(message):
            record.msg = _TOKEN.sub("bot<redacted>", message)
            record.args = None
        return True


_PLAIN_VALUES = (int, float, bool, type(None))
WITHHELD = "<withheld>"


class WithholdUpdateContent(logging.Filter):
    """Replaces every argument of python-telegram-bot's log lines that is not a plain number
    by a placeholder: some lines carry an update or the data it came from (at CRITICAL, a
    malformed update "Received data was %r"), which can hold what a patient wrote."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("telegram") or not record.args:
            return True
        if isinstance(record.args, dict):
            record.args = {
                key: value if isinstance(value, _PLAIN_VALUES) else WITHHELD
                for key, value in record.args.items()
            }
        else:
            record.args = tuple(
                value if isinstance(value, _PLAIN_VALUES) else WITHHELD for value in record.args
            )
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, event, and any structured extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "INFO") -> None:
    """Sends JSON lines to stderr; quiets httpx, whose request lines include the token."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    handler.addFilter(WithholdUpdateContent())
    handler.addFilter(RedactTokens())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # At DEBUG python-telegram-bot logs every request's parameters and every update it
    # receives: message texts, answers, names. LOG_LEVEL=DEBUG is for spondybot's own lines.
    logging.getLogger("telegram").setLevel(max(logging.INFO, root.level))
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
