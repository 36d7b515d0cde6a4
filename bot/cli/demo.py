"""`spondybot demo`: the patient's conversation in a terminal, without Telegram.

It drives the same services (`bot.services.conversation`, labs, history) and the same screens
and templates (`bot.screens`) as the Telegram bot, on a throwaway SQLite database: enrollment,
consent, onboarding, the whole questionnaire, the BASDAI, then an ASDAS-CRP with a sample CRP
entered as a clinic would, and the history chart written to a PNG file. When standard input
runs out (piped input, `make demo` in CI) the remaining steps are answered automatically.
"""

from __future__ import annotations

import html
import re
import secrets
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Final, TextIO

import typer

from bot.charts import trend_chart_png
from bot.cli.common import fail
from bot.clock import SystemClock
from bot.config import SUPPORTED_LANGUAGES, SettingsError, load_settings
from bot.context import AppContext
from bot.domain.scoring import display_round
from bot.render import Renderer, default_renderer
from bot.screens import Button, Presentation, Screen, history_screens, present
from bot.services import conversation, history, labs, staff
from bot.services.conversation import Reply
from bot.services.questionnaire import Outcome, QuestionnaireReply
from storage import migrate

DEMO_USER: Final = 1
MAX_STEPS: Final = 200
SAMPLE_CRP_MG_L: Final = "64.6"
# Answers given automatically: the published case of clinical spec §5 (back pain 5, stiffness
# 1 h, global 5, no peripheral pain), with fatigue 4, tenderness 3 and stiffness severity 4.
SAMPLE_ANSWERS: Final = {
    "q1": 4,
    "q2": 5,
    "q3": 0,
    "q4": 3,
    "q5": 4,
    "q6": 60,
    "pg": 5,
}
_TAG = re.compile(r"<[^>]+>")


def plain(text: str) -> str:
    """Telegram HTML as terminal text."""
    return html.unescape(_TAG.sub("", text))


class Terminal:
    """Reads the person's lines and prints screens; falls back to automatic answers at EOF."""

    def __init__(self, renderer: Renderer, language: str, stdin: TextIO) -> None:
        self.renderer = renderer
        self.language = language
        self.stdin = stdin
        self.exhausted = False

    def say(self, text: str) -> None:
        typer.echo(text)

    def text(self, key: str, **values: object) -> str:
        return plain(self.renderer.text(key, self.language, **values))

    def show(self, screen: Screen) -> list[Button]:
        """Prints a screen; buttons labelled with a number are shown as they are, the others
        numbered. Returns the buttons in order."""
        self.say("")
        self.say(plain(screen.text))
        buttons: list[Button] = []
        numbered = 0
        for row in screen.buttons:
            labels = []
            for button in row:
                buttons.append(button)
                if button.label.isdigit():
                    labels.append(f"[{button.label}]")
                else:
                    numbered += 1
                    labels.append(f"[{numbered}] {button.label}")
            self.say("  " + "   ".join(labels))
        return buttons

    def ask(self, automatic: str) -> str:
        """The next line typed, or `automatic` once the input has run out."""
        if not self.exhausted:
            typer.echo("> ", nl=False)
            line = self.stdin.readline()
            if line:
                return line.strip()
            self.exhausted = True
            self.say("")
        self.say(self.text("demo.automatic", answer=automatic))
        return automatic


def automatic_choice(buttons: list[Button], language: str) -> str:
    """What the demo answers by itself on each screen: the label of a button."""
    by_data = {button.data: button for button in buttons}
    for data in (f"o:lang:{language}", "o:consent:yes", "o:time:18:00", "o:first:now"):
        if data in by_data:
            return by_data[data].label
    for button in buttons:
        parts = button.data.split(":")
        if button.data.startswith(("o:tz:", "o:day:", "c:")):
            return button.label
        if parts[0] == "a" and int(parts[3]) == SAMPLE_ANSWERS.get(parts[2]):
            return button.label
    return buttons[0].label if buttons else ""


def chosen(buttons: list[Button], line: str) -> Button | None:
    """The button a typed line means: its label ("5", "1 h", "I agree") or, for buttons not
    labelled with a number, its position; None means the line is typed text."""
    for button in buttons:
        if line.casefold() == button.label.casefold():
            return button
    numbered = [button for button in buttons if not button.label.isdigit()]
    if line.isdigit() and 1 <= int(line) <= len(numbered):
        return numbered[int(line) - 1]
    return None


def _completed(replies: list[Reply]) -> bool:
    return any(
        isinstance(reply, QuestionnaireReply) and reply.outcome is Outcome.COMPLETED
        for reply in replies
    )


def _screens(presentation: Presentation) -> list[Screen]:
    shown = [] if presentation.primary is None else [presentation.primary]
    shown.extend(presentation.follow)
    if not shown and presentation.toast:
        shown.append(Screen(presentation.toast))
    return shown


def walk_through(ctx: AppContext, terminal: Terminal, chart_path: Path) -> bool:
    """The whole conversation; False if the person quit before the end."""
    renderer = terminal.renderer
    physician = staff.add_physician(ctx, display_name="Demo physician")
    patient = staff.add_patient(
        ctx, physician_id=physician.physician_id, clinic_ref="DEMO-0001", language=terminal.language
    )
    terminal.say(terminal.text("demo.intro", code=patient.code.code))
    terminal.say(terminal.text("demo.how_to"))
    replies: list[Reply] = conversation.start(
        ctx, telegram_user_id=DEMO_USER, chat_id=DEMO_USER, code=patient.code.code, language="en"
    )
    for _ in range(MAX_STEPS):
        buttons: list[Button] = []
        for screen in _screens(present(renderer, replies)):
            buttons = terminal.show(screen) or buttons
        if _completed(replies):
            break
        line = terminal.ask(automatic_choice(buttons, terminal.language))
        if line.lower() in {"quit", "exit", "q"}:
            return False
        button = chosen(buttons, line)
        if button is not None:
            replies = [
                conversation.press(
                    ctx, telegram_user_id=DEMO_USER, data=button.data, language=terminal.language
                )
            ]
        else:
            replies = conversation.typed(
                ctx, telegram_user_id=DEMO_USER, chat_id=DEMO_USER, text=line, language="en"
            )
    else:
        return False

    drawn = (ctx.clock.now() - timedelta(hours=1)).isoformat(timespec="minutes")
    labs.add_lab_values(
        ctx,
        clinic_ref=patient.clinic_ref,
        drawn=drawn,
        entered_by="demo",
        crp=SAMPLE_CRP_MG_L,
        crp_unit="mg/L",
    )
    terminal.say("")
    terminal.say(terminal.text("demo.lab_added", crp=SAMPLE_CRP_MG_L))
    scores = history.history_of_patient(ctx, patient_id=patient.patient_id)
    latest = scores.entries[-1]
    if latest.asdas is not None and latest.asdas_state is not None:
        state_key = {
            "inactive disease": "inactive",
            "low disease activity": "low",
            "high disease activity": "high",
            "very high disease activity": "very_high",
        }[latest.asdas_state.value]
        terminal.say(
            terminal.text(
                "demo.asdas",
                asdas=display_round(latest.asdas),
                state=terminal.text(f"history.{state_key}"),
                floored=latest.crp_floored,
            )
        )
    drawn_screens = history_screens(renderer, scores)
    chart_path.write_bytes(
        trend_chart_png(
            drawn_screens.points,
            labels=drawn_screens.labels,
            lab_dates=[mark.drawn_at for mark in scores.labs],
            start=scores.since,
            end=scores.until,
            timezone=scores.timezone,
        )
    )
    terminal.say(terminal.text("demo.chart", path=str(chart_path)))
    return True


def demo(
    language: Annotated[str, typer.Option(help="en or zh.")] = "en",
    chart: Annotated[
        Path | None, typer.Option(help="Where to write the chart (default: a new temp folder).")
    ] = None,
) -> None:
    """Walk through consent and a whole questionnaire in the terminal, no Telegram needed.

    Uses a throwaway SQLite database; piped input is read line by line and the rest is
    answered automatically.

    Example: spondybot demo --language zh
    """
    if language not in SUPPORTED_LANGUAGES:
        fail(f"--language must be one of {', '.join(SUPPORTED_LANGUAGES)}")
    chart_path = chart or Path(tempfile.mkdtemp(prefix="spondybot-demo-")) / "history.png"
    with tempfile.TemporaryDirectory(prefix="spondybot-demo-db-") as folder:
        try:
            settings = load_settings(
                _env_file=None,
                database_url=f"sqlite:///{Path(folder) / 'demo.db'}",
                telegram_bot_username="spondybot",
                # A throwaway secret for a throwaway database: it keys the demo's codes.
                pseudonym_key=secrets.token_hex(16),
            )
        except SettingsError as error:
            fail(str(error))
        ctx = AppContext.from_settings(settings, clock=SystemClock())
        try:
            migrate.upgrade(ctx.engine)
            terminal = Terminal(default_renderer(), language, sys.stdin)
            finished = walk_through(ctx, terminal, chart_path)
            terminal.say(terminal.text("demo.bye"))
        finally:
            ctx.close()
    if not finished:
        raise typer.Exit(1)
