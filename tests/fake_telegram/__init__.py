"""A local fake Telegram Bot API over real HTTP, for end-to-end, fault and benchmark runs.

`server` holds the API and its HTTP plumbing, `users` the fake person who writes and presses,
`formatting` the HTML parse mode, `wire` request parsing and image checks, `records` what is
recorded and the errors Telegram answers with. Run it alone with `python -m tests.fake_telegram`.
"""

from tests.fake_telegram.formatting import format_text
from tests.fake_telegram.records import (
    BOT_USERNAME,
    DEFAULT_TOKEN,
    NOT_MODIFIED,
    ApiError,
    RecordedRequest,
    RecordedUpdate,
    UploadedFile,
)
from tests.fake_telegram.server import FakeBotApi, main
from tests.fake_telegram.users import FakeUser
from tests.fake_telegram.wire import image_size, parse_request

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
