"""The sidebar: every setting of the network, the chip and the training run.

Widgets are bound to the TrainingSession's parameters, so a change here, in the URL or from a
lesson goes through the same validated path.
"""
from __future__ import annotations

import math

import panel as pn
import param
from bokeh.models import CustomJSTickFormatter

from .. import server_load, settings
from ..i18n import prose
from .document import on_document, served_document
from ..i18n import LANGUAGES, STRINGS, t
from ..session import PUBLISH_INTERVAL_S, TrainingSession
from ..settings import MAX_ANIMATED_SIDE

LOG_FORMAT_JS = "return String(Number(Math.pow(10, tick).toPrecision(2)))"  # a log10 slider shows 10^value

# preset id -> settings (labels: i18n "preset.<id>")
PRESETS = {
    "custom": None,
    "classroom": dict(rows=4, cols=4, dataflow="ws", clock_mhz=700.0, sram_kib=64.0,
                      dram_bytes_per_cycle=16.0),
    "default": dict(rows=8, cols=8, dataflow="ws", clock_mhz=700.0, sram_kib=256.0,
                    dram_bytes_per_cycle=32.0),
    "16": dict(rows=16, cols=16, dataflow="ws", clock_mhz=700.0, sram_kib=512.0, dram_bytes_per_cycle=64.0),
    # TPU v1: 256×256 ws int8 at 700 MHz, 24 MiB buffer, 30 GB/s DRAM ≈ 43 B/cycle (numbers only)
    "tpu_v1": dict(rows=256, cols=256, dataflow="ws", clock_mhz=700.0, sram_kib=8192.0,
                   dram_bytes_per_cycle=43.0),
}

# control (URL key) -> the session parameter whose choices it offers, with translated labels
OPTION_PARAMS = {"dataset": "dataset", "act": "activation", "opt": "optimizer", "dataflow": "dataflow",
                 "model": "model"}
MNIST_MISSING = "mnist-not-installed"  # the dataset list's line saying how to add MNIST
# The seed article's network: Keras's 784-64-64-10 MLP with Adam on MNIST (offered when MNIST is installed)
SEED_NETWORK = (("dataset", "mnist"), ("model", "mlp"), ("hidden_layers", 2), ("width1", 64), ("width2", 64),
                ("activation", "relu"), ("optimizer", "adam"), ("lr", 0.001), ("batch_size", 32))


class Controls(pn.viewable.Viewer):
    session = param.ClassSelector(class_=TrainingSession, constant=True)
    hidden_controls = param.List(default=[], doc="URL keys of controls to hide (teacher links)")
    locked_controls = param.List(default=[], doc="URL keys of controls shown but disabled")
    lang = param.Selector(default="en", objects=list(LANGUAGES), doc="language of the labels")

    def __init__(self, **params):
        super().__init__(**params)
        s = self.session
        sp = s.param
        self.widgets = {
            "dataset": pn.widgets.Select.from_param(sp.dataset),
            "model": pn.widgets.RadioButtonGroup.from_param(sp.model),
            "filters": pn.widgets.IntSlider.from_param(sp.filters),
            "kernel": pn.widgets.IntSlider.from_param(sp.kernel),
            "hidden": pn.widgets.IntSlider.from_param(sp.hidden_layers),
            "w1": pn.widgets.EditableIntSlider.from_param(sp.width1, end=128, fixed_start=1, fixed_end=512),
            "w2": pn.widgets.EditableIntSlider.from_param(sp.width2, end=128, fixed_start=1, fixed_end=512),
            "w3": pn.widgets.EditableIntSlider.from_param(sp.width3, end=128, fixed_start=1, fixed_end=512),
            "w4": pn.widgets.EditableIntSlider.from_param(sp.width4, end=128, fixed_start=1, fixed_end=512),
            "act": pn.widgets.Select.from_param(sp.activation),
            "opt": pn.widgets.Select.from_param(sp.optimizer),
            # α on a log scale: the slider moves log10(α) and shows α itself (0.0001 … 10)
            "lr": pn.widgets.FloatSlider(start=-4.0, end=1.0, step=0.1, value=math.log10(s.lr),
                                         format=CustomJSTickFormatter(code=LOG_FORMAT_JS)),
            "batch": pn.widgets.IntSlider.from_param(sp.batch_size),
            "seed": pn.widgets.IntInput.from_param(sp.seed),
            "precision": pn.widgets.RadioButtonGroup.from_param(sp.precision),
            "noise": pn.widgets.FloatSlider.from_param(sp.noise, step=0.01),
            "rows": pn.widgets.EditableIntSlider.from_param(sp.rows, start=1, end=MAX_ANIMATED_SIDE,
                                                            fixed_start=1, fixed_end=256),
            "cols": pn.widgets.EditableIntSlider.from_param(sp.cols, start=1, end=MAX_ANIMATED_SIDE,
                                                            fixed_start=1, fixed_end=256),
            "dataflow": pn.widgets.RadioButtonGroup.from_param(sp.dataflow, orientation="vertical"),
            "clock": pn.widgets.FloatInput.from_param(sp.clock_mhz),
            "sram": pn.widgets.FloatInput.from_param(sp.sram_kib),
            "bw": pn.widgets.FloatInput.from_param(sp.dram_bytes_per_cycle),
            "speed": pn.widgets.IntSlider.from_param(sp.steps_per_second, end=200),
        }
        self.preset = pn.widgets.Select(options={k: k for k in PRESETS}, value="custom")
        self.seed_network = pn.widgets.Button(visible=settings.mnist_dir() is not None, color="light")
        self.seed_network.on_click(lambda _: self.session.apply(dict(SEED_NETWORK)))
        self.cost = pn.pane.HTML("", margin=(0, 10), styles={"font-size": "12px"})  # <div class="chipviz-cost">
        self.train_button = pn.widgets.Toggle(color="primary", value=False)
        self.step_button = pn.widgets.Button()
        self.reset_button = pn.widgets.Button()
        self.status = pn.pane.HTML(self._status_text(), margin=(0, 10))
        self.network_card = pn.Card(title="", collapsible=True, sizing_mode="stretch_width")
        self.chip_card = pn.Card(title="", collapsible=True, sizing_mode="stretch_width")
        self._relabel()

        self.widgets["lr"].param.watch(self._on_lr_slider, "value")
        s.param.watch(self._on_lr_param, "lr")
        self.preset.param.watch(self._on_preset, "value")
        self.train_button.param.watch(self._on_train, "value")
        doc = served_document()  # the worker thread sets these two: edit the page on its own thread
        s.param.watch(on_document(doc, self._on_running), "running")
        s.param.watch(on_document(doc, self._on_snapshot), "snapshot")
        s.param.watch(self._on_shape, ["hidden_layers", "dataset", "model"])
        self.step_button.on_click(lambda _: self._step())
        self.reset_button.on_click(lambda _: s.reset())
        self.param.watch(self._apply_visibility, ["hidden_controls", "locked_controls"])
        self.param.watch(lambda *_: self._relabel(), "lang")
        self._apply_visibility()

    # ----- words -----
    LABEL_KEYS = {"dataset": "ctl.dataset", "model": "param.model", "filters": "param.filters",
                  "kernel": "param.kernel", "hidden": "ctl.hidden", "act": "ctl.act", "opt": "ctl.opt",
                  "lr": "ctl.lr", "batch": "ctl.batch", "seed": "ctl.seed", "precision": "ctl.precision",
                  "noise": "ctl.noise", "rows": "ctl.rows", "cols": "ctl.cols", "dataflow": "ctl.dataflow",
                  "clock": "ctl.clock", "sram": "ctl.sram", "bw": "ctl.bw", "speed": "ctl.speed"}
    OPTION_KEYS = {"dataset": "dataset", "act": "act", "opt": "opt", "dataflow": "dataflow", "model": "model"}

    def _relabel(self) -> None:
        """Put every label in the language `lang` (values and settings stay as they are)."""
        lang, w = self.lang, self.widgets
        for key, text_key in self.LABEL_KEYS.items():
            w[key].label = t(text_key, lang)
        for i in range(1, 5):
            w[f"w{i}"].label = t("ctl.width", lang, i=i)
        for key, prefix in self.OPTION_KEYS.items():
            values = list(self.session.param[OPTION_PARAMS[key]].objects)
            options = {self._option(prefix, v): v for v in values}
            if key == "dataset" and settings.mnist_dir() is None:  # the list says how to add MNIST
                options[t("dataset.mnist_missing", lang)] = MNIST_MISSING  # (an option that cannot be chosen)
                w[key].param.update(options=options, disabled_options=[MNIST_MISSING])
            else:
                w[key].options = options
        self.seed_network.name = t("ctl.seed_preset", lang)
        self.preset.label = t("ctl.preset", lang)
        self.preset.options = {t(f"preset.{k}", lang): k for k in PRESETS}
        self.train_button.label = t("ctl.pause", lang) if self.session.running else t("ctl.train", lang)
        self.step_button.label = t("ctl.step", lang)
        self.reset_button.label = t("ctl.reset", lang)
        self.network_card.title = t("ctl.network_card", lang)
        self.chip_card.title = t("ctl.chip_card", lang)
        self.status.object = self._status_text()

    def _option(self, prefix: str, value: str) -> str:
        key = f"{prefix}.{value}"
        return t(key, self.lang) if key in STRINGS else str(value)

    # ----- bindings -----
    def _status_text(self) -> str:
        snap = self.session.snapshot
        if snap is None:
            return ""
        lang = self.lang
        acc = "" if math.isnan(snap.test_accuracy) else t("ctl.status_acc", lang, acc=f"{snap.test_accuracy:.1%}")
        text = t("ctl.status", lang, step=f"{snap.step:,}", epoch=snap.epoch + 1, acc=acc)
        n = server_load.training()
        stretch = server_load.stretch(n)
        if stretch > 1:  # say why the plots move slower than usual
            every = f"{PUBLISH_INTERVAL_S * stretch:.2g}"
            text += f"<br><span style='color:#555'>{t('ctl.status_busy', lang, n=n, every=every)}</span>"
        return f"<small>{text}</small>"

    def _on_lr_slider(self, event):
        lr = round(10 ** event.new, 6)
        if not math.isclose(lr, self.session.lr, rel_tol=1e-3):
            self.session.lr = min(max(lr, 1e-4), 10.0)

    def _on_lr_param(self, event):
        log = math.log10(event.new)
        if abs(self.widgets["lr"].value - log) > 1e-6:
            self.widgets["lr"].value = max(-4.0, min(1.0, log))

    def _on_preset(self, event):
        values = PRESETS.get(event.new)
        if values:
            self.session.param.update(**values)

    def _on_train(self, event):
        if event.new:
            self.session.start()
            if not self.session.running:  # diverged: cannot run
                self.train_button.value = False
        else:
            self.session.pause()

    def _on_running(self, event):
        self.train_button.value = event.new
        self.train_button.label = t("ctl.pause", self.lang) if event.new else t("ctl.train", self.lang)

    def _on_snapshot(self, _):
        self.status.object = self._status_text()
        self.cost.object = self._cost_text()

    def _cost_text(self) -> str:
        """What one training step and one epoch cost on the chosen chip (the last step's operations)."""
        s = self.session
        ops = s.operations()
        if not ops:
            return ""
        cycles = sum(op.cycles for op in ops)
        energy = sum(op.energy_pj for op in ops)
        clock = s.clock_mhz
        steps = -(-len(s.trainer.data.x_train) // s.batch_size)
        words = t("ctl.cost", self.lang, cycles=prose.count(cycles), energy=prose.energy(energy),
                  time=prose.duration(cycles / (clock * 1e6)), clock=f"{clock:g}", steps=prose.count(steps),
                  epoch_energy=prose.energy(energy * steps), epoch_time=prose.duration(cycles * steps / (clock * 1e6)))
        return f"<div class='chipviz-cost'>{words}</div>"

    def _on_shape(self, *_):
        self._apply_visibility()

    def _step(self):
        self.session.pause()
        self.session.step()

    def _apply_visibility(self, *_):
        s = self.session
        for i in range(1, 5):
            self.widgets[f"w{i}"].visible = s.hidden_layers >= i and f"w{i}" not in self.hidden_controls
        self.widgets["noise"].visible = s.dataset not in settings.IMAGE_DATASETS and "noise" not in self.hidden_controls
        for key in ("filters", "kernel"):
            self.widgets[key].visible = s.model == "cnn" and key not in self.hidden_controls
        for key, widget in self.widgets.items():
            if key in self.hidden_controls:
                widget.visible = False
            widget.disabled = key in self.locked_controls
        chip_keys = ("rows", "cols", "dataflow", "clock", "sram", "bw")  # a preset sets all of these
        self.preset.disabled = any(k in self.locked_controls for k in chip_keys)
        self.preset.visible = not all(k in self.hidden_controls for k in chip_keys)

    def toolbar(self):
        """Train, One step, Reset and the run's status: always on screen (the sidebar may be closed)."""
        return pn.Row(self.train_button, self.step_button, self.reset_button, self.status)

    def settings_cards(self):
        """The network's and the chip's settings, and the training speed (the sidebar)."""
        w = self.widgets
        self.network_card.objects = [self.seed_network, w["dataset"], w["noise"], w["model"], w["filters"],
                                     w["kernel"], w["hidden"], w["w1"], w["w2"], w["w3"], w["w4"],
                                     w["act"], w["opt"], w["lr"], w["batch"], w["precision"],
                                     w["seed"]]
        self.chip_card.objects = [self.preset, w["rows"], w["cols"], w["dataflow"], w["clock"], w["sram"], w["bw"]]
        return pn.Column(w["speed"], self.cost, self.network_card, self.chip_card, sizing_mode="stretch_width")

    def __panel__(self):
        return pn.Column(self.toolbar(), self.settings_cards(), sizing_mode="stretch_width")
