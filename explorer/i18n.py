"""The app's words in the reader's language. No gradio here.

    say(lang, template, **values)   a message made on the server, in `lang`
    translate(text, lang)           a message already made (an error's text, a figure's title) remade in `lang`
    sentences(lang, *parts)         sentences joined as `lang` joins them

The words are data, one file per language (explorer/texts/zh.json; English is the key). Two kinds:
- "ui": fixed texts the page shows as it was built (tabs, buttons, labels, help), keyed by their
  English; Gradio's `gr.I18n` translates them in the browser and follows a switch of language.
- "messages": what only the server says (status lines, errors, figure titles), mostly templates
  keyed by the English template, with the same {placeholders} in every language (checked at import).
`say` and `translate` know both kinds. `translate` finds the template a text was made from, in
any language, and makes it again in another with the same values: the engine's errors and the
figures' titles are written in English and need no language of their own.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

LANGS = ("en", "zh")
TEXTS: Mapping[str, Mapping[str, Any]] = {
    lang: json.loads((Path(__file__).parent / "texts" / f"{lang}.json").read_text(encoding="utf-8"))
    for lang in LANGS
}
# For gr.I18n: English is the key, and what a browser in a language without an entry sees.
UI_TEXT: Mapping[str, Mapping[str, str]] = {
    "en": {key: key for key in TEXTS["zh"]["ui"]},
    **{lang: dict(TEXTS[lang]["ui"]) for lang in LANGS if lang != "en"},
}
# By English text, the words in each language (English: itself): the fixed texts and the templates.
WORDS: Mapping[str, Mapping[str, str]] = {
    key: {"en": key, **{lang: TEXTS[lang][section][key] for lang in LANGS if lang != "en"}}
    for section in ("ui", "messages")
    for key in TEXTS["zh"][section]
}


def language(lang: Any) -> str:
    """`lang` if the app speaks it, else English."""
    return lang if lang in LANGS else "en"


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def say(lang: str, template: str, **values: Any) -> str:
    """`template` (an English key of WORDS) in `lang`, its placeholders filled with `values`.
    A text without a translation is said in English."""
    words = WORDS.get(template, {}).get(language(lang), template)
    return words.format(**values) if values else words


# Placeholders that hold whole sentences (another message); any other value is within one sentence.
SENTENCE_VALUES = frozenset({"why"})
_IN_SENTENCE = r"(?:(?![.!?。] ?[A-Z\u4e00-\u9fff]).)*?"


def _pattern(template: str) -> re.Pattern[str]:
    """A regex matching what `template` makes, each placeholder a named group (a repeated one
    must repeat its value), which does not run on past the end of a sentence."""
    parts, seen = [], set()
    for literal, name, _, _ in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if name:
            value = ".*?" if name in SENTENCE_VALUES else _IN_SENTENCE
            parts.append(f"(?P={name})" if name in seen else f"(?P<{name}>{value})")
            seen.add(name)
    return re.compile("".join(parts), re.DOTALL)


@cache
def _patterns() -> tuple[tuple[str, str, re.Pattern[str]], ...]:
    """(literal prefix, English key, pattern) of every template in every language, the most
    literal text first, so that a specific template wins over one that merely wraps a value."""
    found = []
    for key, by_lang in WORDS.items():
        for words in by_lang.values():
            literal = "".join(part for part, _, _, _ in string.Formatter().parse(words))
            prefix = next(iter(string.Formatter().parse(words)), ("",))[0]
            found.append((len(literal), prefix, key, _pattern(words)))
    found.sort(key=lambda item: -item[0])
    return tuple((prefix, key, pattern) for _, prefix, key, pattern in found)


def sentences(lang: str, *parts: str) -> str:
    """Sentences one after another: English puts a space between them, Chinese none."""
    return ("" if language(lang) == "zh" else " ").join(part for part in parts if part)


# Where a text of several sentences is cut to translate them one by one.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])|(?<=[。！？])")


def translate(text: str, lang: str) -> str:
    """`text`, made from a template of WORDS in any language, made again in `lang` with the same
    values (a value that is itself a message is translated too, quoted text never); a text of
    several sentences sentence by sentence; other text unchanged."""
    if not isinstance(text, str) or not text:
        return text
    found = _remade(text, lang, values=True)
    if found is not None:
        return found
    parts = [part for part in _SENTENCE_END.split(text) if part]
    if len(parts) < 2:
        return text
    remade = [_remade(part, lang, values=True) for part in parts]
    if all(r is None for r in remade):
        return text
    return sentences(lang, *(r if r is not None else part for r, part in zip(remade, parts, strict=True)))


def _remade(text: str, lang: str, values: bool) -> str | None:
    """`text` made again in `lang` if one template makes all of it; None if none does."""
    for prefix, key, pattern in _patterns():
        if not text.startswith(prefix):
            continue
        found = pattern.fullmatch(text)
        if found is None:
            continue
        filled = found.groupdict()
        if values:  # a value that is a message, such as an error inside "{why} The … stays."
            for name, value in filled.items():
                if value and value[0] not in "'\"‘“":
                    filled[name] = _remade(value, lang, values=False) or value
        return say(lang, key, **filled)
    return None


def _check() -> None:
    """Every language has every text, a template with the same placeholders; a fixed text has none.
    A template says something besides its values: one made only of them would match any text."""
    for lang in LANGS[1:]:
        assert set(TEXTS[lang]["messages"]) == set(TEXTS["zh"]["messages"]), lang
        assert set(TEXTS[lang]["ui"]) == set(UI_TEXT["en"]), lang
        for key, words in TEXTS[lang]["messages"].items():
            assert placeholders(words) == placeholders(key), (lang, key, words)
            literal = "".join(part for part, _, _, _ in string.Formatter().parse(key))
            assert len(re.findall(r"[A-Za-z]", literal)) >= 4, key
        for key, words in TEXTS[lang]["ui"].items():
            assert not placeholders(key) and not placeholders(words), (lang, key, words)


_check()
