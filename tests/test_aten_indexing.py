"""Advanced indexing (index.Tensor, index_put), nonzero, nonzero_static and masked_select against torch CPU."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mps_shim import MpsShimError, Tensor, aten  # noqa: E402
from torch_convert import to_shim as _shim, to_torch as _torch  # noqa: E402

def _idx(indices, strided=False):
    return [None if i is None else _shim(i, strided) for i in indices]


L = lambda *v: torch.tensor(v, dtype=torch.int64)  # noqa: E731

CASES = [  # (self shape, indices)
    ((5, 4, 3), [L(0, 4, -1, 2)]),
    ((5, 4, 3), [None, L(3, 0, -4)]),
    ((5, 4, 3), [L(0, 1), L(2, 3)]),                                 # adjacent, one result dimension
    ((5, 4, 3), [L(0, 1, 2).reshape(3, 1), L(2, 3)]),                # broadcast to [3, 2]
    ((5, 4, 3), [L(0, 1), None, L(2, 0)]),                           # not adjacent: result dims first
    ((5, 4, 3), [None, L(1, 1).to(torch.int32), L(0, 2).to(torch.int32)]),
    ((5, 4, 3), [torch.tensor([True, False, True, False, True])]),
    ((5, 4, 3), [None, torch.rand(4, 3, generator=torch.Generator().manual_seed(0)) > 0.5]),
    ((5, 4, 3), [L()]),                                              # empty index
    ((5, 4, 3), [None, None, L(2)]),
    ((6,), [L(5, 5, 0, -6)]),
]


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("strided", [False, True])
def test_index_gather(case, strided):
    shape, indices = CASES[case]
    x = torch.randn(shape)
    expect = torch.ops.aten.index.Tensor(x, indices)
    got = _torch(aten.index_Tensor(_shim(x, strided), _idx(indices, strided)))
    assert torch.equal(got, expect)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.int64, torch.int8, torch.bool, torch.float64])
def test_index_dtypes(dtype):
    x = (torch.randn(5, 4) * 4).to(dtype)
    indices = [L(4, 0, 0), None]
    assert torch.equal(_torch(aten.index_Tensor(_shim(x), _idx(indices))), torch.ops.aten.index.Tensor(x, indices))


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("accumulate", [False, True])
def test_index_put(case, accumulate):
    shape, indices = CASES[case]
    x = torch.randn(shape)
    result_shape = torch.ops.aten.index.Tensor(x, indices).shape
    if not accumulate and any(i is not None and i.dtype != torch.bool and len(set(i.tolist() if i.dim() < 2 else [])) != i.numel() for i in indices):
        pytest.skip("duplicate indices without accumulate: which write wins is unspecified")
    values = torch.randn(result_shape)
    expect = torch.ops.aten.index_put(x, indices, values, accumulate)
    self_shim = _shim(x, True)
    got = _torch(aten.index_put(self_shim, _idx(indices), _shim(values, True), int(accumulate)))
    torch.testing.assert_close(got, expect)
    assert torch.equal(_torch(self_shim), x)  # functional: self is untouched


def test_index_put_duplicates_accumulate_and_broadcast():
    x = torch.zeros(4, 3)
    indices = [L(0, 0, 3, 0)]
    values = torch.tensor([1.0, 2.0, 3.0])  # broadcast over the 4 rows
    expect = torch.ops.aten.index_put(x, indices, values, True)
    got = _torch(aten.index_put(_shim(x), _idx(indices), _shim(values), 1))
    assert torch.equal(got, expect)
    scalar = torch.tensor(5.0)
    assert torch.equal(_torch(aten.index_put(_shim(x), _idx(indices), _shim(scalar), 0)),
                       torch.ops.aten.index_put(x, indices, scalar, False))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.int32, torch.uint8, torch.bool])
def test_index_put_dtypes(dtype):
    x = (torch.randn(6, 2) * 3).to(dtype)
    indices = [L(1, 1, 5, 2)]
    values = (torch.randn(4, 2) * 3).to(dtype)
    for acc in (True, False):
        idx = indices if acc else [L(1, 4, 5, 2)]
        expect = torch.ops.aten.index_put(x, idx, values, acc)
        assert torch.equal(_torch(aten.index_put(_shim(x), _idx(idx), _shim(values), int(acc))), expect)


def test_large_parallel():
    x = torch.randn(2000, 64)
    idx = torch.randint(-2000, 2000, (5000,))
    assert torch.equal(_torch(aten.index_Tensor(_shim(x), [_shim(idx)])), x[idx])
    values = torch.randn(5000, 64)
    expect = torch.ops.aten.index_put(x, [idx], values, True)
    torch.testing.assert_close(_torch(aten.index_put(_shim(x), [_shim(idx)], _shim(values), 1)), expect)


def test_index_errors():
    x = np.zeros((3, 4), np.float32)
    with pytest.raises(MpsShimError, match=r"index: index 3 is out of bounds for dimension 0 with size 3"):
        aten.index_Tensor(x, [np.array([0, 3])])
    with pytest.raises(MpsShimError, match=r"index: index -5 is out of bounds for dimension 1 with size 4"):
        aten.index_Tensor(x, [None, np.array([-5])])
    with pytest.raises(MpsShimError, match=r"index_put: index 7 is out of bounds for dimension 1 with size 4"):
        aten.index_put(x, [None, np.array([7])], np.zeros(1, np.float32), 0)
    with pytest.raises(MpsShimError, match=r"index: too many indices for tensor of dimension 2 \(got 3\)"):
        aten.index_Tensor(x, [None, None, np.array([0])])
    with pytest.raises(MpsShimError, match=r"shape mismatch: indexing tensors could not be broadcast together with shapes \[2\], \[3\]"):
        aten.index_Tensor(x, [np.array([0, 1]), np.array([0, 1, 2])])
    with pytest.raises(MpsShimError, match="tensors used as indices must be long, int, byte or bool tensors, got float32"):
        aten.index_Tensor(x, [np.array([0.0], np.float32)])
    with pytest.raises(MpsShimError, match=r"the shape of the mask \[2\] at index 0 does not match the shape of the indexed tensor \[3, 4\] at index 0"):
        aten.index_Tensor(x, [np.array([True, False])])
    with pytest.raises(MpsShimError, match="index_put: index put requires the source and destination dtypes match, got float32 for the destination and float64 for the source"):
        aten.index_put(x, [np.array([0])], np.zeros(4), 0)
    with pytest.raises(MpsShimError, match=r"index_put: shape mismatch: value tensor of shape \[3\] cannot be broadcast to indexing result of shape \[1, 4\]"):
        aten.index_put(x, [np.array([0])], np.zeros(3, np.float32), 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int16, torch.bool, torch.float16])
def test_nonzero(dtype):
    x = (torch.randint(0, 3, (5, 7, 3), generator=torch.Generator().manual_seed(2)) - 1).to(dtype)
    if dtype.is_floating_point:
        x[0, 0, 0] = float("nan")
        x[1, 1, 1] = -0.0
    for strided in (False, True):
        got = _torch(aten.nonzero(_shim(x, strided)))
        assert torch.equal(got, torch.nonzero(x))
        for size in (0, 3, 200):
            expect = torch.nonzero_static(x, size=size, fill_value=-7)
            assert torch.equal(_torch(aten.nonzero_static(_shim(x, strided), size, -7)), expect)


def test_nonzero_edges():
    assert torch.equal(_torch(aten.nonzero(_shim(torch.tensor(3.0)))), torch.nonzero(torch.tensor(3.0)))
    assert torch.equal(_torch(aten.nonzero(_shim(torch.tensor(0)))), torch.nonzero(torch.tensor(0)))
    assert _torch(aten.nonzero(_shim(torch.zeros(0, 4)))).shape == (0, 2)
    assert torch.equal(_torch(aten.nonzero(_shim(torch.zeros(3, 4)))), torch.zeros(0, 2, dtype=torch.int64))
    with pytest.raises(MpsShimError, match="nonzero_static: 'size' must be a non-negative integer, got -1"):
        aten.nonzero_static(np.zeros(3), -1, 0)


def test_masked_select():
    x = torch.randn(4, 5)
    mask = torch.rand(5) > 0.4
    assert torch.equal(_torch(aten.masked_select(_shim(x, True), _shim(mask))), torch.masked_select(x, mask))
    mask2 = torch.rand(4, 1) > 0.5
    assert torch.equal(_torch(aten.masked_select(_shim(x), _shim(mask2, True))), torch.masked_select(x, mask2))
    s = torch.tensor(2.0)
    assert torch.equal(_torch(aten.masked_select(_shim(s), _shim(torch.tensor(True)))), torch.masked_select(s, torch.tensor(True)))
    with pytest.raises(MpsShimError, match="masked_select: expected mask to be a bool tensor, got int64"):
        aten.masked_select(np.zeros(3), np.zeros(3, np.int64))
    with pytest.raises(MpsShimError, match=r"masked_select: the size of mask \[2\] must match the size of self \[3\]"):
        aten.masked_select(np.zeros(3), np.zeros(2, np.bool_))


def test_index_put_keeps_dense_layout():
    # ATen's functional index_put starts from self.clone(memory_format=preserve)
    x = torch.randn(3, 4).t()
    s = _shim(x.t().contiguous()).view(x.shape, x.stride())
    got = aten.index_put(s, [_shim(L(1))], _shim(torch.ones(3)), 0)
    expect = torch.ops.aten.index_put(x, [L(1)], torch.ones(3), False)
    assert got.strides == expect.stride()
    assert torch.equal(_torch(got), expect)
