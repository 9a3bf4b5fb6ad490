"""One module per dataflow: how its operands enter the array and how it is simulated."""
from . import input_stationary, output_stationary, weight_stationary

MODULES = {"ws": weight_stationary, "os": output_stationary, "is": input_stationary}
