"""One module per dataflow: how its operands move through the array, simulated by a numba kernel.

What each dataflow puts where (dimensions on rows, columns and in time, the stationary
operand, the edges) is stated once in chipviz/chip/dataflow_table.py; the kernels here move
the values accordingly.
"""
from . import input_stationary, output_stationary, weight_stationary

MODULES = {"ws": weight_stationary, "os": output_stationary, "is": input_stationary}
