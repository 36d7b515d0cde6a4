"""Every text a person reads, rendered from `templates/` in their language.

Short messages are gettext messages. Their English source lives in per-area files,
`templates/messages/<area>.toml`, whose values are Jinja2 templates addressed as
"<area>.<key>"; the words inside `{% trans %}` blocks (with `{% pluralize %}` for plurals) are
what translators translate, in `templates/locale/<lang>/LC_MESSAGES/messages.po`. The message
key is the gettext context (msgctxt) of every text of that message, so the same English words
may be translated differently in two places; `make catalogs` (`bot.present.catalogs`) extracts
and updates the catalogs. Longer documents (digests, e-mails) are ordinary template files
rendered with `render_file`. Messages render with StrictUndefined, so a missing variable fails
loudly, and with HTML autoescaping, so text typed by a patient can never inject markup into a
Telegram message.
"""

from __future__ import annotations

import io
import re
import threading
import tomllib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, meta, select_autoescape
from markupsafe import Markup

from bot.config import TEMPLATES_DIR, discover_languages
from bot.domain.scoring import AsdasState
from bot.present.formats import number_text

TELEGRAM_TEXT_LIMIT = 4096
SOURCE_LANGUAGE = "en"
"""The language of the message sources; the other languages are catalogs under locale/."""
RENDERED_KEPT = 4096
"""Rendered messages kept for reuse (a questionnaire screen is rendered again and again with
the same arguments); the least recently used is dropped first."""


class MissingText(KeyError):
    """A message key that has no template."""


def catalog_path(templates_dir: Path, language: str) -> Path:
    """Where the gettext catalog of `language` lives below a templates directory."""
    return templates_dir / "locale" / language / "LC_MESSAGES" / "messages.po"


def load_translations(path: Path) -> NullTranslations:
    """A compiled catalog, read from its `.po` at load time (fuzzy entries are not used)."""
    with path.open("rb") as handle:
        catalog = read_po(handle)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled)


def message_sources(templates_dir: Path) -> dict[str, str]:
    """Every message key and its English template source, from `templates/messages/*.toml`."""
    sources: dict[str, str] = {}
    for path in sorted((templates_dir / "messages").glob("*.toml")):
        with path.open("rb") as handle:
            entries = tomllib.load(handle)
        sources.update(flatten_messages(entries, prefix=path.stem))
    return sources


def message_environment() -> Environment:
    """The Jinja environment of messages: no whitespace trimming, so a message source keeps its
    line breaks exactly as written, and new-style gettext (`%(name)s` placeholders)."""
    environment = Environment(
        undefined=StrictUndefined,
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        keep_trailing_newline=False,
    )
    environment.newstyle_gettext = True  # type: ignore[attr-defined]
    return environment


@dataclass
class Renderer:
    """Renders catalog messages and template files for one templates directory."""

    templates_dir: Path = TEMPLATES_DIR
    environment: Environment = field(init=False)
    languages: tuple[str, ...] = field(init=False)
    _sources: dict[str, str] = field(init=False)
    _messages: Environment = field(init=False, default_factory=message_environment)
    _compiled: dict[str, Template] = field(init=False, default_factory=dict)
    _translations: dict[str, NullTranslations] = field(init=False, default_factory=dict)
    _rendered: OrderedDict[tuple[Any, ...], str] = field(init=False, default_factory=OrderedDict)
    _rendered_lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.environment = Environment(
            loader=FileSystemLoader(str(self.templates_dir)),
            undefined=StrictUndefined,
            autoescape=select_autoescape(
                enabled_extensions=("html", "j2", "toml"), default_for_string=True
            ),
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        self.languages = discover_languages(self.templates_dir)
        self._sources = message_sources(self.templates_dir)
        # Document templates (digests) name states through the same table as chat messages.
        self.environment.globals["asdas_state_name"] = self.asdas_state_name
        self._messages.globals["asdas_state_name"] = self.asdas_state_name

    def message_keys(self) -> set[str]:
        """Every message key."""
        return set(self._sources)

    def has(self, key: str) -> bool:
        return key in self._sources

    def source(self, key: str) -> str:
        """The English template source of a message."""
        try:
            return self._sources[key]
        except KeyError:
            raise MissingText(key) from None

    def variables(self, key: str) -> set[str]:
        """The variables a message expects from its caller."""
        parsed = self._messages.parse(self.source(key))
        return meta.find_undeclared_variables(parsed) - {"lang", "gettext", "ngettext", "_"}

    def translations(self, language: str) -> NullTranslations:
        """The compiled catalog of a language, loaded once (English: the sources themselves)."""
        if language not in self._translations:
            path = catalog_path(self.templates_dir, language)
            if language == SOURCE_LANGUAGE or not path.is_file():
                self._translations[language] = NullTranslations()
            else:
                self._translations[language] = load_translations(path)
        return self._translations[language]

    def text(self, key: str, language: str, **variables: Any) -> str:
        """The message `key` in `language`, rendered with variables.

        A variable holding a decimal number (a `Decimal`, or text such as "7.59" as services
        hand over values already rounded for display) is written with the language's decimal
        separator ("7,59" in German); everything else is rendered as given.
        """
        cache_key = _cache_key(key, language, variables)
        if cache_key is None:
            return self._render(key, language, variables)
        with self._rendered_lock:  # digests and charts render in worker threads
            rendered = self._rendered.get(cache_key)
            if rendered is not None:
                self._rendered.move_to_end(cache_key)
                return rendered
        rendered = self._render(key, language, variables)
        with self._rendered_lock:
            self._rendered[cache_key] = rendered
            if len(self._rendered) > RENDERED_KEPT:
                self._rendered.popitem(last=False)
        return rendered

    def _render(self, key: str, language: str, variables: dict[str, Any]) -> str:
        template = self._compiled.get(key)
        if template is None:
            template = self._messages.from_string(self.source(key))
            self._compiled[key] = template
        if language not in self.languages:
            language = SOURCE_LANGUAGE
        gettext, ngettext = _gettext_callables(self.translations(language), key)
        localized = {name: _localized(value, language) for name, value in variables.items()}
        return template.render(
            lang=language, gettext=gettext, ngettext=ngettext, _=gettext, **localized
        ).strip()

    def asdas_state_name(self, state: AsdasState | str, language: str) -> str:
        """The name of an ASDAS state in `language`, from the one table of state names,
        `states.asdas.*` (clinical spec §3). `state` is an `AsdasState` or its key
        ("inactive", "low", "high", "very_high")."""
        key = state.key if isinstance(state, AsdasState) else state
        return self.text(f"states.asdas.{key}", language)

    def render_file(self, name: str, **variables: Any) -> str:
        """Renders a template file below the templates directory ("digests/en/digest.html.j2")."""
        return self.environment.get_template(name).render(**variables)

    def read_data(self, relative: str) -> dict[str, Any]:
        """Loads a TOML data file below the templates directory (e.g. instrument wording)."""
        with (self.templates_dir / relative).open("rb") as handle:
            return tomllib.load(handle)


_CACHEABLE = (str, Markup, int, float, bool, Decimal, type(None))


def _cache_key(key: str, language: str, variables: dict[str, Any]) -> tuple[Any, ...] | None:
    """What a rendered message depends on, or None when an argument is not a plain value (a
    list, say) and the message is rendered afresh. Types are part of the key: 1, 1.0 and True
    are equal but render differently."""
    parts: list[Any] = [key, language]
    for name, value in sorted(variables.items()):
        if type(value) not in _CACHEABLE:
            return None
        parts += (name, type(value), value)
    return tuple(parts)


def _gettext_callables(
    translations: NullTranslations, context: str
) -> tuple[Callable[..., str], Callable[..., str]]:
    """New-style gettext and ngettext for one message: its key is the msgctxt. The translation
    is trusted markup (translators write `<b>`), the variables are escaped as they are filled in.
    """

    def gettext(message: str, /, **variables: Any) -> str:
        return Markup(translations.pgettext(context, message)) % variables  # noqa: S704

    def ngettext(singular: str, plural: str, count: int, /, **variables: Any) -> str:
        variables.setdefault("num", count)
        translated = translations.npgettext(context, singular, plural, count)
        return Markup(translated) % variables  # noqa: S704

    return gettext, ngettext


_DECIMAL_TEXT = re.compile(r"[<>]?-?[0-9]+\.[0-9]+")


def _localized(value: Any, language: str) -> Any:
    """A decimal number in the language's notation; any other value unchanged."""
    if isinstance(value, Decimal) or (type(value) is str and _DECIMAL_TEXT.fullmatch(value)):
        return number_text(value, language)
    return value


def flatten_messages(entries: Mapping[str, Any], prefix: str) -> list[tuple[str, str]]:
    flat: list[tuple[str, str]] = []
    for key, value in entries.items():
        name = f"{prefix}.{key}"
        if isinstance(value, Mapping):
            flat.extend(flatten_messages(value, name))
        else:
            flat.append((name, str(value)))
    return flat


@cache
def default_renderer() -> Renderer:
    """The renderer for the shipped templates, built once per process."""
    return Renderer()
