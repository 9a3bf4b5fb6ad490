"""The Panel app: views of the chip, the network and the training run (imports panel)."""
