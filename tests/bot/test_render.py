"""Every message exists in every language and renders without missing variables."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from bot.config import SUPPORTED_LANGUAGES
from bot.present.catalogs import catalog_problems, planned_files
from bot.present.render import (
    RENDERED_KEPT,
    TEMPLATES_DIR,
    MissingText,
    Renderer,
    catalog_path,
    default_renderer,
)


class TestCatalogues:
    def test_every_message_renders_in_every_language(self) -> None:
        """Each template renders when given a value for every variable it uses."""
        renderer = default_renderer()
        for language in SUPPORTED_LANGUAGES:
            for key in renderer.message_keys():
                counts = _plural_counts(renderer.source(key))
                values = {
                    name: 3 if name in counts else _sample(name) for name in renderer.variables(key)
                }
                text = renderer.text(key, language, **values)
                assert text, key
                assert len(text) <= 4096

    def test_every_language_reads_its_own_words(self) -> None:
        """A translated message differs from the English one (the catalog is used)."""
        renderer = default_renderer()
        english = renderer.text("questionnaire.hint_summary", "en")
        for language in SUPPORTED_LANGUAGES:
            if language != "en":
                assert renderer.text("questionnaire.hint_summary", language) != english

    def test_patient_text_is_escaped(self, tmp_path: Path) -> None:
        """A variable with markup is escaped, so typed text cannot inject HTML."""
        (tmp_path / "messages").mkdir(parents=True)
        (tmp_path / "messages" / "t.toml").write_text(
            'echo = "{% trans %}You said {{ text }}{% endtrans %}"\n'
        )
        renderer = Renderer(tmp_path)
        assert renderer.text("t.echo", "en", text="<b>x</b>") == "You said &lt;b&gt;x&lt;/b&gt;"

    def test_unknown_key_raises(self) -> None:
        """Asking for a message that does not exist is an error, not an empty string."""
        with pytest.raises(MissingText):
            default_renderer().text("common.no_such_message", "en")


def _echo_renderer(folder: Path) -> Renderer:
    (folder / "messages").mkdir(parents=True)
    (folder / "messages" / "t.toml").write_text(
        'echo = "{% trans %}You said {{ text }}{% endtrans %}"\n'
    )
    return Renderer(folder)


class TestRenderedMessages:
    """A message rendered once with the same arguments is reused, never confused with another."""

    def test_the_same_message_and_arguments_give_the_same_text(self, tmp_path: Path) -> None:
        """Rendering again gives the same words, and other arguments give their own."""
        renderer = _echo_renderer(tmp_path)
        assert renderer.text("t.echo", "en", text="5") == "You said 5"
        assert renderer.text("t.echo", "en", text="5") == "You said 5"
        assert renderer.text("t.echo", "en", text="6") == "You said 6"
        assert renderer.text("t.echo", "en", text="<i>") == "You said &lt;i&gt;"

    def test_equal_values_of_other_types_render_as_themselves(self, tmp_path: Path) -> None:
        """1, 1.0 and True are equal in Python but read differently."""
        renderer = _echo_renderer(tmp_path)
        assert renderer.text("t.echo", "en", text=1) == "You said 1"
        assert renderer.text("t.echo", "en", text=True) == "You said True"
        assert renderer.text("t.echo", "en", text=1.0) == "You said 1.0"

    def test_each_language_keeps_its_own_words(self) -> None:
        """A German text is not served to an English reader after it was rendered first."""
        renderer = default_renderer()
        german = renderer.text("questionnaire.hint_summary", "de")
        assert renderer.text("questionnaire.hint_summary", "en") != german
        assert renderer.text("questionnaire.hint_summary", "de") == german

    def test_a_list_argument_is_rendered_afresh(self, tmp_path: Path) -> None:
        """Arguments that could change after the call (lists) are never cached."""
        renderer = _echo_renderer(tmp_path)
        said = ["a"]
        assert renderer.text("t.echo", "en", text=said) == "You said [&#39;a&#39;]"
        said.append("b")
        assert renderer.text("t.echo", "en", text=said) == "You said [&#39;a&#39;, &#39;b&#39;]"

    def test_the_kept_texts_are_bounded(self, tmp_path: Path) -> None:
        """Many different arguments do not grow memory without end; the oldest is rendered
        again when asked for."""
        renderer = _echo_renderer(tmp_path)
        for number in range(RENDERED_KEPT + 50):
            renderer.text("t.echo", "en", text=number)
        assert len(renderer._rendered) == RENDERED_KEPT
        assert renderer.text("t.echo", "en", text=0) == "You said 0"


class TestGettextCatalogs:
    def test_languages_are_the_catalogs_present(self) -> None:
        """English (the sources) and every language with a catalog are supported."""
        assert SUPPORTED_LANGUAGES[0] == "en"
        for language in SUPPORTED_LANGUAGES[1:]:
            assert catalog_path(TEMPLATES_DIR, language).is_file()
        assert "zh" in SUPPORTED_LANGUAGES

    def test_every_catalog_is_complete(self) -> None:
        """No catalog misses a message or has a fuzzy or obsolete one."""
        assert catalog_problems(TEMPLATES_DIR) == []

    def test_extracting_again_changes_nothing(self) -> None:
        """`make catalogs` on this checkout would leave the template and catalogs as they are."""
        for path, content in planned_files(TEMPLATES_DIR).items():
            assert path.read_bytes() == content, path

    def test_a_new_message_shows_up_as_missing(self, tmp_path: Path) -> None:
        """A message added to the sources is reported for every language until translated."""
        templates = _copy_texts(tmp_path)
        path = templates / "messages" / "common.toml"
        path.write_text(path.read_text() + 'brand_new = "{% trans %}Brand new{% endtrans %}"\n')
        problems = catalog_problems(templates)
        for language in SUPPORTED_LANGUAGES[1:]:
            assert f"{language}: common.brand_new 'Brand new' is missing" in problems

    def test_a_language_without_its_digest_documents_is_reported(self, tmp_path: Path) -> None:
        """The digest is a set of document templates per language; a missing one is named."""
        templates = _copy_texts(tmp_path)
        shutil.copytree(TEMPLATES_DIR / "digests", templates / "digests")
        (templates / "digests" / "zh" / "summary.txt.j2").unlink()
        assert "zh: digests/zh/summary.txt.j2 is missing" in catalog_problems(templates)

    def test_fuzzy_and_obsolete_entries_are_reported(self, tmp_path: Path) -> None:
        """A fuzzy translation or one whose message is gone is a problem, not a silent fallback."""
        templates = _copy_texts(tmp_path)
        po = catalog_path(templates, "zh")
        text = po.read_text(encoding="utf-8")
        text = text.replace(
            '\nmsgctxt "common.try_again"', '\n#, fuzzy\nmsgctxt "common.try_again"'
        )
        text += '\n#~ msgctxt "common.gone"\n#~ msgid "Gone"\n#~ msgstr "已删除"\n'
        po.write_text(text, encoding="utf-8")
        problems = catalog_problems(templates)
        assert any(p.startswith("zh: common.try_again") and p.endswith("fuzzy") for p in problems)
        assert "zh: common.gone 'Gone' is obsolete" in problems


def _copy_texts(tmp_path: Path) -> Path:
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR / "messages", templates / "messages")
    shutil.copytree(TEMPLATES_DIR / "locale", templates / "locale")
    return templates


def _plural_counts(source: str) -> set[str]:
    """The variables that count a plural (the first one a `{% trans %}` with a plural binds)."""
    counts = set()
    for head, body in re.findall(r"\{% trans ([^%]*)%\}(.*?)\{% endtrans %\}", source, re.S):
        if "{% pluralize" in body:
            first = head.split(",")[0]
            counts.add(first.split("=")[-1].strip())
    return counts


def _sample(name: str) -> object:
    """A plausible value for a template variable, chosen by its name."""
    if re.search(r"(count|number|total|n|minutes|hours|days|weeks|index|step)$", name):
        return 3
    if name.endswith(("s", "_list", "rows", "items")):
        return []
    return "x"
