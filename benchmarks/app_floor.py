"""spondybot's own floor: its real application, answering like the bare bot.

The application is built exactly as `spondybot run` builds it (settings, rate limiter, per-user
ordering, the update-claim guards, every handler), but the patient's button and text handlers
are swapped for the bare bot's: a text gets one keyboard, a press one `answerCallbackQuery` and
one `editMessageText`; no questionnaire. Each update is still claimed in the database, once.
Between the bare bot and this floor lies what the framework costs as spondybot configures it,
plus the exactly-once claim; between this floor and spondybot lies the questionnaire itself.
Run as `python -m benchmarks.app_floor` with the same environment as `spondybot run`.
"""

from __future__ import annotations

import gc

from telegram.ext import CallbackQueryHandler, MessageHandler

from benchmarks.bare_bot import on_press, on_text
from bot.app import build_application
from bot.cli.common import app_context
from bot.cli.run import ALLOWED_UPDATES
from bot.log import configure_logging
from bot.telegram.handlers import patient


def main() -> None:
    with app_context() as ctx:
        configure_logging(ctx.settings.log_level)
        application = build_application(ctx)
        swaps = {patient.button: on_press, patient.text: on_text}
        swapped = 0
        for handlers in application.handlers.values():
            for handler in handlers:
                if isinstance(handler, CallbackQueryHandler | MessageHandler):
                    bare = swaps.get(handler.callback)
                    if bare is not None:
                        handler.callback = bare
                        swapped += 1
        if swapped != len(swaps):
            raise SystemExit("the patient's button and text handlers were not found")
        gc.collect()
        gc.freeze()  # as `spondybot run` does after start-up
        application.run_polling(allowed_updates=ALLOWED_UPDATES, close_loop=False)


if __name__ == "__main__":
    main()
