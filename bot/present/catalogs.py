"""Extracts the messages into `templates/locale/messages.pot` and updates every language's catalog.

`make catalogs` runs `python -m bot.present.catalogs`; with `--check` it only reports. The
extraction goes through Babel's extraction machinery with `extract_messages` (named in
`babel.cfg`, so `pybabel extract -F babel.cfg` finds the same messages). Files are rewritten only
when a message changed, and the catalog dates are kept otherwise, so running it on an up-to-date
checkout changes nothing. New messages arrive untranslated; removed ones stay as obsolete
entries (`#~`) until a translator deletes them; no fuzzy matching, so a changed English text is
never served with a stale translation.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import tomllib
from collections.abc import Collection, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_file
from babel.messages.pofile import read_po, write_po
from jinja2.ext import extract_from_ast

from bot.config import TEMPLATES_DIR, discover_languages
from bot.present.render import SOURCE_LANGUAGE, catalog_path, flatten_messages, message_environment

TEMPLATE_NAME = "messages.pot"
HEADER = """\
# The messages of spondybot, extracted from templates/messages/*.toml by `make catalogs`.
# The message key is the context (msgctxt) of each text; %(name)s are variables, kept as is."""
_TABLE = re.compile(r"^\[([A-Za-z0-9_.-]+)\]\s*$")
_KEY = re.compile(r"^([A-Za-z0-9_-]+)\s*=")


def extract_messages(
    fileobj: IO[bytes],
    keywords: Collection[str],
    comment_tags: Collection[str],
    options: Mapping[str, Any],
) -> Iterator[tuple[int, str, tuple[str | None, ...], list[str]]]:
    """Babel extractor for `templates/messages/<area>.toml`: every `{% trans %}` text of every
    message, with the message key ("<area>.<key>") as its context."""
    text = fileobj.read().decode("utf-8")
    area = Path(str(getattr(fileobj, "name", "messages.toml"))).stem
    lines = _key_lines(text, area)
    environment = message_environment()
    for key, source in flatten_messages(tomllib.loads(text), area):
        # Not Babel-style: only the string arguments, without the variables passed along.
        for _, function, message in extract_from_ast(environment.parse(source), babel_style=False):
            strings = tuple(message) if isinstance(message, tuple) else (message,)
            if function == "ngettext":
                yield lines.get(key, 1), "npgettext", (key, strings[0], strings[1]), []
            else:
                yield lines.get(key, 1), "pgettext", (key, strings[0]), []


def _key_lines(text: str, area: str) -> dict[str, int]:
    """The line each message key starts on, for the catalog's source references."""
    found: dict[str, int] = {}
    table = ""
    for number, line in enumerate(text.splitlines(), start=1):
        if header := _TABLE.match(line):
            table = header.group(1)
        elif key := _KEY.match(line):
            found[".".join(part for part in (area, table, key.group(1)) if part)] = number
    return found


def template_catalog(templates_dir: Path) -> Catalog:
    """Every message of the sources, in file and line order."""
    catalog = _new_catalog(locale=None)
    for path in sorted((templates_dir / "messages").glob("*.toml")):
        where = path.relative_to(templates_dir.parent).as_posix()
        # Babel annotates an extractor's results with the shape of its own output; what it
        # consumes at run time is (lineno, funcname, messages, comments), as yielded here.
        for lineno, message, comments, context in extract_from_file(
            extract_messages,  # type: ignore[arg-type]
            str(path),
            keywords=DEFAULT_KEYWORDS,
        ):
            catalog.add(message, None, [(where, lineno)], auto_comments=comments, context=context)
    return catalog


def _new_catalog(locale: str | None) -> Catalog:
    return Catalog(
        locale=locale,
        header_comment=HEADER,
        project="spondybot",
        version="1",
        copyright_holder="the spondybot authors",
        msgid_bugs_address="",
        fuzzy=False,
    )


def _po_bytes(catalog: Catalog) -> bytes:
    buffer = io.BytesIO()
    write_po(buffer, catalog, sort_output=False, include_previous=False)
    return buffer.getvalue()


def _read(path: Path) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle)


def planned_files(templates_dir: Path = TEMPLATES_DIR) -> dict[Path, bytes]:
    """What the template catalog and every language's catalog should contain now."""
    template = template_catalog(templates_dir)
    pot_path = templates_dir / "locale" / TEMPLATE_NAME
    planned: dict[Path, bytes] = {}
    if pot_path.is_file():
        template.creation_date = _read(pot_path).creation_date
        if _po_bytes(template) != pot_path.read_bytes():
            template.creation_date = datetime.now(UTC)
    planned[pot_path] = _po_bytes(template)
    for language in discover_languages(templates_dir):
        if language == SOURCE_LANGUAGE:
            continue
        path = catalog_path(templates_dir, language)
        catalog = _read(path)
        catalog.update(template, no_fuzzy_matching=True, update_header_comment=False)
        planned[path] = _po_bytes(catalog)
    return planned


def catalog_problems(templates_dir: Path = TEMPLATES_DIR) -> list[str]:
    """Messages a language lacks, and fuzzy or obsolete entries: each would show a reader
    English or a stale text, so each is a problem to fix in the catalog."""
    template = template_catalog(templates_dir)
    problems: list[str] = []
    for language in discover_languages(templates_dir):
        if language == SOURCE_LANGUAGE:
            continue
        catalog = _read(catalog_path(templates_dir, language))
        for message in template:
            if not message.id:
                continue
            entry = catalog.get(message.id, context=message.context)
            where = f"{language}: {message.context} {message.id!r}"
            if entry is None:
                problems.append(f"{where} is missing")
            elif entry.fuzzy:
                problems.append(f"{where} is fuzzy")
            elif not all(entry.string) if isinstance(entry.string, tuple) else not entry.string:
                problems.append(f"{where} is not translated")
        problems.extend(
            f"{language}: {message.context} {message.id!r} is obsolete"
            for message in catalog.obsolete.values()
        )
        problems.extend(_missing_documents(templates_dir, language))
    return problems


def _missing_documents(templates_dir: Path, language: str) -> list[str]:
    """Document templates (the digest) are whole files per language, like instrument texts:
    each English one needs its counterpart."""
    english = templates_dir / "digests" / SOURCE_LANGUAGE
    return [
        f"{language}: digests/{language}/{path.name} is missing"
        for path in sorted(english.glob("*.j2"))
        if not (templates_dir / "digests" / language / path.name).is_file()
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.present.catalogs", description=__doc__)
    parser.add_argument("--check", action="store_true", help="report only; write nothing")
    arguments = parser.parse_args(argv)
    planned = planned_files()
    changed = [
        path
        for path, content in planned.items()
        if not path.is_file() or path.read_bytes() != content
    ]
    if not arguments.check:
        for path in changed:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(planned[path])
    for path in changed:
        print(f"{'out of date' if arguments.check else 'updated'}: {path}")
    problems = catalog_problems()
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems or (arguments.check and changed) else 0


if __name__ == "__main__":
    raise SystemExit(main())
