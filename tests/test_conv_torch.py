"""Conv2D, MaxPool and AvgPool against PyTorch: the forward output and the gradients with respect to the
input, the weights and the bias. Optional: skipped when torch is not installed (`pip install -e .[torch]`).

ChipViz stores images channels last (batch, H, W, C) and a conv's weights as a (kh·kw·C) × F matrix in
the window order kernel row, kernel column, channel; PyTorch uses (batch, C, H, W) and (F, C, kh, kw).
"same" padding is TensorFlow's rule, written out here independently of chipviz: the output has ⌈I/S⌉
pixels per side and the (O − 1)·S + K − I zeros it needs go half before (rounded down), the rest after.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from chipviz.chip import ChipConfig  # noqa: E402
from chipviz.nn.conv import AvgPool, Conv2D, MaxPool, parse_layer  # noqa: E402
from chipviz.nn.on_chip import ChipRunner  # noqa: E402

CHIP = ChipConfig(rows=4, cols=4)


def nchw(x: np.ndarray):
    return torch.tensor(np.asarray(x, np.float64)).permute(0, 3, 1, 2).contiguous().requires_grad_(True)


def nhwc(t) -> np.ndarray:
    return t.detach().permute(0, 2, 3, 1).numpy()


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


@pytest.mark.parametrize("engine", ["analytic", "cycle"])
@pytest.mark.parametrize("token, in_shape", [
    ("conv3x3x8", (8, 8, 1)),  # the digits CNN's layer
    ("conv3x3x4valid", (7, 6, 3)),
    ("conv2x3x5s2same", (9, 8, 2)),  # an even kernel: the extra zero goes after
    ("conv5x5x3s3same", (10, 11, 2)),
    ("conv3x2x4s2valid", (9, 7, 3)),  # the last rows and columns fit no window and are dropped
    ("conv1x1x6", (4, 5, 4)),
])
def test_conv2d_matches_torch(token, in_shape, engine):
    rng = np.random.default_rng(7)
    spec = parse_layer(token)
    layer = Conv2D(in_shape, spec, "linear", rng, "he")
    layer.bias[...] = rng.standard_normal(layer.bias.shape).astype(np.float32)
    x = rng.standard_normal((3, *in_shape)).astype(np.float32)
    runner = ChipRunner(CHIP, engine)
    out, cache = layer.forward(x, runner, 1, "forward")
    upstream = rng.standard_normal(out.shape).astype(np.float32)  # the loss is Σ out · upstream
    dw, db, dx = layer.backward(cache, upstream, runner, 1, True)

    h, w, c = in_shape
    xt = nchw(x)
    wt = torch.tensor(layer.weight.astype(np.float64).reshape(spec.kernel_h, spec.kernel_w, c, spec.filters)
                      .transpose(3, 2, 0, 1)).requires_grad_(True)
    bt = torch.tensor(layer.bias.astype(np.float64)).requires_grad_(True)
    padded = xt
    if spec.padding == "same":
        top, bottom = same_padding(h, spec.kernel_h, spec.stride)
        left, right = same_padding(w, spec.kernel_w, spec.stride)
        padded = F.pad(xt, (left, right, top, bottom))
    ref = F.conv2d(padded, wt, bt, stride=spec.stride)
    (ref * torch.tensor(upstream.astype(np.float64)).permute(0, 3, 1, 2)).sum().backward()

    assert out.shape == nhwc(ref).shape
    np.testing.assert_allclose(out, nhwc(ref), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, nhwc(xt.grad), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dw, wt.grad.numpy().transpose(2, 3, 1, 0).reshape(dw.shape), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(db, bt.grad.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("size, in_shape", [(2, (8, 8, 8)), (2, (5, 7, 3)), (3, (9, 10, 2)), (1, (3, 4, 2))])
def test_pool_matches_torch(kind, size, in_shape):
    rng = np.random.default_rng(11)
    layer = (MaxPool if kind == "max" else AvgPool)(in_shape, size)
    x = rng.standard_normal((4, *in_shape)).astype(np.float32)  # continuous values: no ties in a window
    runner = ChipRunner(CHIP)
    out, cache = layer.forward(x, runner, 1, "forward")
    upstream = rng.standard_normal(out.shape).astype(np.float32)
    _, _, dx = layer.backward(cache, upstream, runner, 1, True)

    xt = nchw(x)
    pool = F.max_pool2d if kind == "max" else F.avg_pool2d
    ref = pool(xt, size, stride=size)  # floor mode: rows and columns past the last whole window are dropped
    (ref * torch.tensor(upstream.astype(np.float64)).permute(0, 3, 1, 2)).sum().backward()
    np.testing.assert_allclose(out, nhwc(ref), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(dx, nhwc(xt.grad), rtol=1e-6, atol=1e-6)
