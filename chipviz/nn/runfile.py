"""Saving and resuming a training run: one .npz of plain arrays plus a JSON header, no pickle.

Everything needed to continue bit for bit is stored: settings, chip, weights, optimizer
state, the shuffling generator's state and position in the epoch, totals and histories.
"""
from __future__ import annotations

import json
import zipfile
import zlib
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..chip import ChipConfig, EnergyTable
from .trainer import Trainer, TrainSettings

FORMAT = "chipviz-run"
VERSION = 1


def save_run(trainer: Trainer, path) -> None:
    header = {
        "format": FORMAT, "version": VERSION,
        "settings": trainer.settings.to_dict(),
        "chip": asdict(trainer.chip),
        "step": trainer.step_count, "epoch": trainer.epoch, "position": trainer.position,
        "rng": trainer.rng.bit_generator.state,
        "optimizer_t": trainer.optimizer.t,
        "history_stride": trainer.history.stride,
        "totals": trainer.totals,
        "diverged": trainer.diverged,
    }
    arrays = {"header": np.array(json.dumps(header)), "order": trainer.order}
    for i, (w, b) in enumerate(zip(trainer.net.weights, trainer.net.biases)):
        arrays[f"W{i}"], arrays[f"b{i}"] = w, b
    arrays |= {f"opt_{k}": v for k, v in trainer.optimizer.state().items()}
    arrays |= {f"hist_{k}": v for k, v in trainer.history.as_arrays().items()}
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)


def load_run(path, mnist_dir: str | None = None) -> Trainer:
    """Rebuild a Trainer from `save_run`'s file; anything foreign or corrupt raises ValueError."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: not a ChipViz run file ({exc})") from None
    try:
        header = json.loads(str(arrays.pop("header")))
    except (KeyError, json.JSONDecodeError):
        raise ValueError(f"{path}: not a ChipViz run file (no valid header)") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        found = header.get("format") if isinstance(header, dict) else type(header).__name__
        raise ValueError(f"{path}: not a ChipViz run file (format {found!r})")
    if header.get("version") != VERSION:
        raise ValueError(f"{path}: run file version {header.get('version')!r} is not supported (expected {VERSION})")
    try:
        settings = dict(header["settings"])
        if mnist_dir:
            settings["mnist_dir"] = mnist_dir
        chip = dict(header["chip"])
        chip["energy"] = EnergyTable(**chip["energy"])
        trainer = Trainer(TrainSettings(**settings), ChipConfig(**chip))
        _restore(trainer, header, arrays)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path}: run file is incomplete or corrupt ({exc!r})") from None
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return trainer


def _restore(trainer: Trainer, header: dict, arrays: dict) -> None:
    net = trainer.net
    for i in range(net.n_layers):
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
    trainer.history.load({k[5:]: v for k, v in arrays.items() if k.startswith("hist_")}, header["history_stride"])
    trainer.totals = header["totals"]
    trainer.diverged = header["diverged"]
