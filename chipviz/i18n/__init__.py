"""The interface's words in English and Simplified Chinese: one table, one lookup.

No panel or bokeh import: the table (strings.py) is checked headless. Every view takes a
language (`lang`, "en" or "zh") and asks ``t(key, lang, **values)`` for its labels, so
switching the language relabels the page in place. A ``Message`` is a key and its values:
producers emit Messages and each view renders them in its language (prose.py renders the
longer sentences built from the simulator's numbers).
"""
from __future__ import annotations

import string

from .strings import STRINGS

LANGUAGES = ("en", "zh")
DEFAULT_LANGUAGE = "en"


_FIELDS = string.Formatter()


def placeholders(text: str) -> set[str]:
    """The {names} a string formats."""
    return {name for _, name, _, _ in _FIELDS.parse(text) if name}


def t(key: str, lang: str = DEFAULT_LANGUAGE, /, **values) -> str:
    """The string `key` in `lang` (English if the language is unknown), formatted with `values`."""
    entry = STRINGS[key]
    text = entry.get(lang) or entry[DEFAULT_LANGUAGE]
    return text.format(**values) if values else text


def texts(prefix: str, lang: str) -> dict[str, str]:
    """{key without `prefix`: string} of every key that starts with `prefix` (unformatted)."""
    return {k[len(prefix):]: t(k, lang) for k in STRINGS if k.startswith(prefix)}


def join(items, lang: str) -> str:
    return t("list_sep", lang).join(str(i) for i in items)


class Message:
    """A message as data: a key of STRINGS and its values, rendered in a language when shown.

    Producers (the session's notices, a link's notices, the lessons) make Messages; each view
    renders them in the page's language, so a notice shown in English is shown again in Chinese
    after a switch, and nothing parses English text to translate it. Values may be Messages
    themselves, or lists of them (joined with the language's separator). str() is English.
    """

    __slots__ = ("key", "values")

    def __init__(self, key: str, /, **values):
        if key not in STRINGS:
            raise KeyError(f"no interface string {key!r}")
        self.key, self.values = key, values

    def render(self, lang: str = DEFAULT_LANGUAGE) -> str:
        return t(self.key, lang, **{k: render(v, lang) for k, v in self.values.items()})

    def __str__(self) -> str:
        return self.render(DEFAULT_LANGUAGE)

    def __repr__(self) -> str:
        return f"Message({self.key!r}, {self.values!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Message) and (self.key, self.values) == (other.key, other.values)

    def __hash__(self) -> int:
        return hash((self.key, tuple(sorted((k, str(v)) for k, v in self.values.items()))))


def render(value, lang: str = DEFAULT_LANGUAGE) -> str:
    """A Message, a list of them or a plain value as text in `lang`."""
    if isinstance(value, Message):
        return value.render(lang)
    if isinstance(value, (list, tuple)):
        return join([render(v, lang) for v in value], lang)
    return str(value)


__all__ = ["LANGUAGES", "DEFAULT_LANGUAGE", "STRINGS", "t", "texts", "join", "Message", "render", "placeholders"]
