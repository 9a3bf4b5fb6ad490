"""The trace payload codec without Panel: layout, round trip, deduplication, batch sizes, tooltip indices."""
from __future__ import annotations

import json
import struct
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chipviz.chip.dataflow_table import DATAFLOW_TABLE
from chipviz.trace_payload import (
    FORMAT_VERSION, MAGIC, bytes_per_cycle, default_batch_cycles, pack_window, pe_operands, unpack_payload,
)

from traces import DATAFLOWS, run  # tests/traces.py


def pack_all(tr):
    return pack_window(tr, tr.start, tr.start + tr.n_cycles, total_cycles=tr.start + tr.n_cycles)


_TRACES = {df: run(df) for df in DATAFLOWS}  # shared by the hypothesis test (not a fixture: reused per example)


@pytest.fixture(params=DATAFLOWS)
def traced(request):
    return run(request.param)


def test_the_codec_imports_no_panel():
    code = ("import sys, chipviz.trace_payload; "
            "print(sorted(m for m in ('panel', 'bokeh', 'param') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_payload_layout_is_magic_header_then_aligned_planes(traced):
    _, _, tr, _ = traced
    raw = pack_all(tr)
    assert raw[:4] == MAGIC
    (hlen,) = struct.unpack_from("<I", raw, 4)
    assert (8 + hlen) % 8 == 0
    header = json.loads(raw[8:8 + hlen])
    assert header["version"] == FORMAT_VERSION
    data_len = 0
    for spec in header["planes"].values():
        if "alias" in spec:
            continue
        assert spec["offset"] % 8 == 0
        nbytes = int(np.prod(spec["shape"])) * int(spec["dtype"][1])
        data_len = max(data_len, spec["offset"] + -(-nbytes // 8) * 8)
    assert len(raw) == 8 + hlen + data_len
    # one plane read by hand, without unpack_payload: the state bytes of cycle 0
    st_ = header["planes"]["state"]
    first = np.frombuffer(raw, np.uint8, tr.state[0].size, 8 + hlen + st_["offset"])
    assert np.array_equal(first.reshape(tr.state[0].shape), tr.state[0])


def check_window(tr, header, arr, start, stop):
    a, b = start - tr.start, stop - tr.start
    for name in ("state", "psum", "stationary", "from_left", "from_top", "bottom_out"):
        assert arr[name].shape == getattr(tr, name)[a:b].shape, name
        assert np.array_equal(arr[name], getattr(tr, name)[a:b]), name
    hist = header["hist"]
    assert hist == max(tr.state.shape[1:]) - 1
    for name in ("fold", "left_in", "top_in"):
        got, want = arr[name], getattr(tr, name)
        assert got.shape[0] == stop - start + hist
        assert np.array_equal(got[hist:], want[a:b]), name
        for back in range(1, hist + 1):  # cycles before the window: from the trace, or -1 before it
            row = got[hist - back]
            expect = want[a - back] if a - back >= 0 else np.full_like(want[0], -1)
            assert np.array_equal(row, expect), (name, back)


@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("window", [None, (3, 17), (20, 21)])
def test_payload_decodes_to_the_trace_window(dataflow, window):
    _, _, tr, total = run(dataflow)
    start, stop = window if window else (tr.start, tr.start + tr.n_cycles)
    payload = pack_window(tr, start, stop, total_cycles=total, psum_scale=5.0, stationary_scale=4.0)
    header, arr = unpack_payload(payload)
    assert (header["rows"], header["cols"], header["dataflow"]) == (4, 4, dataflow)
    assert (header["start"], header["n"], header["total_cycles"]) == (start, stop - start, total)
    assert header["n_folds"] == len(tr.tiles) and header["tiles"] == tr.tiles.tolist()
    assert header["roles"] == dict(tr.roles)
    assert header["roles"]["stationary"] == {"ws": "B", "is": "A", "os": "C"}[dataflow]
    assert (header["psum_scale"], header["stationary_scale"]) == (5.0, 4.0)
    assert header["follow"] is False
    check_window(tr, header, arr, start, stop)


@given(dataflow=st.sampled_from(DATAFLOWS), data=st.data())
def test_any_window_round_trips(dataflow, data):
    _, _, tr, total = _TRACES[dataflow]
    lo, hi = tr.start, tr.start + tr.n_cycles
    start = data.draw(st.integers(lo, hi - 1), label="start")
    stop = data.draw(st.integers(start + 1, hi), label="stop")
    header, arr = unpack_payload(pack_window(tr, start, stop, total_cycles=total, follow=True))
    assert header["follow"] is True
    check_window(tr, header, arr, start, stop)


def test_scales_default_to_the_window_largest_magnitude():
    _, _, tr, total = run("ws")
    header, _ = unpack_payload(pack_window(tr, 3, 17, total_cycles=total))
    assert header["psum_scale"] == pytest.approx(float(np.abs(tr.psum[3:17]).max()))
    assert header["stationary_scale"] == pytest.approx(float(np.abs(tr.stationary[3:17]).max()))
    header, _ = unpack_payload(pack_window(tr, 0, 1, total_cycles=total))
    assert header["psum_scale"] == 1.0  # an all-zero window is drawn at scale 1, not divided by 0


def test_register_planes_are_deduplicated_and_aliased():
    _, _, tr, _ = run("ws", m=30)
    header, _ = unpack_payload(pack_all(tr))
    planes = header["planes"]
    n = header["n"]
    assert planes["stationary.frames"]["shape"][0] < n // 4  # weights sit still while A streams
    assert planes["from_top.frames"]["shape"][0] == 1  # ws never moves anything down but preload
    _, _, tr_os, _ = run("os")
    header, arr = unpack_payload(pack_all(tr_os))
    assert header["planes"]["stationary"] == {"alias": "psum"}  # os keeps C in place: same register
    assert np.array_equal(arr["stationary"], tr_os.stationary)


def test_pack_refuses_an_oversized_batch():
    _, _, tr, total = run("ws")
    with pytest.raises(ValueError, match=r"MiB.*shorter window"):
        pack_window(tr, 0, tr.n_cycles, total_cycles=total, max_bytes=1000)


def test_unpack_rejects_foreign_bytes():
    with pytest.raises(ValueError, match="CVPA"):
        unpack_payload(b"not a payload")


def test_batch_size_follows_the_byte_budget():
    assert bytes_per_cycle(32, 32, "os") > bytes_per_cycle(32, 32, "ws") > bytes_per_cycle(16, 16, "ws")
    assert default_batch_cycles(8, 8, "ws") == 600  # capped
    assert default_batch_cycles(64, 64, "ws") < default_batch_cycles(32, 32, "ws") < 600
    assert default_batch_cycles(256, 256, "os") == 16  # floor
    assert default_batch_cycles(4, 4, "ws", 4096) == 4096 // bytes_per_cycle(4, 4, "ws")


# ---- what the tooltip says --------------------------------------------------------------

@pytest.mark.parametrize("dataflow", DATAFLOWS)
def test_pe_operands_name_the_elements_in_each_mac(dataflow):
    a, b, tr, _ = run(dataflow, m=7, k=9, n=6, seed=3)
    macs = np.argwhere(tr.state == 1)
    assert len(macs) == 7 * 9 * 6  # every product exactly once
    seen = set()
    for c, i, j in macs:
        ix = pe_operands(tr, int(c) + tr.start, int(i), int(j))
        m, k, n = ix["m"], ix["k"], ix["n"]
        r0 = int(tr.tiles[tr.fold[c]][0])
        if dataflow == "ws":
            assert (tr.stationary[c, i, j], tr.from_left[c, i, j]) == (b[k, n], a[m, k])
            assert tr.psum[c, i, j] == a[m, r0:k + 1] @ b[r0:k + 1, n]  # partial sum down the column
        elif dataflow == "is":
            assert (tr.stationary[c, i, j], tr.from_left[c, i, j]) == (a[m, k], b[k, n])
            assert tr.psum[c, i, j] == a[m, r0:k + 1] @ b[r0:k + 1, n]
        else:
            assert ix["k_top"] == k
            assert (tr.from_left[c, i, j], tr.from_top[c, i, j]) == (a[m, k], b[k, n])
            assert tr.psum[c, i, j] == a[m, :k + 1] @ b[:k + 1, n]  # accumulated in place
        seen.add((m, k, n))
    assert len(seen) == 7 * 9 * 6


@pytest.mark.parametrize("dataflow", DATAFLOWS)
def test_pe_operands_place_the_spread_dimensions_as_the_table_says(dataflow):
    flow = DATAFLOW_TABLE[dataflow]
    _, _, tr, _ = run(dataflow, m=7, k=9, n=6, seed=3)
    for c in range(0, tr.n_cycles, 5):
        r0, _, c0, _ = (int(v) for v in tr.tiles[tr.fold[c]])
        ix = pe_operands(tr, c + tr.start, 1, 2)
        assert ix[flow.rows.lower()] == r0 + 1 and ix[flow.cols.lower()] == c0 + 2
        assert ("k_top" in ix) == (flow.from_top != "-")


def test_pe_operands_before_a_windowed_trace_is_unknown():
    _, _, tr, _ = run("ws", window=(8, 30))
    assert tr.start == 8
    assert pe_operands(tr, 8, 0, 2)["m"] is None  # the element entered at cycle 6, not recorded
    with pytest.raises(ValueError, match="outside the trace"):
        pe_operands(tr, 7, 0, 0)
