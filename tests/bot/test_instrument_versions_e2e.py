"""A clinic installs its licensed translation as a new instrument version, with no code change."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from bot.config import SettingsError, load_settings
from bot.domain.instruments import INSTRUMENT_VERSION
from bot.present.render import TEMPLATES_DIR, Renderer
from tests.bot.e2e import RunningBot
from tests.bot.helpers import administrations_of

LICENSED = "clinic-licensed-zh-2027"
ANSWERS = ["4", "5", "0", "3", "4", "1小时", "5"]


def _install(templates: Path, version: str, *, licensed: bool, note: str) -> None:
    """A clinic's version folder: the shipped Chinese file with its own wording and flag."""
    source = (TEMPLATES_DIR / "instruments" / INSTRUMENT_VERSION / "zh.toml").read_text("utf-8")
    text = (
        source.replace(
            f'instrument_version = "{INSTRUMENT_VERSION}"', f'instrument_version = "{version}"'
        )
        .replace("licensed_translation = false", f"licensed_translation = {str(licensed).lower()}")
        .replace(
            'note = "说明：以下中文问题为非正式译文，并非 BASDAI 的官方授权翻译。"',
            f'note = "{note}"',
        )
        .replace("过去一周，您感到疲劳或疲倦的总体程度如何？", "【授权译文】第一题：疲劳程度？")
    )
    folder = templates / "instruments" / version
    folder.mkdir(parents=True)
    (folder / "zh.toml").write_text(text, encoding="utf-8")


@pytest.fixture
def clinic_templates(tmp_path: Path) -> Path:
    """A copy of the shipped templates to which the test adds version folders."""
    copy = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR, copy)
    return copy


async def _switch(bot: RunningBot, templates: Path, version: str) -> None:
    """The clinic selects `version` for Chinese and restarts the bot."""
    bot.renderer = Renderer(templates_dir=templates)
    bot.ctx.settings = bot.ctx.settings.model_copy(update={"instrument_version_zh": version})
    await bot.restart()


class TestLicensedVersion:
    async def test_new_questionnaires_use_the_selected_version_old_ones_keep_theirs(
        self, running_bot: RunningBot, clinic_templates: Path
    ) -> None:
        """After the switch a questionnaire is asked and stored with the licensed version,
        without the informal label; the earlier one keeps the shipped version."""
        _install(clinic_templates, LICENSED, licensed=True, note="")
        li, patient_id = await running_bot.onboarded_patient(
            language="zh", timezone="Asia/Shanghai"
        )
        li.send_command("/checkin")
        await running_bot.settle()
        assert "非正式译文" in li.last_message()["text"]
        for value in ANSWERS:
            li.send_text(value)
            await running_bot.settle()
        li.press(next(data for _, data in li.buttons() if data.startswith("c:")))
        await running_bot.settle()
        assert "谢谢" in li.last_message()["text"]
        await _switch(running_bot, clinic_templates, LICENSED)
        running_bot.clock.advance(timedelta(days=1))
        li.send_command("/checkin")
        await running_bot.settle()
        question = li.last_message()["text"]
        assert "【授权译文】第一题：疲劳程度？" in question
        assert "非正式译文" not in question
        versions = [a.instrument_version for a in administrations_of(running_bot.ctx, patient_id)]
        assert versions == [INSTRUMENT_VERSION, LICENSED]

    async def test_an_unlicensed_version_is_labelled_even_without_a_note(
        self, running_bot: RunningBot, clinic_templates: Path
    ) -> None:
        """The `licensed_translation` flag is read: false means labelled informal."""
        _install(clinic_templates, "clinic-draft-zh", licensed=False, note="")
        await _switch(running_bot, clinic_templates, "clinic-draft-zh")
        li, _patient_id = await running_bot.onboarded_patient(
            language="zh", timezone="Asia/Shanghai"
        )
        li.send_command("/checkin")
        await running_bot.settle()
        question = li.last_message()["text"]
        assert "【授权译文】第一题：疲劳程度？" in question
        assert "非正式译文" in question


class TestVersionSetting:
    def test_a_version_that_is_not_installed_is_refused_in_one_line(self) -> None:
        """INSTRUMENT_VERSION_ZH naming no installed folder stops with one line naming it."""
        with pytest.raises(SettingsError) as raised:
            load_settings(_env_file=None, instrument_version_zh="not-installed-v9")
        message = str(raised.value)
        assert message.startswith("setting INSTRUMENT_VERSION_ZH:")
        assert "\n" not in message

    def test_the_shipped_version_is_the_default_for_each_language(self) -> None:
        """Without the setting every language is asked with the shipped version."""
        settings = load_settings(_env_file=None)
        assert settings.instrument_version("en") == INSTRUMENT_VERSION
        assert settings.instrument_version("zh") == INSTRUMENT_VERSION
        assert settings.instrument_version("de") == INSTRUMENT_VERSION

    def test_german_has_its_own_setting(self) -> None:
        """INSTRUMENT_VERSION_DE selects the German text and is checked for a German file."""
        with pytest.raises(SettingsError) as raised:
            load_settings(_env_file=None, instrument_version_de="not-installed-v9")
        assert str(raised.value).startswith("setting INSTRUMENT_VERSION_DE:")
        settings = load_settings(_env_file=None, instrument_version_de=INSTRUMENT_VERSION)
        assert settings.instrument_version("de") == INSTRUMENT_VERSION
