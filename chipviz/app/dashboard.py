"""The ChipViz dashboard: controls, the PE array, the network and the live plots, together.

`Dashboard(...)` displays in a notebook; `Dashboard(...).template()` is the served page
(app.py). Every setting is mirrored in the URL; each browser tab gets its own session.
"""
from __future__ import annotations

import html
from urllib.parse import parse_qs

import panel as pn
import param

from ..chip import TraceTooLarge
from ..chip import trace as chip_trace
from ..nn.on_chip import PHASE_LABELS
from . import palette
from .controls import Controls
from .lesson_view import LessonView
from .lessons import LESSON_KEYS
from .network_view import NetworkView
from .pe_array import PEArrayView
from .plots import LivePlots
from .session import MAX_ANIMATED_SIDE, TrainingSession
from .url import KEYS, parse_query, to_query

TRACE_BUDGET = 64 * 2**20  # per session: bounded memory for the animated GEMM
PHASE_SHORT = {"forward": "forward", "backward_data": "backward", "backward_weights": "backward",
               "update": "update"}
LABELS = {"forward": {"M": "batch", "K": "inputs", "N": "units"},
          "backward_data": {"M": "batch", "K": "units", "N": "inputs"},
          "backward_weights": {"M": "inputs", "K": "batch", "N": "units"}}
VIEW_KEYS = {"op": param.Integer(default=0, bounds=(0, 64)), "fps": param.Integer(default=8, bounds=(1, 60))}


class Dashboard(pn.viewable.Viewer):
    session = param.ClassSelector(class_=TrainingSession)
    op = param.Integer(default=0, bounds=(0, None), doc="index (in the last step's ops) of the GEMM animated")
    follow = param.Boolean(default=True, doc="when the animation ends, show the latest step's GEMM")
    notices = param.List(default=[], doc="messages shown at the top (bad URL values, resets)")
    lesson_mode = param.Boolean(default=False, doc="show the lesson panel beside the live views")

    def __init__(self, session: TrainingSession | None = None, query: dict | None = None, **params):
        super().__init__(session=session or TrainingSession(), **params)
        s = self.session
        self.controls = Controls(session=s)
        self.pe_array = PEArrayView(fps=8, sizing_mode="stretch_width", min_height=360)
        self.network = NetworkView(session=s)
        self.plots = LivePlots(session=s)
        self.lessons = LessonView(self, apply=False, sync_url=False)
        self.lesson_panel = pn.Column(self.lessons, visible=False)
        self.lesson_toggle = pn.widgets.Toggle.from_param(self.param.lesson_mode, label="Lessons · 课程",
                                                          color="primary")
        self.op_select = pn.widgets.Select(label="Matrix multiply on the chip", options={}, sizing_mode="stretch_width")
        self.prev_button = pn.widgets.Button(label="◀ previous GEMM")
        self.next_button = pn.widgets.Button(label="next GEMM ▶")
        self.phase_button = pn.widgets.Button(label="next phase ▶▶")
        self.follow_box = pn.widgets.Checkbox.from_param(self.param.follow, label="follow training")
        self.op_info = pn.pane.HTML("", sizing_mode="stretch_width")
        self.alert = pn.pane.Alert("", alert_type="warning", visible=False, sizing_mode="stretch_width")
        self.dismiss = pn.widgets.Button(label="Dismiss", visible=False)
        self.diverged_alert = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width")
        self.diverged_reset = pn.widgets.Button(label="Reset the network", color="danger", visible=False)

        self.op_select.param.watch(self._on_op_select, "value")
        self.prev_button.on_click(lambda _: self._move_gemm(-1))
        self.next_button.on_click(lambda _: self._move_gemm(+1))
        self.phase_button.on_click(lambda _: self._next_phase())
        self.dismiss.on_click(lambda _: self._dismiss())
        self.diverged_reset.on_click(lambda _: s.reset())
        self.pe_array.param.watch(self._on_animation_end, "at_end")
        self.pe_array.param.watch(self._on_pe_selected, "selected_pe")
        self.pe_array.param.watch(self._on_cycle, "cycle")
        self.network.param.watch(self._on_weight_selected, "selected_weight")
        self.pe_array.param.watch(lambda *_: self._write_url(), "fps")
        s.param.watch(self._on_snapshot, "snapshot")
        s.param.watch(self._on_notice, "notice")
        s.param.watch(self._on_diverged, "diverged")
        s.param.watch(lambda *_: self._write_url(), list(KEYS.values()))
        self.param.watch(self._show_notices, "notices")
        self.param.watch(self._on_lesson_mode, "lesson_mode")
        if query:
            self.apply_query(query)
        if not self.session.operations():
            self.session.step()  # one step at start, so the chip has a GEMM to show right away
        self._refresh_ops(load=True)
        self._show_notices()
        if pn.state.curdoc is not None:
            pn.state.onload(self._read_url)
            pn.state.on_session_destroyed(self._on_destroyed)

    # ----- URL -----
    def apply_query(self, query: dict) -> None:
        """Apply a URL query's valid settings; every invalid one becomes a visible notice.

        Lesson keys (lesson, step, lang, hide, lock) open lesson mode at that step.
        """
        lesson_part = {k: v for k, v in query.items() if k in LESSON_KEYS}
        query = {k: v for k, v in query.items() if k not in LESSON_KEYS}
        good, notices = parse_query(query, self.session, extra=VIEW_KEYS)
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
        self._write_url()

    def _write_url(self):
        location = pn.state.location
        if location is not None and pn.state.curdoc is not None:
            extra = {"op": self.op, "fps": self.pe_array.fps}
            if self.lesson_mode:
                extra |= self.lessons.query()
            location.update_query(**to_query(self.session, extra))

    # ----- notices -----
    def _on_notice(self, event):
        if event.new:
            self.notices = self.notices + [event.new]

    def _show_notices(self, *_):
        # escaped: notices quote values from the URL, which anyone can write
        text = "\n".join(f"- {html.escape(n)}" for n in self.notices[-5:])
        self.alert.object = text
        self.alert.visible = self.dismiss.visible = bool(self.notices)

    def _dismiss(self):
        self.notices = []
        self.session.notice = ""

    def _on_diverged(self, event):
        self.diverged_alert.object = f"**{event.new}** Lower the learning rate and reset." if event.new else ""
        self.diverged_alert.visible = self.diverged_reset.visible = bool(event.new)

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
                options[f"L{op.layer} {PHASE_LABELS[op.phase]}: {op.name}  ({st.m}×{st.k} · {st.k}×{st.n})"] = i
        self.op_select.options = options
        gemms = list(options.values())
        if not gemms:
            self.op_info.object = "<i>Press “One step” or “Train”: the first training step fills the chip.</i>"
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
        snap = self.session.snapshot
        self.op_info.object = (
            f"<b style='color:{palette.FORWARD if op.phase == 'forward' else palette.BACKWARD}'>"
            f"layer {op.layer} · {PHASE_LABELS[op.phase]} · {op.name}</b> · step {snap.step} · "
            f"{st.folds} folds · {st.cycles:,} cycles · utilisation {st.utilization:.1%} · "
            f"mapping efficiency {st.mapping_efficiency:.1%} · {st.energy_pj['total'] / 1e3:,.1f} nJ")
        if max(st.rows, st.cols) > MAX_ANIMATED_SIDE:
            self.pe_array.caption = (f"{st.rows}×{st.cols} is too large to animate (up to "
                                     f"{MAX_ANIMATED_SIDE}×{MAX_ANIMATED_SIDE}); the numbers above are exact.")
            return
        window = min(st.cycles, TRACE_BUDGET // chip_trace.bytes_per_cycle(st.rows, st.cols))
        try:
            trace = self.session.trace_operation(index, (0, window))
        except (TraceTooLarge, ValueError) as exc:
            self.pe_array.caption = str(exc)
            return
        caption = f"layer {op.layer} · {PHASE_SHORT[op.phase]} · {op.name}"
        self.pe_array.load_trace(trace, labels=LABELS.get(op.phase), total_cycles=trace.start + trace.n_cycles,
                                 caption=caption)
        self._write_url()

    def _on_pe_selected(self, event):
        self.network.selected_pe = event.new

    def _on_cycle(self, _):
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

    # ----- layout -----
    def main_area(self):
        animation = pn.Column(
            self.op_info, self.op_select,
            pn.Row(self.prev_button, self.next_button, self.phase_button, self.follow_box),
            self.pe_array, sizing_mode="stretch_width")
        # the two cards sit side by side when there is room and stack when there is not (lesson mode)
        cards = pn.FlexBox(
            pn.Card(animation, title="The PE array, cycle by cycle", collapsible=False,
                    styles={"flex": "1 1 560px"}, min_width=480),
            pn.Card(self.network, title="The network", collapsible=False, styles={"flex": "1 1 420px"},
                    min_width=380),
            flex_wrap="wrap", sizing_mode="stretch_width")
        top = pn.Row(self.lesson_panel, cards, sizing_mode="stretch_width")
        return pn.Column(pn.Row(self.alert, self.dismiss), pn.Row(self.diverged_alert, self.diverged_reset),
                         top, self.plots, sizing_mode="stretch_width")

    def __panel__(self):
        return pn.Row(pn.Column(self.lesson_toggle, self.controls, width=320), self.main_area(),
                      sizing_mode="stretch_width")

    def template(self):
        # Bootstrap: unlike the Fast templates it fetches no web font, so the page loads offline.
        return pn.template.BootstrapTemplate(
            title="ChipViz · a neural network training on a systolic-array chip",
            sidebar=[self.lesson_toggle, self.controls],
            main=[self.main_area()], header_background=palette.BLUE, sidebar_width=350)

