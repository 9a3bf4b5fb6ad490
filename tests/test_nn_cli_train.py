"""`chipviz train`: the chip's --precision is the run's number format, errors name the option as
typed, --load refuses foreign files and changed settings in one line, divergence is reported in
the trainer's words.

Headless: no panel, no bokeh.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from chipviz import cli
from chipviz.chip import ChipConfig
from chipviz.nn.runfile import save_run
from chipviz.nn.trainer import Diverged, Trainer, TrainSettings

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def run(capsys, *argv):
    code = cli.main(["train", "--quiet", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_error(capsys, *argv):
    code, out, err = run(capsys, *argv)
    assert code == 2, err
    assert out == ""
    assert err.startswith("chipviz: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and "allow_pickle" not in err
    return err


def test_precision_sets_the_chip_and_equals_a_trainer_on_that_chip(capsys):
    code, out, err = run(capsys, "--epochs", "1", "--precision", "int8", "--array", "4x6", "--dataflow", "os",
                         "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["chip"]["precision"] == "int8" and "precision" not in record["settings"]
    trainer = Trainer(TrainSettings(), ChipConfig(rows=4, cols=6, dataflow="os", precision="int8"))
    trainer.fit(1)
    loss, acc = trainer.evaluate("test")
    assert (record["test_loss"], record["test_accuracy"]) == (loss, acc)
    assert record["train_loss"] == trainer.last.loss and record["cycles"] == sum(
        t["cycles"] for t in trainer.totals.values())
    code, out, err = run(capsys, "--epochs", "1", "--precision", "int8", "--array", "4x6", "--dataflow", "os")
    assert out.splitlines()[0] == "digits: MLP 64-32-10, adam lr 0.01, batch 32, int8, on a 4×6 os array at 700 MHz"


@pytest.mark.parametrize(("argv", "fragment"), [
    (["--layers", "64,0,10"], "argument --layers: each hidden width must be a whole number from 1 to 512, "
                              "got 0 in '64,0,10'"),
    (["--layers", "64,600,10"], "argument --layers: each hidden width must be a whole number from 1 to 512, got 600"),
    (["--layers", "64,1,2,3,4,5,10"], "argument --layers: at most 4 hidden layers between the input and the output, "
                                      "got 5"),
    (["--layers", "64,x,10"], "argument --layers: must be whole numbers separated by commas"),
    (["--layers", "3,32,10"], "argument --layers: digits needs 64 inputs and 10 outputs"),
    (["--batch-size", "0"], "argument --batch-size: must be a whole number from 1 to 65536, got 0"),
    (["--batch-size", "100000"], "argument --batch-size: must be a whole number"),
    (["--lr", "0"], "argument --lr: must be a number from 1e-06 to 100"),
    (["--lr", "nan"], "argument --lr: must be a number"),
    (["--seed", "-1"], "argument --seed: must be a whole number from 0"),
    (["--noise", "-1"], "argument --noise: must be a number from 0 to 10"),
    (["--dataset", "spiral", "--samples", "3"], "argument --samples: must be a whole number from 10 to 100000"),
    (["--epochs", "0"], "argument --epochs: must be a whole number from 1 to 100000, got 0"),
    (["--dataset", "mnist"], "--dataset mnist needs --mnist-dir DIR"),
    (["--dataset", "mnist", "--mnist-dir", "/no/such/folder"], "argument --mnist-dir: '/no/such/folder' is not a "
                                                               "folder"),
    (["--precision", "fp16"], "argument --precision: invalid choice: 'fp16'"),
    (["--array", "0x4"], "argument --array: array rows must be from 1 to 256"),
    (["--clock-mhz", "0"], "argument --clock-mhz: must be a number from 1"),
])
def test_bad_arguments_name_the_option_as_typed(capsys, argv, fragment):
    err = run_error(capsys, *argv)
    assert fragment in err, err
    for internal in ("hidden must", "(0,)", "batch_size", "mnist_dir", "n_samples", "got None"):
        assert internal not in err, err


def test_load_continues_with_its_own_settings_and_chip(capsys, tmp_path):
    path = tmp_path / "run.npz"
    code, _, err = run(capsys, "--epochs", "1", "--precision", "int8", "--save", str(path))
    assert code == 0, err
    code, out, err = run(capsys, "--epochs", "1", "--load", str(path), "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["chip"]["precision"] == "int8" and record["epochs"] == 2
    for argv, option in ((["--lr", "0.1"], "--lr"), (["--batch-size", "8"], "--batch-size"),
                         (["--precision", "fp32"], "--precision"), (["--array", "4x4"], "--array"),
                         (["--engine", "cycle"], "--engine"), (["--clock-mhz", "100"], "--clock-mhz")):
        err = run_error(capsys, "--load", str(path), *argv)
        assert f"drop {option}" in err, err


def make_files(tmp_path):
    import pickle

    files = {}
    files["pickled.npz"] = tmp_path / "pickled.npz"
    np.savez(files["pickled.npz"], a=np.array([{"x": 1}], dtype=object))
    files["objects.npy"] = tmp_path / "objects.npy"
    np.save(files["objects.npy"], np.array([{"x": 1}], dtype=object), allow_pickle=True)
    files["plain.npy"] = tmp_path / "plain.npy"
    np.save(files["plain.npy"], np.zeros(3))
    files["data.pkl"] = tmp_path / "data.pkl"
    files["data.pkl"].write_bytes(pickle.dumps({"a": 1}))
    files["notes.txt"] = tmp_path / "notes.txt"
    files["notes.txt"].write_text("hello\nworld\n")
    files["empty.npz"] = tmp_path / "empty.npz"
    files["empty.npz"].write_bytes(b"")
    files["foreign.npz"] = tmp_path / "foreign.npz"
    np.savez(files["foreign.npz"], x=np.arange(3))
    files["folder"] = tmp_path / "folder"
    files["folder"].mkdir()
    files["missing.npz"] = tmp_path / "missing.npz"
    return files


def test_load_of_a_file_that_is_not_a_run_gives_one_line_naming_it(capsys, tmp_path):
    for name, path in make_files(tmp_path).items():
        err = run_error(capsys, "--load", str(path))
        assert str(path) in err, (name, err)
        assert "pickle" not in err.replace(str(path), ""), (name, err)  # never numpy's advice on pickled data


def test_load_of_a_custom_data_run_says_the_command_line_cannot_supply_it(capsys, tmp_path):
    from chipviz.data import Dataset

    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    data = Dataset("sensors", x[:40], y[:40], x[40:], y[40:], 2, None, "")
    t = Trainer(TrainSettings(hidden=(4,), batch_size=8), ChipConfig(rows=3, cols=3), data=data)
    t.step()
    path = tmp_path / "custom.npz"
    save_run(t, path)
    err = run_error(capsys, "--load", str(path))
    assert f"{path}: this run was trained on custom data ('sensors': 40 training and 10 test samples" in err
    assert "which the command line cannot supply" in err and "load_run(path, data=...)" in err


def test_divergence_prints_the_trainers_sentence_and_exits_1(capsys):
    code, out, err = run(capsys, "--epochs", "1", "--optimizer", "sgd", "--lr", "100")
    assert code == 1
    trainer = Trainer(TrainSettings(optimizer="sgd", lr=100.0), ChipConfig())
    with pytest.raises(Diverged) as info:
        trainer.fit(1)
    sentence = str(info.value)
    assert sentence.startswith("Training diverged at step ")
    assert err == f"chipviz: {sentence}\n"
    assert out.rstrip("\n").endswith(sentence)
    code, out, _ = run(capsys, "--epochs", "1", "--optimizer", "sgd", "--lr", "100", "--json")
    assert code == 1 and json.loads(out)["diverged"] == sentence


def test_help_lists_the_options_the_errors_name(capsys):
    assert cli.main(["train", "--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--layers", "--batch-size", "--mnist-dir", "--samples", "--precision", "--load"):
        assert option in text
