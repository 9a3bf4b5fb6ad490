"""Classroom lessons: every file parses, both languages agree, every step applies headlessly,
and every number a lesson states or checks is recomputed here from the simulator, through a
path independent of lessons.py, so that no lesson can go stale when the simulator changes.
"""
from __future__ import annotations

import math
import re
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from chipviz import lessons as L
from chipviz.session import TrainingSession
from chipviz.chip import ChipConfig, Mapping, analyze, gemm
from chipviz.chip import trace as chip_trace
from chipviz.nn.trainer import Diverged, Trainer, TrainSettings

ROOT = Path(__file__).resolve().parents[1]
LESSONS = ROOT / "lessons"
EXPECTED_SLUGS = ["processing-element", "systolic-matmul", "folding", "dataflows", "forward-pass",
                  "learning-rate", "backpropagation", "memory-energy", "precision", "seed-network-cost",
                  "batch-size", "convolution", "cpu-gpu-tpu", "power-wall", "design-your-own-chip"]
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def en():
    return L.load_lessons("en", LESSONS)


@pytest.fixture(scope="module")
def zh():
    return L.load_lessons("zh", LESSONS)


def all_steps(lessons):
    return [(lesson, step) for lesson in lessons for step in lesson.steps]


# ======================================================================================
# An oracle: the simulator asked directly, not through lessons.py
# ======================================================================================

def oracle_chip(settings: dict) -> ChipConfig:
    return ChipConfig(rows=settings["rows"], cols=settings["cols"], dataflow=settings["dataflow"],
                      clock_mhz=settings["clock_mhz"], ifmap_sram_kib=settings["sram_kib"],
                      filter_sram_kib=settings["sram_kib"], ofmap_sram_kib=settings["sram_kib"],
                      dram_bytes_per_cycle=settings["dram_bytes_per_cycle"])


@lru_cache(maxsize=64)
def oracle_trainer(settings_key: tuple, steps: int, keep: bool = False) -> Trainer:
    s = dict(settings_key)
    hidden = (s["width1"], s["width2"], s["width3"], s["width4"])[: s["hidden_layers"]]
    if s["model"] == "cnn":  # chipviz.nn.conv's grammar: a k×k convolution of F filters, then 2×2 max pooling
        hidden = (f"conv{s['kernel']}x{s['kernel']}x{s['filters']}", "pool2") + hidden
    ts = TrainSettings(dataset=s["dataset"], hidden=hidden, activation=s["activation"], optimizer=s["optimizer"],
                       lr=s["lr"], batch_size=s["batch_size"], seed=s["seed"], noise=s["noise"])
    trainer = Trainer(ts, oracle_chip(s).with_(precision=s["precision"]), keep_operands=keep)
    for _ in range(steps):
        try:
            trainer.step()
        except Diverged:
            break
    return trainer


PHASE = {"forward": "forward", "dX": "backward_data", "dW": "backward_weights"}


def oracle_op(trainer: Trainer, ref: str):
    layer, kind = re.match(r"L(\d)\.(\w+)", ref).groups()
    for i, op in enumerate(trainer.last.ops):
        if op.is_gemm and op.layer == int(layer) and op.phase == PHASE[kind]:
            return i, op
    raise AssertionError(f"no {ref} in this network")


GEMM_FIELDS = {  # (stats, chip) -> value, written from the definitions, not from lessons.py
    "cycles": lambda s, c: s.cycles, "folds": lambda s, c: s.folds, "cycles_per_fold": lambda s, c: s.cycles_per_fold,
    "stall_cycles": lambda s, c: s.stall_cycles, "macs": lambda s, c: s.m * s.k * s.n,
    "utilization": lambda s, c: 100 * s.m * s.k * s.n / (s.cycles * s.rows * s.cols),
    "mapping_efficiency": lambda s, c: 100 * s.mapping_efficiency,
    "energy_nj": lambda s, c: s.energy_pj["total"] / 1e3, "mac_energy_nj": lambda s, c: s.energy_pj["mac"] / 1e3,
    "dram_energy_nj": lambda s, c: s.energy_pj["dram"] / 1e3,
    "dram_energy_share": lambda s, c: 100 * s.energy_pj["dram"] / s.energy_pj["total"],
    "mac_energy_share": lambda s, c: 100 * s.energy_pj["mac"] / s.energy_pj["total"],
    "dram_bytes": lambda s, c: s.dram_bytes, "sram_reads": lambda s, c: s.sram_reads,
    "sram_writes": lambda s, c: s.sram_writes, "register_hops": lambda s, c: s.register_hops,
    "arithmetic_intensity": lambda s, c: s.macs / s.dram_bytes,
    "attainable_macs_per_cycle": lambda s, c: min(c.rows * c.cols, s.macs / s.dram_bytes * c.dram_bytes_per_cycle),
    "time_us": lambda s, c: s.cycles / c.clock_mhz,
    "preload_cycles": lambda s, c: 0 if s.dataflow == "os" else s.rows,
    "tops_per_watt": lambda s, c: 2 * s.m * s.k * s.n / s.energy_pj["total"],
    "bound": lambda s, c: "memory" if s.macs / s.dram_bytes * c.dram_bytes_per_cycle < c.rows * c.cols else "compute",
    "gemm_m": lambda s, c: s.m, "gemm_k": lambda s, c: s.k, "gemm_n": lambda s, c: s.n,
    "dram_reads": lambda s, c: s.dram_reads, "sram_reads_ifmap": lambda s, c: s.sram_reads_ifmap,
    "achieved_tops": lambda s, c: 2 * s.m * s.k * s.n * c.clock_mhz * 1e6 / s.cycles / 1e12,
}
STATIC_W_PER_PE = 28 / 65_536  # the assumption lesson 14 states: TPU v1's 28 W idle power over its 65,536 PEs


@lru_cache(maxsize=16)
def _mnist_trainer(settings_key: tuple) -> Trainer:
    """One step of the settings' network on 784 inputs and 10 classes, on data of its own (other
    values than lessons.py uses: a step's cost must not depend on them)."""
    from chipviz.data import Dataset

    s = dict(settings_key)
    hidden = (s["width1"], s["width2"], s["width3"], s["width4"])[: s["hidden_layers"]]
    rng = np.random.default_rng(11)
    data = Dataset("oracle", rng.normal(size=(300, 784)).astype(np.float32), rng.integers(0, 10, 300),
                   rng.normal(size=(20, 784)).astype(np.float32), rng.integers(0, 10, 20), 10, None, "oracle")
    ts = TrainSettings(dataset="digits", hidden=hidden, activation=s["activation"], optimizer=s["optimizer"],
                       lr=s["lr"], batch_size=s["batch_size"], seed=s["seed"])
    t = Trainer(ts, oracle_chip(s).with_(precision=s["precision"]), data=data)
    t.step()
    return t


def oracle_mnist(settings_key: tuple, name: str):
    s = dict(settings_key)
    hidden = (s["width1"], s["width2"], s["width3"], s["width4"])[: s["hidden_layers"]]
    sizes = (784, *hidden, 10)
    batch = s["batch_size"]
    pairs = [a * b for a, b in zip(sizes, sizes[1:])]
    if name == "mnist_params":
        return sum(pairs) + sum(sizes[1:])
    if name == "mnist_step_macs":  # forward, dW, and dX except layer 1's
        return batch * (3 * sum(pairs) - pairs[0])
    ops = _mnist_trainer(settings_key).last.ops
    cycles = sum(op.cycles for op in ops)
    energy_j = sum(op.energy_pj for op in ops) * 1e-12
    seconds = sum(op.stats.seconds for op in ops)
    steps = -(-60_000 // batch)
    return {"mnist_step_cycles": cycles, "mnist_step_energy_uj": energy_j * 1e6, "mnist_step_time_us": seconds * 1e6,
            "mnist_step_utilization": 100 * sum(op.macs for op in ops) / (cycles * s["rows"] * s["cols"]),
            "mnist_steps_per_epoch": steps, "mnist_epoch_time_s": seconds * steps,
            "mnist_epoch_energy_j": energy_j * steps, "mnist_epoch_kwh": energy_j * steps / 3.6e6,
            "mnist_epoch_cost_usd": energy_j * steps / 3.6e6 * 0.15}[name]


def oracle_trace_value(name: str, tr) -> int:
    busy = (tr.state == chip_trace.MAC)
    if name == "full_cycles":
        return int(sum(1 for c in range(busy.shape[0]) if busy[c].all()))
    if name == "first_mac_cycle":
        return int(next(c for c in range(busy.shape[0]) if busy[c].any())) + tr.start
    if name == "busy_pes_peak":
        return int(max(busy[c].sum() for c in range(busy.shape[0])))
    if name == "last_output_cycle":
        return int(max(c for c in range(tr.bottom_out.shape[0]) if (tr.bottom_out[c] >= 0).any())) + tr.start
    raise AssertionError(name)


def sweep_space(space: str) -> tuple:
    """The Design space tab's choices (read from the app's widgets): its defaults ("tab") or all ("wide")."""
    from chipviz.app.design_space import DesignSpaceView

    view = DesignSpaceView(client=None, sram=lambda: 256.0)
    widgets = (view.arrays, view.dataflows, view.precisions, view.bandwidth)
    return tuple(tuple(w.value if space == "tab" else w.options) for w in widgets)


@lru_cache(maxsize=4)
def oracle_designs(settings_key: tuple, space: str) -> list[dict]:
    """Every design of the space, each one a training step of its own trainer (no sweep code involved)."""
    arrays, flows, precisions, bandwidths = sweep_space(space)
    out = []
    for array in arrays:
        rows, cols = (int(v) for v in array.split("x"))
        for flow in flows:
            for precision in precisions:
                for bw in bandwidths:
                    s = {**dict(settings_key), "rows": rows, "cols": cols, "dataflow": flow, "precision": precision,
                         "dram_bytes_per_cycle": float(bw)}
                    ops = oracle_trainer.__wrapped__(L._key(s), 1).last.ops  # uncached: 528 designs
                    out.append({"array": array, "dataflow": flow, "precision": precision, "bw": float(bw),
                                "pes": rows * cols, "cycles": sum(op.cycles for op in ops),
                                "energy_uj": sum(op.energy_pj for op in ops) / 1e6})
    return out


def oracle_sweep(query: L.Query):
    args = dict(query.sweep)
    designs = [d for d in oracle_designs(query.settings, args.get("space", "tab"))
               if d["pes"] <= args.get("max_pes", math.inf) and d["energy_uj"] <= args.get("max_uj", math.inf)]
    fastest = min(designs, key=lambda d: (d["cycles"], d["energy_uj"], d["pes"], d["bw"]))
    frugal = min(designs, key=lambda d: (d["energy_uj"], d["cycles"], d["pes"], d["bw"]))

    def on_front(cost):  # dominated by none: no other design <= on both and < on one
        return sum(not any(o[cost] <= d[cost] and o["energy_uj"] <= d["energy_uj"] and
                           (o[cost] < d[cost] or o["energy_uj"] < d["energy_uj"]) for o in designs) for d in designs)

    energies, cycles = [d["energy_uj"] for d in designs], [d["cycles"] for d in designs]
    table = {"sweep_designs": len(designs), "sweep_front": on_front("cycles"), "sweep_front_pes": on_front("pes"),
             "sweep_energy_ratio": max(energies) / min(energies), "sweep_cycles_ratio": max(cycles) / min(cycles),
             "sweep_max_energy_uj": max(energies)}
    for name, d in (("fastest", fastest), ("frugal", frugal)):
        table.update({f"sweep_{name}_cycles": d["cycles"], f"sweep_{name}_energy_uj": d["energy_uj"],
                      f"sweep_{name}_pes": d["pes"], f"sweep_{name}_array": d["array"],
                      f"sweep_{name}_dataflow": d["dataflow"], f"sweep_{name}_precision": d["precision"],
                      f"sweep_{name}_bw": d["bw"]})
    return table[query.measure]


def oracle(query: L.Query):
    """The value of a lesson query, from the chip and trainer directly."""
    m = L.MEASURES[query.measure]
    s = dict(query.settings)
    cfg = oracle_chip(s)
    if m.kind == "chip":
        c = cfg.with_(precision=s["precision"])
        e = c.energy
        table = {"pes": c.rows * c.cols, "peak_tops": 2 * c.rows * c.cols * c.clock_mhz * 1e6 / 1e12,
                 "peak_gmacs": c.rows * c.cols * c.clock_mhz / 1e3,
                 "dram_gbs": c.dram_bytes_per_cycle * c.clock_mhz / 1e3,
                 "ridge_intensity": c.rows * c.cols / c.dram_bytes_per_cycle,
                 "mac_pj": e.mac_int8_pj if c.precision == "int8" else e.mac_fp32_pj,
                 "dram_pj_per_byte": e.dram_pj_per_byte, "sram_pj_per_byte": e.sram_pj_per_byte,
                 "register_pj_per_byte": e.register_pj_per_byte,
                 "operand_bytes": 1 if c.precision == "int8" else 4}
        mac = table["mac_pj"]
        table["peak_mac_power_w"] = c.rows * c.cols * mac * 1e-12 * c.clock_mhz * 1e6
        table["static_power_w"] = 28.0 * c.rows * c.cols / 65_536
        table["dram_word_macs"] = table["operand_bytes"] * e.dram_pj_per_byte / mac
        table["sram_word_macs"] = table["operand_bytes"] * e.sram_pj_per_byte / mac
        return table[query.measure]
    if m.kind == "net":
        t = oracle_trainer(query.settings, query.steps)
        ops = t.last.ops
        phase = lambda *ps: sum(op.cycles for op in ops if op.phase in ps)  # noqa: E731
        energy = sum(op.energy_pj for op in ops)
        seconds = sum(op.stats.seconds for op in ops)
        table = {
            "step_cycles": lambda: sum(op.cycles for op in ops), "forward_cycles": lambda: phase("forward"),
            "backward_cycles": lambda: phase("backward_data", "backward_weights"),
            "update_cycles": lambda: phase("update"),
            "step_macs": lambda: sum(op.macs for op in ops), "step_energy_uj": lambda: energy / 1e6,
            "step_time_us": lambda: seconds * 1e6, "step_power_w": lambda: energy * 1e-12 / seconds,
            "gemm_count": lambda: sum(1 for op in ops if op.is_gemm),
            "params": lambda: sum(w.size + b.size for w, b in zip(t.net.weights, t.net.biases)),
            "test_accuracy": lambda: 100 * t.evaluate("test")[1], "test_loss": lambda: t.evaluate("test")[0],
            "train_loss": lambda: t.last.loss, "diverged": lambda: "yes" if t.diverged else "no",
            "diverged_at": lambda: t.step_count + 1 if t.diverged else 0,
            "step_utilization": lambda: 100 * sum(op.macs for op in ops) / (sum(op.cycles for op in ops) * cfg.pes),
            "step_energy_with_static_uj": lambda: (energy * 1e-12 + STATIC_W_PER_PE * cfg.pes * seconds) * 1e6,
            "steps_per_epoch": lambda: math.ceil(len(t.data.x_train) / s["batch_size"]),
            "epoch_time_ms": lambda: seconds * 1e3 * math.ceil(len(t.data.x_train) / s["batch_size"]),
            "epoch_energy_mj": lambda: energy / 1e9 * math.ceil(len(t.data.x_train) / s["batch_size"]),
        }
        return table[query.measure]()
    if m.kind == "mnist":
        return oracle_mnist(query.settings, query.measure)
    if m.kind == "sweep":
        return oracle_sweep(query)
    # a GEMM: a given shape, or an op of the network's training step
    if query.gemm:
        mm, kk, nn = query.gemm
        c = cfg.with_(precision=s["precision"])
        stats = analyze(mm, kk, nn, c)
        operands = None
        if m.kind == "trace":
            rng = np.random.default_rng(1)
            if c.precision == "fp32":
                a, b = rng.random((mm, kk), np.float32) + 0.5, rng.random((kk, nn), np.float32) + 0.5
            else:
                a, b = rng.integers(1, 5, (mm, kk)).astype(np.int8), rng.integers(1, 5, (kk, nn)).astype(np.int8)
            operands = (a, b, c)
    else:
        t = oracle_trainer(query.settings, query.steps, keep=m.kind == "trace")
        i, op = oracle_op(t, query.op or "L1.forward")
        stats = op.stats
        operands = t.runner.operands[i] if m.kind == "trace" else None
    if m.kind == "trace":
        a, b, c, a_layout = (*operands, None)[:4]  # a network op also names its im2col layout
        trace = gemm(a, b, c, engine="cycle", trace_window=(0, stats.cycles), a_layout=a_layout).trace
        return oracle_trace_value(query.measure, trace)
    if query.measure in GEMM_FIELDS:
        return GEMM_FIELDS[query.measure](stats, cfg)
    mapping = Mapping.of(stats.m, stats.k, stats.n, cfg.with_(precision=stats.precision))
    return {"row_folds": mapping.row_folds, "col_folds": mapping.col_folds,
            "sram_energy_nj": stats.energy_pj["sram"] / 1e3, "register_energy_nj": stats.energy_pj["register"] / 1e3,
            "achieved_macs_per_cycle": stats.macs / stats.cycles}[query.measure]


def same(a, b) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9) or (math.isnan(a) and math.isnan(b))


def oracle_expected(q: L.Question):
    """A question's answer from the oracle (the same rules as the lesson file states)."""
    if q.kind == "choice" and q.over:
        values = [oracle(q.query.with_changes(c)) for c in q.over]
        best = (min if q.choose == "min" else max)(values)
        return {c for c, v in zip(q.choices, values) if math.isclose(v, best, rel_tol=1e-12)}
    value = oracle(q.query)
    if q.minus is not None:
        value -= oracle(q.query.with_changes(q.minus))
    if q.divided_by is not None:
        value /= oracle(q.query.with_changes(q.divided_by))
    if q.kind == "choice" and q.bins:
        return {q.choices[sum(value >= b for b in q.bins)]}
    if q.kind == "choice":
        return {value}
    return value


# ======================================================================================
# Files parse; languages agree
# ======================================================================================

@pytest.mark.parametrize("lang", L.LANGUAGES)
def test_every_lesson_parses_with_the_required_shape(lang):
    lessons = L.load_lessons(lang, LESSONS)
    assert [l.number for l in lessons] == list(range(1, 16))
    assert [l.slug for l in lessons] == EXPECTED_SLUGS
    for lesson in lessons:
        assert lesson.title and lesson.intro and lesson.goals, lesson.id
        assert 3 <= len(lesson.steps) <= 6, f"{lesson.id}: {len(lesson.steps)} steps"
        assert any(step.question for step in lesson.steps), f"{lesson.id} has no question"
        assert lesson.exercises and all(e.answer.strip() for e in lesson.exercises), lesson.id
        for step in lesson.steps:
            assert step.title and step.text, (lesson.id, step.number)
            if step.question:
                assert step.question.prompt and step.question.explanation, (lesson.id, step.number)
                if step.question.kind == "choice":
                    assert set(step.question.labels) == set(step.question.choices), (lesson.id, step.number)
            if lang == "zh":
                assert CJK.search(step.text) and CJK.search(step.title), (lesson.id, step.number)
            else:
                assert not CJK.search(step.text + step.title + step.look), (lesson.id, step.number)


def test_both_languages_have_the_same_lessons_steps_states_and_questions(en, zh):
    assert [l.id for l in en] == [l.id for l in zh]
    for a, b in zip(en, zh):
        assert (a.settings, a.hide, a.lock) == (b.settings, b.hide, b.lock), a.id
        assert len(a.steps) == len(b.steps), a.id
        assert len(a.exercises) == len(b.exercises), a.id
        assert len(a.goals) == len(b.goals), a.id
        for s, t in zip(a.steps, b.steps):
            assert s.state == t.state, f"{a.id} step {s.number}: state blocks differ"
            assert s.settings == t.settings and s.view == t.view
            assert (s.question is None) == (t.question is None), f"{a.id} step {s.number}"
            if s.question:
                assert s.question.spec == t.question.spec, f"{a.id} step {s.number}: questions differ"
                assert s.question.query == t.question.query
                assert bool(s.look) == bool(t.look), f"{a.id} step {s.number}: 'look' in one language only"
        for x, y in zip(a.steps, b.steps):
            assert sorted(_placeholders(x)) == sorted(_placeholders(y)), f"{a.id} step {x.number}: numbers differ"


def _placeholders(step: L.Step) -> list[str]:
    texts = [step.text, step.look] + ([step.question.prompt, step.question.explanation] if step.question else [])
    return [" ".join(p.split()) for t in texts for line in t.splitlines() for p in L.placeholders_in(line)]


def test_the_interface_has_every_label_in_both_languages():
    assert set(L.UI["en"]) == set(L.UI["zh"])
    for key, text in L.UI["zh"].items():
        assert text != L.UI["en"][key], key


def test_lessons_module_imports_no_panel_or_bokeh():
    code = "import sys, chipviz.lessons; print('panel' in sys.modules or 'bokeh' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"


# ======================================================================================
# Every number: placeholders and answers, recomputed by the oracle
# ======================================================================================

def _texts(lesson: L.Lesson):
    """(text, settings, op, steps) of every text of a lesson, with the context its placeholders use."""
    base = (lesson.settings, None, 1)
    yield (lesson.intro, *base)
    for goal in lesson.goals:
        yield (goal, *base)
    for ex in lesson.exercises:
        yield (ex.text, *base)
        yield (ex.answer, *base)
    for step in lesson.steps:
        ctx = (step.settings, step.view.op, step.view.train_steps or 1)
        for text in (step.text, step.look):
            yield (text, *ctx)
        if step.question:
            yield (step.question.prompt, *ctx)
            yield (step.question.explanation, *ctx)
            for label in step.question.labels.values():
                yield (label, *ctx)


@pytest.mark.parametrize("lang", L.LANGUAGES)
def test_every_placeholder_is_recomputed_by_the_simulator(lang):
    checked = 0
    for lesson in L.load_lessons(lang, LESSONS):
        for text, settings, op, steps in _texts(lesson):
            rendered = L.render(text, settings, lang, op, steps)
            assert "⟨" not in rendered and "{{" not in rendered, f"{lesson.id}: {rendered}"
            for line in text.splitlines():
                for spec in L.placeholders_in(line):
                    ph = L.resolve_placeholder(spec, settings, op, steps)
                    value = L.measure_value(ph.query)
                    assert same(value, oracle(ph.query)), f"{lesson.id}: {{{{{spec}}}}} = {value}"
                    assert L.format_value(ph.query.measure, value, lang, ph.digits) in rendered
                    checked += 1
    assert checked > 200


@pytest.mark.parametrize("lang", L.LANGUAGES)
def test_every_question_has_a_simulator_answer_and_checks_both_ways(lang):
    for lesson, step in all_steps(L.load_lessons(lang, LESSONS)):
        q = step.question
        if q is None:
            continue
        where = f"{lesson.id} step {step.number}"
        expected = L.expected_answer(q)
        truth = oracle_expected(q)
        if q.kind == "choice":
            got = set(expected) if isinstance(expected, tuple) else {expected}
            assert got == truth, where
            assert got <= set(q.choices), where
            right = sorted(got)[0]
            wrong = next(c for c in q.choices if c not in got)
            assert L.check_answer(q, right).correct, where
            fb = L.check_answer(q, wrong)
            assert fb.correct is False and fb.expected is not None, where
        else:
            assert same(expected, truth), f"{where}: {expected} != {truth}"
            assert math.isfinite(expected), where
            shown = L.format_expected(q, expected).split()[0].rstrip("×%")
            assert L.check_answer(q, shown).correct, f"{where}: the shown answer {shown!r} is not accepted"
            assert L.check_answer(q, repr(float(expected))).correct, where
            off = expected * 3 + 100
            assert not L.check_answer(q, repr(off)).correct, where
        fb = L.check_answer(q, "")
        assert fb.expected is None and not fb.correct


def _question(lessons, number, step):
    lesson = next(l for l in lessons if l.number == number)
    return lesson.steps[step - 1]


def test_guard_lesson_1_and_2_cycle_counts_equal_the_chip_model(en):
    step = _question(en, 2, 4)  # "how many cycles does the whole multiply take?" (4×4 ws, 4×4·4×4)
    rendered = L.format_expected(step.question, L.expected_answer(step.question))
    stats = analyze(4, 4, 4, ChipConfig(rows=4, cols=4, dataflow="ws", dram_bytes_per_cycle=256.0))
    assert rendered == f"{stats.cycles} cycles"
    assert stats.cycles == 2 * 4 + 4 + 4 - 2  # the formula the lesson states
    five = _question(en, 2, 5)  # the steady state: M − (R + C − 2) cycles in which all 16 PEs work
    assert L.expected_answer(five.question) == 16 - (4 + 4 - 2)
    assert f"{analyze(16, 4, 4, ChipConfig(rows=4, cols=4)).cycles} cycles" in L.render_step(five, five.question.prompt)
    three = _question(en, 1, 3)  # batch of 4 through a 2×1 column
    assert L.expected_answer(three.question) == analyze(4, 2, 1, ChipConfig(rows=2, cols=1)).cycles == 2 * 2 + 1 + 4 - 2
    assert f"{analyze(1, 2, 1, ChipConfig(rows=2, cols=1)).cycles} cycles" in L.render_step(three)


def test_guard_lesson_2_trace_numbers_from_the_cycle_engine(en):
    config = ChipConfig(rows=4, cols=4, dataflow="ws", dram_bytes_per_cycle=256.0)
    rng = np.random.default_rng(3)
    tr = gemm(rng.random((4, 4), np.float32), rng.random((4, 4), np.float32), config, engine="cycle",
              trace_window=(0, 14)).trace
    assert L.expected_answer(_question(en, 2, 2).question) == int(np.flatnonzero(
        (tr.state == chip_trace.MAC).any(axis=(1, 2)))[0]) == config.rows
    assert L.expected_answer(_question(en, 2, 3).question) == int((tr.state == chip_trace.MAC).sum(axis=(1, 2)).max())
    # exercise 3 states the formula R + m + (R − 1) + n for when an output leaves: check it on the trace
    for cycle in range(tr.n_cycles):
        for n, m in enumerate(tr.bottom_out[cycle]):
            if m >= 0:
                assert cycle == 4 + m + 3 + n


def test_guard_lesson_3_dataflow_numbers(en):
    q = _question(en, 4, 2).question  # os folds: a tile of the outputs, ⌈M/R⌉·⌈N/C⌉, not of W
    cfg = ChipConfig(rows=8, cols=8, dataflow="os", dram_bytes_per_cycle=256.0)
    assert L.expected_answer(q) == -(-32 // 8) * -(-32 // 8) == 16
    assert analyze(32, 64, 32, cfg).cycles == 16 * (64 + 8 + 8 - 2)  # the fold formula stated
    assert L.expected_answer(_question(en, 4, 3).question) == "same"  # is = ws transposed, and M = N
    best = L.expected_answer(_question(en, 4, 5).question)
    cycles = {df: analyze(256, 64, 32, cfg.with_(dataflow=df)).cycles for df in ("ws", "os", "is")}
    assert best == min(cycles, key=cycles.get)


def test_guard_lesson_6_training_really_diverges_and_lesson_9_accuracy(en):
    t = Trainer(TrainSettings(dataset="digits", hidden=(32,), optimizer="sgd", lr=3.0), ChipConfig())
    with pytest.raises(Diverged):
        for _ in range(200):
            t.step()
    assert 50 <= t.step_count + 1 < 150  # "middle"
    assert L.expected_answer(_question(en, 6, 4).question) == "middle"
    assert L.expected_answer(_question(en, 6, 3).question) == "no"  # α = 2: ruined, but finite
    assert L.expected_answer(_question(en, 6, 2).question) == "0.5"  # the sweep's winner
    q = _question(en, 9, 4).question
    accuracy = {}
    for precision in ("fp32", "int8"):
        t = Trainer(TrainSettings(dataset="digits", hidden=(32,), optimizer="adam", lr=0.01),
                    ChipConfig(precision=precision))
        for _ in range(300):
            t.step()
        accuracy[precision] = 100 * t.evaluate("test")[1]
    gap = accuracy["int8"] - accuracy["fp32"]
    assert L.expected_answer(q) == q.choices[sum(gap >= b for b in q.bins)]
    assert f"{accuracy['int8']:.1f}%" in L.render_step(_question(en, 9, 4), q.explanation)


def test_guard_tpu_v1_peak(en):
    step = _question(en, 9, 2)
    peak = L.measure_value(L.Query("peak_tops", L._key(step.settings)))
    assert peak == pytest.approx(2 * 256 * 256 * 700e6 / 1e12) and abs(peak - 92) < 0.5  # the published 92 TOPS
    # a 4,096×256 by 256×256 GEMM: compute-bound by the paper's weight-bytes count, memory-bound counting every byte
    assert 4096 * 256 * 256 / (256 * 256) > 256 * 256 / 48.57
    assert 4096 * 256 * 256 / (4096 * 256 + 256 * 256 + 4 * 4096 * 256) < 256 * 256 / 48.57
    assert L.expected_answer(step.question) == "memory"


# ======================================================================================
# Every step applies headlessly
# ======================================================================================

def test_every_step_applies_to_a_training_session(en):
    session = TrainingSession()
    for lesson, step in all_steps(en):
        where = f"{lesson.id} step {step.number}"
        applied = L.apply_step(step, session, lesson)
        for name, value in step.settings.items():
            assert getattr(session, name) == value, f"{where}: {name}"
        assert applied.notices == [], where
        ops = session.operations()
        assert applied.op is not None and ops[applied.op].is_gemm, where
        if step.view.op:
            assert applied.op == L.find_op(ops, step.view.op), where
        if step.view.cycle is not None:
            assert applied.cycle == step.view.cycle < ops[applied.op].stats.cycles, where
        if step.view.train_steps:
            t = session.trainer
            assert t.step_count == step.view.train_steps or t.diverged, where
        assert set(applied.hide) >= set(lesson.hide) | set(step.view.hide)
        assert set(applied.lock) >= set(lesson.lock) | set(step.view.lock)
        assert set(applied.hide) | set(applied.lock) <= set(L.SETTING_KEYS)
        q = step.question
        if q is not None and q.source == "app":  # measured on the live session: the same answer
            live = L.expected_answer(q, L.AnswerContext(session=session, op=applied.op))
            assert same(live, L.expected_answer(q)), where
        if step.view.train_steps and not session.trainer.diverged:
            # what the lesson says about the trained network is what the app's session shows
            query = L.Query("test_accuracy", L._key(step.settings), None, None, step.view.train_steps)
            assert same(100 * session.trainer.evaluate("test")[1], L.measure_value(query)), where
    session.close()


def test_a_link_to_a_middle_step_gives_the_same_state_as_walking_there(en):
    walked, direct = TrainingSession(), TrainingSession()
    lesson = next(l for l in en if l.number == 8)
    for step in lesson.steps[:4]:
        L.apply_step(step, walked, lesson)
    L.apply_step(lesson.steps[3], direct, lesson)
    for name in L.SETTING_KEYS.values():
        assert getattr(walked, name) == getattr(direct, name), name
    assert walked.operations()[0].stats == direct.operations()[0].stats


def test_apply_step_reports_a_missing_op_and_a_clamped_cycle(tmp_path):
    text = LESSON_TEXT.replace('op = "L1.forward"\ncycle = 2', 'op = "L3.dX"\ncycle = 100000')
    lesson = _write(tmp_path, text)
    session = TrainingSession()
    applied = L.apply_step(lesson.steps[0], session, lesson)
    assert len(applied.notices) == 2
    assert "layer 3" in str(applied.notices[0])
    assert applied.cycle == session.operations()[applied.op].stats.cycles - 1


# ======================================================================================
# Checking answers
# ======================================================================================

def test_check_answer_right_wrong_and_not_a_number(en, zh):
    q = _question(en, 2, 4).question
    expected = L.expected_answer(q)
    assert L.check_answer(q, str(expected)) == (True, expected, L.check_answer(q, str(expected)).explanation)
    right = L.check_answer(q, f" {expected} cycles ")
    assert right.correct and right.explanation.startswith("**Right!**")
    wrong = L.check_answer(q, str(expected + 1))
    assert not wrong.correct and wrong.expected == expected
    assert f"You said {expected + 1}" in wrong.explanation and f"{expected} cycles" in wrong.explanation
    assert "2R + C + M − 2" in wrong.explanation  # the explanation follows, right or wrong
    bad = L.check_answer(q, "fourteen")
    assert bad.correct is False and bad.expected is None and "is not a number" in bad.explanation
    zh_q = _question(zh, 2, 4).question
    assert "不是一个数" in L.check_answer(zh_q, "十四").explanation
    assert L.check_answer(zh_q, "１４" if expected == 14 else str(expected)).correct  # full-width digits
    assert "正确" in L.check_answer(zh_q, str(expected)).explanation


def test_parse_number_accepts_what_students_type():
    assert L.parse_number("14") == 14
    assert L.parse_number(" 1,746 ") == 1746
    assert L.parse_number("28.6%") == 28.6
    assert L.parse_number("3.2 cycles") == 3.2
    assert L.parse_number("１４") == 14
    assert L.parse_number("-0.5") == -0.5
    assert L.parse_number("1e3") == 1000
    for bad in ("", "abc", "1,74", "nan", "inf", "12abc3", "--3", "."):
        assert L.parse_number(bad) is None, bad


def test_percent_and_tolerance(en):
    q = _question(en, 3, 2).question  # mapping efficiency, tolerance 0.5 points
    e = L.expected_answer(q)
    assert L.check_answer(q, f"{e + 0.4:.2f}%").correct
    assert not L.check_answer(q, f"{e + 0.7:.2f}").correct


def test_choice_answers(en):
    q = _question(en, 4, 5).question
    assert q.kind == "choice" and q.choices == ("ws", "os", "is")
    fb = L.check_answer(q, "nonsense")
    assert fb.expected is None and "Pick one" in fb.explanation
    tie = _question(en, 4, 4).question  # ws and is tie: both are right
    expected = L.expected_answer(tie)
    assert isinstance(expected, tuple) and len(expected) == 2
    assert all(L.check_answer(tie, c).correct for c in expected)


# ======================================================================================
# Malformed lesson files: errors name the file and the line
# ======================================================================================

LESSON_TEXT = """# A test lesson

Intro with {{cycles m=4 k=4 n=4 rows=4 cols=4}}.

```toml
rows = 4
cols = 4
```

## Goals
- Learn something.

## Step: First

Text of the step.

```toml
op = "L1.forward"
cycle = 2

[question]
type = "number"
measure = "cycles"
```

### Look
Look at this.

### Question
How many cycles?

### Explanation
{{cycles}}.

## Exercises

### One
Question?

**Answer:** {{macs m=2 k=2 n=2}}.
"""


def _write(tmp_path, text, name="07-test.md"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return L.load_lesson(path)


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_the_test_lesson_itself_is_valid(tmp_path):
    lesson = _write(tmp_path, LESSON_TEXT)
    assert lesson.number == 7 and lesson.title == "A test lesson" and len(lesson.steps) == 1
    q = lesson.steps[0].question
    assert L.expected_answer(q) == analyze(32, 64, 32, ChipConfig(rows=4, cols=4)).cycles


@pytest.mark.parametrize("change, needle, message", [
    (('rows = 4\ncols = 4', 'rows = = 4\ncols = 4'), "rows = = 4", "invalid TOML"),
    (('op = "L1.forward"', 'op = "L1.forward"\nrowz = 4'), "rowz = 4", "unknown state key 'rowz'"),
    (('op = "L1.forward"', 'op = "L1.forward"\nrows = 0'), "rows = 0",
     "rows = 0: must be a whole number from 1 to 256"),
    (('cycle = 2', 'cycle = 2\ndataflow = "sideways"'), "dataflow = ", "must be one of ws, os, is"),
    (('op = "L1.forward"', 'op = "L1.backward"'), 'op = "L1.backward"', "must name a GEMM"),
    (('cycle = 2', 'cycle = 2\nhide = ["lr", "wings"]'), "hide = ", "unknown control 'wings'"),
    (('{{cycles}}.', '{{cyclez}}.'), "{{cyclez}}", "unknown measure 'cyclez'"),
    (('{{cycles}}.', '{{cycles rows=four}}.'), "{{cycles rows=four}}", "rows=four"),
    (('{{cycles}}.', '{{cycles m=4}}.'), "{{cycles m=4}}", "give all of m, k and n"),
    (('{{cycles}}.', '{{cycles}.'), "{{cycles}.", "close with }}"),
    (('measure = "cycles"', 'measure = "cycles"\ncolour = "red"'), 'colour = "red"', "unknown question key 'colour'"),
    (('type = "number"', 'type = "essay"'), 'type = "essay"', 'question type must be "number" or "choice"'),
    (('measure = "cycles"', 'measure = "speediness"'), 'measure = "speediness"', "unknown measure 'speediness'"),
    (('type = "number"', 'type = "choice"\nchoices = ["a", "b"]'), "[question]", "a choice question needs over"),
    (('### Explanation\n{{cycles}}.', ''), "[question]", "no '### Explanation'"),
    (('## Step: First', '## Stride: First'), "## Stride", "unknown section heading"),
    (('**Answer:** {{macs m=2 k=2 n=2}}.', 'No answer here.'), "### One", "has no answer"),
    (('## Goals\n- Learn something.', ''), "# A test lesson", "no learning goals"),
])
def test_malformed_lessons_name_the_file_and_line(tmp_path, change, needle, message):
    old, new = change
    assert old in LESSON_TEXT
    text = LESSON_TEXT.replace(old, new, 1)
    with pytest.raises(L.LessonError) as info:
        _write(tmp_path, text)
    text_line = _line_of(text, needle)
    error = str(info.value)
    assert error.startswith(f"{tmp_path / '07-test.md'}:{text_line}: ") or \
        error.startswith(f"{L._display_path(tmp_path / '07-test.md')}:{text_line}: "), error
    assert message in error, error


def test_missing_title_and_bad_file_name(tmp_path):
    with pytest.raises(L.LessonError, match=r"07-test\.md:1: missing title"):
        _write(tmp_path, "Just text\n\n## Goals\n- x\n")
    with pytest.raises(L.LessonError, match=r"07-test\.md:3: missing title"):
        _write(tmp_path, "\n\nno heading here\n")
    with pytest.raises(L.LessonError, match="must start with the lesson's number"):
        _write(tmp_path, LESSON_TEXT, name="intro.md")


def test_an_unknown_key_error_lists_the_allowed_ones(tmp_path):
    text = LESSON_TEXT.replace('op = "L1.forward"', 'op = "L1.forward"\nrowz = 4')
    with pytest.raises(L.LessonError) as info:
        _write(tmp_path, text)
    assert "(did you mean 'rows'?)" in str(info.value) and "allowed: " in str(info.value)
    assert "dataflow" in str(info.value)


def test_a_real_lesson_copy_with_an_error_names_its_line(tmp_path):
    source = (LESSONS / "en" / "04-dataflows.md").read_text(encoding="utf-8")
    broken = source.replace('dataflow = "os"\nop = "L1.forward"', 'dataflow = "os"\nrowz = 8\nop = "L1.forward"', 1)
    folder = tmp_path / "en"
    folder.mkdir()
    (folder / "04-dataflows.md").write_text(broken, encoding="utf-8")
    with pytest.raises(L.LessonError) as info:
        L.load_lessons("en", tmp_path)
    line = _line_of(broken, "rowz = 8")
    assert f"04-dataflows.md:{line}: unknown state key 'rowz'" in str(info.value)


# ======================================================================================
# Teacher's links
# ======================================================================================

def test_lesson_state_from_query():
    values, notices = L.lesson_state_from_query(
        {"lesson": "3", "step": "2", "lang": "zh", "hide": "lr,batch", "lock": "rows,cols"}, LESSONS)
    assert values == {"lesson": 3, "step": 2, "lang": "zh", "hide": ["lr", "batch"], "lock": ["rows", "cols"]}
    assert notices == []
    assert L.lesson_query(3, 2, "zh", ["lr", "batch"], ["rows", "cols"]) == {
        "lesson": "3", "step": "2", "lang": "zh", "hide": "lr,batch", "lock": "rows,cols"}


def test_lesson_state_from_query_bad_values():
    values, notices = L.lesson_state_from_query(
        {"lesson": "42", "step": "x", "lang": "fr", "hide": "lr,wings", "lock": ["rows"]}, LESSONS)
    assert values == {"hide": ["lr"], "lock": ["rows"]}
    assert len(notices) == 4
    shown = [str(n) for n in notices]  # Messages, shown in English here
    assert any("lang=fr" in n for n in shown) and any("lesson=42" in n for n in shown)
    assert any("step=x" in n for n in shown) and any("wings" in n for n in shown)
    values, notices = L.lesson_state_from_query({"lesson": "2", "step": "99"}, LESSONS)
    assert values == {"lesson": 2} and "lesson 2 has steps 1 to" in str(notices[0])
    values, notices = L.lesson_state_from_query({"lang": "zh", "lesson": "0"}, LESSONS)
    assert values == {"lang": "zh"} and "已忽略" in notices[0].render("zh")
    assert L.lesson_state_from_query({}, LESSONS) == ({}, [])


# ======================================================================================
# LessonView (the only tests here that import panel)
# ======================================================================================

def test_lesson_view_walks_a_lesson_and_drives_the_dashboard():
    pytest.importorskip("panel")
    from chipviz.app.dashboard import Dashboard
    from chipviz.app.lesson_view import LessonView

    d = Dashboard()
    view = LessonView(d, sync_url=False)
    view.go(2, 1)
    lesson = view.current_lesson
    assert d.session.rows == 4 and d.session.cols == 4 and d.session.batch_size == 4
    assert set(lesson.lock) <= set(d.controls.locked_controls)
    assert d.controls.widgets["rows"].disabled and d.controls.widgets["rows"].visible
    assert not d.controls.widgets["bw"].visible  # hidden by the lesson
    for number in range(1, len(lesson.steps) + 1):
        step = view.current_step
        assert view.step == number and f"Step {number} of {len(lesson.steps)}" in view.progress_text.object
        assert d.op == L.find_op(d.session.operations(), step.view.op)
        if step.view.cycle is not None:
            assert d.pe_array.cycle == step.view.cycle
        assert view.back_button.disabled == (number == 1)
        assert view.next_button.disabled == (number == len(lesson.steps))
        view.next()
    assert view.step == len(lesson.steps) and view.done.visible
    view.go(2, 4)
    expected = L.expected_answer(view.current_step.question)
    view.number_input.value = str(expected + 3)
    assert view.check().correct is False and view.feedback.alert_type == "danger"
    view.number_input.value = str(expected)
    assert view.check().correct and view.feedback.alert_type == "success"
    assert "Right!" in view.feedback.object
    view.number_input.value = "many"
    view.check()
    assert view.feedback.alert_type == "warning"
    view.lang = "zh"
    assert view.next_button.label == L.ui("zh", "next") and "第 4 步" in view.step_title.object
    assert CJK.search(view.step_text.object)
    number, place = next((lesson.number, i) for lesson in view.lessons() if lesson.number > 2
                         for i, st in enumerate(lesson.steps, 1) if st.question and st.question.kind == "choice")
    view.go(number, place)  # a choice question (which lesson has one first changes as lessons are edited)
    view.choice_input.value = L.expected_answer(view.current_step.question)
    assert view.check().correct and "正确" in view.feedback.object
    view.apply_query({"lesson": "5", "step": "2", "lang": "en", "hide": "lr,batch", "lock": "opt"})
    assert (view.lesson, view.step, view.lang) == (5, 2, "en")
    assert {"lr", "batch"} <= set(d.controls.hidden_controls) and "opt" in d.controls.locked_controls
    assert not d.controls.widgets["lr"].visible and d.controls.widgets["opt"].disabled
    assert view.query() == {"lesson": "5", "step": "2", "lang": "en", "hide": "lr,batch", "lock": "opt"}
    view.release_controls()
    assert d.controls.hidden_controls == [] and d.controls.locked_controls == []
    d.session.close()


def test_the_teachers_guide_documents_every_measure_and_the_checker_passes():
    guide = (LESSONS / "README.md").read_text(encoding="utf-8")
    for name in L.MEASURES:
        assert f"`{name}`" in guide, f"lessons/README.md does not document the measure {name!r}"
    for key in L.QUESTION_KEYS:
        assert f"`{key}" in guide, key
    assert L.main([str(LESSONS / "en" / "02-systolic-matmul.md")]) == 0


def test_the_checker_reports_a_broken_file(tmp_path, capsys):
    path = tmp_path / "07-test.md"
    path.write_text(LESSON_TEXT.replace('op = "L1.forward"', 'op = "L1.forward"\nrowz = 4'), encoding="utf-8")
    assert L.main([str(path)]) == 1
    assert "unknown state key 'rowz'" in capsys.readouterr().out
    path.write_text(LESSON_TEXT.replace('op = "L1.forward"', 'op = "L4.dW"'), encoding="utf-8")
    assert L.main([str(path)]) == 1  # parses, but the network has no layer 4: the checker says so
    assert "computes no L4.dW" in capsys.readouterr().out


def test_guard_the_worked_arithmetic_in_the_lessons_matches_the_simulator(en, zh):
    """Lessons show formulas with the numbers filled in; each must agree with the simulator."""
    def value(number, step, measure, **changes):
        s = _question(en, number, step)
        query = L.Query(measure, L._key(s.settings), None, s.view.op, s.view.train_steps or 1)
        return L.measure_value(query.with_changes(changes) if changes else query)

    for lessons in (en, zh):
        texts = {(l.number, s.number): L.render_step(s) + (s.question.explanation if s.question else "")
                 for l in lessons for s in l.steps}
        assert "(8 + 8 + 4) / (3 × 8)" in texts[(3, 2)]
        assert "2R + C − 2 = 22" in texts[(3, 3)]
        assert "64×32 + 32 + 32×16 + 16 + 16×10 + 10" in texts[(7, 5)]
        assert "32 × 64 × 32" in texts[(5, 1)] and "32 × 10 × 16" in texts[(7, 2)]
        assert "4 × 2 × 4" in texts[(1, 4)] and "64 + 8 + 8 − 2" in texts[(4, 2)]
    assert math.isclose(value(3, 2, "mapping_efficiency"), 100 * (8 + 8 + 4) / (3 * 8))
    assert value(3, 3, "cycles_per_fold") - 32 == 2 * 8 + 8 - 2 == 22
    assert value(7, 5, "params") == 64 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10
    assert value(5, 1, "macs") == 32 * 64 * 32 and value(7, 2, "macs") == 32 * 10 * 16
    assert value(1, 4, "macs") == 4 * 2 * 4 and value(4, 2, "cycles_per_fold") == 64 + 8 + 8 - 2
    assert value(2, 5, "cycles") == 2 * 4 + 4 + 16 - 2
    assert value(5, 5, "col_folds") == 4 * value(5, 5, "col_folds", width1=32)  # "four times the column folds"
    assert value(8, 3, "dram_bytes", sram_kib=256.0) and 64 * 32 * 4 == 8 * 1024  # "8 KiB in fp32"
    assert value(8, 3, "stall_cycles") > value(8, 3, "stall_cycles", sram_kib=256.0)  # "the array now waits"
    assert value(9, 2, "preload_cycles") == 256 and value(3, 5, "preload_cycles") == 256


# ======================================================================================
# Second edition: tempting answers, the teacher's plan, plot tabs and pace
# ======================================================================================

def test_tempting_answers_are_wrong_explained_and_the_same_in_both_languages(en, zh):
    counted = 0
    for a, b in zip(en, zh):
        for s, t in zip(a.steps, b.steps):
            if not s.question:
                continue
            assert set(s.question.tempting) == set(t.question.tempting), f"{a.id} step {s.number}"
            for answer, why in s.question.tempting.items():
                given = answer if isinstance(answer, str) else repr(float(answer))
                fb = L.check_answer(s.question, given)
                assert not fb.correct, f"{a.id} step {s.number}: tempting {answer!r} is right"
                assert L.render_step(s, why) in fb.explanation and "tempting" in fb.explanation
                zh_fb = L.check_answer(t.question, given)
                assert "为什么容易答" in zh_fb.explanation
                counted += 1
    assert counted >= 20
    every = [s for l in en for s in l.steps if s.question]
    right = L.check_answer(every[0].question, str(L.expected_answer(every[0].question)))
    assert "tempting" not in right.explanation


def test_every_step_says_where_to_look_and_every_older_question_has_tempting_answers(en, zh):
    for lessons in (en, zh):
        for lesson in lessons:
            for step in lesson.steps:
                assert step.look.strip(), f"{lesson.id} step {step.number}: no Look section"
                if step.question:
                    assert step.question.tempting, f"{lesson.id} step {step.number}: no tempting answers"


def test_every_lesson_states_its_time_and_prerequisites(en, zh):
    for a, b in zip(en, zh):
        assert a.minutes and 10 <= a.minutes <= 90 and (a.minutes, a.requires) == (b.minutes, b.requires), a.id
        assert all(n < a.number for n in a.requires), a.id
        if True:  # second edition: every lesson has a derivation and an open design challenge
            assert any(e.title.startswith("Derivation") for e in a.exercises), a.id
            assert any(e.title == "Design challenge" for e in a.exercises), a.id


@pytest.mark.parametrize("change, needle, message", [
    (('### Explanation\n{{cycles}}.', '### Tempting answers\n- many: lots\n\n### Explanation\n{{cycles}}.'),
     "- many", "is not a number"),
    (('cycle = 2', 'cycle = 2\ntab = "plots"'), 'tab = "plots"', "must be one of boundary"),
    (('cycle = 2', 'cycle = 2\npace = "fast"'), 'pace = "fast"', "must be one of tour, every"),
    (('rows = 4\ncols = 4', 'rows = 4\ncols = 4\nminutes = 0'), "minutes = 0", "minutes = 0"),
    (('rows = 4\ncols = 4', 'rows = 4\ncols = 4\nrequires = "2"'), "requires =", "list of lesson numbers"),
])
def test_malformed_second_edition_keys_name_the_line(tmp_path, change, needle, message):
    old, new = change
    text = LESSON_TEXT.replace(old, new, 1)
    with pytest.raises(L.LessonError) as info:
        _write(tmp_path, text)
    assert f":{_line_of(text, needle)}: " in str(info.value) and message in str(info.value), str(info.value)


def test_the_checker_refuses_a_tempting_answer_that_is_right(tmp_path, capsys):
    right = analyze(32, 64, 32, ChipConfig(rows=4, cols=4)).cycles
    tempting = f"### Tempting answers\n- {right}: it is right\n- 3: too few\n\n"
    text = LESSON_TEXT.replace("### Explanation\n{{cycles}}.", tempting + "### Explanation\n{{cycles}}.")
    lesson = _write(tmp_path, text)
    q = lesson.steps[0].question
    assert set(q.tempting) == {float(right), 3.0}
    assert "too few" in L.check_answer(q, "3").explanation
    assert any("is right" in p for p in L.check_lesson(lesson))


def test_guard_lesson_15_the_design_space(en):
    """The sweep measures: the app's Design space lists, the tab's Pareto count, and what the lesson argues."""
    from chipviz.app import plots
    from chipviz.app.design_space import ARRAYS, BANDWIDTHS

    assert L.measures.SWEEP_ARRAYS == ARRAYS and L.measures.SWEEP_BANDWIDTHS == BANDWIDTHS
    assert [f"tab.{t}" for t in L.PLOT_TABS] == list(plots.LivePlots.TAB_KEYS)
    lesson = next(l for l in en if l.number == 15)
    assert [s.view.tab for s in lesson.steps][:3] == ["design", "design", "roofline"]
    assert L.expected_answer(lesson.steps[0].question) == 1  # one design dominates the tab's 24
    assert 1 < L.expected_answer(lesson.steps[1].question) < 1.1  # energy barely depends on the design
    assert L.expected_answer(lesson.steps[2].question) == "small_fast"  # bandwidth beats PEs
    assert L.expected_answer(lesson.steps[3].question) == "8x32"  # vector lanes = columns
    assert L.expected_answer(lesson.steps[4].question) == "64x64"  # not the biggest array
    budget = lesson.steps[5].question
    assert L.expected_answer(budget) == oracle(budget.query)


def test_a_sweep_argument_names_its_line(tmp_path):
    text = LESSON_TEXT.replace("Intro with {{cycles m=4 k=4 n=4 rows=4 cols=4}}.",
                               "Intro with {{sweep_front space=huge}}.")
    with pytest.raises(L.LessonError) as info:
        _write(tmp_path, text)
    assert f":{_line_of(text, 'space=huge')}: " in str(info.value) and "tab, wide" in str(info.value)
    text = LESSON_TEXT.replace("Intro with {{cycles m=4 k=4 n=4 rows=4 cols=4}}.", "Intro {{cycles max_pes=4}}.")
    with pytest.raises(L.LessonError, match="for the sweep measures"):
        _write(tmp_path, text)


def test_a_step_opens_its_plot_tab_and_pace(en):
    step = next(l for l in en if l.number == 6).steps[0]
    assert step.view.tab == "descent" and step.view.tab in L.PLOT_TABS


def test_guard_lesson_10_counts_the_seed_network(en):
    lesson = next(l for l in en if l.number == 10)
    q = lesson.steps[0].question
    assert L.expected_answer(q) == 32 * (3 * (784 * 64 + 64 * 64 + 64 * 10) - 784 * 64)
    assert L.expected_answer(lesson.steps[2].question) < 1024 / 10  # far from "1,024 times faster"


def test_guard_lesson_11_batch_size(en):
    lesson = next(l for l in en if l.number == 11)
    one = lesson.steps[1]  # batch 1 on 8×8 ws: a fold of 2R + C + M − 2 = 23 cycles, one MAC per PE
    assert L.expected_answer(one.question) == pytest.approx(100 / (2 * 8 + 8 + 1 - 2), abs=0.05)
    assert 1 < L.expected_answer(lesson.steps[0].question) < 4  # four times the batch, less than four times the time
    epoch = L.expected_answer(lesson.steps[2].question)
    assert 1 < epoch < 256 / 8  # fewer steps, but each longer
    assert L.expected_answer(lesson.steps[3].question) == "8"
    steps = {b: L.measure_value(L.Query("steps_per_epoch", L._key({**lesson.steps[3].settings, "batch_size": b})))
             for b in (8, 256)}
    assert steps == {8: 180, 256: 6} == {b: -(-1437 // b) for b in (8, 256)}  # the over = { steps = … } values


def test_guard_lesson_12_convolution_as_a_gemm(en):
    lesson = next(l for l in en if l.number == 12)
    step = lesson.steps[0]
    t = oracle_trainer(L._key(step.settings), 1)
    _, op = oracle_op(t, "L1.forward")
    assert (op.stats.m, op.stats.k, op.stats.n) == (32 * 8 * 8, 3 * 3 * 1, 8)  # M = B·H·W, K = k·k·C, N = F
    assert L.expected_answer(step.question) == 32 * 8 * 8
    # DRAM reads every pixel and weight once; SRAM feeds the unrolled A, M·K reads
    assert L.expected_answer(lesson.steps[2].question) == 32 * 64 + 9 * 8 == op.stats.dram_reads
    assert op.stats.sram_reads_ifmap == (32 * 64) * 9
    # a 5×5 kernel: ⌈25/8⌉ against ⌈9/8⌉ row folds of the same length
    assert L.expected_answer(lesson.steps[1].question) == pytest.approx(4 / 2)
    _, dw = oracle_op(t, "L1.dW")
    assert (dw.stats.m, dw.stats.k, dw.stats.n) == (9, 2048, 8) and dw.stats.macs == op.stats.macs  # dW = Aᵀ·dZ


def test_guard_lessons_13_and_14_chip_figures(en):
    l13 = next(l for l in en if l.number == 13)
    assert L.expected_answer(l13.steps[0].question) == pytest.approx(256 * 256 / 48.57)
    assert abs(256 * 256 / 48.57 - 1350) < 5  # TPU v1's published ridge
    # the inputs' arithmetic the text states: CPU ≈ 13 and GPU ≈ 9 MACs per byte, 35× and 100×
    assert round(1.3e12 / 2 / 51e9) == 13 and round(2.8e12 / 2 / 160e9) == 9
    assert round(92 / 2.6) == 35 and round(256 * 256 / 48.57 / 13, -1) == 100
    assert L.expected_answer(l13.steps[2].question) == "below_cpu"
    l14 = next(l for l in en if l.number == 14)
    assert L.expected_answer(l14.steps[0].question) == pytest.approx(2.0, rel=0.01)  # power doubles with the clock
    assert 256 * 256 * 4.6e-12 * 700e6 > 75 > 256 * 256 * 0.3e-12 * 700e6  # fp32 MACs exceed TPU v1's TDP, int8 fit
    assert L.expected_answer(l14.steps[1].question) == "exceeds"
    assert math.isqrt(int(10 / (0.3e-12 * 700e6))) == 218  # the exercise's 10 W array


def test_feedback_renders_the_explanation_in_the_steps_state_not_the_questions(en, zh):
    """A question's chip = …/net = … change what it measures, not the step's text: lesson 14 step 1 asks about
    1,400 MHz, and its explanation still compares 1,400 with the step's 700 MHz."""
    for lessons in (en, zh):
        for lesson, step in all_steps(lessons):
            if step.question:
                fb = L.check_answer(step.question, "12345" if step.question.kind == "number" else
                                    step.question.choices[0])
                assert L.render_step(step, step.question.explanation) in fb.explanation, (lesson.id, step.number)
    step = next(l for l in en if l.number == 14).steps[0]
    fb = L.check_answer(step.question, "1")
    fast = L.measure_value(L.Query("step_power_w", L._key({**step.settings, "clock_mhz": 1400.0})))
    slow = L.measure_value(L.Query("step_power_w", L._key(step.settings)))
    assert f"{L.format_value('step_power_w', fast)} against {L.format_value('step_power_w', slow)}" in fb.explanation
