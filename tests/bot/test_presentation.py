"""Screens, keyboards, charts and update ordering, without Telegram."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from telegram import Chat, Message, Update, User

from bot import callbacks as cb
from bot.config import SUPPORTED_LANGUAGES
from bot.domain.instruments import INSTRUMENT_VERSION, ITEM_CODES, STIFFNESS_CHOICES_MINUTES
from bot.present.charts import ChartLabels, can_render, trend_chart_png
from bot.present.conversation import present
from bot.present.questionnaire import questionnaire_screen
from bot.present.render import TELEGRAM_TEXT_LIMIT, TEMPLATES_DIR, default_renderer
from bot.present.screens import Screen, fit, instrument_text, percent
from bot.services.patients import CONSENT_VERSION, AccountReply, AccountScreen, PatientView
from bot.services.physician_panel import ChartPoint
from bot.services.questionnaire import Outcome, QuestionnaireReply, QuestionnaireView
from bot.telegram.keyboards import markup
from bot.telegram.ordering import PerUserUpdateProcessor


def view(position: str | None, language: str = "en", **answers: int) -> QuestionnaireView:
    return QuestionnaireView(
        administration_id=42,
        kind="checkin",
        language=language,
        instrument_version=INSTRUMENT_VERSION,
        timezone="Europe/Berlin",
        position=position,
        return_to_summary=False,
        can_go_back=position not in (None, "q1", "summary"),
        answers={code: Decimal(value) for code, value in answers.items()},
        question_message_id=7,
        slot_at=datetime(2026, 3, 2, tzinfo=UTC),
    )


class TestQuestionScreens:
    @pytest.mark.parametrize("language", SUPPORTED_LANGUAGES)
    @pytest.mark.parametrize("item", ITEM_CODES)
    def test_every_question_fits_and_carries_its_buttons(self, language: str, item: str) -> None:
        """Each question renders in both languages with answer buttons under 64 bytes."""
        screen = questionnaire_screen(default_renderer(), view(item, language, q1=3))
        assert len(screen.text) <= TELEGRAM_TEXT_LIMIT
        data = [button.data for row in screen.buttons for button in row]
        assert all(len(d.encode()) <= cb.MAX_CALLBACK_BYTES for d in data)
        answers = [cb.decode(d) for d in data if d.startswith("a:")]
        assert all(isinstance(a, cb.AnswerButton) and a.item_code == item for a in answers)
        assert len(answers) == (9 if item == "q6" else 11)
        assert screen.live_administration_id == 42
        assert screen.previous_message_id == 7

    def test_current_answer_is_marked(self) -> None:
        """Going back shows the earlier answer in the text and marks its button."""
        screen = questionnaire_screen(default_renderer(), view("q1", q1=7))
        assert "Your answer so far: <b>7</b>" in screen.text
        assert "·7·" in [button.label for row in screen.buttons for button in row]

    def test_chinese_questions_are_labelled_informal(self) -> None:
        """The shipped Chinese wording says it is not the licensed translation."""
        screen = questionnaire_screen(default_renderer(), view("q2", "zh"))
        assert "非正式译文" in screen.text
        assert "您因强直性脊柱炎引起的颈部、背部或髋部疼痛的总体程度如何？" in screen.text

    def test_german_questions_are_labelled_informal(self) -> None:
        """The shipped German wording says it is not the licensed translation (spec §1)."""
        screen = questionnaire_screen(default_renderer(), view("q2", "de"))
        assert "informelle Übertragung" in screen.text
        assert "Nacken-, Rücken- oder Hüftschmerzen" in screen.text

    def test_summary_lists_every_answer(self) -> None:
        """The summary shows each item with the duration as chosen, then Confirm and Change."""
        answers = dict(q1=4, q2=5, q3=0, q4=3, q5=4, q6=105, patient_global=5)
        screen = questionnaire_screen(default_renderer(), view("summary", **answers))
        assert "6. Morning stiffness (how long): <b>1¾ h</b>" in screen.text
        assert [button.data for row in screen.buttons for button in row] == ["c:42", "e:42"]

    def test_refusals_are_short_notices(self) -> None:
        """A closed questionnaire is a notice only; nothing else is shown or edited."""
        shown = present(default_renderer(), QuestionnaireReply(Outcome.CLOSED, language="en"))
        assert shown.toast == "This questionnaire has closed."
        assert shown.primary is None


class TestAccountScreens:
    def test_typed_text_is_escaped_when_quoted(self) -> None:
        """A patient's typed time zone is quoted back escaped and shortened."""
        patient = PatientView(
            1, "en", "onboarding", "timezone", "UTC", 0, time(18), "UTC", None, True
        )
        reply = AccountReply(
            AccountScreen.ONBOARDING_TIMEZONE, patient, "invalid_timezone", echo="<b>x</b>" * 30
        )
        text = present(default_renderer(), reply).primary
        assert text is not None
        assert "&lt;b&gt;x&lt;/b&gt;" in text.text
        assert "<b>x</b>" not in text.text
        assert "…" in text.text

    @pytest.mark.parametrize("language", SUPPORTED_LANGUAGES)
    @pytest.mark.parametrize(
        "screen", [s for s in AccountScreen if s is not AccountScreen.ACCOUNT_NOT_PATIENT]
    )
    def test_every_account_screen_has_its_own_words(
        self, screen: AccountScreen, language: str
    ) -> None:
        """Each screen the account service names is worded in every language, never as the
        text of an account that is not linked any more."""
        renderer = default_renderer()
        patient = PatientView(
            1,
            language,
            "active",
            None,
            "UTC",
            0,
            time(18),
            "UTC",
            datetime(2026, 3, 9, tzinfo=UTC),
            True,
        )
        shown = present(renderer, AccountReply(screen, patient)).primary
        assert shown is not None
        assert shown.text
        assert shown.text != renderer.text("account.unknown", language)

    def test_fit_keeps_messages_within_telegram_limit(self) -> None:
        """A text longer than 4096 characters is cut with an ellipsis."""
        assert len(fit("x" * 5000)) == TELEGRAM_TEXT_LIMIT
        assert fit("short") == "short"


class TestKeyboards:
    def test_markup_mirrors_the_rows(self) -> None:
        """Button rows become inline keyboard rows; no buttons, no keyboard."""
        screen = questionnaire_screen(default_renderer(), view("q3"))
        keyboard = markup(screen.buttons)
        assert keyboard is not None
        assert [len(row) for row in keyboard.inline_keyboard] == [6, 5, 1]
        assert markup(Screen("plain").buttons) is None


class TestCharts:
    def test_png_with_asdas_bands(self) -> None:
        """The chart is a PNG, taller when ASDAS values are drawn under BASDAI."""
        start = datetime(2026, 1, 5, tzinfo=UTC)
        points = [
            ChartPoint(
                start + timedelta(weeks=week),
                Decimal(week % 6),
                Decimal("1.2") + Decimal(week) / 10,
            )
            for week in range(12)
        ]
        labels = ChartLabels(title="Scores")
        both = trend_chart_png(points, labels=labels, lab_dates=[start], timezone="Asia/Shanghai")
        basdai_only = [ChartPoint(p.at, p.basdai, None) for p in points]
        only_basdai = trend_chart_png(basdai_only, labels=labels)
        assert both.startswith(b"\x89PNG")
        height = int.from_bytes(both[20:24], "big")
        assert height > int.from_bytes(only_basdai[20:24], "big")
        assert int.from_bytes(both[16:20], "big") >= 1000  # wide enough to read on a phone

    def test_no_points_still_draws(self) -> None:
        """An empty history draws empty axes rather than failing."""
        assert trend_chart_png([], labels=ChartLabels(title="Empty")).startswith(b"\x89PNG")

    def test_font_coverage(self) -> None:
        """Latin labels are always drawable; the check looks at every character."""
        assert can_render(["BASDAI 4 – very high disease activity"])
        assert not can_render(["\U000e0001"])


def update_from(user_id: int, update_id: int) -> Update:
    user = User(user_id, "P", is_bot=False)
    chat = Chat(user_id, "private")
    message = Message(update_id, datetime.now(UTC), chat, from_user=user, text=str(update_id))
    return Update(update_id, message=message)


class TestPerUserOrdering:
    async def test_one_person_in_order_others_in_parallel(self) -> None:
        """Updates of one user run one after another; another user's run alongside."""
        processor = PerUserUpdateProcessor(16, max_queued_per_user=20)
        log: list[tuple[str, int]] = []

        async def work(tag: str, delay: float) -> None:
            log.append(("start", int(tag)))
            await asyncio.sleep(delay)
            log.append(("end", int(tag)))

        async def run(user: int, tag: str, delay: float) -> Any:
            await processor.process_update(update_from(user, int(tag)), work(tag, delay))

        await asyncio.gather(run(1, "1", 0.05), run(1, "2", 0.0), run(2, "3", 0.0))
        assert log.index(("end", 1)) < log.index(("start", 2))
        assert log.index(("end", 3)) < log.index(("end", 1))

    async def test_a_flooding_person_holds_one_slot(self) -> None:
        """With one slot, another person's update runs while a flooding person's queued
        updates wait for their own previous one: the per-user lock comes before the slot."""
        processor = PerUserUpdateProcessor(1, max_queued_per_user=50)
        release = asyncio.Event()
        done: list[int] = []

        async def work(tag: int, *, hold: bool = False) -> None:
            if hold:
                await release.wait()
            done.append(tag)

        flood = [
            asyncio.create_task(
                processor.process_update(update_from(1, tag), work(tag, hold=tag == 1))
            )
            for tag in range(1, 11)
        ]
        await asyncio.sleep(0)
        other = asyncio.create_task(processor.process_update(update_from(2, 99), work(99)))
        await asyncio.sleep(0.05)
        assert done == []  # the flooder's first update holds the only slot
        release.set()
        await asyncio.gather(*flood, other)
        assert done.index(99) < done.index(3)
        assert sorted(done) == [*range(1, 11), 99]

    async def test_excess_updates_are_dropped_and_the_person_told_once(self) -> None:
        """Beyond the queue cap a person's updates are dropped unhandled, and they are asked
        once to slow down; another person's updates are untouched."""
        told: list[int] = []

        async def tell(update: Update) -> None:
            assert update.effective_user is not None
            told.append(update.effective_user.id)

        processor = PerUserUpdateProcessor(4, max_queued_per_user=3, on_dropped=tell)
        release = asyncio.Event()
        handled: list[int] = []

        async def work(tag: int) -> None:
            await release.wait()
            handled.append(tag)

        tasks = [
            asyncio.create_task(processor.process_update(update_from(1, tag), work(tag)))
            for tag in range(1, 11)
        ]
        tasks.append(asyncio.create_task(processor.process_update(update_from(2, 50), work(50))))
        await asyncio.sleep(0.05)
        release.set()
        await asyncio.gather(*tasks)
        # One running and three waiting, in order; the rest dropped.
        assert [tag for tag in handled if tag != 50] == [1, 2, 3, 4]
        assert sorted(handled) == [1, 2, 3, 4, 50]
        assert told == [1]

    async def test_told_once_per_flood_even_when_the_queue_drains_between_bursts(self) -> None:
        """A flood arrives in bursts, and a fast handler empties the person's queue between
        them: they are still told once; after a quiet minute, a new flood is told again."""
        told: list[int] = []
        now = [1000.0]

        async def tell(update: Update) -> None:
            told.append(update.update_id)

        processor = PerUserUpdateProcessor(
            4, max_queued_per_user=3, on_dropped=tell, quiet_s=60.0, clock=lambda: now[0]
        )

        async def burst(first: int) -> None:
            release = asyncio.Event()

            async def work() -> None:
                await release.wait()

            tasks = [
                asyncio.create_task(processor.process_update(update_from(1, tag), work()))
                for tag in range(first, first + 10)
            ]
            await asyncio.sleep(0.01)
            release.set()
            await asyncio.gather(*tasks)

        for second in range(5):  # five bursts a second apart, each overflowing the queue
            now[0] = 1000.0 + second
            await burst(100 * second)
        assert told == [4]  # the first dropped update of the first burst
        now[0] = 1004.0 + 59.0  # less than a minute of silence: the same flood
        await burst(500)
        assert told == [4]
        now[0] = 1063.0 + 61.0  # a quiet minute later, a new flood
        await burst(600)
        assert told == [4, 604]


SPEC_WORDING = {
    "en": {
        "q1": "How would you describe the overall level of fatigue/tiredness you have experienced?",
        "q2": "How would you describe the overall level of AS neck, back or hip pain you have had?",
        "q3": "How would you describe the overall level of pain/swelling in joints other than "
        "neck, back or hips you have had?",
        "q4": "How would you describe the overall level of discomfort you have had from any "
        "areas tender to touch or pressure?",
        "q5": "How would you describe the overall level of morning stiffness you have had from "
        "the time you wake up?",
        "q6": "How long does your morning stiffness last from the time you wake up?",
        "patient_global": "How active was your spondylitis, on average, during the last week?",
    },
    "zh": {
        "q1": "过去一周，您感到疲劳或疲倦的总体程度如何？",
        "q2": "过去一周，您因强直性脊柱炎引起的颈部、背部或髋部疼痛的总体程度如何？",
        "q3": "过去一周，除颈部、背部或髋部以外，您其他关节疼痛或肿胀的总体程度如何？",
        "q4": "过去一周，您身体任何部位在触摸或按压时感到疼痛（压痛）所带来的不适，总体程度如何？",
        "q5": "过去一周，您早上醒来后晨僵的总体程度如何？",
        "q6": "过去一周，您早上醒来后晨僵通常持续多长时间？",
        "patient_global": "过去一周，您的脊柱炎平均活动程度如何？",
    },
}

SPEC_CHINESE_DURATIONS = [
    "0分钟", "15分钟", "30分钟", "45分钟", "1小时", "1小时15分钟", "1小时30分钟", "1小时45分钟",
    "2小时或以上",
]  # fmt: skip
"""Clinical spec §1: the Chinese duration buttons."""


class TestInstrumentTexts:
    @pytest.mark.parametrize("language", ["en", "zh"])
    def test_wording_is_the_clinical_spec(self, language: str) -> None:
        """Item texts are exactly those of clinical spec §1, with one label per duration button."""
        wording = instrument_text(default_renderer(), INSTRUMENT_VERSION, language)
        assert wording["instrument_version"] == INSTRUMENT_VERSION
        assert {code: item["text"] for code, item in wording["items"].items()} == SPEC_WORDING[
            language
        ]
        assert sorted(int(minutes) for minutes in wording["durations"]) == list(
            STIFFNESS_CHOICES_MINUTES
        )

    def test_chinese_scale_ends_buttons_and_questions_are_those_of_the_spec(self) -> None:
        """§1: items end as questions, stiffness is from waking (醒来, not 起床, not only the
        back), item 2 names the disease, and the scale ends and duration buttons are §1's."""
        wording = instrument_text(default_renderer(), INSTRUMENT_VERSION, "zh")
        items = wording["items"]
        for code, item in items.items():
            assert item["text"].startswith("过去一周"), code
            assert item["text"].endswith("？"), code
            assert "起床" not in item["text"], code
            assert "腰背" not in item["text"], code
        assert "强直性脊柱炎" in items["q2"]["text"]
        for code in ("q1", "q2", "q3", "q4", "q5"):
            assert (items[code]["low"], items[code]["high"]) == ("无", "非常严重")
        assert (items["patient_global"]["low"], items["patient_global"]["high"]) == (
            "病情完全不活跃",
            "病情非常活跃",
        )
        durations = [wording["durations"][str(m)] for m in STIFFNESS_CHOICES_MINUTES]
        assert durations == SPEC_CHINESE_DURATIONS

    def test_chinese_patient_messages_speak_of_hospital_or_doctor(self) -> None:
        """§1: the Chinese texts a patient reads say 医院 or 您的医生, never 诊所."""
        catalog = TEMPLATES_DIR / "locale" / "zh" / "LC_MESSAGES" / "messages.po"
        text = catalog.read_text(encoding="utf-8")
        assert "医院" in text
        assert "诊所" not in text

    def test_only_the_licensed_wording_goes_unlabelled(self) -> None:
        """The informal Chinese rendering is labelled; the English original is not."""
        english = instrument_text(default_renderer(), INSTRUMENT_VERSION, "en")
        chinese = instrument_text(default_renderer(), INSTRUMENT_VERSION, "zh")
        assert english["note"] == ""
        assert chinese["licensed_translation"] is False
        assert "非正式译文" in chinese["note"]

    def test_consent_version_matches_the_text(self) -> None:
        """The version stored with a consent is the one written in the consent templates."""
        for language in ("en", "zh"):
            assert default_renderer().text("consent.version", language) == CONSENT_VERSION


class TestPercent:
    @pytest.mark.parametrize(
        ("share", "shown"),
        [(Fraction(2, 3), 67), (Fraction(1, 8), 13), (Fraction(1, 200), 1), (Fraction(0), 0)],
    )
    def test_a_share_is_a_whole_percent_half_up(self, share: Fraction, shown: int) -> None:
        """An exact share reads as a whole percent, halves rounded up (12.5 % → 13 %)."""
        assert percent(share) == shown
