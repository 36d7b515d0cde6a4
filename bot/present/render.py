"""Every text a person reads, rendered from `templates/` in their language.

Short messages live in per-area catalogues, `templates/messages/<lang>/<area>.toml`, whose
values are Jinja2 templates addressed as "<area>.<key>". Longer documents (digests, e-mails)
are ordinary template files rendered with `render_file`. One environment is built per
templates directory, with StrictUndefined so a missing variable fails loudly, and HTML
autoescaping so text typed by a patient can never inject markup into a Telegram message.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, select_autoescape

from bot.config import SUPPORTED_LANGUAGES, TEMPLATES_DIR
from bot.domain.scoring import AsdasState

TELEGRAM_TEXT_LIMIT = 4096


class MissingText(KeyError):
    """A message key that has no template in the requested language."""


@dataclass
class Renderer:
    """Renders catalogue messages and template files for one templates directory."""

    templates_dir: Path = TEMPLATES_DIR
    environment: Environment = field(init=False)
    _catalogues: dict[str, dict[str, Template]] = field(init=False, default_factory=dict)

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
        for language in SUPPORTED_LANGUAGES:
            self._catalogues[language] = self._load_catalogue(language)
        # Document templates (digests) name states through the same table as chat messages.
        self.environment.globals["asdas_state_name"] = self.asdas_state_name

    def _load_catalogue(self, language: str) -> dict[str, Template]:
        catalogue: dict[str, Template] = {}
        folder = self.templates_dir / "messages" / language
        for path in sorted(folder.glob("*.toml")):
            with path.open("rb") as handle:
                entries = tomllib.load(handle)
            for key, source in _flatten(entries, prefix=path.stem):
                catalogue[key] = self.environment.from_string(source)
        return catalogue

    def keys(self, language: str) -> set[str]:
        """Every message key available in a language."""
        return set(self._catalogues[language])

    def has(self, key: str, language: str) -> bool:
        return key in self._catalogues.get(language, {})

    def text(self, key: str, language: str, **variables: Any) -> str:
        """The message `key` in `language` (falling back to English), rendered with variables."""
        catalogue = self._catalogues.get(language) or self._catalogues["en"]
        template = catalogue.get(key) or self._catalogues["en"].get(key)
        if template is None:
            raise MissingText(f"{key} ({language})")
        return template.render(lang=language, **variables).strip()

    def asdas_state_name(self, state: AsdasState | str, language: str) -> str:
        """The name of an ASDAS state in `language`, from the one table of state names,
        `templates/messages/<lang>/states.toml` (clinical spec §3). `state` is an `AsdasState`
        or its key ("inactive", "low", "high", "very_high")."""
        key = state.key if isinstance(state, AsdasState) else state
        return self.text(f"states.asdas.{key}", language)

    def render_file(self, name: str, **variables: Any) -> str:
        """Renders a template file below the templates directory ("digests/en/digest.html.j2")."""
        return self.environment.get_template(name).render(**variables)

    def read_data(self, relative: str) -> dict[str, Any]:
        """Loads a TOML data file below the templates directory (e.g. instrument wording)."""
        with (self.templates_dir / relative).open("rb") as handle:
            return tomllib.load(handle)


def _flatten(entries: Mapping[str, Any], prefix: str) -> list[tuple[str, str]]:
    flat: list[tuple[str, str]] = []
    for key, value in entries.items():
        name = f"{prefix}.{key}"
        if isinstance(value, Mapping):
            flat.extend(_flatten(value, name))
        else:
            flat.append((name, str(value)))
    return flat


@cache
def default_renderer() -> Renderer:
    """The renderer for the shipped templates, built once per process."""
    return Renderer()
