"""aten.convolution against torch CPU eager: 1-D/2-D/3-D, stride, padding, dilation, groups, depthwise,
transposed with output_padding, bias or none, float32/float16/bfloat16, strided and channels-last inputs."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mps_shim import MpsShimError, Tensor, aten  # noqa: E402
from torch_convert import to_shim, to_torch_float as to_torch  # noqa: E402

F = torch.nn.functional
TOL = {torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 8e-2}


def conv(x, w, b, stride, padding, dilation, transposed, output_padding, groups):
    return aten.convolution(to_shim(x), to_shim(w), None if b is None else to_shim(b), stride, padding, dilation,
                            int(transposed), output_padding, groups)


def check(x, w, b=None, stride=(1,), padding=(0,), dilation=(1,), transposed=False, output_padding=(0,), groups=1):
    got = conv(x, w, b, stride, padding, dilation, transposed, output_padding, groups)
    ref = torch.ops.aten.convolution(x.float(), w.float(), None if b is None else b.float(), list(stride),
                                     list(padding), list(dilation), transposed, list(output_padding), groups)
    assert got.shape == tuple(ref.shape)
    tol = TOL[x.dtype]
    np.testing.assert_allclose(to_torch(got).numpy(), ref.to(x.dtype).float().numpy(), rtol=tol, atol=tol)
    return got


CASES = [
    # name, input shape, weight shape, kwargs
    ("2d", (2, 4, 9, 8), (6, 4, 3, 3), dict(padding=(1,))),
    ("2d_stride_dil", (1, 3, 11, 10), (5, 3, 3, 2), dict(stride=(2, 3), padding=(2, 1), dilation=(2, 1))),
    ("2d_groups", (2, 6, 7, 7), (9, 2, 3, 3), dict(groups=3, padding=(1,))),
    ("2d_depthwise", (2, 8, 9, 9), (8, 1, 3, 3), dict(groups=8, padding=(1,))),
    ("2d_depthwise_mult_stride", (1, 4, 10, 9), (8, 1, 5, 3), dict(groups=4, stride=(2,), padding=(2, 1), dilation=(1, 2))),
    ("2d_pointwise", (2, 8, 5, 5), (4, 8, 1, 1), dict()),
    ("1d", (2, 3, 17), (4, 3, 5), dict(stride=(2,), padding=(2,))),
    ("3d", (1, 2, 5, 6, 7), (3, 2, 3, 2, 3), dict(padding=(1, 0, 1), stride=(1, 2, 1))),
    ("t2d", (2, 4, 5, 6), (4, 3, 3, 3), dict(transposed=True, stride=(2,), padding=(1,), output_padding=(1,))),
    ("t2d_groups_dil", (1, 4, 4, 5), (4, 3, 3, 2), dict(transposed=True, groups=2, dilation=(2, 1), padding=(1, 0))),
    ("t1d", (2, 3, 7), (3, 2, 4), dict(transposed=True, stride=(3,), output_padding=(2,))),
    ("t3d", (1, 2, 3, 4, 3), (2, 3, 2, 3, 2), dict(transposed=True, stride=(2, 1, 2), padding=(0, 1, 0))),
    # stride 1 with >= 32 channels per group over >= 2048 positions: one GEMM per kernel tap
    ("2d_taps_groups_dil", (2, 64, 48, 45), (48, 32, 3, 2), dict(groups=2, padding=(2, 1), dilation=(2, 1))),
    ("1d_taps", (1, 32, 2500), (8, 32, 5), dict(padding=(3,))),
    ("3d_taps", (1, 32, 5, 20, 21), (4, 32, 3, 3, 3), dict(padding=(1, 0, 1))),
]


@pytest.mark.parametrize("name,xs,ws,kw", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("with_bias", [False, True])
def test_float32_against_torch(name, xs, ws, kw, with_bias):
    torch.manual_seed(0)
    x, w = torch.randn(xs), torch.randn(ws)
    c_out = ws[1] * kw.get("groups", 1) if kw.get("transposed") else ws[0]
    check(x, w, torch.randn(c_out) if with_bias else None, **kw)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name,xs,ws,kw", [CASES[0], CASES[3], CASES[8]], ids=["2d", "depthwise", "t2d"])
def test_half_types(dtype, name, xs, ws, kw):
    torch.manual_seed(1)
    x, w = torch.randn(xs).to(dtype), torch.randn(ws).to(dtype)
    c_out = ws[1] * kw.get("groups", 1) if kw.get("transposed") else ws[0]
    got = check(x, w, torch.randn(c_out).to(dtype), **kw)
    assert got.dtype == ("bfloat16" if dtype == torch.bfloat16 else np.float16)


def test_strided_offset_input_and_channels_last():
    torch.manual_seed(2)
    big = torch.randn(2, 10, 12, 11)
    x = big[:, 1:5, ::2, 1:]  # offset, non-contiguous
    check(x, torch.randn(6, 4, 3, 3), torch.randn(6), padding=(1,))
    xcl = torch.randn(2, 4, 7, 6).to(memory_format=torch.channels_last)
    got = check(xcl, torch.randn(5, 4, 3, 3), padding=(1,))
    ref = torch.ops.aten.convolution(xcl, torch.randn(5, 4, 3, 3), None, [1], [1], [1], False, [0], 1)
    assert got.strides == ref.stride()  # channels-last in, channels-last out, as torch CPU


def test_contiguous_output_and_edge_sizes():
    torch.manual_seed(3)
    got = check(torch.randn(1, 1, 1, 1), torch.randn(2, 1, 1, 1))
    assert got.strides == (2, 1, 1, 1)
    empty = conv(torch.randn(0, 3, 5, 5), torch.randn(4, 3, 3, 3), None, [1], [1], [1], False, [0], 1)
    assert empty.shape == (0, 4, 5, 5)
    got = check(torch.randn(2, 3, 3, 3), torch.randn(4, 3, 3, 3))  # kernel as large as the input
    assert got.shape == (2, 4, 1, 1)


@pytest.mark.parametrize("args,message", [
    (((4, 8, 8), (6, 4, 3, 3)), "expected 4-dimensional input"),
    (((2, 4, 8, 8), (6, 4, 3, 3), dict(stride=[1, 1, 1])), "expected stride to be a single integer"),
    (((2, 12, 8, 8), (7, 4, 3, 3), dict(groups=3)), "expected weight to be divisible by 3"),
    (((2, 4, 8, 8), (6, 2, 3, 3), dict(groups=3)), "to have 6 channels, but got 4"),
    (((2, 4, 8, 8), (6, 4, 3, 3), dict(bias=5)), "expected bias to be 1-dimensional with 6 elements"),
    (((2, 4, 8, 8), (6, 4, 9, 9)), "Kernel size can't be greater than actual input size"),
    (((2, 4, 8, 8), (6, 4, 3, 3), dict(stride=[0])), "non-positive stride"),
    (((2, 4, 8, 8), (6, 4, 3, 3), dict(padding=[-1])), "negative padding"),
    (((2, 4, 8, 8), (6, 4, 3, 3), dict(groups=0)), "non-positive groups"),
    (((2, 4, 8, 8), (4, 3, 3, 3), dict(transposed=1, stride=[2], output_padding=[2])), "output padding must be smaller"),
    (((2, 4, 8, 8), (3, 3), {}), "expected weight to have 3, 4 or 5 dimensions"),
])
def test_errors(args, message):
    xs, ws, kw = (args + ({},))[:3]
    x, w = np.zeros(xs, np.float32), np.zeros(ws, np.float32)
    bias = np.zeros(kw["bias"], np.float32) if "bias" in kw else None
    with pytest.raises(MpsShimError, match=message):
        aten.convolution(x, w, bias, kw.get("stride", [1]), kw.get("padding", [0]), [1], kw.get("transposed", 0),
                         kw.get("output_padding", [0]), kw.get("groups", 1))


def test_dtype_errors():
    with pytest.raises(MpsShimError, match="input and weight must have one dtype"):
        aten.convolution(np.zeros((1, 2, 4, 4), np.float32), np.zeros((2, 2, 3, 3), np.float16), None, [1], [0], [1],
                         0, [0], 1)
    with pytest.raises(MpsShimError, match="input must be float32, float16 or bfloat16"):
        aten.convolution(np.zeros((1, 2, 4, 4), np.int32), np.zeros((2, 2, 3, 3), np.int32), None, [1], [0], [1],
                         0, [0], 1)
