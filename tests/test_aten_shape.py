"""searchsorted, bucketize, cat, fill_, repeat_interleave and pad against torch CPU eager."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mps_shim import MpsShimError, Tensor, aten  # noqa: E402
from torch_convert import to_shim as _shim, to_torch as _torch  # noqa: E402

# ---- searchsorted / bucketize ----

@pytest.mark.parametrize("seq_dtype,val_dtype", [(torch.float32, torch.float32), (torch.int64, torch.int64),
                                                 (torch.float16, torch.float16), (torch.bfloat16, torch.bfloat16),
                                                 (torch.int32, torch.float32), (torch.float64, torch.int64)])
def test_searchsorted_1d(seq_dtype, val_dtype):
    seq = torch.tensor([-3, -1, -1, 0, 2, 2, 2, 5, 9]).to(seq_dtype)
    values = torch.tensor([[-4, -3, -1, 0.5, 2, 3], [9, 10, -1, 2, 5, 0]]).to(val_dtype)
    if val_dtype.is_floating_point:
        values[0, 0] = float("nan")
    for right in (False, True):
        for out_int32 in (False, True):
            expect = torch.searchsorted(seq, values, right=right, out_int32=out_int32)
            got = _torch(aten.searchsorted_Tensor(_shim(seq, True), _shim(values, True), int(out_int32), int(right),
                                                  None, None))
            assert torch.equal(got, expect)
    expect = torch.searchsorted(seq, values, side="right")
    assert torch.equal(_torch(aten.searchsorted_Tensor(_shim(seq), _shim(values), 0, 0, "right", None)), expect)
    for right in (False, True):
        expect = torch.bucketize(values, seq, right=right)
        assert torch.equal(_torch(aten.bucketize_Tensor(_shim(values), _shim(seq), 0, int(right))), expect)


def test_searchsorted_nd_sorter_and_scalar():
    g = torch.Generator().manual_seed(0)
    seq = torch.sort(torch.randn(3, 4, 10, generator=g), dim=-1).values
    values = torch.randn(3, 4, 7, generator=g)
    for right in (False, True):
        expect = torch.searchsorted(seq, values, right=right)
        got = _torch(aten.searchsorted_Tensor(_shim(seq, True), _shim(values), 0, int(right), None, None))
        assert torch.equal(got, expect)
    unsorted = torch.randn(3, 4, 10, generator=g)
    sorter = torch.argsort(unsorted, dim=-1)
    expect = torch.searchsorted(unsorted, values, sorter=sorter)
    got = _torch(aten.searchsorted_Tensor(_shim(unsorted), _shim(values), 0, 0, "left", _shim(sorter, True)))
    assert torch.equal(got, expect)
    s = torch.tensor(0.3)
    expect = torch.searchsorted(seq[0, 0], s)
    got = aten.searchsorted_Tensor(_shim(seq[0, 0]), _shim(s), 0, 0, None, None)
    assert got.shape == () and torch.equal(_torch(got), expect)
    big = torch.randn(100000, generator=g)
    assert torch.equal(_torch(aten.bucketize_Tensor(_shim(big), _shim(seq[0, 0]), 1, 0)),
                       torch.bucketize(big, seq[0, 0], out_int32=True))


def test_search_errors():
    seq, v = np.array([1.0, 2.0]), np.array([[1.0]])
    with pytest.raises(MpsShimError, match="searchsorted: side can only be 'left' or 'right' but got middle"):
        aten.searchsorted_Tensor(seq, v, 0, 0, "middle", None)
    with pytest.raises(MpsShimError, match="side and right can't be set to opposites"):
        aten.searchsorted_Tensor(seq, v, 0, 1, "left", None)
    with pytest.raises(MpsShimError, match=r"first N-1 dimensions of boundaries tensor and input value tensor must match, but we got boundaries tensor \[3, 2\] and input value tensor \[2, 1\]"):
        aten.searchsorted_Tensor(np.zeros((3, 2)), np.zeros((2, 1)), 0, 0, None, None)
    with pytest.raises(MpsShimError, match="sorter must be a tensor of long dtype, but got int32"):
        aten.searchsorted_Tensor(seq, v, 0, 0, None, np.array([0, 1], np.int32))
    with pytest.raises(MpsShimError, match=r"boundary and sorter must have the same size, but got boundary tensor \[2\] and got sorter tensor \[3\]"):
        aten.searchsorted_Tensor(seq, v, 0, 0, None, np.array([0, 1, 2]))
    with pytest.raises(MpsShimError, match="searchsorted: sorter index out of range"):
        aten.searchsorted_Tensor(seq, v, 0, 0, None, np.array([0, 5]))
    with pytest.raises(MpsShimError, match=r"bucketize: boundaries tensor must be 1 dimension, but got dim\(2\)"):
        aten.bucketize_Tensor(v, np.zeros((2, 2)), 0, 0)


# ---- cat ----

def test_cat():
    a, b, c = torch.randn(2, 3, 4), torch.randn(2, 5, 4), torch.randn(2, 1, 4).to(torch.float64)
    expect = torch.cat([a, b, c], 1)
    got = _torch(aten.cat([_shim(a, True), _shim(b), _shim(c, True)], 1))
    assert got.dtype == torch.float64 and torch.equal(got, expect)
    assert torch.equal(_torch(aten.cat([_shim(a), _shim(a)], -1)), torch.cat([a, a], -1))
    # legacy: 1-D empty tensors are skipped
    e = torch.zeros(0)
    assert torch.equal(_torch(aten.cat([_shim(e), _shim(a), _shim(e)], 0)), torch.cat([e, a, e], 0))
    assert _torch(aten.cat([_shim(e)], 0)).shape == (0,)
    i, f16 = torch.arange(6).reshape(2, 3), torch.randn(1, 3).half()
    assert torch.equal(_torch(aten.cat([_shim(i), _shim(f16)], 0)), torch.cat([i, f16], 0))
    bf = torch.randn(2, 3).bfloat16()
    assert torch.equal(_torch(aten.cat([_shim(bf), _shim(bf, True)], 0)), torch.cat([bf, bf], 0))
    bo = torch.tensor([True, False])
    assert torch.equal(_torch(aten.cat([_shim(bo), _shim(torch.tensor([1, 2], dtype=torch.uint8))], 0)),
                       torch.cat([bo, torch.tensor([1, 2], dtype=torch.uint8)]))


def test_cat_errors():
    with pytest.raises(MpsShimError, match="cat: expected a non-empty list of Tensors"):
        aten.cat([], 0)
    with pytest.raises(MpsShimError, match=r"cat: zero-dimensional tensor \(at position 1\) cannot be concatenated"):
        aten.cat([np.zeros(2), np.array(1.0)], 0)
    with pytest.raises(MpsShimError, match="cat: sizes of tensors must match except in dimension 0. Expected size 3 but got size 2 for tensor number 1 in the list"):
        aten.cat([np.zeros((1, 3)), np.zeros((1, 2))], 0)
    with pytest.raises(MpsShimError, match="cat: tensors must have same number of dimensions: got 2 and 1"):
        aten.cat([np.zeros((1, 3)), np.zeros(3)], 0)
    with pytest.raises(MpsShimError, match=r"cat: dimension out of range"):
        aten.cat([np.zeros((1, 3))], 2)


# ---- fill_ ----

@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.int32, torch.uint8, torch.bool, torch.int64])
def test_fill(dtype):
    for value in (2.75, -1.0, 0.0):
        if dtype == torch.uint8 and value < 0:
            continue
        t = _shim(torch.zeros(3, 4, dtype=dtype), True)
        aten.fill__Scalar(t, value)
        assert torch.equal(_torch(t), torch.zeros(3, 4, dtype=dtype).fill_(value))
    base = _shim(torch.zeros(4, 4))
    aten.fill__Scalar(base.view((2, 2), (4, 1), 5), 3.0)  # only the view changes
    expect = torch.zeros(4, 4)
    expect.view(-1).as_strided((2, 2), (4, 1), 5).fill_(3.0)
    assert torch.equal(_torch(base), expect)
    aten.fill__Scalar(_shim(torch.zeros(0, 3)), 1.0)
    nan = _shim(torch.zeros(2))
    aten.fill__Scalar(nan, float("nan"))
    assert torch.isnan(_torch(nan)).all()


# ---- repeat_interleave ----

def test_repeat_interleave():
    for dtype in (torch.int64, torch.int32):
        r = torch.tensor([2, 0, 3, 1], dtype=dtype)
        expect = torch.repeat_interleave(r)
        got = _torch(aten.repeat_interleave_Tensor(_shim(r, True), None))
        assert got.dtype == expect.dtype and torch.equal(got, expect)
        assert torch.equal(_torch(aten.repeat_interleave_Tensor(_shim(r), 6)), torch.repeat_interleave(r, output_size=6))
    assert _torch(aten.repeat_interleave_Tensor(_shim(torch.zeros(0, dtype=torch.int64)), None)).shape == (0,)
    with pytest.raises(MpsShimError, match="repeat_interleave: repeats can not be negative"):
        aten.repeat_interleave_Tensor(np.array([1, -1]), None)
    with pytest.raises(MpsShimError, match=r"repeat_interleave only accept 1D vector as repeat, got shape \[1, 2\]"):
        aten.repeat_interleave_Tensor(np.array([[1, 1]]), None)
    with pytest.raises(MpsShimError, match=r"allocated size does not match required size \(output_size 4, repeats sum to 2\)"):
        aten.repeat_interleave_Tensor(np.array([1, 1]), 4)
    with pytest.raises(MpsShimError, match="repeats has to be Long or Int tensor, got float32"):
        aten.repeat_interleave_Tensor(np.array([1.0], np.float32), None)


# ---- pad ----

PADS = [[1, 2], [0, 3, 2, 0], [2, 2, 1, 1], [-1, 2], [1, -2, -1, 1], [0, 0]]


@pytest.mark.parametrize("pad", PADS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int64, torch.float16])
def test_pad_constant(pad, dtype):
    x = (torch.randn(2, 3, 5, 6) * 5).to(dtype)
    for value in (None, 1.5):
        expect = torch.ops.aten.pad(x, pad, "constant", value)
        got = _torch(aten.pad(_shim(x, True), pad, "constant", value))
        assert torch.equal(got, expect)
    assert torch.equal(_torch(aten.pad(_shim(x), pad, None, None)), torch.ops.aten.pad(x, pad, "constant", None))


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("pad,shape", [([2, 1], (2, 3, 5)), ([2, 1], (3, 5)), ([1, 2, 2, 0], (2, 3, 4, 5)),
                                       ([1, 0, 2, 2, 1, 1], (1, 2, 3, 4, 5)), ([-1, 2], (2, 4, 5))])
def test_pad_modes(mode, pad, shape):
    x = torch.randn(shape)
    expect = torch.ops.aten.pad(x, pad, mode, None)
    got = _torch(aten.pad(_shim(x, True), pad, mode, None))
    assert torch.equal(got, expect)


def test_pad_errors():
    x = np.zeros((1, 2, 3), np.float32)
    with pytest.raises(MpsShimError, match="pad: Padding length must be divisible by 2"):
        aten.pad(x, [1], "constant", None)
    with pytest.raises(MpsShimError, match="pad: Padding length should be less than or equal to two times the input dimension but got padding length 8 and input of dimension 3"):
        aten.pad(x, [1] * 8, "constant", None)
    with pytest.raises(MpsShimError, match="resulted in a negative output size"):
        aten.pad(x, [-2, -2], "constant", None)
    with pytest.raises(MpsShimError, match=r"padding size should be less than the corresponding input dimension, but got: padding \(3, 0\) at dimension 2"):
        aten.pad(x, [3, 0], "reflect", None)
    with pytest.raises(MpsShimError, match='Padding mode "replicate" doesn\'t take in value argument'):
        aten.pad(x, [1, 0], "replicate", 1.0)
    with pytest.raises(MpsShimError, match="pad: unrecognised padding mode wrap"):
        aten.pad(x, [1, 0], "wrap", None)
    with pytest.raises(MpsShimError, match="wrapping around more than once"):
        aten.pad(x, [4, 0], "circular", None)
    with pytest.raises(MpsShimError, match="leaves nothing of dimension 2"):
        aten.pad(x, [-3, 1], "circular", None)
