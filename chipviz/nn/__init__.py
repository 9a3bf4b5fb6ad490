"""Networks that train on the chip: every matrix multiply of a training step runs on chipviz.chip."""
