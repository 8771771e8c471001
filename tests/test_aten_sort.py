"""sort, sort_stable and topk (aoti_torch_mps_sort/_sort_stable/_topk) against torch CPU eager."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mps_shim import MpsShimError, Tensor, aten  # noqa: E402
from torch_convert import to_shim as _shim, to_torch as _torch  # noqa: E402

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int32, torch.int16,
          torch.int8, torch.uint8, torch.bool]


def _sample(shape, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    if dtype == torch.bool:
        return torch.rand(shape, generator=g) > 0.5
    # few distinct values: many ties
    x = torch.randint(-4 if dtype != torch.uint8 else 0, 5, shape, generator=g).to(dtype)
    if dtype.is_floating_point:
        x = x + torch.randint(0, 2, shape, generator=g).to(dtype) * 0.5
        x.view(-1)[::7] = float("nan")
        x.view(-1)[3::11] = float("inf")
        x.view(-1)[5::13] = -float("inf")
    return x


def _same(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    if a.dtype.is_floating_point:
        assert torch.equal(torch.isnan(a), torch.isnan(b))
        assert torch.equal(torch.nan_to_num(a.double(), 7.0), torch.nan_to_num(b.double(), 7.0))
    else:
        assert torch.equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("descending", [False, True])
def test_sort_stable_matches_torch(dtype, descending):
    x = _sample((4, 33, 5), dtype)
    for dim in (1, -1, 0):
        for strided in (False, True):
            ev, ei = torch.sort(x, dim=dim, descending=descending, stable=True)
            v, i = aten.sort_stable(_shim(x, strided), 1, dim, int(descending))
            _same(_torch(v), ev)
            _same(_torch(i), ei)
            v, i = aten.sort(_shim(x, strided), dim, int(descending))  # unstable form: stable here too
            _same(_torch(v), ev)
            _same(_torch(i), ei)
    v, i = aten.sort_stable(_shim(x), None, 1, int(descending))
    _same(_torch(i), torch.sort(x, dim=1, descending=descending, stable=True)[1])


@pytest.mark.parametrize("dtype", DTYPES[:-1])
@pytest.mark.parametrize("largest", [True, False])
def test_topk(dtype, largest):
    x = _sample((6, 40), dtype, seed=1)
    for k in (0, 1, 5, 40):
        for dim in (1, -1):
            # torch's tie order is its own; compare values, and that indices point at them
            ev, _ = torch.topk(x, k, dim=dim, largest=largest, sorted=True)
            v, i = aten.topk(_shim(x, True), k, dim, int(largest), 1)
            v, i = _torch(v), _torch(i)
            _same(v, ev)
            assert i.dtype == torch.int64
            _same(torch.gather(x, 1, i), ev)
            # our ties come in index order: the same as a stable sort's prefix
            si = torch.sort(x, dim=1, descending=largest, stable=True)[1][:, :k]
            assert torch.equal(i, si)
    ev, _ = torch.topk(x, 3, dim=0, largest=largest)
    _same(_torch(aten.topk(_shim(x), 3, 0, int(largest), 0)[0]), ev)


def test_nan_order():
    x = torch.tensor([3.0, float("nan"), -1.0, float("nan"), float("inf"), -0.0, 0.0])
    v, i = aten.sort(_shim(x), 0, 0)
    assert _torch(i).tolist() == [2, 5, 6, 0, 4, 1, 3]
    v, i = aten.sort(_shim(x), 0, 1)
    assert _torch(i).tolist() == [1, 3, 4, 0, 5, 6, 2]
    v, i = aten.topk(_shim(x), 2, 0, 1, 1)
    assert _torch(i).tolist() == [1, 3]


def test_edge_shapes():
    v, i = aten.sort(_shim(torch.tensor(2.5)), 0, 0)
    assert v.shape == () and _torch(i).item() == 0 and _torch(v).item() == 2.5
    v, i = aten.topk(_shim(torch.tensor(2.5)), 1, -1, 1, 1)
    assert v.shape == () and _torch(i).item() == 0
    v, i = aten.sort(_shim(torch.zeros(3, 0)), 1, 0)
    assert v.shape == (3, 0) and i.shape == (3, 0)
    v, i = aten.topk(_shim(torch.zeros(0, 4)), 2, 1, 1, 1)
    assert v.shape == (0, 2)


def test_large_parallel():
    x = torch.randn(300, 1000)
    ev, ei = torch.sort(x, dim=1, stable=True)
    v, i = aten.sort(_shim(x), 1, 0)
    _same(_torch(v), ev)
    _same(_torch(i), ei)
    ev, ei = torch.topk(x, 10, dim=0)
    v, i = aten.topk(_shim(x), 10, 0, 1, 1)
    _same(_torch(v), ev)
    _same(_torch(i), ei)


def test_errors():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(MpsShimError, match=r"topk: selected index k out of range \(k = 4, dimension 1 has size 3\)"):
        aten.topk(x, 4, 1, 1, 1)
    with pytest.raises(MpsShimError, match=r"topk: selected index k out of range \(k = -1"):
        aten.topk(x, -1, 1, 1, 1)
    with pytest.raises(MpsShimError, match=r"sort: dimension out of range \(expected to be in range of \[-2, 1\], but got -3\)"):
        aten.sort(x, -3, 0)
    with pytest.raises(MpsShimError, match="topk: topk does not support bool dtypes"):
        aten.topk(np.zeros(3, np.bool_), 1, 0, 1, 1)


def test_sort_keeps_dense_layout():
    # ATen's sort meta keeps self's strides when self is dense (channels-last stays channels-last)
    x = torch.randn(2, 3, 4, 5).contiguous(memory_format=torch.channels_last)
    v, i = aten.sort(_shim(x.permute(0, 2, 3, 1).contiguous()).view(x.shape, x.stride()), 1, 0)
    ev, ei = torch.sort(x, dim=1, stable=True)
    assert v.strides == ev.stride() and i.strides == ei.stride()
    _same(_torch(v), ev)
    _same(_torch(i), ei)
    v, _ = aten.topk(_shim(x.permute(0, 2, 3, 1).contiguous()).view(x.shape, x.stride()), 2, 1, 1, 1)
    assert v.strides == torch.topk(x, 2, 1)[0].stride()
