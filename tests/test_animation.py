"""chipviz.animation and `chipviz animate`: a GEMM's trace drawn headless as GIF, PNG and SVG, within bounds."""
import hashlib
import io
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image, ImageColor

from chipviz import animation, cli
from chipviz import palette as pal
from chipviz.chip import ChipConfig, analyze, gemm
from chipviz.chip.dataflow_table import DATAFLOW_TABLE
from chipviz.chip.trace import IDLE, MAC, PRELOAD, STALL, Trace

SVG = "{http://www.w3.org/2000/svg}"
STATE_RGB = {IDLE: pal.IDLE, MAC: pal.MAC, PRELOAD: pal.PRELOAD, STALL: pal.STALL}


def run_trace(m, k, n, rows, cols, dataflow, window=None, **chip):
    config = ChipConfig(rows=rows, cols=cols, dataflow=dataflow, **chip)
    total = analyze(m, k, n, config).cycles
    rng = np.random.default_rng(1)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    trace = gemm(a, b, config, engine="cycle", trace_window=window or (0, total)).trace
    return trace, total


@pytest.fixture(scope="module")
def ws():
    """The README's example: a 4×4×4 GEMM on a 4×4 weight-stationary array, 14 cycles."""
    return run_trace(4, 4, 4, 4, 4, "ws")


@pytest.fixture(scope="module")
def traces():
    return {"ws": run_trace(5, 6, 7, 4, 3, "ws"), "os": run_trace(5, 6, 7, 4, 3, "os"),
            "is": run_trace(5, 6, 7, 4, 3, "is")}


def gif_frames(data: bytes) -> list[np.ndarray]:
    image = Image.open(io.BytesIO(data))
    frames = []
    for i in range(image.n_frames):
        image.seek(i)
        frames.append(np.asarray(image.convert("RGB")))
    return frames


def cell_colours(image: np.ndarray, trace: Trace, total: int) -> np.ndarray:
    """The colour at the middle of every PE's cell, (R, C, 3)."""
    rows, cols = trace.state.shape[1:]
    layout = animation._layout(rows, cols, trace.dataflow, total, len(trace.tiles), "", "en")
    s = layout.cell
    ys = layout.y0 + np.arange(rows) * s + s // 2 - 1
    xs = layout.x0 + np.arange(cols) * s + s // 2 - 1
    return image[ys[:, None], xs[None, :]]


def expected_colours(state: np.ndarray) -> np.ndarray:
    lut = np.array([ImageColor.getrgb(STATE_RGB[code]) for code in range(4)], np.uint8)
    return lut[state]


# --------------------------------------------------------------------------- the GIF


@pytest.mark.parametrize("dataflow", ["ws", "os", "is"])
def test_gif_has_one_frame_per_cycle_of_the_window_and_loops(traces, dataflow):
    trace, total = traces[dataflow]
    data = animation.gif(trace, fps=5, total_cycles=total)
    image = Image.open(io.BytesIO(data))
    assert image.format == "GIF"
    assert image.n_frames == total
    assert image.info["loop"] == 0  # forever
    assert image.info["duration"] == 200
    assert image.size == animation.frame_size(4, 3, dataflow, total_cycles=total, n_folds=len(trace.tiles))
    window = animation.gif(trace, 3, 9, total_cycles=total)
    assert Image.open(io.BytesIO(window)).n_frames == 6


def test_gif_frames_differ_and_show_each_cycles_states(ws):
    trace, total = ws
    frames = gif_frames(animation.gif(trace, total_cycles=total))
    assert len(frames) == total == 14
    for before, after in zip(frames, frames[1:]):
        assert not np.array_equal(before, after)
    for cycle, frame in enumerate(frames):
        assert np.array_equal(cell_colours(frame, trace, total), expected_colours(trace.state[cycle])), cycle


def test_a_windowed_trace_draws_the_gemms_own_cycle_numbers():
    trace, total = run_trace(4, 4, 4, 4, 4, "ws", window=(5, 9))
    assert trace.start == 5
    frames = gif_frames(animation.gif(trace, 6, 9, total_cycles=total))
    assert len(frames) == 3
    assert np.array_equal(cell_colours(frames[0], trace, total), expected_colours(trace.state[1]))
    assert "cycle 7 of 14" in animation.frame_svg(trace, 6, total_cycles=total)
    with pytest.raises(ValueError, match="start must be a cycle of the trace, 5 to 8, got 2"):
        animation.gif(trace, 2, 9, total_cycles=total)


def test_the_same_input_gives_the_same_bytes_even_in_another_process(ws):
    trace, total = ws
    kwargs = {"total_cycles": total, "title": "GEMM 4×4×4"}
    assert animation.gif(trace, **kwargs) == animation.gif(trace, **kwargs)
    assert animation.frame_png(trace, 7, **kwargs) == animation.frame_png(trace, 7, **kwargs)
    assert animation.frame_svg(trace, 7, **kwargs) == animation.frame_svg(trace, 7, **kwargs)
    script = ("import hashlib, sys, numpy as np\n"
              "from chipviz import animation\n"
              "from chipviz.chip import ChipConfig, gemm\n"
              "rng = np.random.default_rng(1)\n"
              "a = rng.standard_normal((4, 4), dtype=np.float32); b = rng.standard_normal((4, 4), dtype=np.float32)\n"
              "t = gemm(a, b, ChipConfig(rows=4, cols=4, dataflow='ws'), engine='cycle', trace_window=(0, 14)).trace\n"
              "sys.stdout.write(hashlib.sha256(animation.gif(t, total_cycles=14, title='GEMM 4×4×4')).hexdigest())\n")
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert other == hashlib.sha256(animation.gif(trace, **kwargs)).hexdigest()


# --------------------------------------------------------------------------- one frame


def test_png_decodes_to_the_frame_size_with_the_cycles_states(ws):
    trace, total = ws
    image = Image.open(io.BytesIO(animation.frame_png(trace, 7, total_cycles=total)))
    assert image.format == "PNG"
    assert image.size == animation.frame_size(4, 4, "ws", total_cycles=total)
    assert np.array_equal(cell_colours(np.asarray(image.convert("RGB")), trace, total),
                          expected_colours(trace.state[7]))
    titled = Image.open(io.BytesIO(animation.frame_png(trace, 7, total_cycles=total, title="GEMM 4×4×4")))
    assert titled.size == animation.frame_size(4, 4, "ws", total_cycles=total, title="GEMM 4×4×4")
    assert titled.height > image.height


def test_svg_parses_and_says_the_same(ws):
    trace, total = ws
    text = animation.frame_svg(trace, 7, total_cycles=total, title="GEMM <4×4×4> & more")
    root = ET.fromstring(text)
    assert root.tag == f"{SVG}svg"
    assert (int(root.get("width")), int(root.get("height"))) == animation.frame_size(
        4, 4, "ws", total_cycles=total, title="GEMM <4×4×4> & more")
    words = [el.text for el in root.iter(f"{SVG}text")]
    assert "GEMM <4×4×4> & more" in words
    assert "cycle 8 of 14 · fold 1 of 1 · 10 of 16 PEs doing a MAC" in words
    assert {"idle", "MAC", "preload", "stall"} <= set(words)
    assert "m3" in words  # row m = 3 of A enters the left edge
    fills = [el.get("fill").lower() for el in root.iter(f"{SVG}rect")]
    assert fills.count(pal.MAC.lower()) >= 1 and pal.MOVING.lower() in fills and pal.OUTPUT.lower() in fills


@pytest.mark.parametrize("dataflow", ["ws", "os", "is"])
def test_edges_are_marked_where_values_enter_and_leave(traces, dataflow):
    trace, total = traces[dataflow]
    flow = DATAFLOW_TABLE[dataflow]
    for cycle in range(total):
        root = ET.fromstring(animation.frame_svg(trace, cycle, total_cycles=total))
        fills = [el.get("fill").lower() for el in root.iter(f"{SVG}rect")]
        n_left = int(np.count_nonzero(trace.left_in[cycle] >= 0))
        n_top = int(np.count_nonzero(trace.top_in[cycle] >= 0))
        n_out = int(np.count_nonzero(trace.bottom_out[cycle] >= 0))
        if flow.from_top != "-":  # os: both operands move in
            assert fills.count(pal.MOVING.lower()) == n_left + n_top
        else:
            assert fills.count(pal.MOVING.lower()) == n_left
        assert fills.count(pal.OUTPUT.lower()) == n_out


def test_palette_and_language_can_be_chosen(ws):
    trace, total = ws
    black = np.asarray(Image.open(io.BytesIO(animation.frame_png(trace, 7, total_cycles=total,
                                                                 palette={"mac": "#000000"}))).convert("RGB"))
    cells = cell_colours(black, trace, total)
    assert np.all(cells[trace.state[7] == MAC] == 0)
    with pytest.raises(ValueError, match="palette keys"):
        animation.frame_png(trace, 7, palette={"purple": "#800080"})
    with pytest.raises(ValueError, match="lang must be one of"):
        animation.frame_png(trace, 7, lang="fr")
    try:
        zh = animation.frame_svg(trace, 7, total_cycles=total, lang="zh")
    except ValueError as exc:  # no CJK font on this machine
        assert "font" in str(exc)
    else:
        assert "周期 8/14" in zh


# --------------------------------------------------------------------------- bounds


def test_a_gemm_too_long_for_a_gif_is_refused_naming_a_window_that_fits():
    trace, total = run_trace(700, 4, 4, 4, 4, "ws")
    assert total == 710
    with pytest.raises(animation.AnimationTooLarge) as exc:
        animation.gif(trace, total_cycles=total)
    assert str(exc.value) == ("this GEMM has 710 cycles; a GIF holds at most 600 frames: choose cycles 0:600 "
                              "(or a later window such as 600:710)")
    assert Image.open(io.BytesIO(animation.gif(trace, 100, 700, total_cycles=total, fps=50))).n_frames == 600
    message = ("this GEMM has 17,500 cycles; a GIF holds at most 600 frames: choose --cycles 0:600 "
               "(or a later window such as 600:1200)")
    with pytest.raises(animation.AnimationTooLarge, match=re.escape(message)):
        animation.check_gif_window(0, 17_500, total_cycles=17_500, rows=8, cols=8, dataflow="ws", option="--cycles")
    with pytest.raises(animation.AnimationTooLarge, match=r"cycles 1000:5000 are 4,000 frames; .* choose cycles "
                                                          r"1000:1600 \(or a later window such as 1600:2200\)"):
        animation.check_gif_window(1000, 5000, total_cycles=17_500, rows=8, cols=8, dataflow="ws")
    animation.check_gif_window(0, 600, total_cycles=17_500, rows=8, cols=8, dataflow="ws")  # fits


def test_large_frames_lower_the_gif_limit_to_the_byte_budget():
    most = animation.gif_frame_limit(128, 128, "ws", total_cycles=4096)
    width, height = animation.frame_size(128, 128, "ws", total_cycles=4096)
    assert most == animation.MAX_GIF_BYTES // (width * height) < animation.MAX_GIF_FRAMES
    with pytest.raises(animation.AnimationTooLarge, match=f"a GIF of this 128×128 array holds at most {most} frames "
                                                          f"\\(192 MiB of {width}×{height}-pixel frames\\)"):
        animation.check_gif_window(0, most + 1, total_cycles=4096, rows=128, cols=128, dataflow="ws")
    assert animation.gif_frame_limit(8, 8, "ws", total_cycles=10**6, title="GEMM M=4000 K=64 N=64 on a 8×8 ws array "
                                     "(weight stationary), fp32") == animation.MAX_GIF_FRAMES


@pytest.mark.parametrize("side, cell", [(1, 40), (4, 40), (8, 40), (16, 32), (32, 16), (128, 4), (200, 2), (256, 2)])
def test_cells_shrink_with_the_array_and_frames_stay_small(side, cell):
    layout = animation._layout(side, side, "os", 1000, 1, "", "en")
    assert layout.cell == cell
    width, height = animation.frame_size(side, side, "os", total_cycles=1000)
    assert width <= 640 and height <= 720


def test_an_array_too_large_to_draw_is_refused():
    rows = cols = 300
    trace = Trace(start=0, state=np.zeros((1, rows, cols), np.uint8), stationary=np.zeros((1, rows, cols), np.float32),
                  from_left=np.zeros((1, rows, cols), np.float32), from_top=np.zeros((1, rows, cols), np.float32),
                  psum=np.zeros((1, rows, cols), np.float32), fold=np.zeros(1, np.int32),
                  left_in=np.full((1, rows), -1, np.int32), top_in=np.full((1, cols), -1, np.int32),
                  bottom_out=np.full((1, cols), -1, np.int32), dataflow="ws",
                  tiles=np.array([[0, rows, 0, cols]]), roles=dict(DATAFLOW_TABLE["ws"].roles))
    for draw in (animation.frame_png, animation.frame_svg):
        with pytest.raises(animation.AnimationTooLarge, match="a 300×300 array is too large to draw: at 2 px per PE "
                                                              "its grid would be 600 px across"):
            draw(trace, 0)


def test_bad_arguments_are_refused(ws):
    trace, total = ws
    with pytest.raises(ValueError, match="cycle must be a cycle of the trace, 0 to 13, got 14"):
        animation.frame_png(trace, 14)
    with pytest.raises(ValueError, match="fps must be a number from 0.1 to 50"):
        animation.gif(trace, fps=60)
    with pytest.raises(ValueError, match="stop must be a whole number from 6 to 14, got 20"):
        animation.gif(trace, 5, 20)
    with pytest.raises(ValueError, match="total_cycles must be a whole number >= 14"):
        animation.frame_png(trace, 3, total_cycles=10)
    with pytest.raises(ValueError, match="title must be one line"):
        animation.frame_svg(trace, 3, title="two\nlines")


# --------------------------------------------------------------------------- chipviz animate

GEMM = ["--m", "4", "--k", "4", "--n", "4", "--array", "4x4", "--dataflow", "ws"]


def animate(capsys, *argv):
    code = cli.main(["animate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_writes_a_gif(capsys, tmp_path):
    path = tmp_path / "gemm.gif"
    code, out, err = animate(capsys, *GEMM, "--out", str(path))
    assert (code, err) == (0, "")
    image = Image.open(path)
    assert image.n_frames == 14 and image.info["duration"] == 250
    assert out == f"wrote {path}: 14 frames, cycles 0:14 of this run's 14, at 4 fps, {image.width}×{image.height} " \
                  f"px, {path.stat().st_size / 1024:.1f} KiB\n"
    code, out, err = animate(capsys, *GEMM, "--out", str(path), "--cycles", "4:10", "--fps", "10",
                             "--title", "Weight stationary")
    assert code == 0 and "6 frames, cycles 4:10" in out
    image = Image.open(path)
    assert image.n_frames == 6 and image.info["duration"] == 100
    config = ChipConfig(rows=4, cols=4, dataflow="ws")
    assert image.size == animation.frame_size(4, 4, "ws", total_cycles=14, title="Weight stationary",
                                              n_folds=analyze(4, 4, 4, config).folds)


@pytest.mark.parametrize("name", ["frame.png", "FRAME.PNG", "frame.svg"])
def test_cli_writes_one_frame(capsys, tmp_path, name):
    path = tmp_path / name
    code, out, err = animate(capsys, *GEMM, "--out", str(path), "--cycle", "3")
    assert (code, err) == (0, "")
    assert out.startswith(f"wrote {path}: cycle 3 of this run's 0..13, ") and out.count("\n") == 1
    if name.lower().endswith(".png"):
        assert Image.open(path).format == "PNG"
    else:
        root = ET.parse(path).getroot()
        words = [el.text for el in root.iter(f"{SVG}text")]
        assert "cycle 4 of 14 · fold 1 of 1 · 0 of 16 PEs doing a MAC" in words  # the last preload cycle
        assert words.count("k0") == 4  # row k = 0 of B enters every column


def test_cli_frame_defaults_to_the_middle_cycle(capsys, tmp_path):
    code, out, _ = animate(capsys, *GEMM, "--out", str(tmp_path / "f.svg"))
    assert code == 0 and "cycle 7 of this run's 0..13" in out


@pytest.mark.parametrize("argv, message", [
    (["--out", "{tmp}/gemm.jpg"], "argument --out: must end in .gif (animated), .png or .svg (one cycle), got "),
    (["--out", "{tmp}/missing/gemm.gif"], "argument --out: directory "),
    (["--out", "{tmp}"], "argument --out: must end in .gif"),
    (["--out", "{tmp}/g.gif", "--cycles", "20:30"], "argument --cycles: expected START:STOP with 0 <= START < STOP, "
                                                    "cycles of this run being 0..13: START 20 is past the end"),
    (["--out", "{tmp}/g.gif", "--cycles", "5"], "argument --cycles: expected START:STOP"),
    (["--out", "{tmp}/g.gif", "--cycles", "9:3"], "argument --cycles: expected START:STOP"),
    (["--out", "{tmp}/g.gif", "--cycle", "3"], "argument --cycle: chooses the cycle of a PNG or SVG"),
    (["--out", "{tmp}/g.png", "--cycles", "0:5"], "argument --cycles: only for a GIF"),
    (["--out", "{tmp}/g.svg", "--fps", "5"], "argument --fps: only for a GIF"),
    (["--out", "{tmp}/g.gif", "--fps", "0"], "argument --fps: must be a whole number from 1 to 50, got 0"),
    (["--out", "{tmp}/g.gif", "--fps", "fast"], "argument --fps: must be a whole number, got 'fast'"),
    (["--out", "{tmp}/g.png", "--cycle", "14"], "argument --cycle: must be a cycle of this run, 0 to 13, got 14"),
    (["--out", "{tmp}/g.png", "--cycle", "-1"], "argument --cycle: must be a cycle of this run, 0 to 13, got -1"),
    ([], "the following arguments are required: --out"),
])
def test_cli_bad_arguments_give_one_line_naming_the_option(capsys, tmp_path, argv, message):
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]
    code, out, err = animate(capsys, *GEMM, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("chipviz: error: ")
    assert message in err
    assert list(tmp_path.iterdir()) == []


def test_cli_refuses_a_gemm_too_long_for_a_gif(capsys, tmp_path):
    code, out, err = animate(capsys, "--m", "17000", "--k", "4", "--n", "4", "--array", "4x4", "--out",
                             str(tmp_path / "g.gif"))
    assert (code, out) == (2, "")
    assert err == ("chipviz: error: this GEMM has 17,010 cycles; a GIF holds at most 600 frames: choose --cycles "
                   "0:600 (or a later window such as 600:1200)\n")
    code, out, err = animate(capsys, "--m", "17000", "--k", "4", "--n", "4", "--array", "4x4", "--out",
                             str(tmp_path / "g.gif"), "--cycles", "16000:")
    assert err == ("chipviz: error: argument --cycles: cycles 16000:17010 are 1,010 frames; a GIF holds at most 600 "
                   "frames: choose --cycles 16000:16600 (or a later window such as 16600:17010)\n")
    code, out, err = animate(capsys, "--m", "17000", "--k", "4", "--n", "4", "--array", "4x4", "--out",
                             str(tmp_path / "g.gif"), "--cycles", "16000:16600")
    assert code == 0 and Image.open(tmp_path / "g.gif").n_frames == 600


def test_cli_gif_limit_includes_the_trace_budget(capsys, tmp_path):
    code, _, err = animate(capsys, "--m", "300", "--k", "256", "--n", "256", "--array", "256x256", "--dataflow", "os",
                           "--out", str(tmp_path / "g.gif"))
    assert code == 2
    # 256 MiB over 256·257·13 + 4·(1 + 3·256) bytes a traced cycle (a state byte and three stored float32
    # registers per PE and per row's spare slot; the edges)
    assert "a GIF of this 256×256 array holds at most 312 frames: choose --cycles 0:312" in err
