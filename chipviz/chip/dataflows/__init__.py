"""One module per dataflow: how its operands move through the array, simulated by a numba kernel.

What each dataflow puts where (dimensions on rows, columns and in time, the stationary
operand, the edges) is stated once in chipviz/chip/dataflow_table.py; the kernels here move
the values accordingly.

MODULES maps a dataflow to its module, imported on first use: numba and the kernels load only
when a cycle-accurate run needs them (the analytic engine and the command line's start-up never
pay for them).
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping

_NAMES = {"ws": "weight_stationary", "os": "output_stationary", "is": "input_stationary"}


class _LazyModules(Mapping):
    def __getitem__(self, dataflow):
        return importlib.import_module(f".{_NAMES[dataflow]}", __name__)

    def __iter__(self):
        return iter(_NAMES)

    def __len__(self):
        return len(_NAMES)


MODULES = _LazyModules()
