"""Run files: a saved run resumes bit for bit; anything foreign or corrupt is refused with a
ValueError that names the file.

Headless: no panel, no bokeh.
"""
from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from chipviz.chip import ChipConfig, EnergyTable
from chipviz.nn.runfile import FORMAT, VERSION, load_run, save_run
from chipviz.nn.trainer import Diverged, Trainer, TrainSettings

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

DIGITS = dict(dataset="digits", hidden=(32,), activation="relu", lr=0.01, batch_size=32)


def losses_of(trainer, steps):
    return np.array([trainer.step().loss for _ in range(steps)])


def assert_same_run(a, b):
    """Two trainers in exactly the same state."""
    assert a.step_count == b.step_count and a.epoch == b.epoch and a.position == b.position
    np.testing.assert_array_equal(a.order, b.order)
    assert a.rng.bit_generator.state == b.rng.bit_generator.state
    for x, y in zip(a.net.params, b.net.params):
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes()
    sa, sb = a.optimizer.state(), b.optimizer.state()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert np.asarray(sa[k]).tobytes() == np.asarray(sb[k]).tobytes(), k
    assert a.optimizer.t == b.optimizer.t and a.optimizer.lr == b.optimizer.lr
    assert a.settings == b.settings and a.chip == b.chip
    assert a.totals == b.totals
    assert a.history.stride == b.history.stride
    ha, hb = a.history.as_arrays(), b.history.as_arrays()
    assert ha.keys() == hb.keys()
    for k in ha:
        np.testing.assert_array_equal(ha[k], hb[k])


RESUME_CASES = {
    "adam": (TrainSettings(**DIGITS, optimizer="adam"), ChipConfig()),
    "momentum": (TrainSettings(**{**DIGITS, "optimizer": "momentum", "lr": 0.05}), ChipConfig()),
    "sgd": (TrainSettings(**{**DIGITS, "optimizer": "sgd", "lr": 0.1}), ChipConfig()),
    "int8-odd-chip": (TrainSettings(**DIGITS, optimizer="adam", seed=9),
                      ChipConfig(rows=4, cols=6, dataflow="is", precision="int8", clock_mhz=500.0,
                                 dram_bytes_per_cycle=8.0, energy=EnergyTable(dram_pj_per_byte=100.0))),
    "cycle-spiral": (TrainSettings(dataset="spiral", hidden=(6, 5), activation="tanh", optimizer="momentum",
                                   batch_size=16, engine="cycle", n_samples=120, noise=0.1, seed=4),
                     ChipConfig(rows=3, cols=4, dataflow="os")),
}


@pytest.mark.parametrize("case", RESUME_CASES)
def test_resumed_run_continues_bit_identically(case, tmp_path):
    settings, chip = RESUME_CASES[case]
    first, second = 30, 60
    original = Trainer(settings, chip)
    head = losses_of(original, first)
    path = tmp_path / "run.npz"
    save_run(original, path)
    resumed = load_run(path)
    assert_same_run(original, resumed)

    tail_original = losses_of(original, second)
    tail_resumed = losses_of(resumed, second)
    assert tail_original.tobytes() == tail_resumed.tobytes()
    assert_same_run(original, resumed)

    # and both equal a run that was never interrupted
    straight = Trainer(settings, chip)
    whole = losses_of(straight, first + second)
    assert whole.tobytes() == np.concatenate([head, tail_resumed]).tobytes()
    assert_same_run(straight, resumed)
    assert resumed.step_count == first + second
    if case in ("adam", "momentum", "sgd"):
        assert resumed.epoch >= 1  # the 90 steps cross an epoch boundary (new shuffle)


def test_resume_keeps_a_changed_learning_rate_and_evaluations(tmp_path):
    a = Trainer(TrainSettings(**DIGITS, optimizer="momentum"), ChipConfig())
    a.fit(1)
    a.optimizer.lr = 0.003  # as the app changes it during a run
    losses_of(a, 5)
    save_run(a, str(tmp_path / "r.npz"))  # a str path works as well as a Path
    b = load_run(str(tmp_path / "r.npz"))
    assert b.optimizer.lr == 0.003 and b.settings.lr == a.settings.lr == 0.01
    assert_same_run(a, b)
    acc = b.history["test_acc"]
    assert np.count_nonzero(~np.isnan(acc)) == 1
    assert losses_of(a, 20).tobytes() == losses_of(b, 20).tobytes()
    a.fit(1)
    b.fit(1)
    assert_same_run(a, b)


def test_resaving_a_loaded_run_gives_the_same_content(tmp_path):
    a = Trainer(TrainSettings(**DIGITS), ChipConfig())
    losses_of(a, 7)
    save_run(a, tmp_path / "1.npz")
    save_run(load_run(tmp_path / "1.npz"), tmp_path / "2.npz")
    with np.load(tmp_path / "1.npz", allow_pickle=False) as f1, np.load(tmp_path / "2.npz", allow_pickle=False) as f2:
        assert sorted(f1.files) == sorted(f2.files)
        for k in f1.files:
            if k == "header":
                assert json.loads(str(f1[k])) == json.loads(str(f2[k]))
            else:
                np.testing.assert_array_equal(f1[k], f2[k])


def test_a_diverged_run_stays_diverged_after_loading(tmp_path):
    t = Trainer(TrainSettings(**{**DIGITS, "optimizer": "sgd", "lr": 100.0}), ChipConfig())
    with pytest.raises(Diverged) as first:
        for _ in range(300):
            t.step()
    weights = [p.copy() for p in t.net.params]
    save_run(t, tmp_path / "d.npz")
    loaded = load_run(tmp_path / "d.npz")
    assert loaded.diverged == t.diverged == first.value.divergence and str(loaded.diverged) == str(first.value)
    for x, y in zip(loaded.net.params, weights):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(Diverged, match=f"step {t.step_count + 1}"):
        loaded.step()


def test_file_is_plain_arrays_loadable_without_pickle(tmp_path):
    t = Trainer(TrainSettings(**DIGITS), ChipConfig())
    losses_of(t, 3)
    path = tmp_path / "run.npz"
    save_run(t, path)
    assert zipfile.is_zipfile(path)
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    assert all(a.dtype != object for a in arrays.values())
    header = json.loads(str(arrays["header"]))
    assert header["format"] == FORMAT and header["version"] == VERSION == 2
    assert header["data"] == {"name": "digits"} and "precision" not in header["settings"]
    assert header["step"] == 3 and header["settings"]["hidden"] == [32]
    for i, (w, b) in enumerate(zip(t.net.weights, t.net.biases)):
        np.testing.assert_array_equal(arrays[f"W{i}"], w)
        np.testing.assert_array_equal(arrays[f"b{i}"], b)
    assert {"order", "opt_t", "opt_m0", "opt_v0", "hist_step", "hist_train_loss"} <= arrays.keys()


# --- foreign and corrupt files ------------------------------------------------------------------

@pytest.fixture(scope="module")
def good_file(tmp_path_factory):
    t = Trainer(TrainSettings(**DIGITS, optimizer="adam"), ChipConfig())
    losses_of(t, 3)
    path = tmp_path_factory.mktemp("runs") / "good.npz"
    save_run(t, path)
    return path


def rewritten(good_file, path, change):
    with np.load(good_file, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    change(arrays)
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)
    return path


def with_header(**changes):
    def change(arrays):
        header = json.loads(str(arrays["header"]))
        header.update(changes)
        arrays["header"] = np.array(json.dumps(header))
    return change


def set_array(name, value):
    def change(arrays):
        arrays[name] = value(arrays[name]) if callable(value) else value
    return change


def with_nan(a):
    a = a.copy()
    a.flat[0] = np.nan
    return a


def header_text(text):
    def change(arrays):
        arrays["header"] = np.array(text)
    return change


def make_foreign(good, path):
    np.savez(path, x=np.arange(10), y=np.eye(3), header_like=np.array("hello"))
    return path


def make_truncated(good, path):
    raw = good.read_bytes()
    path.write_bytes(raw[:len(raw) // 2])
    return path


def make_text(good, path):
    path.write_text("step,loss\n1,2.3\n2,2.1\n")
    return path


def make_empty(good, path):
    path.write_bytes(b"")
    return path


def make_missing(good, path):
    return path.with_name("does-not-exist.npz")


def make_npy(path, array):
    with open(path, "wb") as f:
        np.save(f, array, allow_pickle=True)
    return path


def make_pickle(good, path):
    import pickle

    path.write_bytes(pickle.dumps({"W0": [1, 2, 3]}))
    return path


def make_directory(good, path):
    path.mkdir()
    return path


BAD_FILES = {
    "foreign npz": make_foreign,
    "truncated": make_truncated,
    "text file": make_text,
    "empty file": make_empty,
    "missing": make_missing,
    "directory": make_directory,
    "wrong format": lambda g, p: rewritten(g, p, with_header(format="other-app-run")),
    "no format": lambda g, p: rewritten(g, p, with_header(format=None)),
    "wrong version": lambda g, p: rewritten(g, p, with_header(version=3)),
    "version as bool": lambda g, p: rewritten(g, p, with_header(version=True)),
    "version as text": lambda g, p: rewritten(g, p, with_header(version="1")),
    "header not json": lambda g, p: rewritten(g, p, header_text("{not json")),
    "no header": lambda g, p: rewritten(g, p, lambda a: a.pop("header")),
    "W0 wrong shape": lambda g, p: rewritten(g, p, set_array("W0", np.zeros((3, 3), np.float32))),
    "W1 transposed": lambda g, p: rewritten(g, p, set_array("W1", lambda a: a.T.copy())),
    "b0 wrong shape": lambda g, p: rewritten(g, p, set_array("b0", np.zeros(31, np.float32))),
    "W0 with NaN": lambda g, p: rewritten(g, p, set_array("W0", with_nan)),
    "b1 with inf": lambda g, p: rewritten(g, p, set_array("b1", lambda a: a + np.inf)),
    "W1 missing": lambda g, p: rewritten(g, p, lambda a: a.pop("W1")),
    "order not a permutation": lambda g, p: rewritten(g, p, set_array("order", lambda a: np.zeros_like(a))),
    "settings invalid": lambda g, p: rewritten(g, p, with_header(settings={"dataset": "cifar10"})),
    "settings unknown key": lambda g, p: rewritten(g, p, with_header(settings={"colour": "red"})),
    "chip invalid": lambda g, p: rewritten(g, p, with_header(chip={"rows": 0})),
    "rng invalid": lambda g, p: rewritten(g, p, with_header(rng={"bit_generator": "nonsense"})),
    "data record corrupt": lambda g, p: rewritten(g, p, with_header(data=[1])),
    "custom data without fingerprint": lambda g, p: rewritten(g, p, with_header(data={"name": "custom"})),
    "diverged not understood": lambda g, p: rewritten(g, p, with_header(diverged="it went wrong")),
    "optimizer lr invalid": lambda g, p: rewritten(g, p, with_header(optimizer_lr=-1)),
    "pickled objects in the npz": lambda g, p: rewritten(g, p, set_array("W0", np.array([{"x": 1}], object))),
    "npy of objects": lambda g, p: make_npy(p, np.array([{"x": 1}], dtype=object)),
    "plain npy array": lambda g, p: make_npy(p, np.zeros(3)),
    "python pickle": make_pickle,
    "header is a JSON list": lambda g, p: rewritten(g, p, header_text("[1, 2]")),
    "header is JSON null": lambda g, p: rewritten(g, p, header_text("null")),
    "header is a JSON string": lambda g, p: rewritten(g, p, header_text('"chipviz-run"')),
    "optimizer state wrong shape": lambda g, p: rewritten(g, p, set_array("opt_m0", np.zeros(2, np.float32))),
}


@pytest.mark.parametrize("kind", BAD_FILES)
def test_bad_files_raise_value_error_naming_the_path(kind, good_file, tmp_path):
    """Every foreign or corrupt file gives ValueError whose message names the file, in one line,
    never numpy's advice to load pickled data."""
    path = BAD_FILES[kind](good_file, tmp_path / "bad.npz")
    with pytest.raises(ValueError) as info:
        load_run(path)
    message = str(info.value)
    assert str(path) in message, message
    assert "allow_pickle" not in message and "pickle.load" not in message and "\n" not in message, message


@pytest.mark.parametrize("member", ["header.npy", "W0.npy", "order.npy", "opt_m0.npy"])
def test_corrupted_bytes_inside_the_zip_raise_value_error(member, good_file, tmp_path):
    """Bytes flipped inside one member's compressed data (a damaged download): whether numpy's
    reader meets a zlib.error or a CRC mismatch (zipfile.BadZipFile), the result is a ValueError
    naming the file."""
    raw = bytearray(good_file.read_bytes())
    with zipfile.ZipFile(good_file) as zf:
        info = zf.getinfo(member)
    # the member's data starts after its local header (30 bytes + name + extra field)
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len
    size = info.compress_size
    assert size > 16
    for i in range(start + size // 4, start + size // 4 + max(8, size // 2)):
        raw[i] ^= 0x5A
    path = tmp_path / "damaged.npz"
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError) as exc:
        load_run(path)
    assert str(path) in str(exc.value)


def test_a_good_file_still_loads(good_file):
    t = load_run(good_file)
    assert t.step_count == 3
    assert isinstance(Path(good_file), Path)


# --- version 1 files (written before the chip owned the precision) ------------------------------

def as_version_1(path, out, precision="fp32", diverged=None):
    """Rewrite a run file as ChipViz wrote it at version 1: the precision in the settings (the chip
    then fp32), no data record, no separate learning rate, divergence as its English sentence."""
    def change(arrays):
        header = json.loads(str(arrays["header"]))
        header["version"] = 1
        header["settings"]["precision"] = precision
        header["chip"]["precision"] = "fp32"
        for key in ("data", "optimizer_lr"):
            header.pop(key)
        header["diverged"] = diverged
        arrays["header"] = np.array(json.dumps(header))
    return rewritten(path, out, change)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_a_version_1_file_loads_its_precision_onto_the_chip(precision, tmp_path):
    chip = ChipConfig(rows=4, cols=6, dataflow="os")
    settings = TrainSettings(**DIGITS, optimizer="adam", seed=2)
    original = Trainer(settings, chip.with_(precision=precision))
    losses_of(original, 20)
    save_run(original, tmp_path / "v2.npz")
    old = as_version_1(tmp_path / "v2.npz", tmp_path / "v1.npz", precision)
    resumed = load_run(old)
    assert resumed.chip == original.chip and resumed.chip.precision == precision
    assert_same_run(original, resumed)
    assert losses_of(original, 15).tobytes() == losses_of(resumed, 15).tobytes()


def test_a_version_1_diverged_run_keeps_its_divergence(tmp_path):
    t = Trainer(TrainSettings(**{**DIGITS, "optimizer": "sgd", "lr": 100.0}), ChipConfig())
    with pytest.raises(Diverged) as info:
        for _ in range(300):
            t.step()
    save_run(t, tmp_path / "v2.npz")
    old = as_version_1(tmp_path / "v2.npz", tmp_path / "v1.npz", diverged=str(info.value))
    loaded = load_run(old)
    assert loaded.diverged == t.diverged and str(loaded.diverged) == str(info.value)


# --- custom data ---------------------------------------------------------------------------------

def custom_data(seed=0, n=60, name="mine"):
    from chipviz.data import Dataset

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    return Dataset(name, x[:40], y[:40], x[40:], y[40:], 2, None, "three features, two classes")


def test_a_run_on_custom_data_records_it_and_loads_with_the_same_data(tmp_path):
    data = custom_data()
    settings = TrainSettings(hidden=(5,), batch_size=8, optimizer="adam")
    original = Trainer(settings, ChipConfig(rows=3, cols=3), data=data)
    losses_of(original, 12)
    path = tmp_path / "custom.npz"
    save_run(original, path)
    with np.load(path, allow_pickle=False) as f:
        record = json.loads(str(f["header"]))["data"]
    assert record["name"] == "custom" and record["title"] == "mine"
    assert record["sha256"] == data.fingerprint and len(data.fingerprint) == 64
    assert record["shapes"] == {"x_train": [40, 3], "y_train": [40], "x_test": [20, 3], "y_test": [20]}

    # the same arrays under another name and description are the same data
    from chipviz.data import Dataset
    same = Dataset("renamed", *(np.array(getattr(data, k)) for k in ("x_train", "y_train", "x_test", "y_test")),
                   2, ("a", "b", "c"), "other words")
    resumed = load_run(path, data=same)
    assert_same_run(original, resumed)
    assert losses_of(original, 10).tobytes() == losses_of(resumed, 10).tobytes()


def test_a_custom_run_refuses_to_load_without_its_data_or_with_other_data(tmp_path):
    from chipviz.nn.runfile import CustomDataNeeded

    data = custom_data()
    t = Trainer(TrainSettings(hidden=(5,), batch_size=8), ChipConfig(rows=3, cols=3), data=data)
    losses_of(t, 3)
    path = tmp_path / "custom.npz"
    save_run(t, path)
    with pytest.raises(CustomDataNeeded) as info:
        load_run(path)
    message = str(info.value)
    assert message.startswith(f"{path}: this run was trained on custom data (")
    assert "'mine': 40 training and 20 test samples of 3 features, 2 classes" in message
    assert data.fingerprint[:12] in message and message.endswith("pass the same data to load it")
    assert "expected (64" not in message  # not a rebuild on digits
    other = custom_data(seed=1)
    with pytest.raises(CustomDataNeeded, match="the data given differs") as info:
        load_run(path, data=other)
    assert other.fingerprint[:12] in str(info.value)
    bigger = custom_data(n=90)
    with pytest.raises(ValueError, match="differs"):
        load_run(path, data=bigger)


def test_a_named_dataset_run_refuses_data_it_did_not_train_on(good_file):
    with pytest.raises(ValueError, match="'digits' dataset.*without data"):
        load_run(good_file, data=custom_data())


def test_a_version_1_file_trained_on_custom_data_loads_when_given_it(tmp_path):
    """Version 1 recorded nothing about the data; such a custom run now loads when given the data."""
    data = custom_data()
    t = Trainer(TrainSettings(hidden=(5,), batch_size=8), ChipConfig(rows=3, cols=3), data=data)
    losses_of(t, 4)
    save_run(t, tmp_path / "v2.npz")
    old = as_version_1(tmp_path / "v2.npz", tmp_path / "v1.npz")
    with pytest.raises(ValueError, match="array W0 has shape"):  # rebuilt on digits, as before
        load_run(old)
    assert_same_run(t, load_run(old, data=data))


def test_settings_and_chip_given_as_numpy_numbers_save_and_resume(tmp_path):
    """TrainSettings and ChipConfig accept numpy scalars; a run made with them saves (it once
    failed: "Object of type float32 is not JSON serializable") and resumes bit for bit."""
    settings = TrainSettings(dataset="xor", n_samples=60, hidden=(np.int64(6),), lr=np.float32(0.1),
                             batch_size=np.int64(8), optimizer="adam")
    chip = ChipConfig(rows=np.int64(3), cols=3, clock_mhz=np.float64(500.0))
    a = Trainer(settings, chip)
    losses_of(a, 5)
    save_run(a, tmp_path / "np.npz")
    b = load_run(tmp_path / "np.npz")
    assert b.settings == a.settings and b.chip == a.chip
    assert losses_of(a, 10).tobytes() == losses_of(b, 10).tobytes()
