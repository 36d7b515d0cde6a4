"""One-off converter: per-language TOML message files → English gettext sources + .po catalogs.

Reads `templates/messages/en/<area>.toml` and `templates/messages/<lang>/<area>.toml` (the
former format: one Jinja template per key and language), writes

- `templates/messages/<area>.toml`: the English source, each text run inside `{% trans %}`;
- `templates/locale/<lang>/LC_MESSAGES/messages.po`: msgctxt = message key, msgid = the English
  run, msgstr = the same run of the other language,

then removes the per-language folders. Runs pair up by position, so the converter refuses a key
whose control structure (`{% if %}`, `{% for %}`) differs between the languages. Hand plural rules
(`{% if weeks != 1 %}s{% endif %}`) become `{% pluralize %}` with the language's CLDR plural forms.
"""

from __future__ import annotations

import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from babel import Locale
from babel.messages.catalog import Catalog
from babel.messages.pofile import write_po
from jinja2 import Environment, StrictUndefined

ROOT = Path(__file__).resolve().parent.parent
MESSAGES = ROOT / "templates" / "messages"
LOCALE = ROOT / "templates" / "locale"

OLD = Environment(trim_blocks=True, lstrip_blocks=True, undefined=StrictUndefined, autoescape=True)
LETTER = re.compile(r"[^\W\d_]", re.UNICODE)
# Hand plural rules, by key: the variable that counts. Its English source is written with
# {% pluralize %}; each language's forms are rendered from its old template at 1 and 2.
PLURALS = {"account.pause_weeks": "weeks"}
# Weekday names now come from CLDR (bot.formats.weekday_name): these messages are dropped.
DROPPED = re.compile(r"^(account\.weekday_\d|digest\.weekday\.\d|web\.weekday\.\d)$")
DROPPED_TABLES = {"weekday"}
# strftime date formats become CLDR patterns, whose month names Babel writes per language.
STRFTIME_TO_CLDR = {
    "%d": "dd",
    "%e": "d",
    "%m": "MM",
    "%b": "MMM",
    "%B": "MMMM",
    "%Y": "y",
    "%y": "yy",
    "%a": "EEE",
    "%A": "EEEE",
    "%H": "HH",
    "%M": "mm",
}
DATE_PATTERN_COMMENT = (
    "# Date patterns in CLDR form (d, dd, M, MM, MMM, y): Babel writes the month names in the\n"
    "# reader's language; each catalog chooses its own order.\n"
)


def cldr_pattern(strftime: str) -> str:
    """A strftime format as a CLDR date pattern; other text quoted as a literal."""
    out = ""
    for part in re.split(r"(%[a-zA-Z])", strftime):
        if part in STRFTIME_TO_CLDR:
            out += STRFTIME_TO_CLDR[part]
        elif re.search(r"[A-Za-z']", part):
            out += "'" + part.replace("'", "''") + "'"
        else:
            out += part
    return out


@dataclass
class Segment:
    kind: str  # "text", "var" or "block"
    value: str


def segments(source: str) -> list[Segment]:
    """The template as the old environment saw it: whitespace control already applied."""
    out: list[Segment] = []
    inner: list[str] = []
    kind = ""
    for _, tok, value in OLD.lex(source):
        if tok == "data":
            out.append(Segment("text", value))
        elif tok in ("variable_begin", "block_begin"):
            kind, inner = ("var" if tok == "variable_begin" else "block"), []
        elif tok in ("variable_end", "block_end"):
            out.append(Segment(kind, "".join(inner).strip()))
        elif tok in ("comment_begin", "comment", "comment_end", "linecomment"):
            continue
        else:
            inner.append(value)
    merged: list[Segment] = []
    for seg in out:
        if seg.kind == "text" and merged and merged[-1].kind == "text":
            merged[-1] = Segment("text", merged[-1].value + seg.value)
        elif seg.kind != "text" or seg.value:
            merged.append(seg)
    return merged


def runs(segs: list[Segment]) -> tuple[list[str], list[list[Segment]]]:
    """Block statements, and the text/variable runs around them (len(runs) == len(blocks)+1)."""
    blocks: list[str] = []
    parts: list[list[Segment]] = [[]]
    for seg in segs:
        if seg.kind == "block":
            blocks.append(" ".join(seg.value.split()))
            parts.append([])
        else:
            parts[-1].append(seg)
    return blocks, parts


def raw(run: list[Segment]) -> str:
    return "".join(s.value if s.kind == "text" else "{{ " + s.value + " }}" for s in run)


def has_letters(run: list[Segment]) -> bool:
    return any(s.kind == "text" and LETTER.search(s.value) for s in run)


def var_name(expr: str, taken: dict[str, str]) -> str:
    """A placeholder name for an expression, the same for it in every language of a key."""
    if expr in taken:
        return taken[expr]
    if re.fullmatch(r"[A-Za-z_]\w*", expr):
        name = expr
    else:
        words = re.findall(r"[A-Za-z_]\w*", re.sub(r"(['\"]).*?\1", "", expr))
        words = [w for w in words if w not in {"if", "else", "not", "and", "or", "is", "none"}]
        name = words[-1] if words else "value"
        if "|" in expr or "(" in expr:
            name = words[0] if words else "value"
            name = name.split(".")[-1]
    base, n = name, 2
    while name in taken.values() and taken.get(expr) != name:
        name, n = f"{base}{n}", n + 1
    taken[expr] = name
    return name


def split_ws(text: str) -> tuple[str, str, str]:
    core = text.strip()
    if not core:
        return text, "", ""
    start = text.index(core)
    return text[:start], core, text[start + len(core) :]


def msgid_of(run: list[Segment], names: dict[str, str]) -> tuple[str, str, str, list[str]]:
    """(leading whitespace, msgid, trailing whitespace, bound expressions) of a run."""
    body = ""
    bound: list[str] = []
    for s in run:
        if s.kind == "text":
            body += s.value.replace("%", "%%")
        else:
            name = names.get(s.value) or var_name(s.value, names)
            body += f"%({name})s"
            if s.value not in bound:
                bound.append(s.value)
    lead, core, trail = split_ws(body)
    return lead.replace("%%", "%"), core, trail.replace("%%", "%"), bound


def trans_block(core: str, bound: list[str], names: dict[str, str]) -> str:
    """The `{% trans %}` source whose msgid is `core`."""
    args = []
    for expr in bound:
        name = names[expr]
        if name != expr:
            args.append(f"{name}={expr}")
        else:
            args.append(name)
    head = "{% trans " + ", ".join(args) + " %}" if args else "{% trans %}"
    text = re.sub(r"%\((\w+)\)s", r"{{ \1 }}", core).replace("%%", "%")
    return head + text + "{% endtrans %}"


COUNTED = re.compile(r"(\w+)\(s\)")
BRACKETED = re.compile(r"(\w)\((\w{1,3})\)")


def _counted(core: str, bound: list[str]) -> bool:
    """A text like "%(count)s line(s)": one number, words written "(s)" by hand; it becomes a
    gettext plural, so each language says it with its own CLDR plural rule."""
    return (
        bool(COUNTED.search(core))
        and len(bound) == 1
        and core.count("%(") == 1
        and re.search(r"(count|rows|recomputed|stored|total)$", bound[0]) is not None
    )


def _plural_forms(core: str) -> tuple[str, str]:
    return COUNTED.sub(r"\1", core), COUNTED.sub(r"\1s", core)


class Mismatch(ValueError):
    pass


def convert_key(key: str, english: str, others: dict[str, str]):
    """New English source and, per language, [(msgid, msgstr)] of one message key."""
    en_blocks, en_runs = runs(segments(english))
    other_runs: dict[str, list[list[Segment]]] = {}
    for lang, source in others.items():
        blocks, parts = runs(segments(source))
        if blocks != en_blocks:
            raise Mismatch(f"{key} ({lang}): {en_blocks} != {blocks}")
        other_runs[lang] = parts
    names: dict[str, str] = {}
    out = ""
    pairs: dict[str, list[tuple[str, str]]] = {lang: [] for lang in others}
    for index, run in enumerate(en_runs):
        translatable = has_letters(run) or any(
            has_letters(p[index]) or raw(p[index]) != raw(run) for p in other_runs.values()
        )
        if not translatable:
            out += raw(run)
        else:
            lead, core, trail, bound = msgid_of(run, names)
            others_split = {
                lang: msgid_of(parts[index], names) for lang, parts in other_runs.items()
            }
            same_space = all((o[0], o[2]) == (lead, trail) for o in others_split.values())
            if not same_space:
                # Whitespace differs between languages: it belongs to the translation.
                core, lead, trail = (
                    lead.replace("%", "%%") + core + trail.replace("%", "%%"),
                    "",
                    "",
                )
            for lang, (olead, ocore, otrail, _) in others_split.items():
                if not same_space:
                    ocore = olead.replace("%", "%%") + ocore + otrail.replace("%", "%%")
                missing = set(re.findall(r"%\((\w+)\)s", ocore)) - set(
                    re.findall(r"%\((\w+)\)s", core)
                )
                if missing:
                    raise Mismatch(f"{key} ({lang}) run {index}: {missing} not in English")
                if _counted(core, bound):
                    forms: tuple[str, ...] = (ocore,) * _nplurals(lang)
                    if len(forms) == 2:  # "Zeile(n)": one form without, one with the ending
                        forms = (BRACKETED.sub(r"\1", ocore), BRACKETED.sub(r"\1\2", ocore))
                    pairs[lang].append((_plural_forms(core), forms))
                else:
                    pairs[lang].append((core, ocore))
            if _counted(core, bound):
                singular, plural = _plural_forms(core)
                block = trans_block(singular, bound, names)
                block = block.replace(
                    "{% endtrans %}",
                    "{% pluralize %}" + trans_block(plural, [], names)[len("{% trans %}") :],
                )
                out += lead + block + trail
            else:
                out += lead + trans_block(core, bound, names) + trail
        if index < len(en_blocks):
            out += "{% " + en_blocks[index] + " %}"
    return out, pairs


class Counter(int):
    """A count that prints as the gettext placeholder, to render one plural form."""

    def __str__(self) -> str:
        return "%(count)s"

    __html__ = __str__


def plural_key(key: str, variable: str, english: str, others: dict[str, str]):
    def form(source: str, n: int) -> str:
        return OLD.from_string(source).render(**{variable: Counter(n)}).strip()

    singular, plural = form(english, 1), form(english, 2)
    out = (
        "{% trans count="
        + variable
        + " %}"
        + singular.replace("%(count)s", "{{ count }}")
        + "{% pluralize %}"
        + plural.replace("%(count)s", "{{ count }}")
        + "{% endtrans %}"
    )
    pairs = {}
    for lang, source in others.items():
        forms = [form(source, 1), form(source, 2)][: max(1, _nplurals(lang))]
        pairs[lang] = [((singular, plural), tuple(forms))]
    return out, pairs


JOIN = re.compile(r"join\((['\"])(.*?)\1\)")


def joined_key(key: str, english: str, others: dict[str, str]):
    """`{{ xs | join(', ') }}` with a separator per language: the separator becomes a message."""

    def separator(source: str) -> str:
        found = JOIN.search(source)
        assert found, key
        return found.group(2)

    def plain(source: str) -> str:
        return JOIN.sub("join(sep)", source)

    new, pairs = convert_key(key, plain(english), {k: plain(v) for k, v in others.items()})
    new = new.replace("join(sep)", 'join(_("' + separator(english) + '"))')
    for lang, source in others.items():
        pairs[lang].insert(0, (separator(english), separator(source)))
    return new, pairs


def _nplurals(lang: str) -> int:
    catalog = Catalog(locale=lang)
    return catalog.num_plurals


def flatten(entries: dict[str, Any], prefix: str) -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in entries.items():
        name = f"{prefix}.{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name))
        else:
            flat[name] = str(value)
    return flat


def toml_string(value: str) -> str:
    if "\n" not in value:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    body = value.replace("\\", "\\\\").replace('"""', '""\\"')
    if body.startswith("\n"):
        body = "\\n" + body[1:]
    if body.endswith('"'):
        body = body[:-1] + '\\"'
    return '"""' + body + '"""'


KEY_LINE = re.compile(r"^([A-Za-z0-9_-]+)\s*=\s*")


def rewrite_toml(text: str, area: str, sources: dict[str, str]) -> str:
    """The English file with each value replaced by its new source; comments and order kept."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    table = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        header = re.match(r"^\[([A-Za-z0-9_.-]+)\]\s*$", line)
        if header:
            table = header.group(1)
            if table not in DROPPED_TABLES:
                out.append(line)
            i += 1
            continue
        match = KEY_LINE.match(line)
        if not match:
            out.append(line)
            i += 1
            continue
        start = i
        fragment = line[match.end() :]
        while True:
            try:
                tomllib.loads("v = " + fragment)
                break
            except tomllib.TOMLDecodeError:
                i += 1
                fragment += lines[i]
        key = ".".join(p for p in (area, table, match.group(1)) if p)
        del start
        if key not in sources:
            if out and not out[-1].strip():
                out.pop()  # the blank line before a dropped table
            i += 1
            continue
        if key.endswith("date_format") and DATE_PATTERN_COMMENT not in out:
            out.append(DATE_PATTERN_COMMENT)
        out.append(f"{match.group(1)} = {toml_string(sources[key])}\n")
        i += 1
    return "".join(out)


def main(languages: list[str]) -> int:
    en_dir = MESSAGES / "en"
    problems: list[str] = []
    catalogs = {
        lang: Catalog(
            locale=lang,
            project="spondybot",
            version="1",
            copyright_holder="the spondybot authors",
            msgid_bugs_address="",
            fuzzy=False,
            header_comment=f"# The spondybot messages in {Locale.parse(lang).english_name}.\n"
            "# `make catalogs` adds new messages here untranslated; translate each msgstr.",
        )
        for lang in languages
    }
    new_files: dict[str, str] = {}
    for path in sorted(en_dir.glob("*.toml")):
        area = path.stem
        english = flatten(tomllib.loads(path.read_text()), area)
        others = {
            lang: flatten(tomllib.loads((MESSAGES / lang / path.name).read_text()), area)
            for lang in languages
        }
        sources: dict[str, str] = {}
        for key, source in english.items():
            if DROPPED.match(key):
                continue
            if key.endswith("date_format"):
                source = cldr_pattern(source)
                for lang in languages:
                    if key in others[lang]:
                        others[lang][key] = cldr_pattern(others[lang][key])
            translated = {}
            for lang in languages:
                if key not in others[lang]:
                    problems.append(f"{key}: missing in {lang}")
                    continue
                translated[lang] = others[lang][key]
            try:
                if JOIN.search(source):
                    new, pairs = joined_key(key, source, translated)
                elif key in PLURALS:
                    new, pairs = plural_key(key, PLURALS[key], source, translated)
                else:
                    new, pairs = convert_key(key, source, translated)
            except Mismatch as error:
                problems.append(str(error))
                continue
            sources[key] = new
            for lang, entries in pairs.items():
                for msgid, msgstr in entries:
                    if lang == "en":
                        continue
                    catalogs[lang].add(msgid, msgstr, context=key)
        new_files[area] = rewrite_toml(path.read_text(), area, sources) if not problems else ""
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    for area, text in new_files.items():
        (MESSAGES / f"{area}.toml").write_text(text)
    for lang, catalog in catalogs.items():
        folder = LOCALE / lang / "LC_MESSAGES"
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "messages.po").open("wb") as handle:
            write_po(handle, catalog, width=100)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:] or ["zh"]))
