"""What every part of the lesson package shares: the languages, the settings a lesson may set
(by URL key, as chipviz.settings defines them) and the interface's words.

The bottom of the package: it imports nothing from chipviz.lessons.
"""
from __future__ import annotations

import math
import re
import unicodedata
from typing import Any

from .. import i18n, settings
from ..chip import ChipConfig
from ..settings import KEYS

LANGUAGES = i18n.LANGUAGES
SETTING_KEYS = KEYS  # URL key -> TrainingSession parameter (chipviz.settings)

# ----- the interface's own words, in both languages (used by LessonView too) -----
# One table for the whole app (chipviz.i18n); the lesson mode's words are its "lesson." keys.
UI = {lang: {key[len("lesson."):]: i18n.t(key, lang) for key in i18n.STRINGS if key.startswith("lesson.")}
      for lang in LANGUAGES}


def ui(lang: str, key: str, **values) -> str:
    """An interface string in `lang` (English if missing), formatted with `values`."""
    text = UI.get(lang, UI["en"]).get(key) or UI["en"][key]
    return text.format(**values) if values else text


def notice(key: str, /, **values) -> i18n.Message:
    """A lesson notice (i18n key "lesson.<key>") as a Message: the page renders it in its language."""
    return i18n.Message(f"lesson.{key}", **values)


# ======================================================================================
# Settings: the app's defaults, validated values, configs built as the session builds them
# ======================================================================================

def default_settings() -> dict[str, Any]:
    """{session parameter: default} for every setting (chipviz.settings)."""
    return dict(settings.DEFAULTS)


def convert_setting(key: str, value: Any) -> Any:
    """A TOML or URL value for setting `key` (a URL key), validated as a link's would be."""
    return settings.convert(key, value)


def chip_config(values: dict) -> ChipConfig:
    """The chip a session with these settings trains on (the session's own construction)."""
    return settings.chip_config(values)


def train_settings(values: dict):
    return settings.train_settings(values)


def _key(values: dict) -> tuple:
    return tuple(sorted((k, v) for k, v in values.items() if k != "steps_per_second"))


def _close(word: str, allowed) -> str:
    """' (did you mean 'x'?)' for an error message when `word` is close to an allowed one, else ''."""
    import difflib

    match = difflib.get_close_matches(word, list(allowed), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


def parse_number(text: str) -> float | None:
    """A number typed by a student: '14', ' 1,746 ', '28.6%', '１４', '3.2 cycles'; None if not one."""
    t = unicodedata.normalize("NFKC", str(text)).strip()
    t = t.replace("−", "-").replace("％", "%")
    match = re.fullmatch(r"([-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*%?\s*[^\d\s.,%]*", t)
    if not match or not re.search(r"\d", match.group(1)):
        return None
    try:
        value = float(match.group(1).replace(",", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None
