"""LessonView: the classroom lessons played inside the dashboard.

`LessonView(dashboard)` shows a lesson chooser, Back / Next, progress, the step's text, what to
look at, a "predict, then run" question with its check, and the teacher's exercises; every
step puts the dashboard's session, GEMM shown, cycle and controls in the state the lesson
file asks for. All text, the lessons' and this view's own, exists in English and Chinese
(`lang`; inside the dashboard it is linked both ways to Dashboard.lang, the language of the
whole interface). The lessons themselves are data (lessons/<lang>/*.md, parsed by lessons.py).

Served, it reads and writes the URL keys of lessons.LESSON_KEYS (lesson, step, lang, hide,
lock), so a teacher's link such as ?lesson=3&step=2&lang=zh&hide=lr,batch&lock=rows,cols opens
that step with those controls hidden or locked.
"""
from __future__ import annotations

import panel as pn
import param

from .. import lessons as L
from .document import page_location

PANEL_WIDTH = 430


class LessonView(pn.viewable.Viewer):
    lang = param.Selector(default="en", objects=list(L.LANGUAGES), doc="language of the lessons and labels")
    lesson = param.Integer(default=1, doc="number of the lesson shown")
    step = param.Integer(default=1, bounds=(1, None), doc="step shown (1-based)")
    link_hide = param.List(default=[], doc="controls hidden by the teacher's link, on top of the lesson's")
    link_lock = param.List(default=[], doc="controls locked by the teacher's link, on top of the lesson's")
    notices = param.List(default=[], doc="notices of the last link or step applied")

    def __init__(self, dashboard, lessons_root=None, sync_url: bool = True, apply: bool = True, **params):
        super().__init__(**params)
        self.dashboard = dashboard
        self.root = lessons_root
        self._feedback_for = None
        self._busy = False

        self.lang_toggle = pn.widgets.RadioButtonGroup(options={"EN": "en", "中文": "zh"}, value=self.lang,
                                                       margin=(5, 10), width=110)
        self.lesson_select = pn.widgets.Select(options={}, sizing_mode="stretch_width")
        self.back_button = pn.widgets.Button(label="", width=110)
        self.next_button = pn.widgets.Button(label="", color="primary", width=110)
        self.progress = pn.indicators.Progress(value=1, max=1, sizing_mode="stretch_width", height=20,
                                               bar_color="primary", margin=(0, 10, 12, 10))
        self.progress_text = pn.pane.HTML("", margin=(0, 10))
        self.intro = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.goals = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.about = pn.Card(self.intro, self.goals, title="", collapsed=False, sizing_mode="stretch_width")
        self.step_title = pn.pane.Markdown("", sizing_mode="stretch_width", margin=(0, 10))
        self.step_text = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.look = pn.pane.Alert("", alert_type="info", sizing_mode="stretch_width")
        self.prompt = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.number_input = pn.widgets.TextInput(placeholder="", sizing_mode="stretch_width")
        self.choice_input = pn.widgets.RadioBoxGroup(options={}, inline=False, sizing_mode="stretch_width")
        self.check_button = pn.widgets.Button(label="", color="success", width=120)
        self.feedback = pn.pane.Alert("", alert_type="success", visible=False, sizing_mode="stretch_width")
        self.question_card = pn.Card(self.prompt, self.number_input, self.choice_input, self.check_button,
                                     self.feedback, title="", collapsible=False, sizing_mode="stretch_width",
                                     header_background="#fff3cd")
        self.done = pn.pane.Alert("", alert_type="success", visible=False, sizing_mode="stretch_width")
        self.exercises = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.exercise_card = pn.Card(self.exercises, title="", collapsed=True, sizing_mode="stretch_width")
        self.error = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width")

        self.lang_toggle.param.watch(lambda e: setattr(self, "lang", e.new), "value")
        self.lesson_select.param.watch(self._on_select, "value")
        self.back_button.on_click(lambda _: self.back())
        self.next_button.on_click(lambda _: self.next())
        self.check_button.on_click(lambda _: self.check())
        if "enter_pressed" in self.number_input.param:  # Enter in the number box checks too
            self.number_input.param.watch(lambda e: self.check() if e.new else None, "enter_pressed")
        self.param.watch(self._on_position, ["lesson", "step"])
        self.param.watch(self._on_lang, "lang")

        self._refresh_options()
        if apply:
            self._apply()
        self._render()
        if sync_url and pn.state.curdoc is not None:
            pn.state.onload(self._read_url)

    # ----- lessons -----
    def lessons(self) -> list[L.Lesson]:
        return L.cached_lessons(self.lang, self.root)

    @property
    def current_lesson(self) -> L.Lesson | None:
        lessons = self.lessons()
        return next((l for l in lessons if l.number == self.lesson), lessons[0] if lessons else None)

    @property
    def current_step(self) -> L.Step | None:
        lesson = self.current_lesson
        if lesson is None:
            return None
        return lesson.steps[min(self.step, len(lesson.steps)) - 1]

    # ----- navigation -----
    def go(self, lesson: int | None = None, step: int | None = None) -> None:
        """Open a lesson (by number) at a step (1-based); applies the step's state."""
        numbers = [l.number for l in self.lessons()]
        lesson = self.lesson if lesson is None else lesson
        if lesson not in numbers:
            raise ValueError(f"no lesson {lesson}; lessons are {numbers}")
        target = next(l for l in self.lessons() if l.number == lesson)
        step = 1 if step is None else step
        if not 1 <= step <= len(target.steps):
            raise ValueError(f"lesson {lesson} has steps 1 to {len(target.steps)}, not {step}")
        if (lesson, step) == (self.lesson, self.step):
            self._apply()
            self._render()
        else:
            self.param.update(lesson=lesson, step=step)

    def next(self) -> None:
        lesson = self.current_lesson
        if lesson and self.step < len(lesson.steps):
            self.step += 1

    def back(self) -> None:
        if self.step > 1:
            self.step -= 1

    def _on_select(self, event):
        if event.new is not None and event.new != self.lesson and not self._busy:
            self.param.update(lesson=event.new, step=1)

    def _on_position(self, *_):
        self._apply()
        self._render()
        self._write_url()

    def _on_lang(self, event):
        if self.lang_toggle.value != event.new:
            self.lang_toggle.value = event.new
        self._refresh_options()
        self._render()
        self._write_url()

    def _refresh_options(self):
        self._busy = True
        try:
            lessons = self.lessons()
            self.lesson_select.options = {f"{l.number} · {l.title}": l.number for l in lessons}
            if lessons and self.lesson not in [l.number for l in lessons]:
                self.lesson = lessons[0].number
            self.lesson_select.value = self.lesson
        finally:
            self._busy = False

    # ----- applying a step to the dashboard -----
    def _apply(self) -> None:
        lesson, step = self.current_lesson, self.current_step
        if step is None:
            return
        d = self.dashboard
        before = list(getattr(d, "notices", []))
        try:
            applied = L.apply_step(step, d.session, lesson, self.link_hide, self.link_lock)
        except ValueError as exc:  # a lesson that does not fit this app: say so, keep going
            self.error.object = str(exc)
            self.error.visible = True
            return
        self.error.visible = False
        controls = getattr(d, "controls", None)
        if controls is not None:
            controls.hidden_controls = applied.hide
            controls.locked_controls = applied.lock
        if step.view.pace is not None and "pace" in getattr(d, "param", {}):
            d.pace = step.view.pace
        if applied.op is not None:
            self._show_op(applied.op, applied.cycle)
        if step.view.tab is not None:
            self._open_tab(step.view.tab)
        self.notices = applied.notices
        if hasattr(d, "notices"):
            d.notices = before + applied.notices  # the lesson's own reset is not news

    def _show_op(self, index: int, cycle: int | None) -> None:
        d = self.dashboard
        show = getattr(d, "show_op", None)
        if callable(show):  # the dashboard's public API, once it has one
            show(index, cycle=cycle)
            return
        load = getattr(d, "_load_op", None)
        if load is None:
            return
        load(index)
        pe = getattr(d, "pe_array", None)
        if cycle is not None and pe is not None and pe.trace is not None:
            try:
                pe.seek(cycle)
            except ValueError:
                pass

    def _open_tab(self, name: str) -> None:
        """Open the dashboard's plot tab `name` (one of lessons.PLOT_TABS)."""
        plots = getattr(self.dashboard, "plots", None)
        keys = getattr(plots, "TAB_KEYS", ())
        if f"tab.{name}" in keys:
            plots.tabs().active = list(keys).index(f"tab.{name}")

    def release_controls(self) -> None:
        """Leave lesson mode: show and unlock every control again."""
        controls = getattr(self.dashboard, "controls", None)
        if controls is not None:
            controls.hidden_controls = []
            controls.locked_controls = []

    # ----- the question -----
    def check(self):
        """Check the answer typed or chosen; show right/wrong with the explanation."""
        step = self.current_step
        if step is None or step.question is None:
            return None
        q = step.question
        answer = self.number_input.value if q.kind == "number" else self.choice_input.value
        context = L.AnswerContext(session=self.dashboard.session, op=getattr(self.dashboard, "op", None))
        try:
            feedback = L.check_answer(q, answer, context)
        except ValueError as exc:
            self.feedback.alert_type = "warning"
            self.feedback.object = str(exc)
            self.feedback.visible = True
            return None
        if feedback.expected is None:
            self.feedback.alert_type = "warning"
        else:
            self.feedback.alert_type = "success" if feedback.correct else "danger"
        self.feedback.object = feedback.explanation
        self.feedback.visible = True
        return feedback

    # ----- text -----
    def _render(self) -> None:
        lang = self.lang
        lesson, step = self.current_lesson, self.current_step
        self.back_button.label = L.ui(lang, "back")
        self.next_button.label = L.ui(lang, "next")
        self.check_button.label = L.ui(lang, "check")
        self.number_input.placeholder = L.ui(lang, "number_hint")
        self.question_card.title = L.ui(lang, "question")
        self.exercise_card.title = L.ui(lang, "exercises")
        if lesson is None or step is None:
            self.step_title.object = ""
            self.step_text.object = ""
            return
        n = len(lesson.steps)
        self.progress.max = n
        self.progress.value = self.step
        self.progress_text.object = f"<b>{L.ui(lang, 'step_of', i=self.step, n=n)}</b>"
        self.back_button.disabled = self.step <= 1
        self.next_button.disabled = self.step >= n
        self.about.title = f"{lesson.number} · {lesson.title}"
        self.about.collapsed = self.step > 1
        plan = []
        if lesson.minutes:
            plan.append(L.ui(lang, "minutes", minutes=lesson.minutes))
        if lesson.requires:
            plan.append(L.ui(lang, "requires", numbers=", ".join(str(n) for n in lesson.requires)))
        plan_text = f"*{' · '.join(plan)}*\n\n" if plan else ""
        self.intro.object = plan_text + L.render_lesson_text(lesson, lesson.intro)
        goals = "\n".join(f"- {L.render_lesson_text(lesson, g)}" for g in lesson.goals)
        self.goals.object = f"**{L.ui(lang, 'goals')}**\n\n{goals}"
        self.step_title.object = f"### {L.ui(lang, 'step_title', i=self.step, title=step.title)}"
        self.step_text.object = L.render_step(step)
        self.look.object = f"**{L.ui(lang, 'look')}:** {L.render_step(step, step.look)}" if step.look else ""
        self.look.visible = bool(step.look)
        q = step.question
        self.question_card.visible = q is not None
        key = (lesson.id, self.step)
        if q is not None:
            self.prompt.object = L.render_step(step, q.prompt)
            self.number_input.visible = q.kind == "number"
            self.choice_input.visible = q.kind == "choice"
            if q.kind == "choice":
                self.choice_input.options = {L.render_step(step, q.label(c)): c for c in q.choices}
            if self._feedback_for != key:
                self.number_input.value = ""
                self.choice_input.value = None
                self.feedback.visible = False
        self._feedback_for = key
        self.done.object = L.ui(lang, "done")
        self.done.visible = self.step >= n
        parts = []
        for i, ex in enumerate(lesson.exercises, start=1):
            parts.append(f"**{i}. {ex.title}**\n\n{L.render_lesson_text(lesson, ex.text)}\n\n"
                         f"*{L.ui(lang, 'answer')}:* {L.render_lesson_text(lesson, ex.answer)}")
        self.exercises.object = "\n\n---\n\n".join(parts)

    # ----- links -----
    def apply_query(self, query: dict) -> list[str]:
        """Open the lesson position a URL query gives (lesson, step, lang, hide, lock); return notices."""
        values, notices = L.lesson_state_from_query(query, self.root)
        if not any(k in values for k in ("lesson", "step", "lang", "hide", "lock")):
            self.notices = notices
            return notices
        with param.parameterized.discard_events(self):
            if "lang" in values:
                self.lang = values["lang"]
            if "hide" in values:
                self.link_hide = values["hide"]
            if "lock" in values:
                self.link_lock = values["lock"]
            if "lesson" in values:
                self.lesson = values["lesson"]
                self.step = 1
            if "step" in values:
                self.step = values["step"]
        self.lang_toggle.value = self.lang
        self._refresh_options()
        self._apply()
        self._render()
        self.notices = notices + self.notices
        if notices and hasattr(self.dashboard, "notices"):
            self.dashboard.notices = list(self.dashboard.notices) + notices
        return notices

    def query(self) -> dict[str, str]:
        """The URL query of the position shown (the teacher's link)."""
        return L.lesson_query(self.lesson, self.step, self.lang, self.link_hide, self.link_lock)

    def _read_url(self):
        location = page_location()
        if location is None:
            return
        query = {k: v for k, v in (location.query_params or {}).items() if k in L.LESSON_KEYS}
        if query:
            self.apply_query(query)
        self._write_url()

    def _write_url(self):
        if not getattr(self.dashboard, "lesson_mode", True):
            return  # a dashboard outside lesson mode writes the URL (with the shared lang) itself
        write = getattr(self.dashboard, "_write_url", None)
        if callable(write):
            write()  # the dashboard writes the whole link: its settings, view and this lesson position
            return
        location = page_location()
        if location is not None and pn.state.curdoc is not None:
            location.update_query(**self.query())

    # ----- layout -----
    def __panel__(self):
        header = pn.Row(pn.pane.HTML(f"<b style='font-size:1.2em'>{L.ui('en', 'lesson_mode')} · "
                                     f"{L.ui('zh', 'lesson_mode')}</b>", margin=(10, 10)),
                        pn.layout.HSpacer(), self.lang_toggle, sizing_mode="stretch_width")
        nav = pn.Row(self.back_button, pn.layout.HSpacer(), self.next_button, sizing_mode="stretch_width")
        return pn.Column(header, self.lesson_select, self.progress_text, self.progress, self.about,
                         self.error, self.step_title, self.step_text, self.look, self.question_card, nav,
                         self.done, self.exercise_card, width=PANEL_WIDTH, styles={"padding-right": "8px"})
