"""A fourth language needs no code: a catalog and an instrument file in the templates suffice."""

from __future__ import annotations

import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from babel.messages.pofile import read_po, write_po

from bot.config import discover_languages
from bot.domain.instruments import INSTRUMENT_VERSION
from bot.present.catalogs import catalog_problems
from bot.present.render import TEMPLATES_DIR, Renderer, catalog_path
from tests.bot.e2e import RunningBot
from tests.bot.helpers import administrations_of

MADE_UP = "xx"
"""A language code no catalog ships and CLDR does not know: formatting falls back to English."""
MARK = "⟦xx⟧"
ANSWERS = ["4", "5", "0", "3", "4", "1h", "5"]


def _pseudo(text: str) -> str:
    """A pseudo-translation: the English text behind a mark, variables and markup intact."""
    return f"{MARK} {text}"


def _add_language(templates: Path) -> None:
    """What a translator adds for a new language: its catalog, made from the template catalog
    with every message translated, and its rendering of the instrument (labelled informal)."""
    with (templates / "locale" / "messages.pot").open("rb") as handle:
        catalog = read_po(handle)
    for message in catalog:
        if not message.id:
            continue
        if str(message.context).endswith("date_format"):
            message.string = message.id  # a CLDR pattern, not words
        elif isinstance(message.id, tuple):
            message.string = tuple(_pseudo(form) for form in message.id)
        else:
            message.string = _pseudo(message.id)
    path = catalog_path(templates, MADE_UP)
    path.parent.mkdir(parents=True)
    with path.open("wb") as handle:
        write_po(handle, catalog)
    shutil.copytree(templates / "digests" / "en", templates / "digests" / MADE_UP)
    folder = templates / "instruments" / INSTRUMENT_VERSION
    english = (folder / "en.toml").read_text(encoding="utf-8")
    rendering = (
        re.sub(r'^text = "', f'text = "{MARK} ', english, flags=re.MULTILINE)
        .replace('language = "en"', f'language = "{MADE_UP}"')
        .replace("licensed_translation = true", "licensed_translation = false")
    )
    (folder / f"{MADE_UP}.toml").write_text(rendering, encoding="utf-8")


@pytest.fixture
def templates_with_new_language(tmp_path: Path) -> Path:
    copy = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR, copy)
    _add_language(copy)
    return copy


class TestFourthLanguage:
    def test_the_catalog_makes_the_language_supported_and_complete(
        self, templates_with_new_language: Path
    ) -> None:
        """The new catalog's folder is all it takes to be a supported language, and the
        completeness check covers it like the shipped ones."""
        assert MADE_UP in discover_languages(templates_with_new_language)
        assert MADE_UP not in discover_languages(TEMPLATES_DIR)
        assert catalog_problems(templates_with_new_language) == []

    async def test_a_patient_answers_a_questionnaire_in_it(
        self, running_bot: RunningBot, templates_with_new_language: Path
    ) -> None:
        """A patient enrolled in the new language is asked every question in it, with the
        informal label, and thanked in it; the answers are stored with that language."""
        running_bot.renderer = Renderer(templates_dir=templates_with_new_language)
        running_bot.ctx.settings = running_bot.ctx.settings.model_copy(
            update={"templates_dir": templates_with_new_language}
        )
        await running_bot.restart()
        li, patient_id = await running_bot.onboarded_patient(language=MADE_UP)
        assert MARK in li.last_message()["text"]
        running_bot.clock.advance(timedelta(hours=1))
        li.send_command("/checkin")
        await running_bot.settle()
        for value in ANSWERS:
            question = li.last_message()["text"]
            assert question.count(MARK) >= 2, question  # the screen's words and the question
            li.send_text(value)
            await running_bot.settle()
        summary = li.last_message()["text"]
        assert MARK in summary
        li.press(next(data for _, data in li.buttons() if data.startswith("c:")))
        await running_bot.settle()
        result = li.last_message()["text"]
        assert result.startswith(MARK)
        assert "BASDAI" in result
        languages = [a.language for a in administrations_of(running_bot.ctx, patient_id)]
        assert languages == [MADE_UP]
