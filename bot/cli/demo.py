"""`spondybot demo`: the patient's conversation in a terminal, without Telegram.

It drives the same services (`bot.services.conversation`, labs, history) and the same screens
and templates (`bot.present.screens`) as the Telegram bot, on a throwaway SQLite database:
enrollment, consent, onboarding, the whole questionnaire, the BASDAI, then an ASDAS-CRP with a
sample CRP entered as a clinic would, and the history chart written to a PNG file. When standard
input runs out (piped input, `make demo` in CI) the remaining steps are answered automatically.
"""

from __future__ import annotations

import io
import re
import secrets
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Final, TextIO

import typer

from bot.cli.common import fail, plain
from bot.clock import FixedClock, SystemClock
from bot.config import SUPPORTED_LANGUAGES, SettingsError, load_settings
from bot.context import AppContext
from bot.domain.scoring import AsdasState
from bot.present.charts import trend_chart_png
from bot.present.conversation import present
from bot.present.course import CourseWords
from bot.present.history import history_screens
from bot.present.render import Renderer, default_renderer
from bot.present.screens import Button, Presentation, Screen, rounded
from bot.services import conversation, history, labs, staff, therapy
from bot.services.conversation import Reply
from bot.services.questionnaire import Outcome, QuestionnaireReply
from storage import migrate

DEMO_USER: Final = 1
MAX_STEPS: Final = 200
QUIT_WORDS: Final = frozenset({"quit", "exit", "q"})


@dataclass(frozen=True)
class CaseTimePoint:
    """One visit of the published case: the answers given and the CRP drawn that day."""

    name: str
    """Message key of the visit's name ("demo.case_baseline")."""
    answers: Mapping[str, int]
    """Item code → button value (0–10; item 6 in minutes, as its buttons carry it)."""
    crp_mg_l: str


# The published case of clinical spec §5 (docs/clinical.md §5). Items 2, 3, 6 and the global are
# the case's (ASDAS-CRP 3.876 and 1.767); fatigue (q1), tenderness (q4) and stiffness severity
# (q5) are chosen so that BASDAI is the reported 3.8 and 1.4. Item 6 is 60 minutes (5/10) and
# 12 minutes (1/10, typed: no button says 12 min).
CASE_BASELINE: Final = CaseTimePoint(
    name="demo.case_baseline",
    answers={"q1": 5, "q2": 5, "q3": 0, "q4": 4, "q5": 5, "q6": 60, "pg": 5},
    crp_mg_l="64.6",
)
CASE_FOLLOWUP: Final = CaseTimePoint(
    name="demo.case_followup",
    answers={"q1": 2, "q2": 2, "q3": 0, "q4": 1, "q5": 3, "q6": 12, "pg": 2},
    crp_mg_l="7.59",
)
CASE_WEEKS_APART: Final = 24
"""The case's "within six months"."""
CASE_ADALIMUMAB_WEEKS_BEFORE: Final = 52
"""How long before the first visit adalimumab was started: the case's disease was refractory
to it, so it had run for a while; the case report does not say how long."""
SAMPLE_ANSWERS: Final = CASE_BASELINE.answers
"""What the demo answers by itself: the case's first visit."""
SAMPLE_CRP_MG_L: Final = CASE_BASELINE.crp_mg_l
_EDGE_SYMBOLS = re.compile(r"^\W+|\W+$")


def _words(label: str) -> str:
    """A label as a person types it: "◀ Back" → "back", "✅ Confirm" → "confirm"."""
    return _EDGE_SYMBOLS.sub("", label).casefold()


def _answer_buttons(buttons: list[Button]) -> bool:
    """Whether the buttons answer a question; there, a typed number is an answer, as in
    Telegram, so the other buttons are not numbered."""
    return any(button.data.startswith("a:") for button in buttons)


class Terminal:
    """Reads the person's lines and prints screens; falls back to automatic answers at EOF."""

    def __init__(
        self, renderer: Renderer, language: str, stdin: TextIO, *, screens: bool = True
    ) -> None:
        self.renderer = renderer
        self.language = language
        self.stdin = stdin
        self.screens = screens
        self.exhausted = False

    def say(self, text: str) -> None:
        typer.echo(text)

    def text(self, key: str, **values: object) -> str:
        return plain(self.renderer.text(key, self.language, **values))

    def show(self, screen: Screen) -> list[Button]:
        """Prints a screen and returns its buttons in order. Buttons are pressed by typing
        their label; outside a question, the ones not labelled with a number are numbered
        too."""
        buttons = [button for row in screen.buttons for button in row]
        if not self.screens:
            return buttons
        self.say("")
        self.say(plain(screen.text))
        numbered = 0
        numbering = not _answer_buttons(buttons)
        for row in screen.buttons:
            labels = []
            for button in row:
                if button.label.isdigit() or not numbering:
                    labels.append(f"[{button.label}]")
                else:
                    numbered += 1
                    labels.append(f"[{numbered}] {button.label}")
            self.say("  " + "   ".join(labels))
        return buttons

    def ask(self, automatic: str) -> str:
        """The next line typed, or `automatic` once the input has run out."""
        if not self.exhausted and self.screens:
            typer.echo("> ", nl=False)
            line = self.stdin.readline()
            if line:
                return line.strip()
            self.exhausted = True
            self.say("")
        if self.screens:
            self.say(self.text("demo.automatic", answer=automatic))
        return automatic


def automatic_choice(terminal: Terminal, buttons: list[Button], answers: Mapping[str, int]) -> str:
    """What the demo answers by itself on each screen: a button's label, or, for an answer no
    button offers (item 6 as 12 minutes), the answer typed as a patient would, in their
    language (`demo.typed_minutes`)."""
    language = terminal.language
    by_data = {button.data: button for button in buttons}
    for data in (f"o:lang:{language}", "o:consent:yes", "o:time:18:00", "o:first:now"):
        if data in by_data:
            return by_data[data].label
    item = None
    for button in buttons:
        parts = button.data.split(":")
        if button.data.startswith(("o:tz:", "o:day:", "c:")):
            return button.label
        if parts[0] == "a":
            item = parts[2]
            if int(parts[3]) == answers.get(item):
                return button.label
    if item is not None and item in answers:
        if item == "q6":
            return terminal.text("demo.typed_minutes", minutes=answers[item])
        return str(answers[item])
    return buttons[0].label if buttons else ""


def back_words(renderer: Renderer) -> frozenset[str]:
    """Typed words that press the questionnaire's Back button, whatever its label says: the
    word in every language (`demo.back_word`), so "back" works everywhere."""
    return frozenset(
        renderer.text("demo.back_word", language).casefold() for language in renderer.languages
    )


def chosen(buttons: list[Button], line: str, back: frozenset[str]) -> Button | None:
    """The button a typed line means: its label ("5", "1 h", "I agree", "confirm"), "back",
    or, outside a question, the number shown in front of it. None means the line is typed
    text for the bot, read by the same parser as in Telegram ("2" on item 6 is 2 minutes)."""
    typed = line.strip().casefold()
    for button in buttons:
        if typed in (button.label.casefold(), _words(button.label)):
            return button
    if typed in back:
        return next((button for button in buttons if button.data.startswith("b:")), None)
    if _answer_buttons(buttons):
        return None
    numbered = [button for button in buttons if not button.label.isdigit()]
    if typed.isdigit() and 1 <= int(typed) <= len(numbered):
        return numbered[int(typed) - 1]
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


def converse(
    ctx: AppContext, terminal: Terminal, replies: list[Reply], answers: Mapping[str, int]
) -> bool:
    """Shows each reply and acts on the next line until a questionnaire is confirmed; False if
    the person quit. A reply without buttons (a hint, a refusal) leaves the screen's buttons
    where they were, as the question message stays in Telegram."""
    buttons: list[Button] = []
    for _ in range(MAX_STEPS):
        for screen in _screens(present(terminal.renderer, replies)):
            buttons = terminal.show(screen) or buttons
        if _completed(replies):
            return True
        line = terminal.ask(automatic_choice(terminal, buttons, answers))
        if line.casefold() in QUIT_WORDS:
            return False
        button = chosen(buttons, line, back_words(terminal.renderer))
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
    return False


def _enroll(ctx: AppContext, terminal: Terminal) -> tuple[staff.PatientCreated, list[Reply]]:
    physician = staff.add_physician(ctx, display_name="Demo physician")
    patient = staff.add_patient(
        ctx, physician_id=physician.physician_id, clinic_ref="DEMO-0001", language=terminal.language
    )
    replies: list[Reply] = conversation.start(
        ctx, telegram_user_id=DEMO_USER, chat_id=DEMO_USER, code=patient.code.code, language="en"
    )
    return patient, replies


def _add_crp(ctx: AppContext, clinic_ref: str, crp: str) -> None:
    """The clinic enters a CRP drawn an hour before the questionnaire was answered."""
    drawn = (ctx.clock.now() - timedelta(hours=1)).isoformat(timespec="minutes")
    labs.add_lab_values(
        ctx, clinic_ref=clinic_ref, drawn=drawn, entered_by="demo", crp=crp, crp_unit="mg/L"
    )


def _state(terminal: Terminal, state: AsdasState) -> str:
    """The state's name from the one table of state names (clinical spec §3)."""
    return plain(terminal.renderer.asdas_state_name(state, terminal.language))


def _write_chart(terminal: Terminal, scores: history.History, chart_path: Path) -> None:
    drawn_screens = history_screens(terminal.renderer, scores)
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


def walk_through(ctx: AppContext, terminal: Terminal, chart_path: Path) -> bool:
    """The whole conversation; False if the person quit before the end."""
    patient, replies = _enroll(ctx, terminal)
    terminal.say(terminal.text("demo.intro", code=patient.code.code))
    terminal.say(terminal.text("demo.how_to"))
    if not converse(ctx, terminal, replies, SAMPLE_ANSWERS):
        return False
    _add_crp(ctx, patient.clinic_ref, SAMPLE_CRP_MG_L)
    terminal.say("")
    terminal.say(terminal.text("demo.lab_added", crp=SAMPLE_CRP_MG_L))
    scores = history.history_of_patient(ctx, patient_id=patient.patient_id)
    latest = scores.entries[-1]
    if latest.asdas is not None and latest.asdas_state is not None:
        terminal.say(
            terminal.text(
                "demo.asdas",
                asdas=rounded(latest.asdas),
                state=_state(terminal, latest.asdas_state),
                floored=latest.crp_floored,
            )
        )
    _write_chart(terminal, scores, chart_path)
    return True


def replay_case(ctx: AppContext, clock: FixedClock, terminal: Terminal, chart_path: Path) -> bool:
    """The published case's two visits, CASE_WEEKS_APART weeks apart, answered through the
    same services as the bot (enrollment, consent, questionnaire, `/checkin`, lab entry), then
    compared as a physician reads it (clinical spec §3, §5, §6). The treatment is entered as
    the case tells it, two episodes (adalimumab, then upadacitinib added on the day of the
    first visit), and the course is read as clinical spec §7 says."""
    followup_at = clock.now()
    clock.set(followup_at - timedelta(weeks=CASE_WEEKS_APART))
    terminal.say(terminal.text("demo.case_intro", weeks=CASE_WEEKS_APART))
    patient, replies = _enroll(ctx, terminal)
    if not converse(ctx, terminal, replies, CASE_BASELINE.answers):
        return False
    _add_crp(ctx, patient.clinic_ref, CASE_BASELINE.crp_mg_l)
    _add_case_therapies(ctx, patient.clinic_ref)
    clock.set(followup_at)
    replies = conversation.command(
        ctx, telegram_user_id=DEMO_USER, name="checkin", language=terminal.language
    )
    if not converse(ctx, terminal, replies, CASE_FOLLOWUP.answers):
        return False
    _add_crp(ctx, patient.clinic_ref, CASE_FOLLOWUP.crp_mg_l)

    scores = history.history_of_patient(
        ctx, patient_id=patient.patient_id, weeks=CASE_WEEKS_APART + 2
    )
    before, after = scores.entries[0], scores.entries[-1]
    for point, entry in ((CASE_BASELINE, before), (CASE_FOLLOWUP, after)):
        terminal.say(
            terminal.text(
                "demo.case_visit",
                visit=terminal.text(point.name),
                day=entry.completed_at.date().isoformat(),
                **{code: value for code, value in point.answers.items()},
                crp=point.crp_mg_l,
            )
        )
    comparison = history.compare(before, after)
    # The case's answers and CRP values always give both scores at both visits.
    assert before.basdai is not None
    assert after.basdai is not None
    assert before.asdas_state is not None
    assert after.asdas_state is not None
    assert comparison.asdas_change is not None
    terminal.say(
        terminal.text(
            "demo.case_basdai",
            before=rounded(before.basdai),
            after=rounded(after.basdai),
        )
    )
    terminal.say(
        terminal.text("demo.case_crp", before=CASE_BASELINE.crp_mg_l, after=CASE_FOLLOWUP.crp_mg_l)
    )
    terminal.say(
        terminal.text(
            "demo.case_asdas",
            before=rounded(before.asdas),
            before_state=_state(terminal, before.asdas_state),
            after=rounded(after.asdas),
            after_state=_state(terminal, after.asdas_state),
            change=terminal.text(f"demo.change_{comparison.asdas_change.name.lower()}"),
        )
    )
    terminal.say(terminal.text("demo.case_basdai50", met=comparison.basdai50))
    terminal.say(terminal.text("demo.case_asas_eular", met=comparison.asas_eular_response))
    terminal.say("")
    terminal.say(terminal.text("demo.case_course"))
    words = CourseWords(terminal.renderer, terminal.language)
    for line in words.course(therapy.course(ctx, clinic_ref=patient.clinic_ref)):
        terminal.say(plain(line))
    _write_chart(terminal, scores, chart_path)
    return True


def _add_case_therapies(ctx: AppContext, clinic_ref: str) -> None:
    """The case's treatment as two overlapping episodes, entered as the clinic would
    (`spondybot therapy add`): adalimumab for a year, upadacitinib added today (spec §7)."""
    today = therapy.clinic_today(ctx)
    for drug, therapy_class, start in (
        ("adalimumab", "tnf_inhibitor", today - timedelta(weeks=CASE_ADALIMUMAB_WEEKS_BEFORE)),
        ("upadacitinib", "jak_inhibitor", today),
    ):
        therapy.add_therapy(
            ctx,
            clinic_ref=clinic_ref,
            drug=drug,
            therapy_class=therapy_class,
            start=start.isoformat(),
            actor="demo",
        )


def demo(
    language: Annotated[str, typer.Option(help="en, zh or de.")] = "en",
    chart: Annotated[
        Path | None, typer.Option(help="Where to write the chart (default: a new temp folder).")
    ] = None,
    case: Annotated[
        bool,
        typer.Option(
            "--case",
            help="Replay the published case (docs/clinical.md §5): two visits, before and "
            "after treatment, and how they compare.",
        ),
    ] = False,
) -> None:
    """Walk through consent and a whole questionnaire in the terminal, no Telegram needed.

    Uses a throwaway SQLite database; piped input is read line by line and the rest is
    answered automatically.

    Example: spondybot demo --language zh    (or: spondybot demo --case)
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
        clock = FixedClock(SystemClock().now())
        ctx = AppContext.from_settings(settings, clock=clock if case else SystemClock())
        try:
            migrate.upgrade(ctx.engine)
            if case:
                terminal = Terminal(default_renderer(), language, io.StringIO(), screens=False)
                finished = replay_case(ctx, clock, terminal, chart_path)
            else:
                terminal = Terminal(default_renderer(), language, sys.stdin)
                finished = walk_through(ctx, terminal, chart_path)
            terminal.say(terminal.text("demo.bye"))
        finally:
            ctx.close()
    if not finished:
        raise typer.Exit(1)
