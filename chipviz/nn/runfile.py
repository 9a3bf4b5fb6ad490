"""Saving and resuming a training run: one .npz of plain arrays plus a JSON header, no pickle.

Everything needed to continue bit for bit is stored: settings, chip, weights, optimizer
state, the shuffling generator's state and position in the epoch, totals, histories, and
which data the run trained on. A run on one of ChipViz's datasets is rebuilt from its
settings; a run on custom data (`Trainer(..., data=...)`) records the data's fingerprint
(SHA-256 of its arrays) and shapes, and loads only when given the same data again.

Version 1 files (before the chip's precision owned the number format) keep loading: their
settings' `precision` becomes the chip's, and their divergence sentence becomes a Divergence.
"""
from __future__ import annotations

import json
import re
import zipfile
import zlib
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..chip import ChipConfig, EnergyTable
from ..data import Dataset
from .. import checks
from .trainer import Divergence, Trainer, TrainSettings

FORMAT = "chipviz-run"
VERSION = 2
READABLE_VERSIONS = (1, 2)
CUSTOM = "custom"  # the data name a run on custom data records


class CustomDataNeeded(ValueError):
    """The run trained on custom data, which was not given (`given` None) or differs.

    `trained_on` and `given` describe the data in words (name, samples, features, classes and
    the start of the SHA-256 fingerprint); str() is the whole sentence, naming the file.
    """

    def __init__(self, path, trained_on: str, given: str | None = None):
        self.path, self.trained_on, self.given = path, trained_on, given
        differs = f", and the data given differs ({given})" if given else ""
        super().__init__(f"{path}: this run was trained on custom data ({trained_on}){differs}; pass the same data "
                         f"to load it")


def save_run(trainer: Trainer, path) -> None:
    header = {
        "format": FORMAT, "version": VERSION,
        "settings": trainer.settings.to_dict(),
        "chip": asdict(trainer.chip),
        "data": data_identity(trainer),
        "step": trainer.step_count, "epoch": trainer.epoch, "position": trainer.position,
        "rng": trainer.rng.bit_generator.state,
        "optimizer_t": trainer.optimizer.t,
        "optimizer_lr": trainer.optimizer.lr,
        "history_stride": trainer.history.stride,
        "totals": trainer.totals,
        "diverged": trainer.diverged.to_dict() if trainer.diverged else None,
    }
    arrays = {"header": np.array(json.dumps(header, default=_plain)), "order": trainer.order}
    for i, (w, b) in enumerate(zip(trainer.net.weights, trainer.net.biases)):
        arrays[f"W{i}"], arrays[f"b{i}"] = w, b
    arrays |= {f"opt_{k}": v for k, v in trainer.optimizer.state().items()}
    arrays |= {f"hist_{k}": v for k, v in trainer.history.as_arrays().items()}
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)


def _plain(value):
    """numpy scalars (which TrainSettings and ChipConfig accept) as the Python numbers JSON holds."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot save a {type(value).__name__} in a run file")


def data_identity(trainer: Trainer) -> dict:
    """What the run trained on: {"name": "digits"} (a dataset rebuilt from the settings), or
    {"name": "custom", "title": ..., "sha256": ..., "shapes": {...}} for custom data."""
    raw = trainer.raw_data
    if not trainer.custom_data:
        return {"name": trainer.settings.dataset}
    return {"name": CUSTOM, "title": raw.name, "sha256": raw.fingerprint, "shapes": raw.shapes,
            "summary": raw.summary()}


def load_run(path, mnist_dir: str | None = None, data: Dataset | None = None) -> Trainer:
    """Rebuild a Trainer from `save_run`'s file; anything foreign or corrupt raises ValueError.

    A run trained on custom data needs that same data as `data` (checked by fingerprint);
    CustomDataNeeded (a ValueError) says so when it is missing or differs.
    """
    if data is not None and not isinstance(data, Dataset):
        raise ValueError(f"data must be a chipviz.data.Dataset, got {type(data).__name__}")
    path = Path(path)
    arrays = _read_arrays(path)
    try:
        header = json.loads(str(arrays.pop("header")))
    except (KeyError, json.JSONDecodeError):
        raise ValueError(f"{path}: not a ChipViz run file (no valid header)") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        found = header.get("format") if isinstance(header, dict) else type(header).__name__
        raise ValueError(f"{path}: not a ChipViz run file (format {found!r})")
    version = header.get("version")
    if type(version) is not int or version not in READABLE_VERSIONS:
        raise ValueError(f"{path}: run file version {version!r} is not supported (this ChipViz reads versions "
                         f"{', '.join(map(str, READABLE_VERSIONS))})")
    try:
        settings = dict(header["settings"])
        chip = dict(header["chip"])
        if version == 1 and "precision" in settings:  # the settings chose the forward GEMMs' precision
            chip["precision"] = settings.pop("precision")
        if mnist_dir:
            settings["mnist_dir"] = mnist_dir
        chip["energy"] = EnergyTable(**chip["energy"])
        settings, chip = TrainSettings(**settings), ChipConfig(**chip)
        data = _check_data(path, header.get("data"), settings, data)
        trainer = Trainer(settings, chip, data=data)
        _restore(trainer, header, arrays)
    except CustomDataNeeded:
        raise
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: run file is incomplete or corrupt ({exc!r})") from None
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return trainer


def _read_arrays(path: Path) -> dict:
    """The file's arrays, or one ValueError naming the file (never numpy's advice about pickles)."""
    what = "not a ChipViz run file"
    if not path.exists():
        raise ValueError(f"{path}: no such file")
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, not a ChipViz run file")
    try:
        with open(path, "rb"):  # is_zipfile() would hide a permission error as "not a zip file"
            pass
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: {what} (not an .npz archive; run files are what `chipviz train --save` "
                         f"writes)")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except ValueError as exc:
        if "pickle" in str(exc) or "Object arrays" in str(exc):
            raise ValueError(f"{path}: {what} (it holds Python objects, which ChipViz never loads)") from None
        raise ValueError(f"{path}: {what} (damaged or foreign .npz archive)") from None
    except (OSError, zipfile.BadZipFile, EOFError, zlib.error, TypeError, KeyError):
        raise ValueError(f"{path}: {what} (damaged or foreign .npz archive)") from None


def _check_data(path: Path, identity, settings: TrainSettings, data: Dataset | None) -> Dataset | None:
    """The data to rebuild the run with: None (rebuild from the settings) or `data`, checked."""
    if identity is None:  # version 1: no record; given data is checked by the arrays' shapes only
        return data
    if not isinstance(identity, dict) or not isinstance(identity.get("name"), str):
        raise ValueError("the record of the run's data is corrupt")
    if identity["name"] != CUSTOM:
        if data is not None:
            raise ValueError(f"this run was trained on ChipViz's {identity['name']!r} dataset, which it rebuilds "
                             f"itself; load it without data")
        return None
    described = identity.get("summary") or f"{identity.get('title')!r}"
    fingerprint = identity.get("sha256")
    if not isinstance(fingerprint, str):
        raise ValueError("the record of the run's custom data has no fingerprint")
    trained_on = f"{described}; SHA-256 {fingerprint[:12]}…"
    if data is None:
        raise CustomDataNeeded(path, trained_on)
    if data.fingerprint != fingerprint:
        raise CustomDataNeeded(path, trained_on, f"{data.summary()}; SHA-256 {data.fingerprint[:12]}…")
    return data


def _restore(trainer: Trainer, header: dict, arrays: dict) -> None:
    net = trainer.net
    for i in range(len(net.weights)):  # per layer with parameters (a ConvNet's pool and flatten have none)
        for name, target in ((f"W{i}", net.weights[i]), (f"b{i}", net.biases[i])):
            value = arrays[name]
            if value.shape != target.shape or not np.isfinite(value).all():
                raise ValueError(f"array {name} has shape {value.shape}, expected {target.shape} of finite numbers")
            target[...] = value
    order = arrays["order"]
    if sorted(order.tolist()) != list(range(len(trainer.data.x_train))):
        raise ValueError("the saved shuffling order does not match the dataset")
    trainer.order = order.astype(np.int64)
    trainer.step_count, trainer.epoch, trainer.position = header["step"], header["epoch"], header["position"]
    trainer.rng.bit_generator.state = header["rng"]
    opt_state = {k[4:]: v for k, v in arrays.items() if k.startswith("opt_")}
    params = net.params
    for name, value in opt_state.items():
        if name != "t" and (not name[1:].isdigit() or int(name[1:]) >= len(params)
                            or value.shape != params[int(name[1:])].shape):
            raise ValueError(f"optimizer state {name} does not match the network's parameters")
    trainer.optimizer.load_state(opt_state, net.params)
    if "optimizer_lr" in header:  # the learning rate in use, which may differ from the settings' first one
        lr = header["optimizer_lr"]
        checks.number("optimizer_lr", lr, 1e-6, 100.0)
        trainer.optimizer.lr = lr
    trainer.history.load({k[5:]: v for k, v in arrays.items() if k.startswith("hist_")}, header["history_stride"])
    trainer.totals = header["totals"]
    trainer.diverged = _divergence(header["diverged"])


_SENTENCE = re.compile(r"^Training diverged at step (?P<step>\d+): (?:the (?P<loss>loss) became (?P<value>\S+)|"
                       r"a (?P<kind>weight|gradient) became NaN or infinite) \(learning rate (?P<lr>\S+) is "
                       r"probably too high\)\. The weights of step (?P<kept>\d+) were kept\.$")


def _divergence(saved) -> Divergence | None:
    """A Divergence from its saved dict, or from a version 1 file's English sentence."""
    if saved is None:
        return None
    if isinstance(saved, dict):
        return Divergence.from_dict(saved)
    match = _SENTENCE.match(saved) if isinstance(saved, str) else None
    if not match:
        raise ValueError(f"the saved divergence {saved!r} is not understood")
    what = "loss" if match["loss"] else match["kind"]
    return Divergence(step=int(match["step"]), what=what, value=float(match["value"]) if match["loss"] else None,
                      lr=float(match["lr"]), kept=int(match["kept"]))
