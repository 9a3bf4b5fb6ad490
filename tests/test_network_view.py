"""The network view (headless) and the weight ↔ PE map it explains selections with."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from chipviz import palette
from chipviz.weight_map import GemmOp, WeightMap, pes_for_weight, weights_on_pe

FWD = ("forward", "Y = X·W")
BWD_DATA = ("backward_data", "dX = dZ·Wᵀ")
BWD_W = ("backward_weights", "dW = Xᵀ·dZ")


def fwd_op(layer=2, batch=5, n_in=11, n_out=7):
    return GemmOp(layer, *FWD, m=batch, k=n_in, n=n_out)


def bwd_data_op(layer=2, batch=5, n_in=11, n_out=7):
    return GemmOp(layer, *BWD_DATA, m=batch, k=n_out, n=n_in)


def bwd_w_op(layer=2, batch=5, n_in=11, n_out=7):
    return GemmOp(layer, *BWD_W, m=n_in, k=batch, n=n_out)


# ---------------------------------------------------------------- weight_map


def test_ws_forward_pe_holds_the_weight_of_its_tile():
    wmap = WeightMap("ws", 4, 3, fwd_op())  # K=11 on 4 rows (3 row folds), N=7 on 3 cols (3 col folds)
    assert wmap.folds == 9
    for fold, (r0, r1, c0, c1) in enumerate(wmap.tiles.tolist()):
        for r in range(4):
            for c in range(3):
                got = wmap.weights_on_pe(r, c, fold)
                if r < r1 - r0 and c < c1 - c0:
                    assert got.role == "holds" and got.weights == ((r0 + r, c0 + c),) and not got.gradient
                else:
                    assert got.role == "idle" and got.weights == ()


def test_ws_partial_fold_leaves_pes_idle_and_says_why():
    wmap = WeightMap("ws", 4, 3, fwd_op())
    last = wmap.folds - 1  # rows 8..10 (3 of 4), columns 6..6 (1 of 3)
    assert wmap.tile(last) == (8, 11, 6, 7)
    idle = wmap.weights_on_pe(3, 0, last)
    assert idle.role == "idle" and "3 of 4 rows" in idle.describe() and "1 of 3 columns" in idle.describe()
    assert wmap.weights_on_pe(2, 0, last).weights == ((10, 6),)
    assert wmap.weights_on_pe(0, 1, last).role == "idle"


def test_ws_round_trip_every_weight_has_exactly_one_pe():
    for op in (fwd_op(), bwd_data_op()):
        wmap = WeightMap("ws", 4, 3, op)
        for i in range(11):
            for j in range(7):
                where = wmap.pes_for_weight(2, i, j)
                assert where.role == "holds" and len(where.pes) == 1
                fold, r, c = where.pes[0]
                assert wmap.weights_on_pe(r, c, fold).weights == ((i, j),)


def test_ws_describe_matches_the_brief():
    op = GemmOp(2, *FWD, m=32, k=8, n=16)
    where = pes_for_weight(2, 3, 7, "ws", 8, 8, op)
    assert where.describe() == "W2[3, 7] sits in PE(3, 7) during fold 1 of 2 of 'L2 fwd Y = X·W' (ws)."
    assert pes_for_weight(2, 3, 12, "ws", 8, 8, op).describe().startswith(
        "W2[3, 12] sits in PE(3, 4) during fold 2 of 2")
    assert weights_on_pe("ws", 8, 8, op, 1, 3, 4).describe().startswith(
        "PE(3, 4) in fold 2 of 2 of 'L2 fwd Y = X·W' (ws) holds W2[3, 12]")


def test_backward_data_uses_the_transpose():
    op = bwd_data_op()  # B = Wᵀ: B[k, n] = W[n, k]
    got = weights_on_pe("ws", 4, 3, op, 0, 2, 1)
    assert got.weights == ((1, 2),)  # B[2, 1] = W[1, 2]
    where = pes_for_weight(2, 1, 2, "ws", 4, 3, op)
    assert where.pes == ((0, 2, 1),)
    assert "'L2 bwd data dX = dZ·Wᵀ'" in where.describe()


def test_os_pe_sees_a_column_of_w_and_a_weight_flows_down_a_column():
    op = fwd_op()  # os: M=5 on rows, N=7 on cols
    wmap = WeightMap("os", 4, 3, op)
    assert (wmap.mapping.row_folds, wmap.mapping.col_folds) == (2, 3)
    got = wmap.weights_on_pe(1, 2, 0)
    assert got.role == "streams" and got.weights == tuple((k, 2) for k in range(11))
    where = wmap.pes_for_weight(2, 4, 5)  # column 5: col fold 1, array column 2, both row folds
    assert where.role == "streams" and where.step == 4
    folds = {f for f, _, _ in where.pes}
    assert folds == {2, 3} and {c for _, _, c in where.pes} == {2}
    assert len(where.pes) == 4 + 1  # row fold 0 uses 4 rows, row fold 1 uses 1 (M = 5)
    assert "down column 2" in where.describe()
    # backward data: the PE accumulates dX[m, n] and sees W[n, :] (a row of W)
    got = WeightMap("os", 4, 3, bwd_data_op()).weights_on_pe(0, 1, 0)
    assert got.weights == tuple((1, k) for k in range(7))


def test_is_pe_holds_an_input_and_sees_a_row_of_w():
    op = fwd_op()  # is: K=11 on rows, M=5 on cols, N streams
    wmap = WeightMap("is", 4, 3, op)
    got = wmap.weights_on_pe(2, 1, 0)
    assert got.role == "streams" and got.weights == tuple((2, n) for n in range(7))
    assert "holds no weight" in got.describe() and "X[1, 2]" in got.describe()
    where = wmap.pes_for_weight(2, 9, 3)  # row 9: row fold 2, array row 1, in both column folds
    assert where.step == 3 and {r for _, r, _ in where.pes} == {1}
    assert {f for f, _, _ in where.pes} == {2, 5}
    assert len(where.pes) == 3 + 2  # column fold 0 uses 3 columns, column fold 1 uses 2 (M = 5)
    assert "along row 1" in where.describe()


def test_backward_weights_describes_gradients_not_weights():
    op = bwd_w_op()  # dW = Xᵀ·dZ: M = in (11), K = batch (5), N = out (7)
    os_ = WeightMap("os", 4, 3, op)
    got = os_.weights_on_pe(1, 2, 0)
    assert got.role == "accumulates" and got.gradient and got.weights == ((1, 2),)
    assert "accumulates dW2[1, 2]" in got.describe()
    where = os_.pes_for_weight(2, 9, 5)
    assert where.gradient and where.role == "accumulates"
    fold, r, c = where.pes[0]
    assert os_.weights_on_pe(r, c, fold).weights == ((9, 5),)
    assert where.describe().startswith("dW2[9, 5] is accumulated in PE(1, 2)")

    ws = WeightMap("ws", 4, 3, op)  # PE holds dZ[k, n]; its partial sums run down column n
    got = ws.weights_on_pe(2, 1, 0)
    assert got.role == "sums" and got.weights == tuple((m, 1) for m in range(11))
    where = ws.pes_for_weight(2, 9, 5)
    assert where.role == "sums" and {c for _, _, c in where.pes} == {2} and where.step == 9

    is_ = WeightMap("is", 4, 3, op)  # PE holds X[k, m]; its partial sums are row m of dW
    got = is_.weights_on_pe(2, 1, 0)
    assert got.weights == tuple((1, n) for n in range(7))
    where = is_.pes_for_weight(2, 4, 5)  # m = 4: column fold 1, array column 1
    assert {c for _, _, c in where.pes} == {1} and where.step == 5


@pytest.mark.parametrize("dataflow", ["ws", "os", "is"])
@pytest.mark.parametrize("rows,cols", [(4, 3), (2, 5), (16, 16)])
def test_the_map_reproduces_the_forward_product(dataflow, rows, cols):
    """Sum, over every fold and PE, of what the map says the PE multiplies: that is X·W."""
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((5, 11)), rng.standard_normal((11, 7))
    wmap = WeightMap(dataflow, rows, cols, fwd_op())
    y = np.zeros((5, 7))
    for fold, (r0, r1, c0, c1) in enumerate(wmap.tiles.tolist()):
        for r in range(rows):
            for c in range(cols):
                got = wmap.weights_on_pe(r, c, fold)
                if got.role == "idle":
                    continue
                if dataflow == "ws":  # every batch row streams past the held weight
                    ((i, j),) = got.weights
                    y[:, j] += x[:, i] * w[i, j]
                elif dataflow == "os":  # output [r0 + r, c0 + c], summing the whole column of W it sees
                    m = r0 + r
                    y[m, c0 + c] = sum(x[m, i] * w[i, j] for i, j in got.weights)
                else:  # PE holds X[c0 + c, r0 + r] and meets row r0 + r of W
                    m, i = c0 + c, r0 + r
                    for i2, j in got.weights:
                        assert i2 == i
                        y[m, j] += x[m, i] * w[i, j]
    np.testing.assert_allclose(y, x @ w)


def test_other_layers_and_bad_input():
    op = fwd_op()
    assert pes_for_weight(1, 0, 0, "ws", 4, 3, op).role == "unused"
    assert "layer 2, not layer 1" in pes_for_weight(1, 0, 0, "ws", 4, 3, op).describe()
    with pytest.raises(ValueError):
        pes_for_weight(2, 11, 0, "ws", 4, 3, op)
    with pytest.raises(ValueError):
        weights_on_pe("ws", 4, 3, op, 0, 4, 0)
    with pytest.raises(ValueError):
        weights_on_pe("ws", 4, 3, op, 99, 0, 0)
    with pytest.raises(ValueError):
        WeightMap("xs", 4, 3, op)
    with pytest.raises(ValueError):
        GemmOp(0, *FWD, 1, 1, 1)


@pytest.mark.parametrize("dataflow", ["ws", "os", "is"])
def test_what_a_pe_does_follows_the_two_tables(dataflow):
    """The role comes from whether the matrix W (or dW) sits in (the phase table) is the one that stays
    (the dataflow table); W's shape and transposition from the phase table; notes are i18n Messages."""
    from chipviz.chip.dataflow_table import DATAFLOW_TABLE
    from chipviz.i18n import Message
    from chipviz.nn.phases import PHASE_TABLE

    expected = {"ws": ("holds", "holds", "sums"), "os": ("streams", "streams", "accumulates"),
                "is": ("streams", "streams", "sums")}[dataflow]
    for op, role in zip((fwd_op(), bwd_data_op(), bwd_w_op()), expected):
        assert op.weight_shape == (11, 7)
        assert op.weight_matrix + ("ᵀ" if op.weight_transposed else "") == PHASE_TABLE[op.phase].weights
        wmap = WeightMap(dataflow, 4, 3, op)
        assert wmap.weights_stay == (op.weight_matrix == DATAFLOW_TABLE[dataflow].stationary)
        pe = wmap.weights_on_pe(1, 1, 0)
        assert pe.role == wmap.role == role
        assert isinstance(pe.message, Message) and pe.note == pe.message.render("en")
        where = wmap.pes_for_weight(2, 3, 4)
        assert where.role == role and (where.message is None) == (role == "holds")


def test_weight_map_from_a_real_step():
    from chipviz.session import TrainingSession

    s = TrainingSession(dataset="xor", hidden_layers=1, width1=6, rows=4, cols=4, dataflow="ws")
    s.step(1)
    ops = s.operations()
    gemms = [o for o in ops if o.is_gemm]
    assert {(o.layer, o.phase) for o in gemms} == {(1, "forward"), (2, "forward"), (2, "backward_data"),
                                                   (1, "backward_weights"), (2, "backward_weights")}
    for o in ops:
        wmap = WeightMap.for_operation(o)
        if not o.is_gemm:
            assert wmap is None
            continue
        n_in, n_out = s.snapshot.weights[o.layer - 1].shape
        assert wmap.op.weight_shape == (n_in, n_out)
        assert wmap.folds == o.stats.folds


# ---------------------------------------------------------------- network view

pytest.importorskip("panel")
from chipviz.app.network_view import NEGATIVE, POSITIVE, NetworkView, shown_units  # noqa: E402
from chipviz.session import TrainingSession  # noqa: E402


def make(dataset="xor", hidden=1, **kw):
    widths = dict(width1=6, width2=5, width3=4, width4=3)
    widths.update({k: v for k, v in kw.items() if k.startswith("width")})
    rest = {k: v for k, v in kw.items() if not k.startswith("width")}
    return TrainingSession(dataset=dataset, hidden_layers=hidden, **widths, **rest)


def check_links_match(view, snap):
    table = view.links_table()
    assert table
    for (layer, i, j), value in table.items():
        assert value == pytest.approx(float(snap.weights[layer - 1][i, j]))
    d = view._links.data
    for w, color in zip(d["w"], d["color"]):
        assert color == (POSITIVE if w >= 0 else NEGATIVE)


@pytest.mark.parametrize("dataset", ["digits", "xor"])
@pytest.mark.parametrize("hidden", [0, 1, 2, 3, 4])
def test_view_builds_and_follows_training(dataset, hidden):
    s = make(dataset, hidden, width1=20 if dataset == "digits" else 6)
    view = NetworkView(s)
    sizes = [s.snapshot.weights[0].shape[0]] + [w.shape[1] for w in s.snapshot.weights]
    assert len(view._titles.data["text"]) == hidden + 2
    assert view._titles.data["text"][0] == f"input · {sizes[0]}"
    check_links_match(view, s.snapshot)
    figure = view.figure
    s.step(3)
    assert view.figure is figure  # updated in place, not rebuilt
    check_links_match(view, s.snapshot)
    assert s.snapshot.step == 3
    assert "step 3" in view.summary
    if dataset == "xor":  # small layers: every link is drawn
        assert view.drawn_links == view.total_links == sum(w.size for w in s.snapshot.weights)
    else:  # 64 inputs (and a 20-wide first hidden layer) are drawn compactly
        assert len(view._units.data["x"]) < sum(sizes)
        assert view.drawn_links < view.total_links
        assert "⋮" in " ".join(view._more.data["text"]) and "strongest" in view.summary
    view.__panel__()  # the Panel layout exists


def test_compact_layers_keep_a_784_64_64_10_network_light():
    s = make("digits", 2, width1=64, width2=64)
    s.step(1)
    view = NetworkView(s)
    rng = np.random.default_rng(0)
    sizes = [784, 64, 64, 10]
    weights = tuple((rng.standard_normal((a, b)) * 0.1).astype(np.float32) for a, b in zip(sizes[:-1], sizes[1:]))
    biases = tuple(np.zeros(b, np.float32) for b in sizes[1:])
    s.snapshot = dataclasses.replace(s.snapshot, weights=weights, biases=biases)
    assert view.total_links == 784 * 64 + 64 * 64 + 64 * 10
    assert view.drawn_links <= 3 * view.max_links
    assert "784-64-64-10" in view.summary and f"{view.drawn_links} of {view.total_links:,}" in view.summary
    assert "⋮ 776 more" in view._more.data["text"]
    # the drawn links are the strongest among the drawn units
    table = view.links_table()
    layer1 = [abs(v) for (lay, _, _), v in table.items() if lay == 1]
    shown = np.abs(weights[0][:8, :8]).ravel()
    assert min(layer1) >= np.sort(shown)[-view.max_links] - 1e-7
    view.unit_choice = "strongest"
    assert view.drawn_links <= 3 * view.max_links


def test_shown_units():
    assert shown_units(5, 16, 8).tolist() == [0, 1, 2, 3, 4]
    assert shown_units(100, 16, 8).tolist() == list(range(8))
    assert shown_units(100, 16, 8, pins=[50, 3, 99]).tolist() == list(range(8)) + [50, 99]
    strength = np.zeros(100)
    strength[[90, 10]] = 1
    assert shown_units(100, 16, 2, strength=strength).tolist() == [10, 90]


def test_phase_colours_follow_the_phase_direction():
    from chipviz.app.network_view import DIRECTION_COLORS, PHASE_COLORS
    from chipviz.nn.phases import PHASE_TABLE

    assert PHASE_COLORS == {p.id: DIRECTION_COLORS[p.direction] for p in PHASE_TABLE.values()}
    assert (PHASE_COLORS["forward"], PHASE_COLORS["backward_data"], PHASE_COLORS["backward_weights"],
            PHASE_COLORS["update"]) == (palette.FORWARD, palette.BACKWARD, palette.BACKWARD, palette.BLUISH_GREEN)


def test_current_op_highlights_its_layer_in_the_phase_colour():
    s = make("xor", 2)
    s.step(1)
    view = NetworkView(s)
    ops = s.operations()
    fwd = next(k for k, o in enumerate(ops) if o.phase == "forward" and o.layer == 2 and o.is_gemm)
    bwd = next(k for k, o in enumerate(ops) if o.phase == "backward_data" and o.layer == 3)
    view.current_op = fwd
    assert view._band.data["color"] == [palette.FORWARD]
    assert view._band.data["left"][0] < 1 < 2 < view._band.data["right"][0]
    d = view._links.data
    alpha_of = {lay: max(a for l2, a in zip(d["layer"], d["alpha"]) if l2 == lay) for lay in (1, 2, 3)}
    assert alpha_of[2] > alpha_of[1] and alpha_of[2] > alpha_of[3]  # other layers are dimmed
    assert "forward" in view.summary and palette.FORWARD in view.summary
    view.current_op = bwd
    assert view._band.data["color"] == [palette.BACKWARD]
    assert "backward (data)" in view.summary and "←" in view.summary
    view.current_op = 10_000  # clamped to the last operation (the optimizer's update, all layers)
    assert ops[-1].phase == "update" and "update" in view.summary


def test_selecting_a_link_describes_where_it_sits():
    s = make("xor", 1, width1=6, rows=4, cols=4, dataflow="ws")
    s.step(1)
    view = NetworkView(s)  # current_op 0: L1 forward, X (32×2) · W1 (2×6): 1 row fold, 2 column folds
    d = view._links.data
    k = next(n for n in range(len(d["layer"])) if (d["layer"][n], d["i"][n], d["j"][n]) == (1, 1, 5))
    view.select_link(k)
    assert view.selected_weight == (1, 1, 5)
    w = float(s.snapshot.weights[0][1, 5])
    assert f"W1[1, 5] = {w:+.4f}" in view.description
    assert "W1[1, 5] sits in PE(1, 1) during fold 2 of 2 of 'L1 fwd Y = X·W' (ws)." in view.description
    assert "dW1[1, 5]" in view.description  # the weight-gradient GEMM of the same layer is listed too
    assert len(view._sel_links.data["x0"]) == 1
    # a click: the nearest link to a point a quarter of the way along it
    n = k
    x = 0.75 * d["x0"][n] + 0.25 * d["x1"][n]
    y = 0.75 * d["y0"][n] + 0.25 * d["y1"][n]
    view.selected_weight = None
    assert view.nearest_link(x, y) == n
    view._on_tap(type("Tap", (), {"x": x, "y": y})())
    assert view.selected_weight == (1, 1, 5)
    assert view.nearest_link(-0.5, 100.0) is None  # far from every link
    # another layer's weight while layer 1 is on the chip
    view.selected_weight = (2, 3, 0)
    assert "not this weight's layer" in view.description
    assert "W2[3, 0] sits in PE(3, 0) during fold 1 of 2 of 'L2 fwd Y = X·W' (ws)." in view.description
    view.clear_selection()
    assert "Click a link" in view.description
    view.selected_weight = (9, 0, 0)
    assert "not in this network" in view.description


@pytest.mark.parametrize("dataflow", ["ws", "os", "is"])
def test_selecting_a_pe_highlights_its_links(dataflow):
    s = make("xor", 2, width1=6, width2=5, rows=4, cols=4, dataflow=dataflow)
    s.step(1)
    ops = s.operations()
    k_fwd = next(k for k, o in enumerate(ops) if o.is_gemm and o.layer == 2 and o.phase == "forward")
    k_bwd = next(k for k, o in enumerate(ops) if o.is_gemm and o.layer == 2 and o.phase == "backward_data")
    view = NetworkView(s, current_op=k_fwd, selected_pe=(1, 2))
    # L2 forward: X (32×6) · W2 (6×5)
    expected = {"ws": {(2, 1, 2)},  # holds W2[1, 2]
                "os": {(2, i, 2) for i in range(6)},  # sees column 2 of W2
                "is": {(2, 1, j) for j in range(5)}}[dataflow]  # sees row 1 of W2
    assert view.highlighted_links() == expected
    assert len(view._pe_links.data["x0"]) == len(expected)
    assert "PE(1, 2) in fold 1" in view.description
    view.current_op = k_bwd  # dZ (32×5) · W2ᵀ (5×6): B[k, n] = W2[n, k]
    expected = {"ws": {(2, 2, 1)}, "os": {(2, 2, j) for j in range(5)},
                "is": {(2, i, 1) for i in range(6)}}[dataflow]
    assert view.highlighted_links() == expected
    view.fold = 50  # clamped to the last fold; a partial fold may leave this PE idle
    assert "PE(1, 2)" in view.description
    view.selected_pe = (40, 40)
    assert "outside the 4×4 array" in view.description and view.highlighted_links() == set()
    vector = next(k for k, o in enumerate(ops) if not o.is_gemm)
    view.selected_pe, view.current_op = (0, 0), vector
    assert "vector unit" in view.description and view.highlighted_links() == set()


def test_selected_pe_pins_units_of_compact_layers():
    s = make("digits", 1, width1=32, rows=8, cols=8, dataflow="ws")
    s.step(1)
    view = NetworkView(s, current_op=0)
    # fold 9 of L1 forward (K = 64 inputs on 8 rows, N = 32 on 8 cols): rows 8..15, cols 8..15
    view.fold = 9
    view.selected_pe = (2, 3)
    # 8 row folds × 4 column folds, column folds outer: fold 9 is column fold 1, row fold 1
    assert view.highlighted_links() == {(1, 10, 11)}
    shown_inputs = [int(t) for x, t in zip(view._labels.data["x"], view._labels.data["text"]) if x == 0]
    shown_hidden = [int(t) for x, t in zip(view._labels.data["x"], view._labels.data["text"]) if x == 1]
    assert 10 in shown_inputs and 11 in shown_hidden  # pinned beside the first 8 of each compact layer
    d = view._links.data
    row = [k for k, (lay, i, j) in enumerate(zip(d["layer"], d["i"], d["j"])) if (lay, i, j) == (1, 10, 11)]
    assert len(row) == 1 and d["w"][row[0]] == pytest.approx(float(s.snapshot.weights[0][10, 11]))
    assert "holds W1[10, 11]" in view.description


def test_worker_thread_snapshots_update_an_unserved_view():
    s = make("xor", 1)
    view = NetworkView(s)
    s.start()
    try:
        import time

        deadline = time.monotonic() + 20
        while (s.snapshot.step < 3) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        s.close()
    snap = s.snapshot
    assert snap.step >= 3
    view._refresh()
    check_links_match(view, snap)
