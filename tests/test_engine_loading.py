"""The cycle engine's kernels are loaded once per dataflow and precision: a served page draws its
first screen without waiting for them, and asks `engine_loaded` whether a GEMM can replay at once."""
import numpy as np

from chipviz.chip import ChipConfig, engine_loaded, gemm, load_engine


def test_load_engine_loads_the_kernel_of_that_dataflow_and_precision():
    config = ChipConfig(rows=3, cols=5, dataflow="os", precision="int8")
    load_engine(config)
    assert engine_loaded(config) and engine_loaded(ChipConfig(rows=9, cols=2, dataflow="os", precision="int8"))
    load_engine(config)  # loaded: returns at once
    a = np.arange(12, dtype=np.int8).reshape(4, 3)
    assert (gemm(a, a.T.copy(), config, engine="cycle").c == a.astype(np.int32) @ a.T.astype(np.int32)).all()


def test_a_cycle_accurate_run_marks_its_kernel_loaded():
    config = ChipConfig(rows=2, cols=2, dataflow="is")
    a = np.ones((2, 2), np.float32)
    gemm(a, a, config, engine="cycle")
    assert engine_loaded(config)
