"""Reading lesson files: the Markdown + TOML parser (the format is documented in the package
docstring, chipviz/lessons/__init__.py) and the loaders, with every problem reported as
LessonError "file:line: message".
"""
from __future__ import annotations

import math
import os
from dataclasses import replace
import re
import tomllib
from functools import lru_cache
from pathlib import Path

from ..data.digits import shipped_path
from .common import LANGUAGES, SETTING_KEYS, _close, _key, convert_setting, default_settings, parse_number
from .measures import MAX_TRAIN_STEPS, MEASURES, OP_REF, SWEEP_ARGS, TEXT_MEASURES, Query, sweep_arg
from .model import PACES, PLOT_TABS, Exercise, Lesson, LessonError, Question, Step, View
from .placeholders import placeholders_in, resolve_placeholder

# CHIPVIZ_LESSONS overrides; else the repository's lessons/ (a checkout) or the copy a wheel installed
LESSONS_DIR = Path(os.environ["CHIPVIZ_LESSONS"]) if "CHIPVIZ_LESSONS" in os.environ else shipped_path("lessons")

CHIP_KEYS = ("rows", "cols", "dataflow", "clock", "sram", "bw", "precision")
NET_KEYS = ("dataset", "model", "filters", "kernel", "hidden", "w1", "w2", "w3", "w4", "act", "opt", "lr", "batch",
            "seed", "precision", "noise")
VIEW_KEYS = ("op", "cycle", "train_steps", "hide", "lock", "tab", "pace")
LESSON_BLOCK_KEYS = ("hide", "lock", "minutes", "requires")
QUESTION_KEYS = ("type", "measure", "gemm", "op", "steps", "chip", "net", "source", "tolerance", "rel_tolerance",
                 "choices", "over", "choose", "bins", "minus", "divided_by", "sweep")
OVERRIDE_EXTRA = ("m", "k", "n", "steps", "op", "measure")

# Section headings, accepted in either language
SECTIONS = {"goals": ("goals", "learning goals", "学习目标", "目标"),
            "step": ("step", "步骤"),
            "exercises": ("exercises", "exercise", "练习", "教师练习")}
SUBSECTIONS = {"look": ("look", "观察"), "question": ("question", "问题"), "explanation": ("explanation", "解释"),
               "tempting": ("tempting answers", "tempting", "常见误答")}
ANSWER_LINE = re.compile(r"^\s*(\*\*)?\s*(answer|答案)\s*[:：]\s*(\*\*)?\s*", re.IGNORECASE)
FENCE = re.compile(r"^\s*(```+|~~~+)\s*([A-Za-z0-9_-]*)\s*$")


def _display_path(path) -> str:
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


class _Parser:
    def __init__(self, text: str, path: str, language: str):
        self.path = path
        self.where = _display_path(path)
        self.language = language
        self.lines = text.splitlines()

    def error(self, line: int, message: str) -> LessonError:
        return LessonError(f"{self.where}:{line}: {message}")

    # ----- structure -----
    def parse(self, number: int, lesson_id: str) -> Lesson:
        blocks = self._split()
        title_line, title = blocks["title"]
        lesson_settings = default_settings()
        hide: tuple = ()
        lock: tuple = ()
        intro_text, intro_toml = self._body(blocks["intro"], allow_toml=True)
        if intro_toml:
            table, start, block = intro_toml
            lesson_settings, extra = self._state(table, start, block, lesson_settings, LESSON_BLOCK_KEYS)
            hide, lock = extra.get("hide", ()), extra.get("lock", ())
            minutes, requires = extra.get("minutes"), extra.get("requires", ())
        else:
            minutes, requires = None, ()
        if number in requires:
            raise self.error(intro_toml[1], f"requires = {list(requires)}: a lesson cannot require itself")
        self.lesson_settings = lesson_settings
        self._check_placeholders(intro_text, blocks["intro"], settings=lesson_settings)
        goals = self._goals(blocks["goals"]) if blocks["goals"] else None
        if not goals:
            line = blocks["goals_line"] or title_line
            raise self.error(line, "no learning goals: add a '## Goals' (or '## 学习目标') section with a bullet list")
        steps = []
        settings = lesson_settings
        for step_line, step_title, body in blocks["steps"]:
            step = self._step(len(steps) + 1, step_line, step_title, body, settings)
            steps.append(step)
            settings = step.settings
        if not steps:
            raise self.error(title_line, "no steps: add at least one '## Step: title' (or '## 步骤：title') section")
        exercises = self._exercises(blocks["exercises"], blocks["exercises_line"]) if blocks["exercises_line"] else ()
        return Lesson(lesson_id, number, self.language, title, intro_text, tuple(goals), tuple(steps),
                      tuple(exercises), lesson_settings, tuple(hide), tuple(lock), self.path, minutes,
                      tuple(requires))

    def _split(self) -> dict:
        """Cut the file into title, intro, goals, steps and exercises (lines keep their numbers)."""
        out = {"title": None, "intro": [], "goals": [], "goals_line": 0, "steps": [], "exercises": [],
               "exercises_line": 0}
        current = None
        in_fence = None
        for number, line in enumerate(self.lines, start=1):
            fence = FENCE.match(line)
            if in_fence:
                if fence and fence.group(1)[0] == in_fence[0] and len(fence.group(1)) >= len(in_fence) \
                        and not fence.group(2):
                    in_fence = None
                self._append(out, current, number, line)
                continue
            if fence:
                in_fence = fence.group(1)
                if out["title"] is None:
                    raise self.error(number, "missing title: the file must start with a '# Title' line")
                self._append(out, current, number, line)
                continue
            if out["title"] is None:
                if not line.strip():
                    continue
                if line.startswith("# ") and line[2:].strip():
                    out["title"] = (number, line[2:].strip())
                    current = "intro"
                    continue
                raise self.error(number, "missing title: the file must start with a '# Title' line, got "
                                         f"{line.strip()[:40]!r}")
            if line.startswith("# "):
                raise self.error(number, "a second '# ' title; sections start with '## ' (Goals, Step: …, Exercises)")
            if line.startswith("## "):
                kind, rest = self._heading(line[3:], SECTIONS, number, "## ")
                if kind == "goals":
                    if out["goals_line"]:
                        raise self.error(number, f"a second goals section (the first is at line {out['goals_line']})")
                    out["goals_line"] = number
                    current = "goals"
                elif kind == "step":
                    if out["exercises_line"]:
                        raise self.error(number, "a step after the exercises: exercises come last")
                    if not rest:
                        raise self.error(number, "a step needs a title: '## Step: title' (or '## 步骤：标题')")
                    out["steps"].append((number, rest, []))
                    current = "step"
                else:
                    if out["exercises_line"]:
                        raise self.error(number, "a second exercises section")
                    out["exercises_line"] = number
                    current = "exercises"
                continue
            self._append(out, current, number, line)
        if in_fence:
            raise self.error(len(self.lines), f"a code block opened with {in_fence} is never closed")
        if out["title"] is None:
            raise self.error(1, "missing title: the file must start with a '# Title' line")
        return out

    @staticmethod
    def _append(out, current, number, line):
        if current == "step":
            out["steps"][-1][2].append((number, line))
        elif current in ("intro", "goals", "exercises"):
            out[current].append((number, line))

    def _heading(self, text: str, table: dict, number: int, marks: str) -> tuple[str, str]:
        """(section kind, the rest of the heading) for a heading in either language."""
        stripped = text.strip()
        low = stripped.lower()
        for kind, words in table.items():
            for word in sorted(words, key=len, reverse=True):
                if low.startswith(word):
                    rest = stripped[len(word):]
                    if rest and rest[0] not in ":： \t":
                        continue
                    return kind, rest.lstrip(":： \t").strip()
        allowed = ", ".join(f"{marks}{words[0].capitalize()}" for words in table.values())
        raise self.error(number, f"unknown section heading {marks}{stripped!r} (allowed: {allowed}, "
                                 f"or in Chinese: {', '.join(marks + w[-1] for w in table.values())})")

    def _body(self, lines, allow_toml: bool, what: str = "lesson introduction"):
        """(Markdown text, (TOML table, first line, block lines) or None) of a section's lines."""
        text, toml_block = [], None
        i = 0
        while i < len(lines):
            number, line = lines[i]
            fence = FENCE.match(line)
            if fence and fence.group(2).lower() == "toml":
                end = i + 1
                while end < len(lines) and not (FENCE.match(lines[end][1]) and not FENCE.match(lines[end][1]).group(2)):
                    end += 1
                block = lines[i + 1:end]
                if not allow_toml:
                    raise self.error(number, f"a ```toml block is not allowed in the {what}")
                if toml_block is not None:
                    raise self.error(number, f"a second ```toml block in the {what} (the first is at line "
                                             f"{toml_block[1] - 1}); put all settings in one block")
                table = self._toml(block, number + 1)
                toml_block = (table, number + 1, block)
                i = end + 1
                continue
            text.append((number, line))
            i += 1
        return _join(text), toml_block

    def _toml(self, block, first_line: int) -> dict:
        source = "\n".join(line for _, line in block)
        try:
            return tomllib.loads(source)
        except tomllib.TOMLDecodeError as exc:
            message = str(exc)
            at = re.search(r"\(at line (\d+), column (\d+)\)", message)
            line = first_line + int(at.group(1)) - 1 if at else first_line
            message = re.sub(r"\s*\(at line \d+, column \d+\)", "", message)
            if at:
                message += f" (column {at.group(2)})"
            raise self.error(line, f"invalid TOML: {message}") from None

    def _key_line(self, block, first_line: int, key: str, after: int = 0) -> int:
        pattern = re.compile(rf'(^|[\s{{,\[])"?{re.escape(key)}"?\s*=')
        for offset, (number, line) in enumerate(block):
            if number >= after and pattern.search(line.split("#", 1)[0]):
                return number
        return first_line

    def _state(self, table: dict, first_line: int, block, base: dict, view_keys) -> tuple[dict, dict]:
        """(effective settings, {view key: value}) of a TOML block; every key and value checked."""
        settings = dict(base)
        view = {}
        allowed = sorted(SETTING_KEYS) + list(view_keys)
        for key, value in table.items():
            line = self._key_line(block, first_line, key)
            if key == "question" and "question" in view_keys:
                continue  # checked by _question
            if key in SETTING_KEYS:
                try:
                    settings[SETTING_KEYS[key]] = convert_setting(key, value)
                except ValueError as exc:
                    raise self.error(line, f"{key} = {value!r}: {exc}") from None
            elif key in view_keys:
                view[key] = self._view_value(key, value, line)
            else:
                hint = _close(key, allowed)
                raise self.error(line, f"unknown state key {key!r}{hint} (allowed: {', '.join(allowed)}"
                                       f"{', [question]' if 'op' in view_keys else ''})")
        return settings, view

    def _view_value(self, key: str, value, line: int):
        if key == "minutes":
            return self._whole(value, "minutes", line, 1, 600)
        if key == "requires":
            if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v < 100
                                                      for v in value):
                raise self.error(line, "requires must be a list of lesson numbers, e.g. [1, 2]")
            return tuple(value)
        if key in ("tab", "pace"):
            allowed = PLOT_TABS if key == "tab" else PACES
            if value not in allowed:
                raise self.error(line, f"{key} = {value!r}: must be one of {', '.join(allowed)}")
            return value
        if key in ("hide", "lock"):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise self.error(line, f"{key} must be a list of control keys, e.g. [\"lr\", \"batch\"]")
            bad = [v for v in value if v not in SETTING_KEYS]
            if bad:
                raise self.error(line, f"{key}: unknown control {bad[0]!r} (allowed: {', '.join(SETTING_KEYS)})")
            return tuple(value)
        if key == "op":
            if not isinstance(value, str) or not OP_REF.match(value):
                raise self.error(line, f"op = {value!r}: must name a GEMM of the training step like "
                                       f"\"L1.forward\", \"L2.dX\" or \"L1.dW\"")
            return value
        limit = MAX_TRAIN_STEPS if key == "train_steps" else 10**9
        low = 1 if key == "train_steps" else 0
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= limit:
            raise self.error(line, f"{key} = {value!r}: must be a whole number from {low} to {limit}")
        return value

    # ----- sections -----
    def _goals(self, lines) -> list[str]:
        goals = []
        for number, line in lines:
            item = re.match(r"^\s*(?:[-*+]|\d+[.)])\s+(.*)$", line)
            if item:
                goals.append(item.group(1).strip())
            elif line.strip() and goals and line.startswith((" ", "\t")):
                goals[-1] += " " + line.strip()
            elif line.strip():
                raise self.error(number, "the goals section is a bullet list ('- goal'), got "
                                         f"{line.strip()[:40]!r}")
        self._check_placeholders("\n".join(goals), lines, settings=self.lesson_settings)
        return goals

    def _step(self, index: int, line: int, title: str, body, base: dict) -> Step:
        parts = {"text": []}
        part = "text"
        seen = {}
        in_fence = False
        for number, text in body:
            fence = FENCE.match(text)
            if fence and not in_fence:
                in_fence = True
            elif fence and not fence.group(2):
                in_fence = False
            if not in_fence and text.startswith("### "):
                kind, rest = self._heading(text[4:], SUBSECTIONS, number, "### ")
                if kind in seen:
                    raise self.error(number, f"a second ### {kind} section in this step (the first is at line "
                                             f"{seen[kind]})")
                seen[kind] = number
                part = kind
                parts[kind] = [(number, rest)] if rest else []
                continue
            parts.setdefault(part, []).append((number, text))
        text, toml_block = self._body(parts["text"], allow_toml=True, what=f"step {index}")
        for kind in ("look", "question", "explanation", "tempting"):
            if kind in parts:
                for number, t in parts[kind]:
                    if FENCE.match(t) and FENCE.match(t).group(2).lower() == "toml":
                        raise self.error(number, "the step's ```toml block belongs before its ### sections")
        table, first, block = toml_block if toml_block else ({}, line, [])
        settings, view = self._state(table, first, block, base, VIEW_KEYS + ("question",))
        state = {k: v for k, v in table.items() if k != "question"}
        vw = View(view.get("op"), view.get("cycle"), view.get("train_steps"), view.get("hide", ()),
                  view.get("lock", ()), view.get("tab"), view.get("pace"))
        where = dict(settings=settings, op=vw.op, steps=vw.train_steps or 1)
        look = _join(parts.get("look", []))
        prompt_lines = parts.get("question", [])
        question = None
        if "question" in table:
            q = table["question"]
            q_line = self._key_line(block, first, "question") if block else line
            for number, t in block:
                if re.match(r"^\s*\[question\]", t):
                    q_line = number
            if not isinstance(q, dict):
                raise self.error(q_line, "question must be a table: [question] then type = …, measure = …")
            if "question" not in parts:
                raise self.error(q_line, "this step has a [question] but no '### Question' (or '### 问题') "
                                         "section with its prompt")
            if "explanation" not in parts:
                raise self.error(q_line, "this step has a [question] but no '### Explanation' (or '### 解释') "
                                         "section shown after the answer")
            question = self._question(q, q_line, block, prompt_lines, _join(parts["explanation"]), where)
            if "tempting" in parts:
                question = self._tempting(question, parts["tempting"], seen["tempting"], where)
        elif "question" in parts or "explanation" in parts or "tempting" in parts:
            number = seen.get("question") or seen.get("explanation") or seen.get("tempting")
            raise self.error(number, "a question section without a [question] table in the step's ```toml block")
        for kind in ("look", "explanation"):
            self._check_placeholders(_join(parts.get(kind, [])), parts.get(kind, []), **where)
        self._check_placeholders(text, parts["text"], **where)
        return Step(index, title, text, state, settings, vw, look, question, self.language, line, self.where)

    def _question(self, q: dict, q_line: int, block, prompt_lines, explanation: str, where: dict) -> Question:
        def at(key):
            return self._key_line(block, q_line, key, after=q_line)

        for key in q:
            if key not in QUESTION_KEYS:
                raise self.error(at(key), f"unknown question key {key!r}{_close(key, QUESTION_KEYS)} "
                                          f"(allowed: {', '.join(QUESTION_KEYS)})")
        kind = q.get("type")
        if kind not in ("number", "choice"):
            raise self.error(at("type") if "type" in q else q_line,
                             f"question type must be \"number\" or \"choice\", got {kind!r}")
        name = q.get("measure")
        if name not in MEASURES:
            raise self.error(at("measure") if "measure" in q else q_line,
                             f"unknown measure {name!r}{_close(str(name), MEASURES)} "
                             f"(allowed: {', '.join(MEASURES)})")
        measure = MEASURES[name]
        settings = dict(where["settings"])
        for table_name, allowed in (("chip", CHIP_KEYS), ("net", NET_KEYS)):
            table = q.get(table_name, {})
            if not isinstance(table, dict):
                raise self.error(at(table_name), f"{table_name} must be a table like {{ rows = 4 }}")
            for key, value in table.items():
                if key not in allowed:
                    raise self.error(at(key), f"{table_name}: unknown key {key!r} (allowed: {', '.join(allowed)})")
                try:
                    settings[SETTING_KEYS[key]] = convert_setting(key, value)
                except ValueError as exc:
                    raise self.error(at(key), f"{table_name}.{key} = {value!r}: {exc}") from None
        dims = None
        if "gemm" in q:
            g = q["gemm"]
            if not isinstance(g, dict) or sorted(g) != ["k", "m", "n"]:
                raise self.error(at("gemm"), "gemm must be a table { m = …, k = …, n = … } (A is m×k, B is k×n)")
            dims = tuple(self._whole(g[d], f"gemm.{d}", at("gemm"), 1, 1_000_000) for d in "mkn")
        if dims and "op" in q:
            raise self.error(at("op"), "give either gemm = { m, k, n } or op = \"L…\", not both")
        op = q.get("op", where["op"] if not dims else None)
        if op is not None and (not isinstance(op, str) or not OP_REF.match(op)):
            raise self.error(at("op"), f"op = {op!r}: must be like \"L1.forward\", \"L2.dX\" or \"L1.dW\"")
        steps = self._whole(q["steps"], "steps", at("steps"), 1, MAX_TRAIN_STEPS) if "steps" in q else where["steps"]
        source = q.get("source", "lesson")
        if source not in ("lesson", "app"):
            raise self.error(at("source"), f"source must be \"lesson\" (the step's state) or \"app\" (the live "
                                           f"session), got {source!r}")
        if measure.kind in ("gemm", "trace") and not dims and not op and source == "lesson":
            raise self.error(q_line, f"measure {name!r} needs a GEMM: gemm = {{ m = …, k = …, n = … }} or op = "
                                     "\"L1.forward\"")
        sweep = {}
        if "sweep" in q:
            table = q["sweep"]
            if not isinstance(table, dict) or measure.kind != "sweep":
                raise self.error(at("sweep"), "sweep = { space = \"wide\", max_pes = 256, max_uj = 11 } goes with a "
                                              "sweep measure (sweep_…)")
            for key, value in table.items():
                if key not in SWEEP_ARGS:
                    raise self.error(at(key), f"sweep: unknown key {key!r} (allowed: {', '.join(SWEEP_ARGS)})")
                try:
                    sweep[key] = sweep_arg(key, value)
                except ValueError as exc:
                    raise self.error(at(key), f"sweep.{exc}") from None
        query = Query(name, _key(settings), dims, op if not dims else None, steps, tuple(sorted(sweep.items())))
        tol = self._number(q, "tolerance", at)
        rel = self._number(q, "rel_tolerance", at)
        choices, labels, over, choose, bin_limits = (), {}, (), None, ()
        prompt = _join(prompt_lines)
        if kind == "choice":
            raw = q.get("choices")
            if not isinstance(raw, list) or len(raw) < 2 or not all(isinstance(c, str) and c for c in raw) \
                    or len(set(raw)) != len(raw):
                raise self.error(at("choices") if "choices" in q else q_line,
                                 "a choice question needs choices = [\"…\", \"…\"]: two or more different texts")
            choices = tuple(raw)
            if "over" in q:
                table = q["over"]
                if not isinstance(table, dict) or not table:
                    raise self.error(at("over"), "over must be a table of lists, one value per choice, "
                                                 "e.g. over = { dataflow = [\"ws\", \"os\", \"is\"] }")
                per_choice = [dict() for _ in choices]
                for key, values in table.items():
                    if not isinstance(values, list) or len(values) != len(choices):
                        raise self.error(at(key), f"over.{key} must list {len(choices)} values, one per choice")
                    for i, value in enumerate(values):
                        per_choice[i].update(self._override(key, value, at(key), "over", dims))
                over = tuple(per_choice)
                choose = q.get("choose", "min")
                if choose not in ("min", "max"):
                    raise self.error(at("choose"), f"choose must be \"min\" or \"max\", got {choose!r}")
            elif "bins" in q:
                bins = q["bins"]
                ok = isinstance(bins, list) and len(bins) == len(choices) - 1 and all(
                    isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) for b in bins)
                if not ok or sorted(bins) != bins or len(set(bins)) != len(bins):
                    raise self.error(at("bins"), f"bins must list {len(choices) - 1} increasing numbers: the "
                                                 "limits between the choices, e.g. bins = [50, 90] for three choices")
                if measure.fmt == "text":
                    raise self.error(at("bins"), f"bins need a numeric measure, not {name!r}")
                bin_limits = tuple(float(b) for b in bins)
            elif measure.fmt != "text":
                raise self.error(q_line, f"a choice question needs over = {{…}} (which choice gives the min or max "
                                         f"of {name}), bins = […] (which range {name} falls in), or a measure "
                                         f"that answers in words ({', '.join(TEXT_MEASURES)})")
            elif name in TEXT_MEASURES:
                allowed = TEXT_MEASURES[name]
                if sorted(choices) != sorted(allowed):
                    raise self.error(at("choices"), f"{name} answers {' or '.join(allowed)}: choices must be "
                                                    f"{list(allowed)}")
            prompt, labels = _choice_labels(prompt_lines, choices)
        elif measure.fmt == "text":
            raise self.error(at("type"), f"measure {name!r} answers in words: use type = \"choice\"")
        for key in ("over", "choose", "bins"):
            if key in q and kind != "choice":
                raise self.error(at(key), f"{key} is for choice questions (type = \"choice\")")
        minus = self._overrides(q, "minus", at, dims)
        divided = self._overrides(q, "divided_by", at, dims)
        if minus and divided:
            raise self.error(at("divided_by"), "use minus or divided_by, not both")
        if (minus or divided) and kind != "number" and not bin_limits:
            raise self.error(at("minus" if minus else "divided_by"),
                             "minus and divided_by are for number questions and choice questions with bins")
        self._check_placeholders(prompt, prompt_lines, **where)
        return Question(kind, prompt, explanation, dict(q), query, self.language, choices, labels, over, choose,
                        minus, divided, tol, rel, source, q_line, self.where, bin_limits,
                        context=(_key(where["settings"]), where["op"], where["steps"]))

    def _tempting(self, question: Question, lines, heading_line: int, where: dict) -> Question:
        """The '### Tempting answers' section: list items '- answer: why a student might give it'."""
        items = []
        for number, line in lines:
            item = re.match(r"^\s*[-*+]\s+`?([^`:：]+?)`?\s*[:：]\s*(.*)$", line)
            if item:
                items.append([number, item.group(1).strip(), [(number, item.group(2))]])
            elif items and (line.startswith((" ", "\t")) or not line.strip()):
                items[-1][2].append((number, line))
            elif line.strip():
                raise self.error(number, "tempting answers are a list: '- answer: why a student might give it', "
                                         f"got {line.strip()[:40]!r}")
        if not items:
            raise self.error(heading_line, "a tempting-answers section with no '- answer: explanation' item")
        tempting = {}
        for number, key, text_lines in items:
            if question.kind == "choice":
                if key not in question.choices:
                    raise self.error(number, f"tempting answer {key!r} is not one of the choices "
                                             f"({', '.join(question.choices)})")
                value = key
            else:
                value = parse_number(key)
                if value is None:
                    raise self.error(number, f"tempting answer {key!r} is not a number")
            if value in tempting:
                raise self.error(number, f"tempting answer {key!r} is given twice")
            text = _join(text_lines)
            if not text:
                raise self.error(number, f"tempting answer {key!r} has no explanation")
            self._check_placeholders(text, text_lines, **where)
            tempting[value] = text
        return replace(question, tempting=tempting)

    def _overrides(self, q, key, at, dims):
        if key not in q:
            return None
        table = q[key]
        if not isinstance(table, dict) or not table:
            raise self.error(at(key), f"{key} must be a table of changes, e.g. {key} = {{ precision = \"fp32\" }}")
        out = {}
        for k, v in table.items():
            out.update(self._override(k, v, at(key), key, dims))
        return out

    def _override(self, key, value, line, where, dims) -> dict:
        if key in ("m", "k", "n"):
            if not dims:
                raise self.error(line, f"{where}.{key}: a GEMM dimension needs gemm = {{ m, k, n }} in the question")
            return {key: self._whole(value, f"{where}.{key}", line, 1, 1_000_000)}
        if key == "steps":
            return {key: self._whole(value, f"{where}.steps", line, 1, MAX_TRAIN_STEPS)}
        if key == "op":
            if dims or not isinstance(value, str) or not OP_REF.match(value):
                raise self.error(line, f"{where}.op = {value!r}: must be like \"L1.forward\", \"L2.dX\" or "
                                       f"\"L1.dW\" (and the question must not give gemm = …)")
            return {key: value}
        if key == "measure":
            if value not in MEASURES or MEASURES[value].fmt == "text":
                raise self.error(line, f"{where}.measure = {value!r}: must be a numeric measure "
                                       f"({', '.join(n for n, m in MEASURES.items() if m.fmt != 'text')})")
            return {key: value}
        if key not in SETTING_KEYS:
            allowed = sorted(SETTING_KEYS) + list(OVERRIDE_EXTRA)
            raise self.error(line, f"{where}: unknown key {key!r}{_close(key, allowed)} "
                                   f"(allowed: {', '.join(allowed)})")
        try:
            return {SETTING_KEYS[key]: convert_setting(key, value)}
        except ValueError as exc:
            raise self.error(line, f"{where}.{key} = {value!r}: {exc}") from None

    def _whole(self, value, name, line, low, high) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise self.error(line, f"{name} = {value!r}: must be a whole number from {low} to {high:,}")
        return value

    def _number(self, q, key, at):
        if key not in q:
            return None
        value = q[key]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
            raise self.error(at(key), f"{key} = {value!r}: must be a number >= 0")
        return float(value)

    def _exercises(self, lines, heading_line) -> list[Exercise]:
        exercises = []
        current = None
        for number, line in lines:
            if line.startswith("### "):
                current = [line[4:].strip(), number, [], None]
                exercises.append(current)
                continue
            if current is None:
                if line.strip():
                    raise self.error(number, "exercises start with '### title' (then the text, then "
                                             "'**Answer:** …' or '**答案：** …')")
                continue
            answer = ANSWER_LINE.match(line)
            if answer and current[3] is None:
                current[3] = [(number, line[answer.end():])]
            elif current[3] is not None:
                current[3].append((number, line))
            else:
                current[2].append((number, line))
        if not exercises:
            raise self.error(heading_line, "an exercises section with no '### title' exercise in it")
        out = []
        for title, number, text, answer in exercises:
            if answer is None:
                raise self.error(number, f"exercise {title!r} has no answer: add a line '**Answer:** …' "
                                         "(or '**答案：** …')")
            self._check_placeholders(_join(text), text, settings=self.lesson_settings)
            self._check_placeholders(_join(answer), answer, settings=self.lesson_settings)
            out.append(Exercise(title, _join(text), _join(answer), number))
        return out

    # ----- placeholders -----
    def _check_placeholders(self, _text, lines, settings=None, op=None, steps=1):
        for number, line in lines:
            try:
                for spec in placeholders_in(line):
                    resolve_placeholder(spec, settings or default_settings(), op, steps)
            except ValueError as exc:
                raise self.error(number, str(exc)) from None


def _join(lines) -> str:
    text = "\n".join(line for _, line in lines)
    return text.strip("\n").rstrip()


def _choice_labels(lines, choices) -> tuple[str, dict]:
    """Prompt text and {choice: label} from list items '- choice: label' in the question section."""
    labels, kept = {}, []
    for number, line in lines:
        item = re.match(r"^\s*[-*+]\s+`?([^`:：]+?)`?\s*[:：]\s*(.+)$", line)
        if item and item.group(1).strip() in choices:
            labels[item.group(1).strip()] = item.group(2).strip()
        else:
            kept.append((number, line))
    return _join(kept), labels


# ======================================================================================
# Loading
# ======================================================================================

def parse_lesson(text: str, path: str = "<lesson>", language: str = "en") -> Lesson:
    """Parse the text of a lesson file; LessonError names the file and line of any problem."""
    stem = Path(path).stem
    match = re.match(r"^(\d+)", stem)
    if not match:
        raise LessonError(f"{_display_path(path)}:1: the file name must start with the lesson's number, "
                          f"e.g. 03-dataflows.md")
    return _Parser(text, str(path), language).parse(int(match.group(1)), stem)


def load_lesson(path) -> Lesson:
    path = Path(path)
    language = path.parent.name if path.parent.name in LANGUAGES else "en"
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise LessonError(f"{_display_path(path)}:1: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return parse_lesson(text, str(path), language)


def lesson_files(lang: str, root=None) -> list[Path]:
    if lang not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, got {lang!r}")
    folder = Path(root or LESSONS_DIR) / lang
    return sorted(folder.glob("*.md")) if folder.is_dir() else []


def load_lessons(lang: str = "en", root=None) -> list[Lesson]:
    """Every lesson of a language, in order of their numbers (two files with one number: an error)."""
    lessons = [load_lesson(p) for p in lesson_files(lang, root)]
    seen = {}
    for lesson in lessons:
        if lesson.number in seen:
            raise LessonError(f"{_display_path(lesson.path)}:1: lesson number {lesson.number} is also used by "
                              f"{_display_path(seen[lesson.number])}")
        seen[lesson.number] = lesson.path
    return sorted(lessons, key=lambda l: l.number)


@lru_cache(maxsize=8)
def _cached_lessons(lang: str, root: str, stamp: tuple) -> tuple:
    return tuple(load_lessons(lang, root))


def cached_lessons(lang: str, root=None) -> list[Lesson]:
    """load_lessons, reloaded only when a file changes (for the app)."""
    files = lesson_files(lang, root)
    stamp = tuple((str(p), p.stat().st_mtime_ns) for p in files)
    return list(_cached_lessons(lang, str(root or LESSONS_DIR), stamp))
