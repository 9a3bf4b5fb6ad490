"""The lesson data: a Lesson is a list of Steps (each with its View and perhaps a Question)
and Exercises, as the parser builds them from a file. The file format is documented in the
package docstring (chipviz/lessons/__init__.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .measures import MEASURES, Measure, Query


class LessonError(ValueError):
    """A lesson file that cannot be used; the message starts with `file:line:`."""


@dataclass(frozen=True)
class View:
    op: str | None = None
    cycle: int | None = None
    train_steps: int | None = None
    hide: tuple[str, ...] = ()
    lock: tuple[str, ...] = ()
    tab: str | None = None  # the plot tab opened (PLOT_TABS)
    pace: str | None = None  # the animation's pace: "tour" or "every"


# the dashboard's plot tabs, in order (chipviz.app.plots TAB_KEYS: "tab.<name>")
PLOT_TABS = ("boundary", "descent", "utilization", "energy", "roofline", "design")
PACES = ("tour", "every")


@dataclass(frozen=True)
class Question:
    kind: str  # "number" or "choice"
    prompt: str
    explanation: str
    spec: dict  # the [question] table as written
    query: Query
    language: str
    choices: tuple[str, ...] = ()
    labels: dict = field(default_factory=dict)
    over: tuple[dict, ...] = ()  # per choice: the changes that make it (choice questions with `over`)
    choose: str | None = None  # "min" or "max"
    minus: dict | None = None
    divided_by: dict | None = None
    tolerance: float | None = None
    rel_tolerance: float | None = None
    source: str = "lesson"  # or "app": measure the live session
    line: int = 0
    source_file: str = ""
    bins: tuple[float, ...] = ()  # choice questions: limits between the choices' ranges
    # tempting wrong answers, each with its own explanation: {choice: text} (choice questions) or
    # {number: text} (number questions); shown before the explanation to a student who gave that answer
    tempting: dict = field(default_factory=dict)
    # the step's own (settings key, op, train steps): the explanation and the tempting answers are texts of
    # the step, rendered in its state, not in the question's (whose chip = …, net = … change only the measure)
    context: tuple | None = None

    @property
    def measure(self) -> Measure:
        return MEASURES[self.query.measure]

    def label(self, choice: str) -> str:
        return self.labels.get(choice, choice)


@dataclass(frozen=True)
class Step:
    number: int  # 1-based
    title: str
    text: str
    state: dict  # the TOML block as written (without [question])
    settings: dict  # effective settings: TrainingSession parameter -> value
    view: View
    look: str
    question: Question | None
    language: str
    line: int
    source_file: str

    @property
    def hide(self) -> tuple[str, ...]:
        return self.view.hide

    @property
    def lock(self) -> tuple[str, ...]:
        return self.view.lock


@dataclass(frozen=True)
class Exercise:
    title: str
    text: str
    answer: str
    line: int


@dataclass(frozen=True)
class Lesson:
    id: str  # the file's stem, e.g. "01-processing-element"
    number: int
    language: str
    title: str
    intro: str
    goals: tuple[str, ...]
    steps: tuple[Step, ...]
    exercises: tuple[Exercise, ...]
    settings: dict  # the lesson's starting settings
    hide: tuple[str, ...]
    lock: tuple[str, ...]
    path: str
    minutes: int | None = None  # class time the lesson needs (the teacher's plan)
    requires: tuple[int, ...] = ()  # lessons to do first

    @property
    def slug(self) -> str:
        return self.id.split("-", 1)[1] if "-" in self.id else self.id
