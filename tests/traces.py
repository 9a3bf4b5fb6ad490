"""A small traced GEMM for the tests of the PE array and of its payload (one helper, two test files)."""
import numpy as np

from chipviz.chip import ChipConfig, gemm

DATAFLOWS = ("ws", "is", "os")


def run(dataflow, rows=4, cols=4, m=6, k=9, n=7, window=(0, 10**9), seed=0):
    """(A, B, the cycle trace, cycles) of a random small-integer GEMM on a rows×cols array."""
    rng = np.random.default_rng(seed)
    a = rng.integers(-4, 5, (m, k)).astype(np.float32)
    b = rng.integers(-4, 5, (k, n)).astype(np.float32)
    res = gemm(a, b, ChipConfig(rows=rows, cols=cols, dataflow=dataflow), engine="cycle", trace_window=window)
    return a, b, res.trace, res.stats.cycles
