"""The "Design space" tab: sweep chips on a workload and pick one from the Pareto front.

    view = DesignSpaceView(workload=lambda: training_step("current", session.settings()),
                           on_choose=lambda settings: session.apply(settings), base=session.chip_config)
    tabs.append(("Design space", view))

Choose the workload (the current network's training step, the shipped AlexNet topology or an
uploaded SCALE-Sim CSV) and the ranges, press Run: the sweep's chunks run on a Dask client
(`client`: a callable returning one; by default one LocalCluster of threads shared by the
server's sessions, started on first use; None runs in this process) from a worker thread, a
progress bar follows them, and the scatter shows every design (energy against cycles, or
against PE count) with the Pareto front highlighted. Hover a design for its settings; tap
one to call `on_choose(chip_settings)` (ChipConfig's field names and values). A sweep over
`limit` evaluations is refused with a notice saying its size and the limit; errors are
notices too, never a traceback, and one sweep runs per view at a time.

In the dashboard, `sram` gives the chip's one SRAM size (the sidebar sets all three buffers
alike), so the sweep keeps it and every design shown can be loaded as it was evaluated.
Words: chipviz.i18n, keys "ds.*".
"""
from __future__ import annotations

import os
import threading
from typing import Callable

import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource, HoverTool, TapTool
from bokeh.plotting import figure

from ..chip import ChipConfig
from ..chip.config import DATAFLOWS, PRECISIONS
from ..sweep import workload as wl
from ..sweep.pareto import front
from ..sweep.run import SETTING_COLUMNS, evaluate_chunk
from ..sweep.spec import SpecError, make_spec
from .. import palette
from ..i18n import LANGUAGES, t
from .document import on_document, served_document

DEFAULT_LIMIT = 2_000_000  # evaluations per sweep and session
ARRAYS = ("2x2", "4x4", "8x8", "16x16", "32x32", "64x64", "128x128", "8x32", "32x8", "16x64", "64x16")
SRAM_KIB = (16, 32, 64, 128, 256, 512, 1024)
BANDWIDTHS = (1, 2, 4, 8, 16, 32, 64, 128)
ALEXNET = "alexnet"

_shared_client = None
_client_lock = threading.Lock()


def shared_client():
    """One Dask client for the whole server, on a LocalCluster of threads, started on first use."""
    global _shared_client
    with _client_lock:
        if _shared_client is None:
            from distributed import Client, LocalCluster
            import logging

            cluster = LocalCluster(n_workers=1, threads_per_worker=max(1, min(2, os.cpu_count() or 1)),
                                   processes=False, dashboard_address=None, silence_logs=logging.ERROR)
            _shared_client = Client(cluster)
        return _shared_client


def _alexnet_path() -> str:
    from ..data.digits import shipped_path

    return str(shipped_path("assets/topologies/alexnet.csv"))


class DesignSpaceView(pn.viewable.Viewer):
    """See the module's docstring. `workload`: a callable giving the current network's training
    step (a chipviz.sweep.workload.Workload); `base`: a callable giving the current ChipConfig
    (its clock and energy table are kept)."""

    lang = param.Selector(default="en", objects=list(LANGUAGES))
    running = param.Boolean(default=False)

    def __init__(self, workload: Callable[[], wl.Workload] | None = None,
                 on_choose: Callable[[dict], None] | None = None, base: Callable[[], ChipConfig] | None = None,
                 client: Callable | None = shared_client, limit: int = DEFAULT_LIMIT,
                 sram: Callable[[], float] | None = None, **params):
        super().__init__(**params)
        self._workload, self._on_choose, self._base = workload, on_choose, base or ChipConfig
        self._sram = sram
        self._client, self.limit = client, limit
        self._doc = served_document()
        self._lock = threading.Lock()
        self.source = pn.widgets.Select(options=self._sources())
        self.upload = pn.widgets.FileInput(accept=".csv", visible=False)
        self.arrays = pn.widgets.MultiChoice(options=list(ARRAYS),
                                             value=["4x4", "8x8", "16x16", "32x32"])
        self.dataflows = pn.widgets.CheckButtonGroup(options=list(DATAFLOWS),
                                                     value=list(DATAFLOWS))
        self.precisions = pn.widgets.CheckButtonGroup(options=list(PRECISIONS), value=["fp32"])
        fixed = sram is not None  # the dashboard's one SRAM size: not swept, so every design can be loaded
        self.ifmap = pn.widgets.MultiChoice(options=list(SRAM_KIB), value=[64, 512], visible=not fixed)
        self.filter = pn.widgets.MultiChoice(options=list(SRAM_KIB), value=[64, 512], visible=not fixed)
        self.ofmap = pn.widgets.MultiChoice(options=list(SRAM_KIB), value=[256], visible=not fixed)
        self.sram_text = pn.pane.Markdown("", visible=fixed, margin=(0, 10))
        # a CheckButtonGroup shows no label of its own
        self.dataflow_label = pn.pane.Markdown("", margin=(0, 10, -10, 10))
        self.precision_label = pn.pane.Markdown("", margin=(0, 10, -10, 10))
        self.bandwidth = pn.widgets.MultiChoice(options=list(BANDWIDTHS), value=[8, 32])
        self.axes = pn.widgets.RadioButtonGroup(options={}, value="cycles")
        self.run_button = pn.widgets.Button(color="primary")
        self.progress = pn.indicators.Progress(value=0, max=100, visible=False, sizing_mode="stretch_width")
        self.notice = pn.pane.Alert("", alert_type="info", visible=False)
        self.size_text = pn.pane.Markdown("")
        self.source_data = ColumnDataSource(self._empty(), name="design-points")
        self.plot = self._figure()
        self.run_button.on_click(lambda _: self.run())
        self.source.param.watch(lambda e: setattr(self.upload, "visible", e.new == "upload"), "value")
        self.axes.param.watch(lambda _: self._refresh_axes(), "value")
        for w in (self.arrays, self.dataflows, self.precisions, self.ifmap, self.filter, self.ofmap, self.bandwidth,
                  self.source):
            w.param.watch(lambda _: self._show_size(), "value")
        self.source_data.selected.on_change("indices", self._on_tap)
        self._results: dict | None = None
        self._relabel()
        self.param.watch(lambda _: self._relabel(), "lang")

    def _sources(self) -> dict:
        options = {self.tr("current"): "current", self.tr("alexnet"): ALEXNET, self.tr("upload"): "upload"}
        if self._workload is None:
            options.pop(self.tr("current"))
        return options

    def _relabel(self) -> None:
        """Every word of the view in `lang` (values stay)."""
        value = self.source.value
        self.source.param.update(options=self._sources(), value=value, name=self.tr("workload"))
        for widget, key in ((self.arrays, "array"), (self.dataflows, "dataflow"), (self.precisions, "precision"),
                            (self.ifmap, "ifmap"), (self.filter, "filter"), (self.ofmap, "ofmap"),
                            (self.bandwidth, "bandwidth")):
            widget.name = self.tr(key)
        self.dataflow_label.object = self.tr("dataflow")
        self.precision_label.object = self.tr("precision")
        axis = self.axes.value
        self.axes.param.update(options={self.tr("vs_cycles"): "cycles", self.tr("vs_pes"): "pes"}, value=axis)
        self.run_button.name = self.tr("run")
        figure_ = self.plot.object
        figure_.xaxis.axis_label = self.tr("cycles" if axis == "cycles" else "pes")
        figure_.yaxis.axis_label = self.tr("energy")
        self._show_size()

    # ------------------------------------------------------------------------------ layout

    def __panel__(self):
        controls = pn.Column(self.source, self.upload, self.arrays, self.dataflow_label, self.dataflows,
                             self.precision_label, self.precisions, self.ifmap,
                             self.filter, self.ofmap, self.sram_text, self.bandwidth, self.size_text, self.run_button,
                             width=320)
        return pn.Row(controls, pn.Column(self.axes, self.progress, self.notice, self.plot,
                                          sizing_mode="stretch_width"), sizing_mode="stretch_width")

    def tr(self, key: str, **values) -> str:
        return t(f"ds.{key}", self.lang, **values)

    def _figure(self):
        p = figure(height=420, sizing_mode="stretch_width", x_axis_type="log", y_axis_type="log", name="design-space",
                   x_axis_label=self.tr("cycles"), y_axis_label=self.tr("energy"), tools="pan,wheel_zoom,reset,tap")
        p.scatter("x", "y", source=self.source_data, size="size", color="color", alpha="alpha")
        p.add_tools(HoverTool(tooltips=[("array", "@rows×@cols"), ("dataflow", "@dataflow"),
                                        ("precision", "@precision"), ("SRAM KiB", "@ifmap / @filter / @ofmap"),
                                        ("DRAM B/cycle", "@bandwidth"), ("cycles", "@cycles{0,0}"),
                                        ("energy µJ", "@energy{0.000}"), ("utilisation", "@utilization{0.0%}")]))
        p.select_one(TapTool).mode = "replace"
        return pn.pane.Bokeh(p, sizing_mode="stretch_width")

    @staticmethod
    def _empty() -> dict:
        return {k: [] for k in ("x", "y", "size", "color", "alpha", "rows", "cols", "dataflow", "precision", "ifmap",
                                "filter", "ofmap", "bandwidth", "cycles", "energy", "utilization", "pes", "clock")}

    # ------------------------------------------------------------------------------ the sweep

    def spec(self):
        """The sweep the widgets describe (SpecError for a bad one)."""
        values = (self.arrays.value, self.dataflows.value, self.precisions.value, self.ifmap.value, self.filter.value,
                  self.ofmap.value, self.bandwidth.value)
        if not all(values):
            raise SpecError(self.tr("empty"))
        base = self._base()
        sram = self._sram() if self._sram is not None else None
        buffers = [list(w.value) if sram is None else [sram] for w in (self.ifmap, self.filter, self.ofmap)]
        chip = {"array": list(self.arrays.value), "dataflow": list(self.dataflows.value),
                "precision": list(self.precisions.value), "clock_mhz": base.clock_mhz,
                "ifmap_sram_kib": buffers[0], "filter_sram_kib": buffers[1],
                "ofmap_sram_kib": buffers[2], "dram_bytes_per_cycle": list(self.bandwidth.value)}
        energy = {f: getattr(base.energy, f) for f in base.energy.__dataclass_fields__}
        return make_spec(chip, [self.workload()], energy=energy)

    def workload(self) -> wl.Workload:
        if self.source.value == "current":
            return self._workload()
        if self.source.value == ALEXNET:
            return wl.topology("AlexNet", _alexnet_path())
        if not self.upload.value:
            raise SpecError(self.tr("no_file"))
        from ..chip.topology import parse_topology

        text = self.upload.value.decode("utf-8-sig", "replace")
        layers = parse_topology(text, self.upload.filename or "upload.csv")
        return wl.Workload(self.upload.filename or "upload", tuple(
            wl.Gemm(layer.name, layer.m, layer.k, layer.n, a_layout=layer.a_layout, layer=i)
            for i, layer in enumerate(layers, 1)), "uploaded topology")

    def _show_size(self) -> None:
        if self._sram is not None:
            self.sram_text.object = self.tr("sram_fixed", kib=self._sram())
        try:
            spec = self.spec()
        except (ValueError, OSError):
            self.size_text.object = ""
            return
        self.size_text.object = self.tr("size", configs=spec.size, items=spec.items_per_config,
                                        evaluations=spec.evaluations)

    def _say(self, text: str, kind: str = "info") -> None:
        self.notice.object, self.notice.alert_type, self.notice.visible = text, kind, bool(text)

    def run(self, wait: bool = False) -> threading.Thread | None:
        """Start the sweep in a worker thread (`wait`: return after it finished); notices for bad input."""
        with self._lock:
            if self.running:
                self._say(self.tr("busy"), "warning")
                return None
            try:
                spec = self.spec()
            except (ValueError, OSError) as exc:
                self._say(str(exc), "danger")
                return None
            if spec.evaluations > self.limit:
                self._say(self.tr("limit", evaluations=spec.evaluations, limit=self.limit), "warning")
                return None
            self.running = True
        self.run_button.disabled = True
        self.progress.value, self.progress.max, self.progress.visible = 0, spec.chunks, True
        self._say("")
        thread = threading.Thread(target=self._work, args=(spec,), daemon=True, name="chipviz-sweep")
        thread.start()
        if wait:
            thread.join()
        return thread

    def _work(self, spec) -> None:
        import time

        import pyarrow as pa

        started = time.perf_counter()
        update = on_document(self._doc, self._advance)
        try:
            tables = {}
            client = self._client() if self._client is not None else None
            if client is None:
                for index in range(spec.chunks):
                    tables[index] = evaluate_chunk(spec, index)
                    update(len(tables))
            else:
                from distributed import as_completed

                futures = [client.submit(evaluate_chunk, spec, i, pure=False) for i in range(spec.chunks)]
                order = {f.key: i for i, f in enumerate(futures)}
                for future in as_completed(futures):
                    tables[order[future.key]] = future.result()
                    update(len(tables))
            table = pa.concat_tables([tables[i] for i in range(spec.chunks)])
            on_document(self._doc, self._show)(table, time.perf_counter() - started)
        except Exception as exc:  # a notice, never a traceback or a stuck page
            on_document(self._doc, self._failed)(" ".join(str(exc).split()) or type(exc).__name__)

    def _advance(self, done: int) -> None:
        self.progress.value = done

    def _failed(self, error: str) -> None:
        self._finish()
        self._say(self.tr("failed", error=error), "danger")

    def _finish(self) -> None:
        self.running = False
        self.run_button.disabled = False
        self.progress.visible = False

    def _show(self, table, seconds: float) -> None:
        data = {name: _column(table, name) for name in (*SETTING_COLUMNS, "cycles", "pes", "energy_total_pj",
                                                        "utilization", "countable")}
        ok = data["countable"].astype(bool)
        data = {k: v[ok] for k, v in data.items()}
        self._results = data
        self._finish()
        front_count = self._refresh_axes()
        self._say(self.tr("done", configs=len(data["cycles"]), seconds=seconds, front=front_count), "success")

    def _refresh_axes(self) -> int:
        data = self._results
        if data is None:
            return 0
        x_name = self.axes.value
        energy = data["energy_total_pj"] / 1e6
        on_front = front(energy, data[x_name])
        figure_ = self.plot.object
        figure_.xaxis.axis_label = self.tr("cycles" if x_name == "cycles" else "pes")
        self.source_data.selected.indices = []
        self.source_data.data = {
            "x": data[x_name].astype(float), "y": energy, "size": np.where(on_front, 9, 5),
            "color": np.where(on_front, palette.VERMILLION, "#7f7f7f"), "alpha": np.where(on_front, 1.0, 0.3),
            "rows": data["rows"], "cols": data["cols"], "dataflow": data["dataflow"],
            "precision": data["precision"], "ifmap": data["ifmap_sram_kib"], "filter": data["filter_sram_kib"],
            "ofmap": data["ofmap_sram_kib"], "bandwidth": data["dram_bytes_per_cycle"], "cycles": data["cycles"],
            "energy": energy, "utilization": data["utilization"], "pes": data["pes"], "clock": data["clock_mhz"]}
        return int(on_front.sum())

    def _on_tap(self, attr, old, new) -> None:
        if not new or self._results is None:
            return
        settings = self.settings_of(new[0])
        self._say(self.tr("chosen", **settings), "success")
        if self._on_choose is not None:
            self._on_choose(settings)

    def settings_of(self, index: int) -> dict:
        """The chip settings (ChipConfig field names) of the design shown at `index`."""
        d = self.source_data.data
        return {"rows": int(d["rows"][index]), "cols": int(d["cols"][index]), "dataflow": str(d["dataflow"][index]),
                "precision": str(d["precision"][index]), "clock_mhz": float(d["clock"][index]),
                "ifmap_sram_kib": float(d["ifmap"][index]), "filter_sram_kib": float(d["filter"][index]),
                "ofmap_sram_kib": float(d["ofmap"][index]), "dram_bytes_per_cycle": float(d["bandwidth"][index])}


def _column(table, name: str) -> np.ndarray:
    import pyarrow as pa

    column = table.column(name).combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    return column.to_numpy(zero_copy_only=False)
