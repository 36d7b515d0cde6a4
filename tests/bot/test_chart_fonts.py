"""Chinese chart labels work on the first run after a CJK font is installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from bot.present.charts import CJK_FONT_FILE

REPOSITORY = Path(__file__).resolve().parents[2]
CAN_DRAW_CHINESE = "from bot.present.charts import can_render; print(can_render(['高疾病活动']))"


def _cjk_font_installed() -> bool:
    from matplotlib import font_manager

    return any(CJK_FONT_FILE.search(Path(path).name) for path in font_manager.findSystemFonts())


def _python(code: str, config_dir: Path) -> str:
    env = dict(os.environ, MPLCONFIGDIR=str(config_dir))
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPOSITORY,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@pytest.fixture
def cjk_font() -> None:
    """CI installs one (fonts-wqy-microhei); elsewhere the test needs one to prove anything."""
    if not _cjk_font_installed():
        if os.environ.get("CI") == "true":
            pytest.fail("no CJK font installed: apt-get install fonts-wqy-microhei")
        pytest.skip("no CJK font installed (apt-get install fonts-wqy-microhei)")


@pytest.mark.usefixtures("cjk_font")
class TestCjkFontAfterInstall:
    def test_font_missing_from_a_stale_font_list_is_found(self, tmp_path: Path) -> None:
        """matplotlib's font list, built before the CJK font was installed, does not hide it."""
        _python("import matplotlib.font_manager", tmp_path)
        (cache,) = tmp_path.glob("fontlist-*.json")
        fonts = json.loads(cache.read_text(encoding="utf-8"))
        fonts["ttflist"] = [
            entry
            for entry in fonts["ttflist"]
            if not CJK_FONT_FILE.search(Path(entry["fname"]).name)
        ]
        cache.write_text(json.dumps(fonts), encoding="utf-8")

        assert _python(CAN_DRAW_CHINESE, tmp_path) == "True"

    def test_a_fresh_font_list_finds_it_too(self, tmp_path: Path) -> None:
        """With no font list yet, the first chart can draw Chinese."""
        assert _python(CAN_DRAW_CHINESE, tmp_path) == "True"


class TestGermanLabels:
    def test_german_words_and_month_names_draw_with_the_bundled_font(self) -> None:
        """German needs no extra package: matplotlib's own DejaVu Sans has ä, ö, ü and ß, so
        the German axis (CLDR month names) and labels are drawn, not replaced by English."""
        from bot.present.charts import can_render
        from bot.present.formats import day_text

        march = day_text(date(2026, 3, 2), "dd. MMM", "de")
        assert march == "02. März"
        assert can_render([march, "sehr hohe Krankheitsaktivität", "Größe", "Schmerz äöü ß"])
