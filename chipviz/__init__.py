"""ChipViz: watch a neural network train on a simulated systolic-array AI chip.

Layers, imports pointing down only: `chipviz.chip` (the array, dataflows, memory, energy)
knows nothing of networks; `chipviz.nn` runs a network's matrix multiplies on the chip;
`chipviz.data` provides datasets; `chipviz.app` (Panel) and `lessons/` sit on top.
"""
__version__ = "0.1.0"
