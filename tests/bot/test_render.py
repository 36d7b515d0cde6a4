"""Every message exists in every language and renders without missing variables."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from jinja2 import meta

from bot.config import SUPPORTED_LANGUAGES
from bot.present.render import TEMPLATES_DIR, MissingText, Renderer, default_renderer


class TestCatalogues:
    def test_every_language_has_the_same_keys(self) -> None:
        """No message is missing in any supported language."""
        renderer = default_renderer()
        english = renderer.keys("en")
        for language in SUPPORTED_LANGUAGES:
            assert renderer.keys(language) == english, language

    def test_every_message_renders_in_every_language(self) -> None:
        """Each template renders when given a value for every variable it uses."""
        renderer = default_renderer()
        for language in SUPPORTED_LANGUAGES:
            folder = TEMPLATES_DIR / "messages" / language
            for path in folder.glob("*.toml"):
                for key in renderer.keys(language):
                    if not key.startswith(path.stem + "."):
                        continue
                    source = _source_of(renderer, key, language)
                    names = meta.find_undeclared_variables(renderer.environment.parse(source))
                    values = {name: _sample(name) for name in names if name != "lang"}
                    text = renderer.text(key, language, **values)
                    assert text, key
                    assert len(text) <= 4096

    def test_patient_text_is_escaped(self, tmp_path: Path) -> None:
        """A variable with markup is escaped, so typed text cannot inject HTML."""
        (tmp_path / "messages" / "en").mkdir(parents=True)
        (tmp_path / "messages" / "zh").mkdir(parents=True)
        (tmp_path / "messages" / "en" / "t.toml").write_text('echo = "You said {{ text }}"\n')
        renderer = Renderer(tmp_path)
        assert renderer.text("t.echo", "en", text="<b>x</b>") == "You said &lt;b&gt;x&lt;/b&gt;"
        assert renderer.text("t.echo", "zh", text="y") == "You said y"

    def test_unknown_key_raises(self) -> None:
        """Asking for a message that does not exist is an error, not an empty string."""
        with pytest.raises(MissingText):
            default_renderer().text("common.no_such_message", "en")


def _source_of(renderer: Renderer, key: str, language: str) -> str:
    import tomllib

    area, _, rest = key.partition(".")
    data = tomllib.loads((TEMPLATES_DIR / "messages" / language / f"{area}.toml").read_text())
    node: object = data
    for part in rest.split("."):
        assert isinstance(node, dict)
        node = node[part]
    assert isinstance(node, str)
    return node


def _sample(name: str) -> object:
    """A plausible value for a template variable, chosen by its name."""
    if re.search(r"(count|number|total|n|minutes|hours|days|weeks|index|step)$", name):
        return 3
    if name.endswith(("s", "_list", "rows", "items")):
        return []
    return "x"
