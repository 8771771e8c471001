"""Tensors: zero-copy numpy interop, views, clone, copy_ with broadcasting and dtype conversion.

References: numpy (astype, float16) and a numpy model of round-to-nearest-even
bfloat16 written here (MSL §8.6: float -> half/bfloat conversions round to
nearest even).
"""
import gc

import numpy as np
import pytest

import mps_shim
from mps_shim import Tensor

SOURCE = r"""
#include <metal_stdlib>
using namespace metal;

kernel void iota_f(device float* out, constant float& scale, uint i [[thread_position_in_grid]]) {
    out[i] = float(i) * scale;
}

kernel void add_one(device float* inout, uint i [[thread_position_in_grid]]) {
    inout[i] = inout[i] + 1.0f;
}

kernel void copy_f(device float* out, constant float* in, uint i [[thread_position_in_grid]]) {
    out[i] = in[i];
}
"""


@pytest.fixture(scope="module")
def k():
    return mps_shim.compile_shader(SOURCE)


# ---- zero-copy interop ------------------------------------------------------------------------------------------

def test_from_numpy_is_zero_copy_and_kernel_writes_land_in_the_array(k):
    a = np.zeros(1000, np.float32)
    t = Tensor.from_numpy(a)
    assert t.data_ptr == a.__array_interface__["data"][0]
    k.iota_f(t, np.float32(0.5))
    np.testing.assert_array_equal(a, np.arange(1000, dtype=np.float32) * np.float32(0.5))
    # and kernel reads see the array's current contents
    a[:] = 10
    k.add_one(t)
    assert np.all(a == 11)


def test_numpy_returns_a_view_of_the_tensor(k):
    t = Tensor.empty(257, np.float32)
    view = t.numpy()
    assert view.shape == (257,) and view.dtype == np.float32
    assert view.__array_interface__["data"][0] == t.data_ptr
    k.iota_f(t, 2.0, threads=257)
    np.testing.assert_array_equal(view, np.arange(257, dtype=np.float32) * 2)
    view[:] = 5  # writes through the view reach kernels
    k.add_one(t, threads=257)
    assert np.all(t.numpy() == 6)


def test_numpy_view_keeps_the_tensor_alive(k):
    t = Tensor.empty(64, np.float32)
    k.iota_f(t, 1.0, threads=64)
    view = t.numpy()
    del t
    gc.collect()
    junk = [Tensor.zeros(64, np.float32) for _ in range(8)]  # reuse freed memory, if any was freed
    for j in junk:
        j.numpy()[:] = -1
    np.testing.assert_array_equal(view, np.arange(64, dtype=np.float32))


def test_tensor_keeps_the_array_alive(k):
    t = Tensor.from_numpy(np.arange(32, dtype=np.float32))
    gc.collect()
    k.add_one(t, threads=32)
    np.testing.assert_array_equal(t.numpy(), np.arange(1, 33, dtype=np.float32))


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.uint16, np.int32, np.uint32, np.int64,
                                   np.uint64, np.float16, np.float32, np.float64, np.bool_])
def test_empty_and_zeros_properties(dtype):
    t = Tensor.empty((3, 5), dtype)
    assert t.shape == (3, 5) and t.ndim == 2 and t.numel == 15
    assert t.strides == (5, 1) and t.storage_offset == 0
    assert t.dtype == np.dtype(dtype) and t.device == "mps"
    assert t.storage_nbytes == 15 * np.dtype(dtype).itemsize
    z = Tensor.zeros((4, 2, 3), dtype, device="cpu")
    assert z.device == "cpu" and z.strides == (6, 3, 1)
    arr = z.numpy()
    assert arr.dtype == np.dtype(dtype) and arr.shape == (4, 2, 3) and not arr.any()


def test_dtype_codes_are_c10_codes():
    codes = {np.uint8: 0, np.int8: 1, np.int16: 2, np.int32: 3, np.int64: 4, np.float16: 5, np.float32: 6,
             np.float64: 7, np.bool_: 11, np.uint16: 27, np.uint32: 28, np.uint64: 29}
    for dtype, code in codes.items():
        assert Tensor.empty(1, dtype).dtype_code == code
    assert Tensor.empty(1, "bfloat16").dtype_code == 15


def test_int_shape_and_explicit_strides():
    t = Tensor.empty(7)
    assert t.shape == (7,) and t.strides == (1,)
    s = Tensor.empty((2, 3), np.float32, strides=(1, 2))
    assert s.strides == (1, 2)
    assert s.storage_nbytes == 6 * 4
    s.copy_(np.arange(6, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(s.numpy(), np.arange(6).reshape(2, 3))
    # column-major layout in memory (read through the pointer where it is the host's)
    if not mps_shim.tensor.device_memory_is_host():
        return
    raw = np.frombuffer(mps_shim._native.ffi.buffer(mps_shim._native.ffi.cast("char*", s.data_ptr), 24), np.float32)
    np.testing.assert_array_equal(raw, np.arange(6).reshape(2, 3).T.ravel())


def test_zero_size_and_zero_dim_tensors():
    e = Tensor.empty(0)
    assert e.numel == 0 and e.numpy().shape == (0,)
    z = Tensor.from_numpy(np.zeros((0, 3), np.float32))
    assert z.shape == (0, 3) and z.numel == 0 and z.numpy().shape == (0, 3)
    s = Tensor.from_numpy(np.array(3.5, np.float32))
    assert s.shape == () and s.ndim == 0 and s.numel == 1
    assert s.numpy().shape == () and float(s.numpy()) == 3.5


def test_from_numpy_properties_and_devices():
    a = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    t = Tensor.from_numpy(a)
    assert (t.shape, t.strides, t.storage_offset, t.dtype, t.device) == ((2, 3, 4), (12, 4, 1), 0, np.int16, "mps")
    assert Tensor.from_numpy(a, device="cpu").device == "cpu"
    with pytest.raises(ValueError):
        Tensor.from_numpy(a, device="cuda")
    with pytest.raises(ValueError):
        Tensor.empty(3, device="gpu")


# ---- views ------------------------------------------------------------------------------------------------------

def test_view_shape_strides_offset():
    a = np.arange(12, dtype=np.float32)
    t = Tensor.from_numpy(a)
    v = t.view((2, 2), (4, 1), 5)
    assert v.shape == (2, 2) and v.strides == (4, 1) and v.storage_offset == 5
    assert v.data_ptr == t.data_ptr + 5 * 4
    np.testing.assert_array_equal(v.numpy(), [[5, 6], [9, 10]])
    w = t.view((3, 2), (1, 3), 2)  # transposed-style strides
    np.testing.assert_array_equal(w.numpy(), np.lib.stride_tricks.as_strided(a[2:], (3, 2), (4, 12)))
    c = t.view((3, 4))  # default: contiguous
    assert c.strides == (4, 1)


def test_kernel_writes_through_a_view_land_at_the_offset(k):
    parent = np.zeros(40, np.float32)
    t = Tensor.from_numpy(parent)
    v = t.view((5,), (1,), 17)
    k.iota_f(v, 1.0)
    want = np.zeros(40, np.float32)
    want[17:22] = np.arange(5)
    np.testing.assert_array_equal(parent, want)
    # a view of a library-owned tensor: the write shows in the parent's numpy view
    owner = Tensor.zeros(30, np.float32)
    k.iota_f(owner.view((4,), (1,), 25), 3.0)
    want = np.zeros(30, np.float32)
    want[25:29] = np.arange(4) * 3
    np.testing.assert_array_equal(owner.numpy(), want)


def test_view_keeps_storage_alive_after_parent_is_deleted(k):
    parent = Tensor.empty(100, np.float32)
    parent.numpy()[:] = np.arange(100)
    view = parent.view((10,), (3,), 7)
    del parent
    gc.collect()
    junk = [Tensor.zeros(100, np.float32) for _ in range(8)]
    for j in junk:
        j.numpy()[:] = -1
    np.testing.assert_array_equal(view.numpy(), np.arange(7, 37, 3))
    k.add_one(view.view((5,), (1,), 0), threads=5)  # storage elements 0..4 still writable
    np.testing.assert_array_equal(view.numpy(), np.arange(7, 37, 3))
    assert view.view((5,), (1,), 0).numpy().tolist() == [1, 2, 3, 4, 5]


def test_view_of_a_numpy_backed_tensor_keeps_the_array_alive(k):
    t = Tensor.from_numpy(np.arange(20, dtype=np.float32))
    v = t.view((4,), (2,), 3)
    del t
    gc.collect()
    np.testing.assert_array_equal(v.numpy(), [3, 5, 7, 9])


def test_view_outside_the_storage_is_rejected():
    t = Tensor.empty(4, np.float32)
    with pytest.raises(mps_shim.MpsShimError, match="view needs 20 bytes but its storage holds 16"):
        t.view((5,))
    with pytest.raises(mps_shim.MpsShimError):
        t.view((2,), (1,), 3)
    with pytest.raises(mps_shim.MpsShimError, match="before its storage"):
        t.view((2,), (1,), -1)


# ---- clone and copy_ --------------------------------------------------------------------------------------------

def test_clone_is_contiguous_and_independent():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    src = Tensor.from_numpy(a.T)
    assert src.strides == (1, 4)
    c = src.clone()
    assert c.shape == (4, 3) and c.strides == (3, 1) and c.device == "mps"
    np.testing.assert_array_equal(c.numpy(), a.T)
    c.numpy()[:] = 0
    np.testing.assert_array_equal(a, np.arange(12).reshape(3, 4))
    cpu = Tensor.from_numpy(a, device="cpu").clone()
    assert cpu.device == "cpu"
    np.testing.assert_array_equal(cpu.numpy(), a)


def test_clone_preserve_strides():
    a = np.arange(12, dtype=np.int32).reshape(3, 4)
    src = Tensor.from_numpy(a.T)
    c = src.clone(preserve_strides=True)
    assert c.shape == (4, 3) and c.strides == (1, 4)
    assert c.data_ptr != src.data_ptr
    np.testing.assert_array_equal(c.numpy(), a.T)
    # a strided view of a bigger storage: the clone holds just the span it needs
    v = Tensor.from_numpy(np.arange(100, dtype=np.int32)).view((3, 3), (20, 2), 11)
    cv = v.clone(preserve_strides=True)
    assert cv.strides == (20, 2) and cv.storage_offset == 0
    assert cv.storage_nbytes == ((3 - 1) * 20 + (3 - 1) * 2 + 1) * 4
    np.testing.assert_array_equal(cv.numpy(), 11 + 20 * np.arange(3)[:, None] + 2 * np.arange(3)[None, :])


@pytest.mark.parametrize("dst_device, src_device", [("cpu", "mps"), ("mps", "cpu"), ("mps", "mps"), ("cpu", "cpu")])
def test_copy_between_devices(dst_device, src_device):
    x = np.random.default_rng(2).standard_normal((5, 7)).astype(np.float32)
    src = Tensor.from_numpy(x.copy(), device=src_device)
    dst = Tensor.empty((5, 7), np.float32, device=dst_device)
    assert dst.copy_(src) is dst
    assert dst.device == dst_device
    np.testing.assert_array_equal(dst.numpy(), x)


def test_copy_from_strided_sources_and_into_strided_destinations():
    a = np.arange(24, dtype=np.float64).reshape(4, 6)
    dst = Tensor.empty((6, 4), np.float64)
    dst.copy_(a.T)  # transposed source, wrapped without a copy
    np.testing.assert_array_equal(dst.numpy(), a.T)
    dst2 = Tensor.empty((2, 3), np.float64)
    dst2.copy_(a[::2, 1::2])
    np.testing.assert_array_equal(dst2.numpy(), a[::2, 1::2])
    backing = np.zeros((4, 6), np.float64)
    Tensor.from_numpy(backing[:, ::2]).copy_(np.ones((4, 3)))  # strided destination
    np.testing.assert_array_equal(backing[:, ::2], 1)
    np.testing.assert_array_equal(backing[:, 1::2], 0)


def test_copy_broadcasts_like_numpy():
    dst = Tensor.empty((3, 4), np.int32)
    dst.copy_(np.array([1, 2, 3, 4], np.int32))
    np.testing.assert_array_equal(dst.numpy(), np.broadcast_to([1, 2, 3, 4], (3, 4)))
    dst.copy_(np.array([[7], [8], [9]], np.int32))
    np.testing.assert_array_equal(dst.numpy(), np.broadcast_to([[7], [8], [9]], (3, 4)))
    dst.copy_(np.array(5, np.int32))
    assert np.all(dst.numpy() == 5)
    d3 = Tensor.empty((2, 3, 4), np.float32)
    src = np.arange(12, dtype=np.float32).reshape(3, 4)
    d3.copy_(src)
    np.testing.assert_array_equal(d3.numpy(), np.broadcast_to(src, (2, 3, 4)))


def test_copy_rejects_shapes_that_do_not_broadcast():
    dst = Tensor.empty((3, 4), np.float32)
    with pytest.raises(mps_shim.MpsShimError, match="broadcast"):
        dst.copy_(np.zeros(3, np.float32))
    with pytest.raises(mps_shim.MpsShimError):
        dst.copy_(np.zeros((2, 3, 4), np.float32))


# ---- dtype conversion -------------------------------------------------------------------------------------------

INT_TYPES = [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64]
FLOAT_TYPES = [np.float16, np.float32, np.float64]


def convert(src, dtype):
    dst = Tensor.empty(src.shape, dtype)
    dst.copy_(src)
    return dst.numpy().copy()


def random_ints(dtype, n, rng):
    info = np.iinfo(dtype)
    vals = rng.integers(info.min, info.max, n, dtype=dtype, endpoint=True)
    vals[:4] = [info.min, info.max, 0, 1]
    return vals


@pytest.mark.parametrize("src_t", INT_TYPES + [np.bool_])
@pytest.mark.parametrize("dst_t", INT_TYPES + [np.bool_])
def test_int_to_int_matches_numpy_astype(src_t, dst_t):
    rng = np.random.default_rng(3)
    src = rng.integers(0, 2, 500).astype(np.bool_) if src_t is np.bool_ else random_ints(src_t, 500, rng)
    got = convert(src, dst_t)
    np.testing.assert_array_equal(got, src.astype(dst_t))  # integers wrap (two's complement), bool is != 0


@pytest.mark.parametrize("src_t", INT_TYPES + [np.bool_])
@pytest.mark.parametrize("dst_t", FLOAT_TYPES)
def test_int_to_float_matches_numpy_astype(src_t, dst_t):
    rng = np.random.default_rng(4)
    src = rng.integers(0, 2, 500).astype(np.bool_) if src_t is np.bool_ else random_ints(src_t, 500, rng)
    with np.errstate(over="ignore"):
        want = src.astype(dst_t)
    got = convert(src, dst_t)
    np.testing.assert_array_equal(got.view(f"u{got.itemsize}"), want.view(f"u{want.itemsize}"))


@pytest.mark.parametrize("src_t, dst_t", [(np.int64, np.float32), (np.uint64, np.float32)])
def test_wide_int_to_float_rounds_once(src_t, dst_t):
    # 2^60 + 2^36 + 1 lies just above the midpoint between two float32 neighbours
    # (2^60 and 2^60 + 2^37): one correct rounding goes up; rounding to float64
    # first lands exactly on the midpoint and ties-to-even goes down.
    values = [2 ** 60 + 2 ** 36 + 1, 2 ** 62 + 2 ** 38 + 3, 2 ** 24 + 1, 12345]
    if src_t is np.int64:
        values += [-(2 ** 60 + 2 ** 36 + 1)]
    src = np.array(values, dtype=src_t)
    with np.errstate(over="ignore"):
        want = src.astype(dst_t)
    got = convert(src, dst_t)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("src_t", FLOAT_TYPES)
@pytest.mark.parametrize("dst_t", INT_TYPES + [np.bool_])
def test_float_to_int_truncates_like_numpy_astype(src_t, dst_t):
    rng = np.random.default_rng(5)
    if dst_t is np.bool_:
        lo, hi = -3.0, 3.0
    else:
        info = np.iinfo(dst_t)
        lo, hi = max(float(info.min), -60000.0), min(float(info.max), 60000.0)
    src = rng.uniform(lo, hi, 500).astype(src_t)
    src = src[(src >= lo) & (src <= hi)]  # in range of the target after rounding to src_t
    src = np.concatenate([src, np.array([0.0, -0.0, 0.75, -0.75] if lo < 0 else [0.0, 0.75], src_t)])
    got = convert(src, dst_t)
    np.testing.assert_array_equal(got, src.astype(dst_t))


@pytest.mark.parametrize("src_t", FLOAT_TYPES)
@pytest.mark.parametrize("dst_t", [np.float32, np.float64])
def test_float_to_wider_or_float32_matches_numpy(src_t, dst_t):
    rng = np.random.default_rng(6)
    with np.errstate(over="ignore"):
        src = (rng.standard_normal(1000) * 10.0 ** rng.integers(-30, 30, 1000)).astype(src_t)
        src = np.concatenate([src, np.array([np.inf, -np.inf, 0.0, -0.0], src_t)])
        want = src.astype(dst_t)
    got = convert(src, dst_t)
    np.testing.assert_array_equal(got.view(f"u{got.itemsize}"), want.view(f"u{want.itemsize}"))
    nan = convert(np.array([np.nan], src_t), dst_t)
    assert np.isnan(nan[0])


def test_float32_to_float16_is_bit_exact_with_numpy():
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2 ** 32, 1_000_000, dtype=np.uint64).astype(np.uint32)
    special = np.array([0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x477FE000, 0x477FEFFF, 0x477FF000,
                        0x7F7FFFFF, 0x33000000, 0x33000001, 0x33800000, 0x387FC000, 0x38800000, 0x00000001],
                       np.uint32)
    x = np.concatenate([bits, special, special | 0x80000000]).view(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        want = x.astype(np.float16)
    got = convert(x, np.float16)
    nan = np.isnan(want)
    np.testing.assert_array_equal(got.view(np.uint16)[~nan], want.view(np.uint16)[~nan])
    assert np.all(np.isnan(got[nan]))


def test_float16_rounds_midpoints_to_even_including_subnormals_and_overflow():
    h = np.arange(0, 0x7C00, dtype=np.uint16)  # every finite non-negative half
    lo = h.view(np.float16).astype(np.float64)
    hi = (h + 1).view(np.float16).astype(np.float64)  # 0x7bff + 1 is inf: midpoint 65520 overflows
    hi[-1] = 65536.0
    mids = ((lo + hi) / 2).astype(np.float32)  # exact in float32
    assert np.all(mids.astype(np.float64) == (lo + hi) / 2)
    x = np.concatenate([mids, -mids, np.nextafter(mids, np.float32(np.inf)), np.nextafter(mids, np.float32(0))])
    with np.errstate(over="ignore"):
        want = x.astype(np.float16)
    got = convert(x, np.float16)
    np.testing.assert_array_equal(got.view(np.uint16), want.view(np.uint16))
    # spot checks by hand: ties go to the even neighbour, 65520 overflows, 2^-25 ties to zero
    spot = np.array([1 + 2 ** -11, 1 + 3 * 2 ** -11, 65504.0, 65519.0, 65520.0, 2.0 ** -25, 3 * 2.0 ** -25,
                     2.0 ** -24], np.float32)
    assert convert(spot, np.float16).view(np.uint16).tolist() == [0x3C00, 0x3C02, 0x7BFF, 0x7BFF, 0x7C00, 0x0000,
                                                                   0x0002, 0x0001]


def test_float16_to_float32_covers_every_pattern():
    h = np.arange(2 ** 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    got = convert(h, np.float32)
    want = h.astype(np.float32)
    nan = np.isnan(want)
    np.testing.assert_array_equal(got.view(np.uint32)[~nan], want.view(np.uint32)[~nan])
    assert np.all(np.isnan(got[nan]))


def bfloat16_rne_bits(x):
    """Reference float32 -> bfloat16 bits, round to nearest even on the bit pattern; NaN -> a quiet NaN."""
    u = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    sign = u & 0x80000000
    mag = u & 0x7FFFFFFF
    down = mag >> 16  # truncated magnitude
    rest = mag & 0xFFFF
    up = (rest > 0x8000) | ((rest == 0x8000) & ((down & 1) == 1))
    out = (sign >> 16) | (down + up)  # a carry into the exponent is right, up to inf
    isnan = mag > 0x7F800000
    out = np.where(isnan, (sign >> 16) | 0x7FC0, out)
    return out.astype(np.uint16)


def test_bfloat16_round_to_nearest_even_against_reference():
    rng = np.random.default_rng(8)
    bits = rng.integers(0, 2 ** 32, 500_000, dtype=np.uint64).astype(np.uint32)
    ties = (rng.integers(0, 2 ** 16, 20_000, dtype=np.uint64).astype(np.uint32) << 16) | 0x8000
    special = np.array([0x3F808000, 0x3F818000, 0x3F807FFF, 0x3F808001, 0x7F7FFFFF, 0x7F7F8000, 0x7F7F7FFF,
                        0x00008000, 0x00018000, 0x00000001, 0x007FFFFF, 0x7F800000, 0x00000000, 0x80000000],
                       np.uint32)
    x = np.concatenate([bits, ties, special, special | 0x80000000]).view(np.float32)
    t = Tensor.empty(x.shape, dtype="bfloat16")
    assert t.dtype == "bfloat16"
    t.copy_(x)
    got = t.numpy(bits=True)
    assert got.dtype == np.uint16
    want = bfloat16_rne_bits(x)
    isnan = np.isnan(x)
    np.testing.assert_array_equal(got[~isnan], want[~isnan])
    # NaN stays NaN (exponent all ones, mantissa non-zero)
    assert np.all((got[isnan] & 0x7F80) == 0x7F80) and np.all((got[isnan] & 0x7F) != 0)
    # hand-checked values
    hand = np.array([1.0 + 2 ** -8, 1.0 + 3 * 2 ** -8, 3.0e38, np.inf, -2.0], np.float32)
    t2 = Tensor.empty(5, dtype="bfloat16")
    t2.copy_(hand)
    assert t2.numpy(bits=True).tolist() == [0x3F80, 0x3F82, 0x7F62, 0x7F80, 0xC000]


def test_bfloat16_widens_exactly():
    bits = np.arange(2 ** 16, dtype=np.uint32)
    b = Tensor.empty(bits.size, dtype="bfloat16")
    b.numpy(bits=True)[:] = bits.astype(np.uint16)
    out = Tensor.empty(bits.size, np.float32)
    out.copy_(b)
    got = out.numpy()
    want = (bits << 16).view(np.float32)
    nan = np.isnan(want)
    np.testing.assert_array_equal(got.view(np.uint32)[~nan], want.view(np.uint32)[~nan])
    assert np.all(np.isnan(got[nan]))


def test_bfloat16_without_ml_dtypes_needs_bits(monkeypatch):
    import mps_shim.tensor
    monkeypatch.setattr(mps_shim.tensor, "_bfloat16_dtype", lambda load=False: None)
    t = Tensor.empty(3, dtype="bfloat16")
    assert t.dtype == "bfloat16" and isinstance(t.dtype, str)
    with pytest.raises(TypeError, match="bits=True"):
        t.numpy()
    assert t.numpy(bits=True).dtype == np.uint16


def test_bfloat16_is_ml_dtypes_bfloat16():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    t = Tensor.empty(3, dtype="bfloat16")
    assert t.dtype == np.dtype(ml_dtypes.bfloat16)
    assert t.numpy().dtype == np.dtype(ml_dtypes.bfloat16)


# ---- which numpy arrays can be wrapped --------------------------------------------------------------------------

def test_non_contiguous_positive_strides_are_wrapped_without_copy():
    a = np.zeros((6, 8), np.float32)
    for view in (a[::2], a[:, 1:5], a.T, a[1::2, ::3]):
        t = Tensor.from_numpy(view)
        assert t.shape == view.shape
        assert t.strides == tuple(s // 4 for s in view.strides)
        assert t.data_ptr == view.__array_interface__["data"][0]
    Tensor.from_numpy(a[1::2, ::3]).copy_(np.full((3, 3), 9, np.float32))
    want = np.zeros((6, 8), np.float32)
    want[1::2, ::3] = 9
    np.testing.assert_array_equal(a, want)


def test_kernel_writes_into_a_sliced_array(k):
    a = np.zeros(100, np.float32)
    k.iota_f(a[10:], 1.0, threads=5)  # a slice starts at its own address
    want = np.zeros(100, np.float32)
    want[10:15] = np.arange(5)
    np.testing.assert_array_equal(a, want)


@pytest.mark.parametrize("make", [lambda a: a[::-1], lambda a: a.reshape(4, 5)[:, ::-1],
                                  lambda a: a.reshape(4, 5)[::-2]])
def test_negative_strides_raise_value_error(make):
    with pytest.raises(ValueError, match="non-negative strides"):
        Tensor.from_numpy(make(np.arange(20, dtype=np.float32)))


def test_strides_that_are_not_multiples_of_the_item_size_raise_value_error():
    raw = np.zeros(64, np.uint8)
    odd = np.lib.stride_tricks.as_strided(raw.view(np.int32), shape=(5,), strides=(6,))
    with pytest.raises(ValueError):
        Tensor.from_numpy(odd)


UNSUPPORTED = [np.dtype("U3"), np.object_, np.dtype("M8[s]")]
if hasattr(np, "float128"):
    UNSUPPORTED.append(np.float128)


@pytest.mark.parametrize("dtype", UNSUPPORTED)
def test_unsupported_dtypes_raise_type_error(dtype):
    with pytest.raises(TypeError):
        Tensor.from_numpy(np.zeros(3, dtype))
    with pytest.raises(TypeError):
        Tensor.empty(3, dtype)


def test_other_bad_inputs():
    with pytest.raises(TypeError, match="byte-swapped"):
        Tensor.from_numpy(np.zeros(3, ">f4"))
    with pytest.raises(TypeError, match="numpy array"):
        Tensor.from_numpy([1.0, 2.0])


def test_reinterpret_tensor_adds_its_offset_to_selfs():
    """torch::inductor::_reinterpret_tensor: AOTI views constants (which sit at an offset in one blob) with
    offset 0 and means "where the constant starts", not "the blob's start"."""
    from mps_shim._native import ffi, lib

    base = np.arange(20, dtype=np.float32)
    t = mps_shim.Tensor.from_numpy(base).view((10,), (1,), 3)
    out = ffi.new("AtenTensorHandle*")
    mps_shim.check(lib.aoti_torch__reinterpret_tensor(t._handle, 1, ffi.new("int64_t[]", [4]),
                                                     ffi.new("int64_t[]", [2]), 2, out))
    v = mps_shim.Tensor(out[0])
    assert v.storage_offset == 5
    np.testing.assert_array_equal(v.numpy(), [5, 7, 9, 11])
    with pytest.raises(mps_shim.ArgumentError, match="before its storage"):
        mps_shim.check(lib.aoti_torch__reinterpret_tensor(t._handle, 1, ffi.new("int64_t[]", [1]), ffi.NULL, -4,
                                                         out))
