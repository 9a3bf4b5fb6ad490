"""The training step's shortcuts compute exactly what the long way does: the flat Adam, the chip
runner's memo of operations, and the command line's start without the drawing code."""
from __future__ import annotations

import subprocess
import sys

import numpy as np

from chipviz.chip import ChipConfig, analyze
from chipviz.nn.on_chip import ChipRunner
from chipviz.nn.optimizers import Adam


def _params(rng):
    return [rng.standard_normal(s).astype(np.float32) for s in ((6, 4), (4,), (4, 3), (3,))]


def test_flat_adam_is_bit_identical_to_the_rule_per_parameter_and_survives_a_reload():
    rng = np.random.default_rng(0)
    flat_p = _params(rng)
    loop_p = [p.copy() for p in flat_p]
    flat, loop = Adam(0.01), Adam(0.01)
    loop._flat = lambda params, grads: None  # the per-parameter loop
    for step in range(6):
        grads = [rng.standard_normal(p.shape).astype(np.float32) * 10.0 ** (step - 3) for p in flat_p]
        flat.step(flat_p, grads)
        loop.step(loop_p, [g.copy() for g in grads])
        if step == 2:  # a saved and reloaded run: the moments become fresh arrays, the flat buffers are rebuilt
            state = {k: np.array(v) for k, v in flat.state().items()}
            flat = Adam(0.01)
            flat.load_state(state, flat_p)
    for a, b in zip(flat_p + flat.m + flat.v, loop_p + loop.m + loop.v):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()


def test_flat_adam_falls_back_for_mixed_types():
    rng = np.random.default_rng(1)
    params = [rng.standard_normal((3, 2)).astype(np.float32), rng.standard_normal(2)]  # float32 and float64
    grads = [np.ones((3, 2), np.float32), np.ones(2)]
    opt = Adam(0.1)
    opt.step(params, grads)
    assert opt._flat(params, grads) is None and params[1].dtype == np.float64


def test_the_runner_memo_gives_analyze_s_stats_and_tells_shapes_and_types_apart():
    chip = ChipConfig(rows=4, cols=4)
    runner = ChipRunner(chip)
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((5, 7), dtype=np.float32), rng.standard_normal((7, 3), dtype=np.float32)
    for _ in range(2):
        c = runner.matmul(a, b, 1, "forward")
        assert c.tobytes() == (a @ b).tobytes()
    assert runner.ops[0] is runner.ops[1] and runner.ops[0].stats == analyze(5, 7, 3, chip)
    runner.matmul(a[:2], b, 1, "forward")  # another shape: its own stats
    assert runner.ops[-1].stats == analyze(2, 7, 3, chip)
    c64 = runner.matmul(a.astype(np.float64), b, 1, "forward")  # converted to float32, as the chip does
    assert c64.dtype == np.float32 and c64.tobytes() == (a @ b).tobytes()
    runner.vector(10, 2, 1, "forward", "+ b, relu")
    runner.vector(10, 2, 1, "forward", "+ b, relu")
    runner.vector(11, 2, 1, "forward", "+ b, relu")
    assert runner.ops[-3] is runner.ops[-2] and runner.ops[-1].stats.elements == 11


def test_the_command_line_starts_without_pillow_or_the_drawing_code():
    script = ("import sys, chipviz.cli\n"
              "chipviz.cli.build_parser()\n"
              "print(sorted(m for m in ('PIL', 'xml.sax.saxutils', 'urllib.request', 'chipviz.animation', 'numba')"
              " if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
