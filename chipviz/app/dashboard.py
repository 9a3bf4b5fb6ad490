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

import panel as pn
import param

from .. import settings
from ..chip import TraceTooLarge
from ..chip import trace as chip_trace
from ..i18n import LANGUAGES, Message, prose, render, t
from ..nn.phases import PHASE_TABLE
from ..session import TrainingSession
from ..settings import MAX_ANIMATED_SIDE
from . import palette
from .controls import Controls
from .document import on_document, release_links, served_document
from .lesson_view import LessonView
from .network_view import NetworkView
from .pe_array import PEArrayView, pe_texts
from .plots import LivePlots

log = logging.getLogger(__name__)

TRACE_BUDGET = 64 * 2**20  # per session: bounded memory for the animated GEMM


def served_query() -> dict[str, str]:
    """The query of the link that opened this page (empty outside a served page)."""
    if served_document() is None:
        return {}
    return {k: (v[-1] if v else b"").decode("utf-8", "replace") for k, v in pn.state.session_args.items()}


class Dashboard(pn.viewable.Viewer):
    session = param.ClassSelector(class_=TrainingSession)
    op = param.Integer(default=0, bounds=(0, None), doc="index (in the last step's ops) of the GEMM animated")
    follow = param.Boolean(default=True, doc="when the animation ends, show the latest step's GEMM")
    notices = param.List(default=[], doc="messages shown at the top (bad URL values, resets)")
    lesson_mode = param.Boolean(default=False, doc="show the lesson panel beside the live views")
    lang = param.Selector(default="en", objects=list(LANGUAGES),
                          doc="language of the whole interface (the lesson panel's too); URL key lang")

    def __init__(self, session: TrainingSession | None = None, query: dict | None = None, **params):
        """`query`: a link's query ({key: text}); served, the page's own link. Everything the link
        sets is in place before any view is built, so the first render already shows it."""
        link = settings.parse_query(served_query() if query is None else query)
        if session is None:
            session = TrainingSession(**link.settings)  # built once, with the link's network
        else:
            session.apply(link.settings, announce=False)
        params.setdefault("lang", link.view.get("lang", "en"))
        super().__init__(session=session, **params)
        s = self.session
        lang = self.lang
        self._caption = None  # what the PE array's caption says (a Message), to say it again in another language
        self._shown: tuple | None = None  # (network, chip) of the step whose GEMM the PE array shows
        self.controls = Controls(session=s, lang=lang)
        self.pe_array = PEArrayView(fps=link.view.get("fps", settings.BY_KEY["fps"].default),
                                    sizing_mode="stretch_width", min_height=360, texts=pe_texts(lang))
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
        self.op_info = pn.pane.HTML("", sizing_mode="stretch_width")  # its text: <div class="chipviz-op-info">
        self.network_shape = pn.pane.HTML("", margin=(0, 10))  # <div class="chipviz-network-shape">
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
        s.param.watch(on_document(doc, lambda *_: self._write_url()), list(settings.KEYS.values()))
        s.param.watch(on_document(doc, self._on_chip_setting), list(settings.CHIP))
        self.param.watch(self._show_notices, "notices")
        self.param.watch(self._on_lesson_mode, "lesson_mode")
        self.param.watch(self._on_lang, "lang")
        self.lang_switch.param.watch(lambda e: setattr(self, "lang", e.new), "value")
        self.lessons.param.watch(lambda e: setattr(self, "lang", e.new), "lang")
        self.notices = list(link.notices)
        if "op" in link.view:
            self.op = link.view["op"]
        if link.lesson:
            self.open_lesson_link(link.lesson)
        if not self.session.operations():
            self.session.step()  # one step at start, so the chip has a GEMM to show right away
        self._show_network()
        if doc is not None:
            doc.title = self.page_title()
            pn.state.onload(self._write_url)
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
        self._show_notices()
        self._on_diverged()
        ops = self.session.operations()
        if 0 <= self.op < len(ops) and ops[self.op].is_gemm:
            self._describe_op(ops[self.op])
            if self.pe_array.trace is not None:
                self.pe_array.labels = self._dim_labels(ops[self.op].phase)
        self._refresh_ops(load=False)
        self.pe_array.caption = self._caption_text()
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

    def _dim_labels(self, phase: str) -> dict | None:
        """What M, K and N count in this phase's GEMM (the phase table says; i18n "dash.dim.<word>")."""
        p = PHASE_TABLE.get(phase)
        if p is None or not p.is_gemm:
            return None
        return {dim: self.tr(f"dash.dim.{word}") for dim, word in (("M", p.m), ("K", p.k), ("N", p.n))}

    def _caption_text(self) -> str:
        return render(self._caption, self.lang) if self._caption is not None else ""

    def _set_caption(self, message) -> None:
        self._caption = message
        self.pe_array.caption = self._caption_text()

    # ----- URL -----
    def open_lesson_link(self, lesson_part: dict) -> None:
        """A link's lesson keys (lesson, step, hide, lock): lesson mode at that step, in the page's language."""
        self.lessons.apply_query({**lesson_part, "lang": self.lang})  # its notices join ours
        self.lesson_panel.visible = True
        with param.parameterized.discard_events(self):
            self.lesson_mode = True

    def apply_query(self, query: dict) -> None:
        """Apply a link's query to this page: the same path as opening the page with it."""
        link = settings.parse_query(query)
        if "lang" in link.view:
            self.lang = link.view["lang"]
        self.session.apply(link.settings, announce=False)
        if "fps" in link.view:
            self.pe_array.fps = link.view["fps"]
        if "op" in link.view:
            self.op = link.view["op"]
        self.notices = self.notices + link.notices
        if link.lesson:
            self.open_lesson_link(link.lesson)
        if not self.session.operations():
            self.session.step()
        self._show_network(force=True)

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

    def query(self) -> dict[str, str]:
        """The link of what this page shows: every setting, the view, and the lesson position."""
        view = {"op": self.op, "fps": self.pe_array.fps, "lang": self.lang}
        lesson = self.lessons.query() if self.lesson_mode else {}
        return settings.to_query(self.session.values(), view, lesson)

    def _write_url(self, *_):
        location = pn.state.location
        if location is not None and served_document() is not None:
            from urllib.parse import urlencode

            search = "?" + urlencode(self.query())  # only known keys: an unknown one is not carried on
            if location.search != search:
                location.search = search

    # ----- notices -----
    def _on_notice(self, event):
        if event.new is not None:
            self.notices = self.notices + [event.new]

    def _show_notices(self, *_):
        # escaped: notices quote values from the URL, which anyone can write
        text = "\n".join(f"- {html.escape(render(n, self.lang))}" for n in self.notices[-5:])
        self.alert.object = text
        self.alert.visible = self.dismiss.visible = bool(self.notices)

    def _dismiss(self):
        self.notices = []
        self.session.notice = None

    def _on_diverged(self, event=None):
        detail = self.session.diverged
        if event is not None and detail is not None:
            log.warning("session diverged: %s", detail)  # in English, in the log
        text = self.tr("dash.diverged", detail=render(detail, self.lang)) if detail is not None else ""
        self.diverged_alert.object = text
        self.diverged_alert.visible = self.diverged_reset.visible = detail is not None

    # ----- which GEMM is animated -----
    def _gemm_ops(self) -> list[int]:
        return [i for i, op in enumerate(self.session.operations()) if op.is_gemm]

    def _on_snapshot(self, _):
        self._show_network()

    def _show_network(self, force: bool = False) -> None:
        """The op list and the PE array follow the session's network: a new network's GEMM (or
        the "press step" state until it has run one), never the old network's trace."""
        snap = self.session.snapshot
        shape = " → ".join(map(str, snap.layer_sizes)) if snap else ""
        self.network_shape.object = f"<div class='chipviz-network-shape'><b>{shape}</b></div>"
        key = (snap.network, snap.chip) if snap is not None else None
        new = force or key != self._shown
        self._shown = key
        self._refresh_ops(load=new)

    def _on_chip_setting(self, *_):
        """A chip setting changed: the last step ran on another chip, so show its GEMMs no more."""
        if not self.session.running:
            self._show_network(force=True)

    def _refresh_ops(self, load: bool) -> None:
        ops = self.session.operations()
        options = {prose.op_option(op).render(self.lang): i for i, op in enumerate(ops) if op.is_gemm}
        if options != self.op_select.options:
            self.op_select.options = options
        gemms = list(options.values())
        if not gemms:
            s, snap = self.session, self.session.snapshot
            why = prose.no_step(s.rows, s.cols, s.dataflow, s.precision, snap is not None and snap.report is not None)
            self.op_info.object = f"<div class='chipviz-op-info'><i>{why.render(self.lang)}</i></div>"
            if load:
                self._caption = why
                side = max(s.rows, s.cols) <= MAX_ANIMATED_SIDE
                self.pe_array.clear(caption=self._caption_text(), rows=s.rows if side else None,
                                    cols=s.cols if side else None)
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
        direction = {i: PHASE_TABLE[ops[i].phase].direction for i in gemms}
        current = direction.get(self.op)
        later = [i for i in gemms if i > self.op and direction[i] != current]
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
        snap = self.session.snapshot
        self._shown = (snap.network, snap.chip)  # this step's GEMM is shown now
        self.op_select.value = index
        self.network.current_op = index
        self.plots.highlight_op = index
        st = op.stats
        self._describe_op(op)
        if max(st.rows, st.cols) > MAX_ANIMATED_SIDE:
            self._set_caption(prose.too_large(st.rows, st.cols, MAX_ANIMATED_SIDE))
            return
        window = min(st.cycles, TRACE_BUDGET // chip_trace.bytes_per_cycle(st.rows, st.cols))
        try:
            trace = self.session.trace_operation(index, (0, window))
        except (TraceTooLarge, ValueError) as exc:
            self._set_caption(Message("dash.trace_error", error=str(exc)))
            return
        self._caption = prose.op_caption(op)
        self.pe_array.load_trace(trace, labels=self._dim_labels(op.phase), total_cycles=trace.start + trace.n_cycles,
                                 caption=self._caption_text())
        self._write_url()

    def _describe_op(self, op) -> None:
        """The line above the PE array: the GEMM shown and its numbers."""
        color = palette.DIRECTION_COLORS[PHASE_TABLE[op.phase].direction]
        words = prose.op_info(op, self.session.snapshot.step).render(self.lang)
        self.op_info.object = f"<div class='chipviz-op-info'><b style='color:{color}'>{words}</div>"

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
        self.network_card.objects = [self.network_shape, self.network]
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

