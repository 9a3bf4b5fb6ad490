"""Dataset layer: shipped digits, seeded toys, local MNIST and argument validation."""

import gzip
import re

import numpy as np
import pytest

from chipviz.data import DATASETS, TOYS, load_dataset
from chipviz.data import digits as digits_module
from chipviz.data.mnist import load_mnist

# --- digits ---------------------------------------------------------------------------------


def test_digits_shapes_range_and_fixed_split():
    ds = load_dataset("digits")
    assert (len(ds.x_train), len(ds.x_test)) == (1437, 360)
    assert ds.x_train.shape[1] == ds.x_test.shape[1] == 64 == len(ds.feature_names)
    assert ds.x_train.dtype == ds.x_test.dtype == np.float32
    assert ds.y_train.dtype == ds.y_test.dtype == np.int64
    x = np.concatenate([ds.x_train, ds.x_test])
    assert x.min() == 0.0 and x.max() == 1.0
    assert ds.n_classes == 10
    assert np.array_equal(np.bincount(ds.y_test), [36] * 10)
    assert set(np.unique(ds.y_train)) == set(range(10))


def test_digits_split_ignores_seed_and_arrays_are_read_only():
    a, b = load_dataset("digits", seed=0), load_dataset("digits", seed=7, n_samples=50)
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_test, b.y_test)
    with pytest.raises(ValueError, match="read-only"):
        a.x_train[0, 0] = 1.0


def test_digits_checksum_enforced_on_tampered_copy(tmp_path):
    text = bytearray(gzip.decompress(digits_module.DIGITS_PATH.read_bytes()))
    text[0:1] = b"1"  # first pixel of the first image: 0 -> 1
    tampered = tmp_path / "digits.csv.gz"
    tampered.write_bytes(gzip.compress(bytes(text)))
    with pytest.raises(ValueError, match="SHA-256"):
        digits_module.load_digits(tampered)


def test_digits_checksum_enforced_on_expected_hash(monkeypatch):
    monkeypatch.setattr(digits_module, "DIGITS_SHA256", "0" * 64)
    with pytest.raises(ValueError, match="expected 0000"):
        load_dataset("digits")


def test_digits_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="digits data not found"):
        digits_module.load_digits(tmp_path / "nope.csv.gz")


# --- toys -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TOYS)
def test_toy_deterministic_per_seed(name):
    a, b = load_dataset(name, seed=3), load_dataset(name, seed=3)
    for field in ("x_train", "y_train", "x_test", "y_test"):
        assert getattr(a, field).tobytes() == getattr(b, field).tobytes()
    c = load_dataset(name, seed=4)
    assert not np.array_equal(a.x_train, c.x_train)


@pytest.mark.parametrize("name", TOYS)
def test_toy_shapes_dtypes_balance_and_shuffle(name):
    ds = load_dataset(name, n_samples=401, test_fraction=0.3)
    assert ds.x_train.shape == (281, 2) and ds.x_test.shape == (120, 2)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.n_classes == 2 and ds.feature_names == ("x1", "x2")
    for y in (ds.y_train, ds.y_test):
        assert set(np.unique(y)) == {0, 1}
        assert abs(2 * y.sum() - len(y)) <= 1
    assert not np.array_equal(ds.y_train[:20], np.arange(20) % 2)
    assert np.abs(ds.x_train).max() < 2


def test_toy_noise_changes_points():
    quiet, loud = load_dataset("moons", noise=0.0), load_dataset("moons", noise=0.5)
    assert quiet.x_train.std() < loud.x_train.std()


# --- MNIST ----------------------------------------------------------------------------------

FILES = {
    "train-images-idx3-ubyte": (2051, np.arange(5 * 28 * 28).reshape(5, 28, 28) % 256),
    "train-labels-idx1-ubyte": (2049, np.array([0, 1, 2, 3, 9])),
    "t10k-images-idx3-ubyte": (2051, np.full((3, 28, 28), 255)),
    "t10k-labels-idx1-ubyte": (2049, np.array([4, 5, 6])),
}


def idx_bytes(magic, array):
    header = magic.to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(directory, gz=False, **overrides):
    for stem, (magic, array) in FILES.items():
        data = overrides.get(stem, idx_bytes(magic, array))
        if gz:
            (directory / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / stem).write_bytes(data)
    return directory


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_loads_raw_and_gz(tmp_path, gz):
    ds = load_dataset("mnist", mnist_dir=str(write_mnist(tmp_path, gz=gz)))
    assert ds.x_train.shape == (5, 784) and ds.x_test.shape == (3, 784)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert np.array_equal(ds.y_train, [0, 1, 2, 3, 9]) and np.array_equal(ds.y_test, [4, 5, 6])
    assert ds.x_train[0, 255] == 1.0 and ds.x_train[0, 0] == 0.0
    assert np.all(ds.x_test == 1.0)
    assert ds.n_classes == 10


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"train-images-idx3-ubyte": idx_bytes(*FILES["train-images-idx3-ubyte"])[:-10]},
         "train-images-idx3-ubyte: 3926 bytes, expected 3936"),
        ({"t10k-labels-idx1-ubyte": b"\x00\x00\x08"}, "t10k-labels-idx1-ubyte: truncated"),
        ({"train-labels-idx1-ubyte": idx_bytes(2051, np.array([0, 1, 2, 3, 9]))},
         "train-labels-idx1-ubyte: IDX magic number is 2051, expected 2049"),
        ({"train-labels-idx1-ubyte": idx_bytes(2049, np.array([0, 1, 2, 3]))},
         "has 5 images but .*train-labels-idx1-ubyte has 4 labels"),
        ({"t10k-labels-idx1-ubyte": idx_bytes(2049, np.array([4, 10, 6]))},
         "t10k-labels-idx1-ubyte: label 10 outside 0..9"),
        ({"t10k-images-idx3-ubyte": idx_bytes(2051, np.zeros((3, 27, 28)))},
         "t10k-images-idx3-ubyte: images are 27x28, expected 28x28"),
    ],
)
def test_mnist_corrupt_files(tmp_path, overrides, message):
    write_mnist(tmp_path, **overrides)
    with pytest.raises(ValueError, match=message):
        load_mnist(tmp_path)


def test_mnist_bad_gzip(tmp_path):
    write_mnist(tmp_path, gz=True)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte\.gz: not a readable gzip"):
        load_mnist(tmp_path)


def test_mnist_missing_file_and_dir(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match=r"t10k-labels-idx1-ubyte \(or t10k-labels-idx1-ubyte\.gz\)"):
        load_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_mnist(tmp_path / "absent")


# --- argument validation --------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, kwargs, argument, given",
    [
        ("mnistt", {}, "name", "'mnistt'"),
        ("circle", {"noise": -0.1}, "noise", "-0.1"),
        ("circle", {"noise": float("nan")}, "noise", "nan"),
        ("circle", {"n_samples": 9}, "n_samples", "9"),
        ("circle", {"n_samples": 100_001}, "n_samples", "100001"),
        ("circle", {"n_samples": 50.0}, "n_samples", "50.0"),
        ("circle", {"test_fraction": 0}, "test_fraction", "0"),
        ("circle", {"test_fraction": 0.95}, "test_fraction", "0.95"),
        ("circle", {"seed": -1}, "seed", "-1"),
        ("mnist", {}, "mnist_dir", "None"),
    ],
)
def test_invalid_arguments(name, kwargs, argument, given):
    with pytest.raises(ValueError, match=rf"^{argument} .*got {re.escape(given)}$"):
        load_dataset(name, **kwargs)


def test_all_names_listed():
    assert DATASETS == ("digits", "circle", "xor", "gauss", "spiral", "moons", "mnist")
    assert set(TOYS) < set(DATASETS)


# --- fingerprint (what a run file records of custom data) ---------------------------------------

def test_fingerprint_identifies_the_arrays_not_the_names():
    from chipviz.data import Dataset

    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 4)).astype(np.float32)
    y = rng.integers(0, 3, 30)

    def make(name="a", xs=x, ys=y, classes=3, description="d"):
        return Dataset(name, xs[:20].copy(), ys[:20].copy(), xs[20:].copy(), ys[20:].copy(), classes, None,
                       description)

    base = make()
    assert len(base.fingerprint) == 64 and base.fingerprint == make("other name", description="other").fingerprint
    assert base.shapes == {"x_train": [20, 4], "y_train": [20], "x_test": [10, 4], "y_test": [10]}
    assert base.summary() == "'a': 20 training and 10 test samples of 4 features, 3 classes"
    one_value = x.copy()
    one_value[25, 2] = np.nextafter(one_value[25, 2], np.float32(np.inf))  # one test value, one ulp
    labels = y.copy()
    labels[3] = (labels[3] + 1) % 3
    split = x[np.r_[10:30, 0:10]]  # the same rows, split differently
    for changed in (make(xs=one_value), make(ys=labels), make(classes=4), make(xs=split, ys=y[np.r_[10:30, 0:10]])):
        assert changed.fingerprint != base.fingerprint
    assert load_dataset("digits").fingerprint == load_dataset("digits").fingerprint
