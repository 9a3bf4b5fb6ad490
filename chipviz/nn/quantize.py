"""int8 forward passes, as on TPU v1: symmetric per-tensor quantisation.

x ≈ s·q with q = clip(round(x / s), −127, 127) and s = max|x| / 127. The chip multiplies the
int8 q's with int32 accumulation, exactly; the product is scaled back by s_x·s_w. Training
keeps fp32 master weights and backpropagates in fp32 (a straight-through estimator), so
int8 changes what the forward pass computes, and thus accuracy, but not the update rule.
"""
from __future__ import annotations

import numpy as np


def quantize(x: np.ndarray) -> tuple[np.ndarray, float]:
    x = np.asarray(x, np.float64)  # float64: a tiny float32 peak's scale would underflow
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    scale = peak / 127 if peak > 0 else 1.0
    return np.clip(np.rint(x / scale), -127, 127).astype(np.int8), scale
