"""The ChipViz dashboard: controls, the PE array, the network and the live plots, together.

`Dashboard(...)` displays in a notebook; `Dashboard(...).template()` is the served page
(app.py). Every setting is mirrored in the URL; each browser tab gets its own session.

The whole interface speaks English or Simplified Chinese: `lang` (URL key `lang`, the switch
in the sidebar, or the lesson panel's own switch, which is linked to it) relabels every view in
place, without a reload and without touching the training session.
"""
from __future__ import annotations

import html
import logging
import re
from urllib.parse import parse_qs

import panel as pn
import param

from ..chip import TraceTooLarge
from ..chip import trace as chip_trace
from . import palette
from .controls import Controls
from .document import on_document, release_links, served_document
from ..i18n import LANGUAGES, STRINGS, Msg, diverged, relabel, t, url_notice
from .lesson_view import LessonView
from ..lessons import LESSON_KEYS, notice
from .network_view import NetworkView
from .pe_array import PEArrayView, pe_texts
from .plots import LivePlots
from ..session import MAX_ANIMATED_SIDE, TrainingSession
from ..settings import KEYS, parse_query, to_query

log = logging.getLogger(__name__)

TRACE_BUDGET = 64 * 2**20  # per session: bounded memory for the animated GEMM
PHASE_SHORT = {"forward": "forward", "backward_data": "backward", "backward_weights": "backward",
               "update": "update"}
# what the GEMM dimensions mean, per phase (i18n "dash.dim.<word>")
LABELS = {"forward": {"M": "batch", "K": "inputs", "N": "units"},
          "backward_data": {"M": "batch", "K": "units", "N": "inputs"},
          "backward_weights": {"M": "inputs", "K": "batch", "N": "units"}}
RESET_NOTICE = re.compile(r"^The network was reset because (?P<names>.*) changed\.$")
VIEW_KEYS = {"op": param.Integer(default=0, bounds=(0, 64)), "fps": param.Integer(default=8, bounds=(1, 60))}


class Dashboard(pn.viewable.Viewer):
    session = param.ClassSelector(class_=TrainingSession)
    op = param.Integer(default=0, bounds=(0, None), doc="index (in the last step's ops) of the GEMM animated")
    follow = param.Boolean(default=True, doc="when the animation ends, show the latest step's GEMM")
    notices = param.List(default=[], doc="messages shown at the top (bad URL values, resets)")
    lesson_mode = param.Boolean(default=False, doc="show the lesson panel beside the live views")
    lang = param.Selector(default="en", objects=list(LANGUAGES),
                          doc="language of the whole interface (the lesson panel's too); URL key lang")

    def __init__(self, session: TrainingSession | None = None, query: dict | None = None, **params):
        super().__init__(session=session or TrainingSession(), **params)
        s = self.session
        lang = self.lang
        self._caption_state: tuple | None = None  # what the PE array's caption says, to say it again
        self.controls = Controls(session=s, lang=lang)
        self.pe_array = PEArrayView(fps=8, sizing_mode="stretch_width", min_height=360, texts=pe_texts(lang))
        self.network = NetworkView(session=s, lang=lang)
        self.plots = LivePlots(session=s, lang=lang)
        self.lessons = LessonView(self, apply=False, sync_url=False, lang=lang)
        self.lesson_panel = pn.Column(self.lessons, visible=False)
        self.scrub = pn.widgets.IntSlider(label=t("dash.scrub", lang), start=0, end=1, value=0,
                                          sizing_mode="stretch_width")
        self.lesson_toggle = pn.widgets.Toggle.from_param(self.param.lesson_mode, color="primary")
        self.lang_switch = pn.widgets.RadioButtonGroup(
            options={t("dash.language_en", lang): "en", t("dash.language_zh", lang): "zh"}, value=lang,
            color="light", variant="outline", sizing_mode="stretch_width", margin=(5, 10))
        self.lang_label = pn.pane.HTML("", margin=(10, 0, 0, 10))
        self.subtitle = pn.pane.HTML("", margin=(0, 10), styles={"color": "white", "font-size": "1.05em"})
        self.op_select = pn.widgets.Select(options={}, sizing_mode="stretch_width")
        self.prev_button = pn.widgets.Button()
        self.next_button = pn.widgets.Button()
        self.phase_button = pn.widgets.Button()
        self.follow_box = pn.widgets.Checkbox.from_param(self.param.follow)
        self.op_info = pn.pane.HTML("", sizing_mode="stretch_width")
        self.alert = pn.pane.Alert("", alert_type="warning", visible=False, sizing_mode="stretch_width")
        self.dismiss = pn.widgets.Button(visible=False)
        self.diverged_alert = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width")
        self.diverged_reset = pn.widgets.Button(color="danger", visible=False)
        self.pe_card = pn.Card(title="", collapsible=False, styles={"flex": "1 1 560px"}, min_width=480)
        self.network_card = pn.Card(title="", collapsible=False, styles={"flex": "1 1 420px"}, min_width=380)
        self._relabel()

        self.op_select.param.watch(self._on_op_select, "value")
        self.prev_button.on_click(lambda _: self._move_gemm(-1))
        self.next_button.on_click(lambda _: self._move_gemm(+1))
        self.phase_button.on_click(lambda _: self._next_phase())
        self.dismiss.on_click(lambda _: self._dismiss())
        self.diverged_reset.on_click(lambda _: s.reset())
        self.pe_array.param.watch(self._on_animation_end, "at_end")
        self.pe_array.param.watch(self._on_pe_selected, "selected_pe")
        self.pe_array.param.watch(self._on_cycle, "cycle")
        self.pe_array.param.watch(self._on_total_cycles, "total_cycles")
        self.scrub.param.watch(self._on_scrub, "value_throttled")
        self.network.param.watch(self._on_weight_selected, "selected_weight")
        self.pe_array.param.watch(lambda *_: self._write_url(), "fps")
        doc = served_document()  # the session's worker thread sets these: edit the page on its own thread
        s.param.watch(on_document(doc, self._on_snapshot), "snapshot")
        s.param.watch(on_document(doc, self._on_notice), "notice")
        s.param.watch(on_document(doc, self._on_diverged), "diverged")
        s.param.watch(on_document(doc, lambda *_: self._write_url()), list(KEYS.values()))
        self.param.watch(self._show_notices, "notices")
        self.param.watch(self._on_lesson_mode, "lesson_mode")
        self.param.watch(self._on_lang, "lang")
        self.lang_switch.param.watch(lambda e: setattr(self, "lang", e.new), "value")
        self.lessons.param.watch(lambda e: setattr(self, "lang", e.new), "lang")
        if query:
            self.apply_query(query)
        if not self.session.operations():
            self.session.step()  # one step at start, so the chip has a GEMM to show right away
        self._refresh_ops(load=True)
        self._show_notices()
        if pn.state.curdoc is not None:
            pn.state.onload(self._read_url)
            pn.state.on_session_destroyed(self._on_destroyed)

    # ----- language -----
    def _on_lang(self, event) -> None:
        """Say everything again in the new language: every view, notice and caption, in place."""
        lang = event.new
        if self.lang_switch.value != lang:
            self.lang_switch.value = lang
        if self.lessons.lang != lang:
            self.lessons.lang = lang
        self.controls.lang = lang
        self.network.lang = lang
        self.plots.lang = lang
        self.pe_array.texts = pe_texts(lang)
        self._relabel()
        self.notices = [relabel(n, lang) for n in self.notices]
        self._on_diverged()
        ops = self.session.operations()
        if 0 <= self.op < len(ops) and ops[self.op].is_gemm:
            self._describe_op(ops[self.op])
        self._refresh_ops(load=False)
        if self._caption_state is not None:
            self.pe_array.caption = self._caption_text()
            if self._caption_state[0] == "op":
                self.pe_array.labels = self._dim_labels(self._caption_state[2])
        doc = served_document()
        if doc is not None:
            doc.title = self.page_title()
        self._write_url()

    def _relabel(self) -> None:
        """The dashboard's own labels in `lang` (the views relabel themselves)."""
        tr = self.tr
        self.lesson_toggle.label = tr("lesson.lesson_mode")
        self.lang_label.object = f"<b>{tr('lesson.language')}</b>"
        self.subtitle.object = tr("app.subtitle")
        self.op_select.label = tr("dash.op_select")
        self.prev_button.label = tr("dash.prev_gemm")
        self.next_button.label = tr("dash.next_gemm")
        self.phase_button.label = tr("dash.next_phase")
        self.follow_box.label = tr("dash.follow")
        self.scrub.label = tr("dash.scrub")
        self.dismiss.label = tr("dash.dismiss")
        self.diverged_reset.label = tr("dash.reset_network")
        self.pe_card.title = tr("dash.pe_card")
        self.network_card.title = tr("dash.network_card")

    def tr(self, key: str, **values) -> str:
        return t(key, self.lang, **values)

    def page_title(self) -> str:
        return f"{self.tr('app.title')} · {self.tr('app.subtitle')}"

    def _phase(self, phase: str) -> str:
        return self.tr(f"phase.{phase}") if f"phase.{phase}" in STRINGS else phase

    def _dim_labels(self, phase: str) -> dict | None:
        words = LABELS.get(phase)
        return {dim: self.tr(f"dash.dim.{word}") for dim, word in words.items()} if words else None

    def _caption_text(self) -> str:
        state = self._caption_state
        if state[0] == "too_large":
            return self.tr("dash.too_large", rows=state[1], cols=state[2], max=MAX_ANIMATED_SIDE)
        if state[0] == "error":
            return self.tr("dash.trace_error", error=state[1])
        _, layer, phase, name = state
        return self.tr("dash.caption", layer=layer, phase=self.tr(f"direction.{PHASE_SHORT[phase]}"), name=name)

    # ----- URL -----
    def apply_query(self, query: dict) -> None:
        """Apply a URL query's valid settings; every invalid one becomes a visible notice.

        lang sets the language of the whole interface. The other lesson keys (lesson, step,
        hide, lock) open lesson mode at that step.
        """
        lang_notices = []
        if "lang" in query:
            raw = query["lang"]
            raw = raw[-1] if isinstance(raw, (list, tuple)) and raw else raw
            raw = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            if raw.strip() in LANGUAGES:
                self.lang = raw.strip()
            else:
                lang_notices.append(notice(self.lang, "unknown_lang", value=raw.strip()[:20],
                                           allowed=", ".join(LANGUAGES)))
        lesson_part = {k: v for k, v in query.items() if k in LESSON_KEYS and k != "lang"}
        if lesson_part:
            lesson_part["lang"] = self.lang  # so that the lesson's own notices speak the same language
        query = {k: v for k, v in query.items() if k not in LESSON_KEYS}
        good, notices = parse_query(query, self.session, extra=VIEW_KEYS)
        notices = lang_notices + [url_notice(n, self.lang) for n in notices]
        view = {k: good.pop(k) for k in list(good) if k in VIEW_KEYS}
        if good:
            with param.parameterized.discard_events(self.session):
                self.session.param.update(**good)
            self.session.build()
        if "op" in view:
            self.op = view["op"]
        if "fps" in view and hasattr(self, "pe_array"):
            self.pe_array.fps = view["fps"]
        self.notices = self.notices + notices
        if lesson_part:
            self.lessons.apply_query(lesson_part)  # its own notices join ours
            self.lesson_panel.visible = True
            with param.parameterized.discard_events(self):
                self.lesson_mode = True

    def _on_lesson_mode(self, event):
        """Opening lesson mode starts the lesson shown; leaving it gives every control back."""
        self.lesson_panel.visible = event.new
        if event.new:
            self.lessons.go(self.lessons.lesson, self.lessons.step)
        else:
            self.lessons.release_controls()
        self._write_url()

    def show_op(self, index: int, cycle: int | None = None) -> None:
        """Animate operation `index` of the last step, from `cycle` if given (lessons use this)."""
        self._load_op(index)
        if cycle is not None and self.pe_array.trace is not None:
            try:
                self.pe_array.seek(cycle)
            except ValueError:
                pass

    def _read_url(self):
        location = pn.state.location
        if location is None:
            return
        # the raw text: Panel's query_params would already have turned "-3" into -3.0
        query = {k: v[-1] for k, v in parse_qs((location.search or "").lstrip("?"), keep_blank_values=True).items()}
        if query:
            self.apply_query(query)
            self._refresh_ops(load=True)
        if pn.state.curdoc is not None:
            pn.state.curdoc.title = self.page_title()  # the browser tab's title, in the page's language
        self._write_url()

    def _write_url(self):
        location = pn.state.location
        if location is not None and pn.state.curdoc is not None:
            extra = {"op": self.op, "fps": self.pe_array.fps, "lang": self.lang}
            if self.lesson_mode:
                extra |= self.lessons.query()
            location.update_query(**to_query(self.session, extra))

    # ----- notices -----
    def _on_notice(self, event):
        if event.new:
            self.notices = self.notices + [self._session_notice(event.new)]

    def _session_notice(self, text: str):
        """The session's notice (English) as a Msg, so it follows the language."""
        match = RESET_NOTICE.match(text)
        if not match:
            return text
        names = [Msg(f"param.{n}", self.lang) if f"param.{n}" in STRINGS else n
                 for n in match["names"].split(", ")]
        return Msg("dash.reset_notice", self.lang, names=names)

    def _show_notices(self, *_):
        # escaped: notices quote values from the URL, which anyone can write
        text = "\n".join(f"- {html.escape(n)}" for n in self.notices[-5:])
        self.alert.object = text
        self.alert.visible = self.dismiss.visible = bool(self.notices)

    def _dismiss(self):
        self.notices = []
        self.session.notice = ""

    def _on_diverged(self, event=None):
        detail = self.session.diverged
        if event is not None and detail:
            log.warning("session diverged: %s", detail)  # the trainer's own words, in the log
        text = self.tr("dash.diverged", detail=diverged(detail, self.lang)) if detail else ""
        self.diverged_alert.object = text
        self.diverged_alert.visible = self.diverged_reset.visible = bool(detail)

    # ----- which GEMM is animated -----
    def _gemm_ops(self) -> list[int]:
        return [i for i, op in enumerate(self.session.operations()) if op.is_gemm]

    def _on_snapshot(self, _):
        self._refresh_ops(load=False)

    def _refresh_ops(self, load: bool) -> None:
        ops = self.session.operations()
        options = {}
        for i, op in enumerate(ops):
            if op.is_gemm:
                st = op.stats
                options[self.tr("dash.op_option", layer=op.layer, phase=self._phase(op.phase), name=op.name,
                                shape=f"{st.m}×{st.k} · {st.k}×{st.n}")] = i
        if options != self.op_select.options:
            self.op_select.options = options
        gemms = list(options.values())
        if not gemms:
            words = self.tr("dash.no_step", step=self.tr("ctl.step"), train=self.tr("ctl.train").lstrip("▶ "))
            self.op_info.object = f"<i>{words}</i>"
            return
        if self.op not in gemms:
            self.op = gemms[0]
        if load:
            self._load_op(self.op)

    def _on_op_select(self, event):
        if event.new is not None and event.new != self.op:
            self._load_op(event.new)

    def _move_gemm(self, delta: int):
        gemms = self._gemm_ops()
        if gemms:
            pos = gemms.index(self.op) if self.op in gemms else 0
            self._load_op(gemms[(pos + delta) % len(gemms)])

    def _next_phase(self):
        ops = self.session.operations()
        gemms = self._gemm_ops()
        if not gemms:
            return
        current = PHASE_SHORT[ops[self.op].phase] if self.op < len(ops) else None
        later = [i for i in gemms if i > self.op and PHASE_SHORT[ops[i].phase] != current]
        self._load_op(later[0] if later else gemms[0])

    def _on_animation_end(self, event):
        pe = self.pe_array
        finished = event.new and pe.start_cycle + pe.n_cycles >= pe.total_cycles
        if finished and self.follow and self.session.running:
            self._load_op(self.op)  # the same GEMM of the newest step

    def _load_op(self, index: int) -> None:
        ops = self.session.operations()
        if not 0 <= index < len(ops) or not ops[index].is_gemm:
            return
        op = ops[index]
        self.op = index
        self.op_select.value = index
        self.network.current_op = index
        self.plots.highlight_op = index
        st = op.stats
        self._describe_op(op)
        if max(st.rows, st.cols) > MAX_ANIMATED_SIDE:
            self._caption_state = ("too_large", st.rows, st.cols)
            self.pe_array.caption = self._caption_text()
            return
        window = min(st.cycles, TRACE_BUDGET // chip_trace.bytes_per_cycle(st.rows, st.cols))
        try:
            trace = self.session.trace_operation(index, (0, window))
        except (TraceTooLarge, ValueError) as exc:
            self._caption_state = ("error", str(exc))
            self.pe_array.caption = self._caption_text()
            return
        self._caption_state = ("op", op.layer, op.phase, op.name)
        self.pe_array.load_trace(trace, labels=self._dim_labels(op.phase), total_cycles=trace.start + trace.n_cycles,
                                 caption=self._caption_text())
        self._write_url()

    def _describe_op(self, op) -> None:
        """The line above the PE array: the GEMM shown and its numbers."""
        st = op.stats
        snap = self.session.snapshot
        color = palette.FORWARD if op.phase == "forward" else palette.BACKWARD
        words = self.tr("dash.op_info", layer=op.layer, phase=self._phase(op.phase), name=op.name, step=snap.step,
                        folds=st.folds, cycles=f"{st.cycles:,}", util=f"{st.utilization:.1%}",
                        mapping=f"{st.mapping_efficiency:.1%}", energy=f"{st.energy_pj['total'] / 1e3:,.1f}")
        self.op_info.object = f"<b style='color:{color}'>{words}"

    def _on_pe_selected(self, event):
        self.network.selected_pe = event.new

    def _on_total_cycles(self, event):
        self.scrub.end = max(1, event.new - 1)

    def _on_scrub(self, event):
        """The cycle slider: jump the animation to any cycle of the GEMM (windows are sent as needed)."""
        pe = self.pe_array
        if pe.trace is not None and event.new is not None and event.new != pe.cycle:
            try:
                pe.seek(min(event.new, pe.total_cycles - 1))
            except ValueError:
                pass

    def _on_cycle(self, _):
        if self.scrub.value != self.pe_array.cycle:
            self.scrub.value = min(self.pe_array.cycle, self.scrub.end)
        if self.pe_array.trace is not None:
            try:
                fold = self.pe_array.fold_of()
            except ValueError:
                return
            if fold != self.network.fold:
                self.network.fold = fold
                self._on_weight_selected()

    def _on_weight_selected(self, *_):
        """Outline, on the array, the PEs where the clicked weight lives in the fold shown."""
        chosen = self.network.selected_weight
        wmap = self.network.weight_map() if chosen else None
        if wmap is None:
            self.pe_array.highlight = []
            return
        placement = wmap.pes_for_weight(*chosen)
        self.pe_array.highlight = [(r, c) for f, r, c in placement.pes if f == self.network.fold]

    # ----- lifecycle -----
    def _on_destroyed(self, _context):
        self.session.close()
        self.plots.dispose()
        self.network.dispose()
        release_links(self)

    # ----- layout -----
    def main_area(self):
        animation = pn.Column(
            self.op_info, self.op_select,
            pn.Row(self.prev_button, self.next_button, self.phase_button, self.follow_box), self.scrub,
            self.pe_array, sizing_mode="stretch_width")
        # the two cards sit side by side when there is room and stack when there is not (lesson mode)
        self.pe_card.objects = [animation]
        self.network_card.objects = [self.network]
        cards = pn.FlexBox(self.pe_card, self.network_card, flex_wrap="wrap", sizing_mode="stretch_width")
        top = pn.Row(self.lesson_panel, cards, sizing_mode="stretch_width")
        return pn.Column(pn.Row(self.alert, self.dismiss), pn.Row(self.diverged_alert, self.diverged_reset),
                         top, self.plots, sizing_mode="stretch_width")

    def sidebar_header(self):
        """The language switch and the lesson-mode toggle, at the top of the sidebar."""
        return pn.Column(pn.Row(self.lang_label, self.lang_switch, sizing_mode="stretch_width"), self.lesson_toggle,
                         sizing_mode="stretch_width")

    def __panel__(self):
        return pn.Row(pn.Column(self.sidebar_header(), self.controls, width=320), self.main_area(),
                      sizing_mode="stretch_width")

    def template(self):
        # Bootstrap: unlike the Fast templates it fetches no web font, so the page loads offline.
        # The title stays "ChipViz"; the words after it are a pane, so they follow the language.
        return pn.template.BootstrapTemplate(
            title=self.tr("app.title"), header=[self.subtitle],
            sidebar=[self.sidebar_header(), self.controls],
            main=[self.main_area()], header_background=palette.BLUE, sidebar_width=350)

