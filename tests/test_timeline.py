"""The step timeline: the geometry of a step's operations (headless), and the view that draws it."""
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chipviz import timeline as T
from chipviz import palette
from chipviz.nn.phases import PHASE_TABLE
from chipviz.session import TrainingSession


@dataclass(frozen=True)
class FakeStats:
    cycles: int
    folds: int = 1
    cycles_per_fold: int = 1


@dataclass(frozen=True)
class FakeOp:
    """Just what chipviz.timeline reads of a chipviz.nn.on_chip.Operation."""

    cycles: int
    is_gemm: bool = True
    layer: int = 1
    phase: str = "forward"
    name: str = "Y = X·W"

    @property
    def stats(self):
        return FakeStats(self.cycles)


def fake_ops(cycles, gemm=None):
    return [FakeOp(c, is_gemm=True if gemm is None else gemm[i]) for i, c in enumerate(cycles)]


@pytest.fixture(scope="module")
def stepped():
    session = TrainingSession()
    session.step()
    return session


# ----- geometry (headless) -----

def test_geometry_of_a_real_step(stepped):
    ops = stepped.snapshot.report.ops
    tl = T.timeline(ops)
    assert len(tl.segments) == len(ops)  # vector-unit ops are kept
    assert tl.total == sum(op.cycles for op in ops) == stepped.snapshot.report.cycles
    assert [s.index for s in tl.segments] == list(range(len(ops)))
    assert tl.segments[0].start == 0 and tl.segments[-1].end == tl.total
    for a, b in zip(tl.segments, tl.segments[1:]):
        assert a.end == b.start  # in step order, end to end
    for s, op in zip(tl.segments, ops):
        assert (s.layer, s.phase, s.name, s.is_gemm, s.cycles) == (op.layer, op.phase, op.name, op.is_gemm, op.cycles)
        assert s.end - s.start == op.cycles
        assert s.direction == PHASE_TABLE[op.phase].direction
        assert s.share == pytest.approx(op.cycles / tl.total)
        if op.is_gemm:
            assert (s.folds, s.cycles_per_fold) == (op.stats.folds, op.stats.cycles_per_fold)
        else:
            assert s.folds is None and s.cycles_per_fold is None
    assert sum(s.share for s in tl.segments) == pytest.approx(1.0)
    assert {s.direction for s in tl.segments} == {"forward", "backward", "update"}
    assert any(not s.is_gemm and s.cycles > 0 for s in tl.segments)
    # with no minimum width the drawn axis is the cycle axis
    assert [(s.x0, s.x1) for s in tl.segments] == [(s.start, s.end) for s in tl.segments]


def test_position_and_op_at_invert_each_other(stepped):
    ops = stepped.snapshot.report.ops
    for i, op in enumerate(ops):
        for c in {0, 1, op.cycles // 2, op.cycles - 1}:
            x = T.position(ops, i, c)
            assert x == sum(o.cycles for o in ops[:i]) + c
            assert T.op_at(ops, x) == i
    total = sum(op.cycles for op in ops)
    assert T.position(ops, 0, -5) == 0 and T.position(ops, len(ops) - 1, 10**9) == total  # clamped to the op
    assert T.op_at(ops, total) == len(ops) - 1
    assert T.op_at(ops, -1) is None and T.op_at(ops, total + 1) is None and T.op_at([], 0) is None
    with pytest.raises(IndexError):
        T.position(ops, len(ops), 0)


@given(st.lists(st.integers(0, 5000), min_size=1, max_size=30), st.sampled_from([0.0, 0.003, 0.006, 0.02, 0.05]))
def test_drawn_widths_keep_order_and_a_minimum(cycles, min_share):
    ops = fake_ops(cycles)
    tl = T.timeline(ops, min_share)
    total = sum(cycles)
    assert tl.total == total
    assert [s.end for s in tl.segments] == list(np.cumsum(cycles))
    x0 = np.array([s.x0 for s in tl.segments])
    x1 = np.array([s.x1 for s in tl.segments])
    assert x0[0] == 0 and np.all(x1 >= x0) and np.allclose(x0[1:], x1[:-1])
    if total == 0:
        return
    assert x1[-1] == total  # the bar still spans the step's cycles
    widths = x1 - x0
    floor = min(min_share, 0.5 / len(cycles)) * total
    assert np.all(widths >= floor * (1 - 1e-9))
    scaled = widths > floor * (1 + 1e-9)  # the ops above the minimum are to scale among themselves
    if floor == 0:
        assert np.allclose(widths, cycles)
    elif scaled.any():
        ratio = widths[scaled] / np.array(cycles)[scaled]
        assert np.allclose(ratio, ratio[0]) and ratio[0] <= 1 + 1e-9  # shrunk alike to make room
        assert np.all(np.array(cycles)[~scaled] * ratio[0] <= floor * (1 + 1e-9))  # the others would be too thin
    for i, c in enumerate(cycles):  # positions map into the op's drawn extent, and back
        if c:
            for k in (0, c // 2, c - 1):
                x = tl.drawn(i, k)
                assert x0[i] <= x < x1[i] + 1e-9
                assert tl.op_at_drawn(x) == i
                assert tl.op_at(tl.position(i, k)) == i == T.op_at(ops, T.position(ops, i, k))
                assert tl.to_drawn(tl.position(i, k)) == pytest.approx(x)


def test_tiny_vector_ops_are_drawn_wide_enough():
    ops = fake_ops([100_000, 40, 2, 0, 90_000, 128], gemm=[True, False, False, False, True, False])
    exact, drawn = T.timeline(ops), T.timeline(ops, 0.01)
    assert len(drawn.segments) == 6 and [s.is_gemm for s in drawn.segments] == [True, False, False, False, True,
                                                                                False]
    assert exact.segments[2].x1 - exact.segments[2].x0 == 2
    for s in drawn.segments:
        assert s.x1 - s.x0 >= 0.01 * drawn.total * (1 - 1e-9)
        assert drawn.op_at_drawn((s.x0 + s.x1) / 2) == s.index  # clickable, even the op of 0 cycles
    assert drawn.op_at(100_041) == 2 and drawn.op_at(100_042) == 4  # 0 cycles: never the op running
    assert drawn.key() == T.timeline(list(ops), 0.01).key() != T.timeline(ops[:-1], 0.01).key()


def test_nice_ticks():
    assert T.nice_ticks(8269) == [0, 2000, 4000, 6000, 8000]
    assert T.nice_ticks(7) == [0, 2, 4, 6]
    assert T.nice_ticks(130_000) == [0, 25_000, 50_000, 75_000, 100_000, 125_000]
    assert T.nice_ticks(0) == [0]
    tl = T.timeline(fake_ops([5000, 10, 5000]), 0.05)
    (x, c), *_ = tl.ticks()
    assert (x, c) == (0, 0) and all(tl.to_drawn(c) == x for x, c in tl.ticks())


def test_the_headless_module_does_not_draw():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(T))
    names = {a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not {m.split(".")[0] for m in names | modules} & {"panel", "bokeh"}


# ----- the view -----

pn = pytest.importorskip("panel")


def view_of(session, **params):
    from chipviz.app.timeline_view import StepTimeline

    return StepTimeline(session, **params)


def tap(view, x, y=0.5):
    from bokeh.events import Tap

    view._on_tap(Tap(view.fig, x=x, y=y))


def test_view_draws_the_newest_step(stepped):
    view = view_of(stepped)
    ops = stepped.operations()
    data = view.bar_source.data
    tl = T.timeline(ops, view.min_share)
    assert list(data["index"]) == list(range(len(ops)))
    assert list(data["left"]) == [s.x0 for s in tl.segments] and list(data["right"]) == [s.x1 for s in tl.segments]
    assert list(data["color"]) == [palette.DIRECTION_COLORS[PHASE_TABLE[op.phase].direction] for op in ops]
    assert len(set(data["alpha"])) == 2  # the PE array's ops solid, the vector unit's pale
    assert "L1 fwd" in data["label"]  # the big ops are labelled, the small ones are not
    assert "" in data["label"]
    assert data["cycles"][0] == f"{ops[0].cycles:,}"
    assert data["folds"][0] == f"{ops[0].stats.folds} × {ops[0].stats.cycles_per_fold} cycles"
    assert f"{stepped.snapshot.report.cycles:,} cycles" in view.fig.title.text
    assert f"step {stepped.snapshot.step}" in view.fig.title.text
    assert view.fig.x_range.start < 0 < stepped.snapshot.report.cycles < view.fig.x_range.end
    assert view.ticker.ticks and view.fig.xaxis[0].major_label_overrides[0] == "0"
    assert view.fig.sizing_mode == "stretch_width" and 80 <= view.fig.height <= 150
    assert len(view.playhead_source.data["x"]) == 0  # current_op None: no playhead
    names = [tip for tip, _ in view.hover.tooltips]
    assert names == ["operation", "layer", "phase", "runs on", "cycles", "cycles from the step's start", "folds",
                     "share of the step"]
    pn.panel(view).get_root()  # builds as a page would
    view.dispose()


def test_view_before_the_first_step_and_after_a_new_network():
    session = TrainingSession(hidden_layers=1, width1=16)
    view = view_of(session)
    assert len(view.bar_source.data["index"]) == 0
    assert "no step" in view.fig.title.text
    session.step()
    n = len(view.bar_source.data["index"])
    assert n == len(session.operations()) > 0
    first = list(view.bar_source.data["right"])
    session.apply({"hidden_layers": 2, "width2": 8})  # a new network: no step yet
    assert len(view.bar_source.data["index"]) == 0
    session.step()
    assert len(view.bar_source.data["index"]) == len(session.operations()) > n  # more layers, more ops
    assert list(view.bar_source.data["right"]) != first
    session.rows = 4  # a new chip: the old step is not this chip's
    assert len(view.bar_source.data["index"]) == 0 and "no step" in view.fig.title.text
    session.step()
    assert len(view.bar_source.data["index"]) == len(session.operations())
    view.dispose()


def test_same_shape_steps_send_only_the_title(stepped):
    view = view_of(stepped)
    sent = []
    view.bar_source.on_change("data", lambda attr, old, new: sent.append(attr))
    before = view.fig.title.text
    stepped.step()
    assert sent == [] and view.fig.title.text != before


def test_playhead_follows_current_op_and_cycle(stepped):
    view = view_of(stepped, current_op=0, cycle=0)
    ops = stepped.operations()
    tl = view.timeline
    assert view.playhead_source.data["x"] == [0.0] and view.playhead() == 0
    view.param.update(current_op=2, cycle=100)
    assert view.playhead() == T.position(ops, 2, 100) == ops[0].cycles + ops[1].cycles + 100
    (x,) = view.playhead_source.data["x"]
    assert x == pytest.approx(tl.drawn(2, 100)) and tl.segments[2].x0 < x < tl.segments[2].x1
    assert view.playhead_source.data["x0"] == [tl.segments[2].x0]  # the op shown is outlined
    view.cycle = 10**9
    assert view.playhead() == tl.segments[2].end  # clamped to the op
    sent = []
    view.playhead_source.on_change("data", lambda attr, old, new: sent.append(new))
    view.cycle = 5
    assert len(sent) == 1 and view.playhead_source.data["x"] == [pytest.approx(tl.drawn(2, 5))]
    view.current_op = None
    assert view.playhead() is None and len(view.playhead_source.data["x"]) == 0
    view.current_op = len(ops) + 3  # out of range (an older, longer step): no playhead
    assert len(view.playhead_source.data["x"]) == 0
    view.dispose()


def test_clicking_an_operation_selects_it(stepped):
    view = view_of(stepped)
    tl = view.timeline
    picked = []
    view.param.watch(lambda e: picked.append(e.new), "selected_op")
    mid = tl.segments[2]
    tap(view, (mid.x0 + mid.x1) / 2)
    assert view.selected_op == 2
    tiny = min(tl.segments, key=lambda s: s.cycles)  # a small vector op is clickable too
    tap(view, (tiny.x0 + tiny.x1) / 2)
    assert view.selected_op == tiny.index and not tiny.is_gemm
    tap(view, (tiny.x0 + tiny.x1) / 2)  # the same op again: watchers hear it again
    assert picked == [2, tiny.index, tiny.index]
    tap(view, tl.span * 2)  # outside the bar: nothing
    tap(view, tl.segments[0].x1 / 2, y=-5)
    assert picked == [2, tiny.index, tiny.index]
    view.dispose()


def test_relabels_in_chinese(stepped):
    from chipviz.i18n import t

    view = view_of(stepped)
    view.lang = "zh"
    assert view.fig.title.text.startswith(t("timeline.title", "zh"))
    assert "个周期" in view.fig.title.text
    assert "L1 前向" in view.bar_source.data["label"]
    assert view.bar_source.data["unit"][0] == "PE 阵列"
    assert [tip for tip, _ in view.hover.tooltips][0] == "运算"
    assert "浅色：向量单元" in view.legend.object and "前向传播" in view.legend.object
    view.lang = "en"
    assert "L1 fwd" in view.bar_source.data["label"] and "pale: vector unit" in view.legend.object
    view.dispose()
