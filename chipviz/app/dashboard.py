"""The ChipViz dashboard: the PE array, the network and the loss side by side, the step's
timeline and the other plots below, the settings in a sidebar.

`Dashboard(...)` displays in a notebook; `Dashboard(...).template()` is the served page
(chipviz/app/main.py). One state: the session's settings (chipviz.settings) — a link is read
before any view is built, and widgets, URL, PE array, network view, plots and lesson panel all
derive from the session and its snapshots. While training, the PE array plays each new step's
GEMMs in order (the tour, or every cycle), then the update on the vector unit.

The whole interface speaks English or Simplified Chinese: `lang` (URL key `lang`, the switch
in the toolbar, or the lesson panel's own switch, which is linked to it) relabels every view in
place, without a reload and without touching the training session.
"""
from __future__ import annotations

import html
import io
import logging
import threading
from urllib.parse import urlencode

import panel as pn
import param

from .. import animation, settings
from ..chip import TraceTooLarge, engine_loaded, load_engine
from ..chip import trace as chip_trace
from ..i18n import LANGUAGES, Message, prose, render, t
from ..nn.phases import PHASE_TABLE
from ..session import TrainingSession
from ..settings import MAX_ANIMATED_SIDE
from .. import palette
from .controls import Controls
from .conv_view import ConvView
from .document import after, after_first_paint, on_document, page_location, release_links, served_document
from .lesson_view import LessonView
from .network_view import NetworkView
from .pe_array import PEArrayView, pe_texts
from .plots import LivePlots
from .timeline_view import StepTimeline
from ..conv_map import js_geometry
from ..timeline import tour_stop
from ..weight_map import WeightMap

log = logging.getLogger(__name__)

TRACE_BUDGET = 64 * 2**20  # per session: bounded memory for the animated GEMM
UPDATE_SHOWN_MS = 900  # while watching, how long the update on the vector unit stays on screen


def served_query() -> dict[str, str]:
    """The query of the link that opened this page (empty outside a served page)."""
    if served_document() is None:
        return {}
    return {k: (v[-1] if v else b"").decode("utf-8", "replace") for k, v in pn.state.session_args.items()}


class _Page(pn.template.BootstrapTemplate):
    """Bootstrap, without the page-wide links Panel's templates add for the components' own stylesheet
    files (an entry of a component's `_stylesheets` naming a file beside its module, as the PE array's
    pe_array.css): a component loads those itself, into its shadow DOM, from Panel's component route,
    and the template's copy points at the page's folder instead, a 404. Stylesheets given as paths or
    URLs (Panel's own) stay."""

    def resolve_resources(self, cdn="auto", extras=None):
        if extras and "css" in extras:
            extras = dict(extras, css={name: url for name, url in extras["css"].items() if "/" in str(url)})
        return super().resolve_resources(cdn=cdn, extras=extras)


class Dashboard(pn.viewable.Viewer):
    session = param.ClassSelector(class_=TrainingSession)
    op = param.Integer(default=0, bounds=(0, None), doc="index (in the last step's ops) of the GEMM animated")
    follow = param.Boolean(default=True, doc="while training, play each new step's GEMMs in order (watch it train)")
    pace = param.Selector(default=settings.BY_KEY["pace"].default, objects=list(settings.BY_KEY["pace"].choices),
                          doc="tour: each GEMM's first fold, the other folds skipped; every: every cycle")
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
        params.setdefault("pace", link.view.get("pace", settings.BY_KEY["pace"].default))
        super().__init__(session=session, **params)
        s = self.session
        lang = self.lang
        self._caption = None  # what the PE array's caption says (a Message), to say it again in another language
        self._shown: tuple | None = None  # (network, chip) of the step whose GEMM the PE array shows
        self._step_shown = None  # the Snapshot whose operations the PE array plays
        self._watching_location = False
        self._play_stop = 0  # the cycle at which a watched GEMM is done (its first fold's end, on the tour)
        self._painted = served_document() is None  # the first screen is drawn (served: once the browser says so)
        after_first_paint(self._on_painted)
        self.controls = Controls(session=s, lang=lang)
        self.pe_array = PEArrayView(fps=link.view.get("fps", settings.BY_KEY["fps"].default),
                                    sizing_mode="stretch_width", min_height=330, texts=pe_texts(lang))
        self.network = NetworkView(session=s, lang=lang)
        self._conv_view = None  # built when a CNN is first shown (the `conv_view` property)
        self.conv_slot = pn.Column(sizing_mode="stretch_width", margin=0)
        self.network_box = pn.Column(self.network, sizing_mode="stretch_width", margin=0)  # hidden for a CNN
        self.plots = LivePlots(session=s, lang=lang)
        self.timeline = StepTimeline(s, lang=lang)
        self.lessons = LessonView(self, apply=False, sync_url=False, lang=lang)
        # hidden until a lesson opens: its lesson (a dozen panes) joins once the first screen is drawn, or
        # at once when a link opens a lesson (_lesson_panel_filled)
        self.lesson_panel = pn.Column(visible=False)
        # filled once the first screen is drawn (template()) or at once (__panel__): the sidebar, collapsed
        # at first, and what lies below the first screen (the step's timeline, the other plots)
        self.sidebar_slot = pn.Column(sizing_mode="stretch_width", margin=0)
        self.below = pn.Column(sizing_mode="stretch_width", margin=0)
        self.scrub = pn.widgets.IntSlider(label=t("dash.scrub", lang), start=0, end=1, value=0,
                                          sizing_mode="stretch_width", margin=(0, 10))
        self.lesson_toggle = pn.widgets.Toggle.from_param(self.param.lesson_mode, color="primary")
        self.lang_switch = pn.widgets.RadioButtonGroup(
            options={t("dash.language_en", lang): "en", t("dash.language_zh", lang): "zh"}, value=lang,
            color="light", variant="outline", width=170, margin=(5, 10))
        self.subtitle = pn.pane.HTML("", margin=(0, 10), styles={"color": "white", "font-size": "1.05em"})
        self.op_select = pn.widgets.Select(options={}, width=255, margin=(2, 5))
        self.prev_button = pn.widgets.Button(margin=(2, 3))
        self.next_button = pn.widgets.Button(margin=(2, 3))
        self.phase_button = pn.widgets.Button(margin=(2, 3))
        self.follow_box = pn.widgets.Checkbox.from_param(self.param.follow, margin=(8, 8))
        # for slides: the GEMM shown as an animated GIF, and the cycle shown as a picture (drawn headless)
        self.gif_download = pn.widgets.FileDownload(callback=self._gif_file, filename="chipviz-gemm.gif",
                                                    color="light", margin=(2, 5), embed=False)
        self.png_download = pn.widgets.FileDownload(callback=self._png_file, filename="chipviz-cycle.png",
                                                    color="light", margin=(2, 5), embed=False)
        self.pace_switch = pn.widgets.RadioButtonGroup(options={}, value=self.pace, color="light", variant="outline",
                                                       margin=(2, 5))
        self.op_info = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 5),  # <div class="chipviz-op-info">
                                    styles={"font-size": "12px", "line-height": "1.3"})
        self.network_shape = pn.pane.HTML("", margin=(0, 10))  # <div class="chipviz-network-shape">
        self.alert = pn.pane.Alert("", alert_type="warning", visible=False, sizing_mode="stretch_width")
        self.dismiss = pn.widgets.Button(visible=False)
        self.diverged_alert = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width")
        self.diverged_reset = pn.widgets.Button(color="danger", visible=False)
        self.card_titles = {name: pn.pane.HTML("", margin=(0, 6), styles={"font-size": "15px"})
                            for name in ("pe", "network", "loss")}
        card = dict(collapsible=False, header_background="#f3f3f3", margin=(4, 4))
        self.pe_card = pn.Card(header=self.card_titles["pe"], styles={"flex": "3 1 500px"}, min_width=460, **card)
        self.network_card = pn.Card(header=self.card_titles["network"], styles={"flex": "2 1 330px"}, min_width=320,
                                    **card)
        self.loss_card = pn.Card(header=self.card_titles["loss"], styles={"flex": "2 1 300px"}, min_width=280, **card)
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
        self.design_space = None  # built when its tab first opens
        self.plots.on_design_open = self._open_design_space
        self.timeline.param.watch(self._on_timeline_click, "selected_op")
        self.pe_array.param.watch(lambda *_: self._write_url(), "fps")
        self.pe_array.param.watch(lambda *_: self._move_gemm(+1), "next_gemm")
        self.pace_switch.param.watch(lambda e: setattr(self, "pace", e.new), "value")
        self.param.watch(self._on_pace, "pace")
        doc = served_document()  # the session's worker thread sets these: edit the page on its own thread
        s.param.watch(on_document(doc, self._on_snapshot), "snapshot")
        s.param.watch(on_document(doc, self._on_notice), "notice")
        s.param.watch(on_document(doc, self._on_diverged), "diverged")
        s.param.watch(on_document(doc, lambda *_: self._write_url()), list(settings.KEYS.values()))
        s.param.watch(on_document(doc, self._on_chip_setting), list(settings.CHIP))
        s.param.watch(on_document(doc, self._on_running), "running")
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
            page_location()  # the page's Location is ours before Panel makes its own (see page_location)
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
        if self._conv_view is not None:
            self._conv_view.lang = lang
        if self.design_space is not None:
            self.design_space.lang = lang
        self.plots.lang = lang
        self.timeline.lang = lang
        self.pe_array.texts = pe_texts(lang)
        self._relabel()
        self._show_notices()
        self._on_diverged()
        snap = self._step_shown
        ops = snap.report.ops if snap is not None and snap.report is not None else []
        if 0 <= self.op < len(ops) and ops[self.op].is_gemm:
            self._describe_op(ops[self.op], snap.step)
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
        self.subtitle.object = tr("app.subtitle")
        self.op_select.description = tr("dash.op_select")  # a tooltip: the list itself says what it holds
        self.prev_button.label = tr("dash.prev_gemm")
        self.next_button.label = tr("dash.next_gemm")
        self.phase_button.label = tr("dash.next_phase")
        self.follow_box.label = tr("dash.follow")
        self.gif_download.label = tr("dash.download_gif")
        self.png_download.label = tr("dash.download_png")
        self.pace_switch.options = {tr(f"dash.pace.{p}"): p for p in self.param.pace.objects}
        self.scrub.label = tr("dash.scrub")
        self.dismiss.label = tr("dash.dismiss")
        self.diverged_reset.label = tr("dash.reset_network")
        for name, key in (("pe", "dash.pe_card"), ("network", "dash.network_card"), ("loss", "dash.loss_card")):
            self.card_titles[name].object = f"<b>{tr(key)}</b>"

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
        self._lesson_panel_filled()
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
        if event.new:
            self._lesson_panel_filled()
            self.lesson_panel.visible = True
            self.lessons.go(self.lessons.lesson, self.lessons.step)
        else:
            self.lesson_panel.visible = False
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
        location = page_location()
        if location is None:
            return
        if not self._watching_location:
            # the browser reports its own address once the page is up, which may come after this page
            # first wrote it: whatever the URL becomes, it is written back as this page's state
            location.param.watch(self._write_url, "search")
            self._watching_location = True
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
        shape = prose.network_shape(snap.sizes) if snap else ""
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

    # ----- watching the chip train: each new step's GEMMs in order -----
    @property
    def watching(self) -> bool:
        """Training with "follow training" on: the PE array plays the newest step, GEMM after GEMM."""
        return self.follow and self.session.running

    def _on_running(self, event) -> None:
        if event.new and self.follow:
            self.play_step()
        elif not event.new:
            self.pe_array.auto_advance = True  # paused: the animation stays, and plays on through its GEMM

    def _on_pace(self, event) -> None:
        if self.pace_switch.value != event.new:
            self.pace_switch.value = event.new
        self._write_url()

    def play_step(self) -> None:
        """Play the newest step from its first GEMM: forward layer by layer, then backward, then the update."""
        snap = self.session.snapshot
        gemms = snap.gemm_indices() if snap is not None and self.session.operations() else []
        if gemms:
            self._load_op(gemms[0], snap=snap, play=True)

    def _on_animation_end(self, event) -> None:
        pe = self.pe_array
        if not event.new or pe.trace is None or pe.batch_stop < self._play_stop or not self.watching:
            return
        snap = self._step_shown
        later = [i for i in snap.gemm_indices() if i > self.op] if snap is not None else []
        if later:
            self._load_op(later[0], snap=snap, play=True)  # the step's next GEMM
        else:
            self._show_update(snap)
            after(served_document(), UPDATE_SHOWN_MS, self._next_step)

    def _next_step(self) -> None:
        if self.watching:
            self.play_step()

    def _show_update(self, snap) -> None:
        """The step's last work: the optimizer's update on the vector unit (the array is idle)."""
        ops = snap.report.ops if snap is not None and snap.report is not None else []
        index = next((i for i, op in enumerate(ops) if PHASE_TABLE[op.phase].direction == "update"), None)
        if index is not None:
            self._show_vector(index, snap)

    def _show_vector(self, index: int, snap) -> None:
        """A vector-unit operation (bias and activation, the loss, the update): the PE array is idle."""
        op = snap.report.ops[index]
        self.network.current_op = index
        self.timeline.param.update(current_op=index, cycle=0)
        self._set_caption(prose.vector_caption(op))
        self.pe_array.playing = False
        color = palette.DIRECTION_COLORS[PHASE_TABLE[op.phase].direction]
        words = prose.vector_info(op, snap.step).render(self.lang)
        self.op_info.object = f"<div class='chipviz-op-info'><b style='color:{color}'>{words}</div>"

    def _on_timeline_click(self, event) -> None:
        snap = self.session.snapshot
        if event.new is None or snap is None or snap.report is None or not self.session.operations():
            return
        if snap.report.ops[event.new].is_gemm:
            self._load_op(event.new, snap=snap, play=self.watching or None)
        else:
            self._show_vector(event.new, snap)

    def _load_op(self, index: int, snap=None, play: bool | None = None) -> None:
        """Show GEMM `index` of a step (default: the newest that ran on this chip) on the PE array.
        While watching, it plays at the pace chosen; `play` True starts the animation."""
        snap = snap if snap is not None else self.session.snapshot
        if snap is None or snap.chip != self.session.chip_config() or snap.report is None:
            return
        ops = snap.report.ops
        if not 0 <= index < len(ops) or not ops[index].is_gemm:
            return
        op = ops[index]
        self.op = index
        self._step_shown = snap
        self._shown = (snap.network, snap.chip)  # this step's GEMM is shown now
        self.op_select.value = index
        self.network.current_op = index
        self.timeline.param.update(current_op=index, cycle=0)
        self.plots.highlight_op = index
        st = op.stats
        self._describe_op(op, snap.step)
        self._show_conv(snap, index)
        if max(st.rows, st.cols) > MAX_ANIMATED_SIDE:
            self._set_caption(prose.too_large(st.rows, st.cols, MAX_ANIMATED_SIDE))
            return
        if not self._engine_ready(snap, index, play):
            return
        window = min(st.cycles, TRACE_BUDGET // chip_trace.bytes_per_cycle(st.rows, st.cols, st.dataflow))
        try:
            trace = self.session.trace_operation(index, (0, window), snapshot=snap)
        except (TraceTooLarge, ValueError) as exc:
            self._set_caption(Message("dash.trace_error", error=str(exc)))
            return
        total = trace.start + trace.n_cycles
        stop = min(tour_stop(st), total)
        tour = self.watching and self.pace == "tour" and stop < st.cycles
        self._play_stop = stop if tour else total
        self._caption = prose.op_caption(op, tour_folds=st.folds if tour else None,
                                         tour_cycles=(stop, st.cycles) if tour and stop < st.cycles_per_fold else None)
        pe = self.pe_array
        pe.auto_advance = not tour  # the tour moves on after the first fold; otherwise windows follow
        geometry = snap.geometry(op.layer)
        pe.conv = js_geometry(geometry, op.phase) if geometry is not None else {}
        pe.load_trace(trace, 0, self._play_stop if tour else None, labels=self._dim_labels(op.phase),
                      total_cycles=total, caption=self._caption_text())
        if play:
            pe.playing = True
        self._write_url()

    def _on_painted(self) -> None:
        self._painted = True

    def _engine_ready(self, snap, index: int, play: bool | None) -> bool:
        """Whether the cycle engine can replay this GEMM now. On a served page the trace waits until
        the first screen is drawn (so the page is not held up by it), and the first GEMM of a dataflow
        and precision in this server waits for its kernel, loaded beside the page (about a second
        from numba's cache; compiling on a cold one takes longer). Meanwhile the array is drawn
        empty and says why, and the GEMM is shown as soon as it can be."""
        doc = served_document()
        if doc is None or (self._painted and engine_loaded(snap.chip)):
            return True
        op = snap.report.ops[index]
        self._set_caption(Message("dash.engine_loading") if self._painted else prose.op_caption(op))
        self.pe_array.clear(caption=self._caption_text(), rows=snap.chip.rows, cols=snap.chip.cols)

        def show():
            if self._step_shown is snap and self.op == index:  # still what the page wants to show
                self._load_op(index, snap=snap, play=play)

        def load():
            try:
                load_engine(snap.chip)
            except Exception:
                log.exception("the cycle engine failed to load")
                return
            on_document(doc, show)()

        if self._painted:
            threading.Thread(target=load, name="chipviz-engine", daemon=True).start()
        else:
            after_first_paint(show)
        return False

    # ----- for slides -----
    def _gif_window(self) -> tuple[int, int]:
        """The cycles a GIF of the GEMM shown holds: all of them, or as many as fit from the cycle shown."""
        pe, trace = self.pe_array, self.pe_array.trace
        hi = trace.start + trace.n_cycles
        limit = animation.gif_frame_limit(pe.rows, pe.cols, trace.dataflow, total_cycles=pe.total_cycles,
                                          n_folds=int(trace.fold.max()) + 1, title=self._caption_text(),
                                          lang=self.lang)
        start = max(trace.start, min(pe.cycle, hi - limit))
        return start, min(hi, start + limit)

    def _gif_file(self):
        if self.pe_array.trace is None:
            return None
        start, stop = self._gif_window()
        data = animation.gif(self.pe_array.trace, start, stop, fps=min(self.pe_array.fps, animation.MAX_FPS),
                             total_cycles=self.pe_array.total_cycles, title=self._caption_text(), lang=self.lang)
        return io.BytesIO(data)

    def _png_file(self):
        pe = self.pe_array
        if pe.trace is None:
            return None
        return io.BytesIO(animation.frame_png(pe.trace, pe.cycle, total_cycles=pe.total_cycles,
                                              title=self._caption_text(), lang=self.lang))

    def _describe_op(self, op, step: int) -> None:
        """The line above the PE array: the GEMM shown and its numbers (and, when training has moved on
        since the step shown began to play, where training is now)."""
        color = palette.DIRECTION_COLORS[PHASE_TABLE[op.phase].direction]
        words = prose.op_info(op, step).render(self.lang)
        now = self.session.snapshot.step if self.session.snapshot is not None else step
        if now != step:
            words += self.tr("dash.training_at", step=f"{now:,}")
        self.op_info.object = f"<div class='chipviz-op-info'><b style='color:{color}'>{words}</div>"

    def _on_pe_selected(self, event):
        self.network.selected_pe = event.new
        self._mark_conv()

    @property
    def conv_view(self) -> ConvView:
        """The network card's drawing of a convolution (built on first use)."""
        if self._conv_view is None:
            self._conv_view = ConvView(lang=self.lang, visible=False)
            self._conv_view.param.watch(self._on_conv_weight, "selected_weight")
            self.conv_slot.objects = [self._conv_view]
        return self._conv_view

    def _show_conv(self, snap, index: int) -> None:
        """A CNN: the conv view replaces the dense drawing; it shows the conv GEMM on the array, or
        (while a dense layer's GEMM plays) the first conv layer's forward GEMM of the same step."""
        cnn = snap is not None and bool(snap.conv)
        self.network_box.visible = not cnn
        if not cnn:
            if self._conv_view is not None:
                self._conv_view.visible = False
            return
        self.conv_view.visible = True
        if not self.conv_view.show(snap, index):
            first = next((i for i in snap.gemm_indices() if snap.report.ops[i].layer == snap.conv[0][0]), None)
            if first is not None:
                self.conv_view.show(snap, first)
        self._mark_conv()

    def _mark_conv(self) -> None:
        """The conv view marks what the selected PE (default the top-left one) multiplies at the cycle shown."""
        view = self._conv_view
        if view is None or not view.visible or view.shown_index != self.op:
            return
        pe = self.pe_array
        self.conv_view.mark_pe(pe.trace, pe.cycle, pe.selected_pe or (0, 0))

    def _open_design_space(self) -> None:
        """The Design space tab: sweep chips on this network's training step (or a topology); a design
        tapped on the scatter becomes the session's chip (the sweep keeps the sidebar's one SRAM size)."""
        from ..sweep.workload import training_step
        from .design_space import DesignSpaceView

        s = self.session

        def choose(chip: dict) -> None:
            s.apply({k: chip[k] for k in ("rows", "cols", "dataflow", "precision", "dram_bytes_per_cycle")})

        self.design_space = DesignSpaceView(
            workload=lambda: training_step("network", s.settings(), data=s.trainer.raw_data), on_choose=choose,
            base=s.chip_config, sram=lambda: s.sram_kib, lang=self.lang)
        self.plots.design_slot.objects = [self.design_space]

    def _on_conv_weight(self, event) -> None:
        """A kernel tap clicked in the conv view: outline the PEs holding that weight in the fold shown."""
        snap, chosen = self._step_shown, event.new
        ops = snap.report.ops if snap is not None and snap.report is not None else []
        if chosen is None or not 0 <= self.op < len(ops):
            return
        wmap = WeightMap.for_operation(ops[self.op])
        if wmap is None or ops[self.op].layer != chosen[0]:
            self.pe_array.highlight = []
            return
        placement = wmap.pes_for_weight(*chosen)
        self.pe_array.highlight = [(r, c) for f, r, c in placement.pes if f == self.network.fold]

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
        if self.timeline.current_op == self.op:
            self.timeline.cycle = self.pe_array.cycle
        if self.scrub.value != self.pe_array.cycle:
            self.scrub.value = min(self.pe_array.cycle, self.scrub.end)
        self._mark_conv()
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
        self.timeline.dispose()
        release_links(self)

    # ----- layout -----
    def toolbar(self):
        """The row above everything: train, step, reset, the run's status, the language and the lessons."""
        return pn.FlexBox(self.controls.toolbar(), self.follow_box, self.pace_switch, self.lang_switch,
                          self.lesson_toggle, align_items="center", sizing_mode="stretch_width")

    def main_area(self):
        """The first screen (1280×720 and up): the PE array, the network and the loss side by side;
        the step's timeline and the other plots below."""
        nav = pn.FlexBox(self.op_select, self.prev_button, self.next_button, self.phase_button,
                         align_items="center", gap="0px", sizing_mode="stretch_width")
        downloads = pn.Row(self.gif_download, self.png_download)
        self.pe_card.objects = [pn.Column(nav, self.op_info, self.pe_array, self.scrub, downloads,
                                          sizing_mode="stretch_width", margin=0)]
        self.network_card.objects = [self.network_shape, self.network_box, self.conv_slot]
        self.loss_card.objects = [self.plots.loss]
        # side by side when there is room; they wrap (e.g. beside the lesson panel) when there is not
        cards = pn.FlexBox(self.pe_card, self.network_card, self.loss_card, flex_wrap="wrap",
                           sizing_mode="stretch_width")
        top = pn.Row(self.lesson_panel, cards, sizing_mode="stretch_width")
        return pn.Column(self.toolbar(), pn.Row(self.alert, self.dismiss),
                         pn.Row(self.diverged_alert, self.diverged_reset), top, self.below,
                         sizing_mode="stretch_width")

    def fill_later_parts(self) -> None:
        """The sidebar's settings, the step's timeline, the plot tabs and the hidden lesson panel (once)."""
        if not self.below.objects:
            self.sidebar_slot.objects = [self.controls.settings_cards()]
            self.below.objects = [self.timeline, self.plots.tabs()]
        self._lesson_panel_filled()

    def _lesson_panel_filled(self) -> None:
        if not self.lesson_panel.objects:
            self.lesson_panel.objects = [self.lessons]

    def sidebar(self):
        """The settings of the network, the chip and the speed (collapsed at first: the hamburger opens it)."""
        return self.sidebar_slot

    def __panel__(self):
        self.fill_later_parts()
        return pn.Row(pn.Column(self.sidebar(), width=320), self.main_area(), sizing_mode="stretch_width")

    def template(self):
        # Bootstrap: unlike the Fast templates it fetches no web font, so the page loads offline.
        # The title stays "ChipViz"; the words after it are a pane, so they follow the language.
        # The first screen is sent alone; the collapsed sidebar and what is below it follow once it is drawn.
        after_first_paint(self.fill_later_parts)
        return _Page(
            title=self.tr("app.title"), header=[self.subtitle], sidebar=[self.sidebar()], main=[self.main_area()],
            header_background=palette.BLUE, sidebar_width=330, collapsed_sidebar=True)

