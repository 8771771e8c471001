"""MLX's Metal kernels (mlx/backend/metal/kernels/*.metal, loaded whole and compiled kernel by
kernel) against numpy references written from each kernel's semantics. Kernel names, argument
indices, grids and function constants are the ones MLX's host code (mlx/backend/metal/*.cpp) uses.
Needs an MLX checkout (tests/third_party.py)."""
import os
import struct

import numpy as np
import pytest

import mps_shim
from third_party import mlx_dir, without_cuda_check

ml_dtypes = pytest.importorskip("ml_dtypes")
BF16 = np.dtype(ml_dtypes.bfloat16)
MLX_NAMES = {np.dtype(np.float32): "float32", np.dtype(np.float16): "float16", BF16: "bfloat16"}

_libraries = {}


def library(name):
    """The whole .metal file (a path under kernels/, without .metal), one library per file for the
    module (kernels compile at first use)."""
    if name not in _libraries:
        root = mlx_dir()
        with open(os.path.join(root, "mlx", "backend", "metal", "kernels", name + ".metal")) as f:
            with without_cuda_check():
                _libraries[name] = mps_shim.ShaderLibrary(f.read(), include_dirs=[root], eager=False)
    return _libraries[name]


def i32(*values):
    return np.asarray(values, np.int32).tobytes()


def i64(*values):
    return np.asarray(values, np.int64).tobytes()


def f32bytes(*values):
    return np.asarray(values, np.float32).tobytes()


def run(lib, kernel, args, grid, group, constants=None, threadgroup_memory=None):
    """dispatchThreads(grid, group) of `kernel` with args {buffer index: array or packed bytes}."""
    fn = lib.get_kernel_function(kernel, constants)

    def encode(f):
        f.start_encoding()
        for index, value in args.items():
            if isinstance(value, bytes):
                f.set_arg_bytes(index, value)
            else:
                f.set_arg_tensor(index, value)
        for index, nbytes in (threadgroup_memory or {}).items():
            f.set_threadgroup_memory_length(index, nbytes)
        f.dispatch(list(grid), list(group))

    fn.run_command_block(encode)


def groups(count, group):
    """MLX's dispatchThreadgroups(count, group) as the threads it covers."""
    return [c * g for c, g in zip(count, group)]


def f32(a):
    return np.asarray(a, np.float32)


def strides_of(a):
    return [s // a.itemsize for s in a.strides]


# ---------------------------------------------------------------------------------------------
# ternary.metal: Select (condition ? b : c)

@pytest.mark.parametrize("dtype", [np.float32, np.float16, BF16])
def test_select_contiguous(dtype):
    n = 1000
    rng = np.random.default_rng(0)
    a = rng.random(n) < 0.4
    b = rng.standard_normal(n).astype(np.float32).astype(dtype)
    c = rng.standard_normal(n).astype(np.float32).astype(dtype)
    d = np.zeros(n, dtype)
    wpt = 8 // np.dtype(dtype).itemsize  # WorkPerThread<T>: 8 bytes a thread
    nthreads = -(-n // wpt)
    run(library("ternary"), f"vn_Select{MLX_NAMES[np.dtype(dtype)]}", {0: a, 1: b, 2: c, 3: d, 4: i32(n)},
        [nthreads], [min(1024, nthreads)])
    np.testing.assert_array_equal(f32(d), f32(np.where(a, b, c)))


def test_select_vector_scalar():
    n = 300
    rng = np.random.default_rng(1)
    a = rng.random(n) < 0.5
    b = rng.standard_normal(n).astype(np.float32)
    c = np.array([7.5], np.float32)
    d = np.zeros(n, np.float32)
    run(library("ternary"), "vs_Selectfloat32", {0: a, 1: b, 2: c, 3: d, 4: i32(n)}, [n], [256])
    np.testing.assert_array_equal(d, np.where(a, b, 7.5))


def test_select_general_broadcast_3d():
    # a (4,1,6) condition, b transposed, c broadcast along the middle: the g3 kernel's strides
    shape = (4, 5, 6)
    rng = np.random.default_rng(2)
    a = rng.random((4, 1, 6)) < 0.5
    bt = rng.standard_normal((6, 5, 4)).astype(np.float32)
    b = bt.transpose(2, 1, 0)
    c = rng.standard_normal((4, 1, 6)).astype(np.float32)
    d = np.zeros(shape, np.float32)
    sa = [6, 0, 1]
    sb = strides_of(b)
    sc = [6, 0, 1]
    run(library("ternary"), "g3_Selectfloat32", {0: a, 1: bt, 2: c, 3: d, 4: i64(*sa), 5: i64(*sb), 6: i64(*sc)},
        [6, 5, 4], [6, 5, 4])
    np.testing.assert_array_equal(d, np.where(a, b, c))


def test_select_general_nd_two_per_thread():
    shape = (2, 3, 4, 7)  # 4 dims: gn2, two elements of the last dim per thread, the last thread one
    rng = np.random.default_rng(3)
    a = rng.random(shape) < 0.5
    b = rng.standard_normal(shape).astype(np.float32)
    cbig = rng.standard_normal((2, 3, 4, 14)).astype(np.float32)
    c = cbig[..., ::2]
    d = np.zeros(shape, np.float32)
    dim0 = -(-shape[-1] // 2)
    run(library("ternary"), "gn2_Selectfloat32",
        {0: a, 1: b, 2: cbig, 3: d, 4: i32(*shape), 5: i64(*strides_of(a)), 6: i64(*strides_of(b)),
         7: i64(*strides_of(c)), 8: i32(4)},
        [dim0, 4, 6], [dim0, 4, 6])
    np.testing.assert_array_equal(d, np.where(a, b, c))


# ---------------------------------------------------------------------------------------------
# copy.metal

def test_copy_general_strided_with_cast():
    rng = np.random.default_rng(4)
    big = rng.standard_normal((6, 10, 8)).astype(np.float32)
    src = big[::2, 1:9, ::-1]  # strides (160, 8, -1), offset into the buffer
    shape = src.shape
    out = np.zeros(shape, np.float16)
    offset = (src.__array_interface__["data"][0] - big.__array_interface__["data"][0]) // 4
    # bound as MLX binds it: the whole buffer at an offset (the negative stride reads before the offset)
    flat = big.reshape(-1)
    view = mps_shim.Tensor.from_numpy(flat).view((flat.size - offset,), storage_offset=offset)
    run(library("copy"), "g3_copyfloat32float16", {0: view, 1: out, 3: i64(*strides_of(src))},
        [shape[2], shape[1], shape[0]], [shape[2], shape[1], shape[0]])
    np.testing.assert_array_equal(out, src.astype(np.float16))


@pytest.mark.parametrize("dtype", [np.float32, BF16])
def test_copy_general_general_nd(dtype):
    rng = np.random.default_rng(5)
    shape = (3, 2, 4, 5)
    src_full = rng.standard_normal((3, 2, 5, 4)).astype(np.float32).astype(dtype)
    src = src_full.transpose(0, 1, 3, 2)
    dst_full = np.zeros((3, 2, 4, 10), dtype)
    dst = dst_full[..., ::2]
    name = MLX_NAMES[np.dtype(dtype)]
    dim0 = -(-shape[-1] // 2)
    run(library("copy"), f"ggn2_copy{name}{name}",
        {0: src_full, 1: dst_full, 2: i32(*shape), 3: i64(*strides_of(src)), 4: i64(*strides_of(dst)), 5: i32(4)},
        [dim0, 4, 6], [dim0, 4, 6])
    np.testing.assert_array_equal(f32(dst), f32(src))
    assert not f32(dst_full[..., 1::2]).any()  # the gaps are untouched


def test_copy_scalar_fill():
    n = 37
    out = np.zeros(n, np.int32)
    run(library("copy"), "s_copyfloat32int32", {0: np.array([-3.75], np.float32), 1: out, 2: i32(n)}, [n], [n])
    np.testing.assert_array_equal(out, np.full(n, -3, np.int32))


# ---------------------------------------------------------------------------------------------
# reduce.metal (REDUCE_N_READS = REDUCE_N_WRITES = 4)

def test_all_reduce_sum_one_threadgroup():
    n = 3001
    x = np.random.default_rng(6).standard_normal(n).astype(np.float32)
    out = np.zeros(1, np.float32)
    group = -(-(-(-n // 4)) // 32) * 32
    run(library("reduce"), "all_reduce_sumfloat32", {0: x, 1: out, 2: i64(n), 3: i64(n)}, [group], [group])
    np.testing.assert_allclose(out[0], x.astype(np.float64).sum(), rtol=1e-5, atol=1e-4)


def test_all_reduce_two_passes_float16():
    # MLX's path for inputs over 4096 elements: 128 partial rows, then one SIMD-group over them
    n = 20000
    x = np.random.default_rng(7).random(n).astype(np.float16)
    lib = library("reduce")
    rows = 32 * 4
    row_size = -(-n // rows)
    group = -(-min(-(-row_size // 4), 1024) // 32) * 32
    partial = np.zeros(rows, np.float16)
    run(lib, "all_reduce_sumfloat16", {0: x, 1: partial, 2: i64(n), 3: i64(row_size)}, [group, rows], [group, 1])
    out = np.zeros(1, np.float16)
    run(lib, "all_reduce_sumfloat16", {0: partial, 1: out, 2: i64(rows), 3: i64(rows)}, [32], [32])
    want_partial = np.array([x[r * row_size:(r + 1) * row_size].astype(np.float64).sum() for r in range(rows)])
    np.testing.assert_allclose(f32(partial), want_partial, rtol=2e-3)
    np.testing.assert_allclose(float(out[0]), x.astype(np.float64).sum(), rtol=2e-3)


@pytest.mark.parametrize("dtype", [np.float32, BF16])
def test_row_reduce_simple_sum(dtype):
    rows, row_size = 10, 700  # 128 threads a row; four rows per threadgroup, the last group overlapping
    # small integers: every partial sum is exact in bfloat16 too (MLX accumulates in the input type)
    x = np.random.default_rng(8).integers(-4, 5, (rows, row_size)).astype(np.float32).astype(dtype)
    out = np.zeros(rows, dtype)
    name = MLX_NAMES[np.dtype(dtype)]
    run(library("reduce"), f"row_reduce_simple_sum{name}", {0: x, 1: out, 2: i64(row_size), 3: i64(rows)},
        [128, -(-rows // 4)], [128, 1])
    np.testing.assert_array_equal(f32(out), f32(x).sum(axis=1))


def test_row_reduce_looped_max_over_two_axes():
    # x (4, 3, 200) reduced over axes 0 and 2: rows of 200, four of them a result, strided 600
    x = np.random.default_rng(9).standard_normal((4, 3, 200)).astype(np.float32)
    out = np.zeros(3, np.float32)
    args = {0: x, 1: out, 2: i64(200), 3: i64(4), 4: i32(3), 5: i64(200), 6: i32(1), 7: i32(4), 8: i64(600),
            9: i32(1)}
    run(library("reduce"), "row_reduce_looped_1_reduce_maxfloat32", args, [32, 3], [32, 1])
    np.testing.assert_array_equal(out, x.max(axis=(0, 2)))


def test_row_reduce_small_prod_one_thread_per_output():
    # few rows per output: each thread walks its own rows (non_row_reductions <= 8)
    x = (np.random.default_rng(10).random((2, 5, 6)) + 0.5).astype(np.float32)
    out = np.zeros(5, np.float32)
    args = {0: x, 1: out, 2: i64(6), 3: i64(2), 4: i32(5), 5: i64(6), 6: i32(1), 7: i32(2), 8: i64(30), 9: i32(1)}
    run(library("reduce"), "row_reduce_small_1_reduce_prodfloat32", args, [5, 1], [5, 1])
    np.testing.assert_allclose(out, x.astype(np.float64).prod(axis=(0, 2)), rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# softmax.metal, layer_norm.metal, rms_norm.metal: one threadgroup a row, 32 * ceil(ceil(n / reads) / 32)
# threads (reads: 4, layer_norm 8), or 1024 threads looping over rows longer than the looped limit

def _row_group(axis_size, reads, looped_limit):
    if axis_size > looped_limit:
        return 1024
    return 32 * -(-(-(-axis_size // reads)) // 32)


def _softmax(x):
    x = x.astype(np.float64)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("kernel,dtype,axis_size,rtol", [
    ("block_softmax_float32", np.float32, 1000, 1e-5),
    ("block_softmax_float32", np.float32, 37, 1e-5),         # a partial SIMD-group's worth of reads
    ("looped_softmax_float32", np.float32, 5000, 1e-5),
    ("block_softmax_precise_float16", np.float16, 500, 2e-3),
    ("block_softmax_bfloat16", BF16, 300, 2e-2),
])
def test_softmax(kernel, dtype, axis_size, rtol):
    rows = 3
    x = (np.random.default_rng(11).standard_normal((rows, axis_size)) * 3).astype(np.float32).astype(dtype)
    out = np.zeros_like(x)
    group = _row_group(axis_size, 4, 4096)
    run(library("softmax"), kernel, {0: x, 1: out, 2: i32(axis_size)}, [rows * group], [group])
    want = _softmax(f32(x))
    np.testing.assert_allclose(f32(out), want, rtol=rtol, atol=rtol * want.max())


@pytest.mark.parametrize("kernel,dtype,axis_size", [
    ("block_logsumexp_float32", np.float32, 999),
    ("looped_logsumexp_float32", np.float32, 9000),
    ("block_logsumexp_float16", np.float16, 300),
])
def test_logsumexp(kernel, dtype, axis_size):
    looped_limit = 4096  # LOGSUMEXP_LOOPED_LIMIT of logsumexp.cpp
    rows = 3
    x = (np.random.default_rng(30).standard_normal((rows, axis_size)) * 4).astype(np.float32).astype(dtype)
    x[1, 7] = -np.inf  # a row with one -inf element still has a finite log-sum
    out = np.zeros(rows, dtype)
    group = _row_group(axis_size, 4, looped_limit)
    run(library("logsumexp"), kernel, {0: x, 1: out, 2: i32(axis_size)}, [rows * group], [group])
    xf = f32(x).astype(np.float64)
    m = xf.max(axis=1, keepdims=True)
    want = (m + np.log(np.exp(xf - m).sum(axis=1, keepdims=True)))[:, 0]
    np.testing.assert_allclose(f32(out), want, rtol=1e-5 if dtype == np.float32 else 2e-3)


# layer_norm_single_row sets thread_x[n:N_READS] with n = axis_size - lid * N_READS, negative for the
# threads past the row's end when the group is rounded up to whole SIMD-groups: a write before the
# private array (undefined behaviour in MLX's kernel; on the host it corrupts the thread's stack).
# The sizes here leave every thread a share (n >= 0) while the last share is partial.
@pytest.mark.parametrize("dtype,axis_size", [(np.float32, 1020), (np.float32, 7000), (BF16, 250)])
def test_layer_norm(dtype, axis_size):
    rows, eps = 3, 1e-5
    rng = np.random.default_rng(12)
    x = (rng.standard_normal((rows, axis_size)) * 2 + 1).astype(np.float32).astype(dtype)
    w = rng.standard_normal(axis_size).astype(np.float32).astype(dtype)
    b = np.array([0.25], np.float32).astype(dtype)  # one bias broadcast: b_stride 0
    out = np.zeros_like(x)
    looped = axis_size > 6656
    group = _row_group(axis_size, 4 if looped else 8, 6656)
    kernel = ("layer_norm_looped" if looped else "layer_norm") + MLX_NAMES[np.dtype(dtype)]
    run(library("layer_norm"), kernel,
        {0: x, 1: w, 2: b, 3: out, 4: f32bytes(eps), 5: struct.pack("<I", axis_size), 6: struct.pack("<I", 1),
         7: struct.pack("<I", 0)}, [rows * group], [group])
    xf = f32(x).astype(np.float64)
    normed = (xf - xf.mean(axis=1, keepdims=True)) / np.sqrt(xf.var(axis=1, keepdims=True) + eps)
    want = normed * f32(w) + 0.25
    tol = 1e-4 if dtype == np.float32 else 3e-2
    np.testing.assert_allclose(f32(out), want, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype,axis_size", [(np.float32, 1000), (np.float32, 5000), (np.float16, 256)])
def test_rms_norm(dtype, axis_size):
    rows, eps = 4, 1e-6
    rng = np.random.default_rng(13)
    x = rng.standard_normal((rows, axis_size)).astype(np.float32).astype(dtype)
    w = (rng.random(axis_size) + 0.5).astype(np.float32).astype(dtype)
    out = np.zeros_like(x)
    group = _row_group(axis_size, 4, 4096)
    kernel = ("rms_looped" if axis_size > 4096 else "rms") + MLX_NAMES[np.dtype(dtype)]
    run(library("rms_norm"), kernel,
        {0: x, 1: w, 2: out, 3: f32bytes(eps), 4: struct.pack("<I", axis_size), 5: struct.pack("<I", 1)},
        [rows * group], [group])
    xf = f32(x).astype(np.float64)
    want = xf / np.sqrt((xf ** 2).mean(axis=1, keepdims=True) + eps) * f32(w)
    tol = 1e-5 if dtype == np.float32 else 2e-3
    np.testing.assert_allclose(f32(out), want, rtol=tol, atol=tol)


# ---------------------------------------------------------------------------------------------
# rope.metal: function constants forward (1), traditional (2), hs_transpose (3)

def _rope(x, offsets, scale, inv_freq, traditional, forward=True):
    """x (B, N, T, D) rotated by angle scale * (t + offset[b]) * inv_freq[i] in pairs (i, i + D/2), or
    (2i, 2i + 1) when traditional; the inverse rotation when not forward."""
    x = x.astype(np.float64)
    d = x.shape[-1]
    t = np.arange(x.shape[2])[None, :, None] + np.asarray(offsets)[:, None, None]
    theta = (scale * t * inv_freq[None, None, :])[:, None]  # (B, 1, T, D/2)
    c, s = np.cos(theta), np.sin(theta)
    if not forward:
        s = -s
    i1 = np.arange(0, d, 2) if traditional else np.arange(d // 2)
    i2 = i1 + 1 if traditional else i1 + d // 2
    out = x.copy()
    out[..., i1] = x[..., i1] * c - x[..., i2] * s
    out[..., i2] = x[..., i1] * s + x[..., i2] * c
    return out


@pytest.mark.parametrize("traditional,forward", [(False, True), (True, True), (False, False)])
def test_rope(traditional, forward):
    B, N, T, D, base, scale = 2, 5, 6, 16, 10000.0, 0.5
    x = np.random.default_rng(14).standard_normal((B, N, T, D)).astype(np.float32)
    out = np.zeros_like(x)
    offsets = np.array([3, 7], np.int32)
    strides = i64(T * D, D, 1)
    grid = [D // 2, T, B * -(-N // 4)]  # four heads a thread, the last thread one
    run(library("rope"), "rope_float32",
        {0: x, 1: out, 2: offsets, 3: f32bytes(scale), 4: strides, 5: strides, 6: i64(1), 7: i32(N),
         10: f32bytes(np.log2(base))},
        grid, [D // 2, T, 2], constants={"forward": forward, "traditional": traditional, "hs_transpose": False})
    inv_freq = base ** (-np.arange(D // 2) / (D // 2))
    np.testing.assert_allclose(out, _rope(x, offsets, scale, inv_freq, traditional, forward), rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("dtype", [np.float16, BF16])
def test_rope_single_with_freqs(dtype):
    # one position (T == 1) for all heads: rope_single_freqs, the frequencies given
    B, N, D = 1, 3, 8
    x = np.random.default_rng(15).standard_normal((B, N, 1, D)).astype(np.float32).astype(dtype)
    out = np.zeros_like(x)
    freqs = np.array([1.0, 4.0, 16.0, 64.0], np.float32)
    run(library("rope"), f"rope_single_freqs_{MLX_NAMES[np.dtype(dtype)]}",
        {0: x, 1: out, 2: np.array([5], np.int32), 3: f32bytes(1.0), 4: i64(D), 10: freqs, 11: i64(1)},
        [D // 2, B * N], [D // 2, B * N], constants={"forward": True, "traditional": False, "hs_transpose": False})
    want = _rope(f32(x), [5], 1.0, 1 / freqs.astype(np.float64), False)
    np.testing.assert_allclose(f32(out), want, rtol=1e-2, atol=1e-2)


# ---------------------------------------------------------------------------------------------
# arg_reduce.metal: one threadgroup an output, four reads a thread

def _arg_reduce(kernel, x, axis):
    axis_size = x.shape[axis]
    shape = [s for i, s in enumerate(x.shape) if i != axis]
    in_strides = [s for i, s in enumerate(strides_of(x)) if i != axis]
    out = np.zeros(shape, np.uint32)
    group = 32 * -(-min(-(-axis_size // 4), 1024) // 32)
    run(library("arg_reduce"), kernel,
        {0: x, 1: out, 2: i32(*shape), 3: i64(*in_strides), 4: i64(*strides_of(out)), 5: i64(len(shape)),
         6: i64(strides_of(x)[axis]), 7: i64(axis_size)},
        [group, out.size], [group, 1])
    return out


def test_argmax_strided_axis():
    x = np.random.default_rng(16).standard_normal((3, 700, 5)).astype(np.float32)
    np.testing.assert_array_equal(_arg_reduce("argmax_float32", x, 1), x.argmax(axis=1))


@pytest.mark.parametrize("dtype", [np.int16, np.float16])
def test_argmin_ties_take_the_first(dtype):
    x = np.random.default_rng(17).integers(-3, 4, (4, 300)).astype(dtype)  # many equal minima a row
    name = "int16" if dtype == np.int16 else "float16"
    np.testing.assert_array_equal(_arg_reduce(f"argmin_{name}", x, 1), x.argmin(axis=1))


# ---------------------------------------------------------------------------------------------
# scan.metal: contig_scan_* (one threadgroup a row), strided_scan_* (32 x 32 tiles of the strided axis)

def _contig_group(size, reads=4):
    if size <= reads * 1024:
        return 32 * -(-size // (reads * 32))
    if size <= reads * 2048:
        return 32 * -(-(size // 2) // (reads * 32))
    return 1024


@pytest.mark.parametrize("kernel,size", [
    ("contig_scan_inclusive_sum_float32_float32", 1000),
    ("contig_scan_exclusive_sum_int32_int32", 5000),       # more than one pass of the threadgroup over the row
    ("contig_scan_reverse_inclusive_max_float32_float32", 300),
    ("contig_scan_reverse_exclusive_sum_int32_int32", 77),
])
def test_contiguous_scan(kernel, size):
    rows = 3
    rng = np.random.default_rng(18)
    is_int = "int32" in kernel
    x = rng.integers(-50, 50, (rows, size)).astype(np.int32) if is_int else rng.standard_normal((rows, size)).astype(
        np.float32)
    out = np.zeros_like(x)
    group = _contig_group(size)
    run(library("scan"), kernel, {0: x, 1: out, 2: i64(size)}, [group, rows], [group, 1])
    reverse, exclusive = "reverse" in kernel, "exclusive" in kernel
    src = x[:, ::-1] if reverse else x
    if "max" in kernel:
        want = np.maximum.accumulate(src, axis=1)
    else:
        want = np.cumsum(src.astype(np.float64), axis=1).astype(x.dtype)
    if exclusive:
        want = np.concatenate([np.zeros((rows, 1), x.dtype), want[:, :-1]], axis=1)
    if reverse:
        want = want[:, ::-1]
    if is_int:
        np.testing.assert_array_equal(out, want)
    else:
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float32, BF16])
def test_strided_scan_cumsum(dtype):
    # x (2, 50, 40) scanned along axis 1 (stride 40: two 32-wide blocks, the second partial)
    x = np.random.default_rng(19).integers(-3, 4, (2, 50, 40)).astype(np.float32).astype(dtype)
    out = np.zeros_like(x)
    size, stride = 50, 40
    blocks = -(-stride // 32)
    name = MLX_NAMES[np.dtype(dtype)]
    run(library("scan"), f"strided_scan_inclusive_sum_{name}_{name}",
        {0: x, 1: out, 2: i64(size), 3: i64(stride), 4: i64(blocks)}, [256, 2 * blocks], [256, 1])
    np.testing.assert_array_equal(f32(out), np.cumsum(f32(x), axis=1))  # small integers: exact in bfloat16


# ---------------------------------------------------------------------------------------------
# sort.metal: one threadgroup of bn threads sorts a row of up to bn * 4 elements (merge sort in
# threadgroup memory); NaN sorts last

def _block_bn(size):
    need = -(-size // 4)
    return next(bn for bn in (32, 64, 128, 256, 512) if bn >= need)


def test_block_sort_float32_with_nans():
    rows, size = 3, 200
    x = np.random.default_rng(20).standard_normal((rows, size)).astype(np.float32)
    x[0, [5, 77]] = np.nan
    out = np.zeros_like(x)
    bn = _block_bn(size)
    run(library("sort"), f"c_block_sort_float32_float32_bn{bn}_tn4",
        {0: x, 1: out, 2: i32(size), 3: i32(1), 4: i32(1), 5: i32(size), 6: i32(size)}, [bn, rows], [bn, 1])
    np.testing.assert_array_equal(out, np.sort(x, axis=1))  # numpy also puts NaN last


@pytest.mark.parametrize("dtype", [np.int32, BF16])
def test_arg_block_sort_is_stable(dtype):
    rows, size = 2, 500
    x = np.random.default_rng(21).integers(-20, 20, (rows, size)).astype(np.float32).astype(dtype)
    out = np.zeros((rows, size), np.uint32)
    bn = _block_bn(size)
    name = "int32" if dtype == np.int32 else "bfloat16"
    run(library("sort"), f"carg_block_sort_{name}_uint32_bn{bn}_tn4",
        {0: x, 1: out, 2: i32(size), 3: i32(1), 4: i32(1), 5: i32(size), 6: i32(size)}, [bn, rows], [bn, 1])
    np.testing.assert_array_equal(out, np.argsort(f32(x), axis=1, kind="stable"))


def test_block_sort_non_contiguous_axis():
    # sorting axis 1 of x (4, 90, 3): rows strided by 3, segments at (270, 1)
    x = np.random.default_rng(22).standard_normal((4, 90, 3)).astype(np.float16)
    out = np.zeros_like(x)
    bn = _block_bn(90)
    run(library("sort"), f"nc_block_sort_float16_float16_bn{bn}_tn4",
        {0: x, 1: out, 2: i32(90), 3: i32(3), 4: i32(3), 5: i32(2), 6: i32(4, 3), 7: i64(270, 1), 8: i64(270, 1)},
        [bn, 12], [bn, 1])
    np.testing.assert_array_equal(out, np.sort(x, axis=1))


# ---------------------------------------------------------------------------------------------
# gemv.metal: out = mat @ vec ("gemv_", mat row-major M x K) or vec @ mat ("gemv_t_", mat K x N),
# optionally alpha * out + beta * bias (axpby); blocks as MLX's gemv_axbpy picks them

def _gemv(kernel, mat, vec, out, in_len, out_len, ld, per_group, group, batch, bias=None, alpha=1.0, beta=0.0,
          bias_stride=1):
    args = {0: mat, 1: vec, 3: out, 4: i32(in_len), 5: i32(out_len), 6: i32(ld), 9: i32(1), 10: i32(batch),
            11: i64(vec.shape[-1] if vec.ndim > 1 else 0), 12: i64(mat[0].size if mat.ndim > 2 else 0)}
    # Without axpby MLX leaves the bias arguments unbound (the kernel never reads them); every
    # binding must be set here, so they get placeholders.
    args.update({2: bias if bias is not None else np.zeros(1, out.dtype), 7: f32bytes(alpha), 8: f32bytes(beta),
                 13: i64(0), 14: i32(bias_stride)})
    run(library("gemv"), kernel, args, groups([-(-out_len // per_group), 1, batch], group), group)


def test_gemv_batched_float32():
    B, M, K = 2, 300, 200
    rng = np.random.default_rng(23)
    mat = rng.standard_normal((B, M, K)).astype(np.float32)
    vec = rng.standard_normal((B, K)).astype(np.float32)
    out = np.zeros((B, M), np.float32)
    _gemv("gemv_float32_bm4_bn1_sm1_sn32_tm4_tn4_nc0_axpby0", mat, vec, out, K, M, K, per_group=16,
          group=[32, 1, 4], batch=B)
    want = np.einsum("bmk,bk->bm", mat.astype(np.float64), vec)
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4)


@pytest.mark.checked_reports(reason="MLX's gemv shuffles down from lanes that returned early (rows past the end): "
                                     "initcheck reports the inactive-lane reads (their sums are not stored)")
def test_gemv_small_k_axpby_float16():
    # K <= 64: eight SIMD-groups of 4 x 8 threads; out = 0.5 * (mat @ vec) + 2 * bias
    M, K = 50, 40
    rng = np.random.default_rng(24)
    mat = rng.standard_normal((M, K)).astype(np.float16)
    vec = rng.standard_normal(K).astype(np.float16)
    bias = rng.standard_normal(M).astype(np.float16)
    out = np.zeros(M, np.float16)
    _gemv("gemv_float16_bm1_bn1_sm8_sn4_tm4_tn4_nc0_axpby1", mat, vec, out, K, M, K, per_group=32,
          group=[32, 1, 1], batch=1, bias=bias, alpha=0.5, beta=2.0)
    want = 0.5 * (mat.astype(np.float64) @ vec.astype(np.float64)) + 2.0 * bias
    np.testing.assert_allclose(f32(out), want, rtol=1e-2, atol=2e-2)


@pytest.mark.parametrize("dtype", [np.float32, BF16])
def test_gemv_transposed(dtype):
    K, N = 130, 300
    rng = np.random.default_rng(25)
    mat = rng.standard_normal((K, N)).astype(np.float32).astype(dtype)
    vec = rng.standard_normal(K).astype(np.float32).astype(dtype)
    out = np.zeros(N, dtype)
    name = MLX_NAMES[np.dtype(dtype)]
    _gemv(f"gemv_t_{name}_bm1_bn2_sm8_sn4_tm4_tn4_nc0_axpby0", mat, vec, out, K, N, N, per_group=32,
          group=[32, 2, 1], batch=1)
    want = f32(vec).astype(np.float64) @ f32(mat)
    tol = 1e-4 if dtype == np.float32 else 5e-2
    np.testing.assert_allclose(f32(out), want, rtol=tol, atol=tol * 4)


# ---------------------------------------------------------------------------------------------
# steel_gemm_fused.metal: D = A @ B (A M x K, or K x M stored when "t"; B K x N, or N x K),
# optionally alpha * (A @ B) + beta * C; SIMD-group matrices, function constants for batching,
# the C source and alignment (MLX's steel_matmul_regular_axpby)

GEMM_PARAMS = np.dtype([(n, np.int32) for n in ("M", "N", "K", "lda", "ldb", "ldd", "tiles_n", "tiles_m")] +
                       [(n, np.int64) for n in ("batch_stride_a", "batch_stride_b", "batch_stride_d")] +
                       [(n, np.int32) for n in ("swizzle_log", "gemm_k_iterations_aligned", "batch_ndim")],
                       align=True)
ADDMM_PARAMS = np.dtype([("ldc", np.int32), ("fdc", np.int32), ("batch_stride_c", np.int64), ("alpha", np.float32),
                         ("beta", np.float32)], align=True)


def _steel_gemm(a, b, trans_a, trans_b, out_dtype, tile=(32, 32, 16, 2, 2), c=None, alpha=1.0, beta=0.0):
    """a, b: (batch, rows, cols) as stored; returns D (batch, M, N)."""
    bm, bn, bk, wm, wn = tile
    batch = a.shape[0]
    M, K = (a.shape[2], a.shape[1]) if trans_a else (a.shape[1], a.shape[2])
    N = b.shape[1] if trans_b else b.shape[2]
    d = np.zeros((batch, M, N), out_dtype)
    tn, tm = -(-N // bn), -(-M // bm)
    swizzle_log = 0 if tm <= 3 else 1
    params = np.zeros((), GEMM_PARAMS)
    for name, value in dict(M=M, N=N, K=K, lda=a.shape[2], ldb=b.shape[2], ldd=N, tiles_n=tn, tiles_m=tm,
                            batch_stride_a=a[0].size, batch_stride_b=b[0].size, batch_stride_d=M * N,
                            swizzle_log=swizzle_log, gemm_k_iterations_aligned=K // bk, batch_ndim=1).items():
        params[name] = value
    use_out_source = c is not None
    constants = {"has_batch": False, "use_out_source": use_out_source,
                 "do_axpby": use_out_source and (alpha != 1.0 or beta != 1.0),
                 "align_M": M % bm == 0, "align_N": N % bn == 0, "align_K": K % bk == 0}
    args = {0: a, 1: b, 3: d, 4: params.tobytes()}
    if use_out_source:
        addmm = np.zeros((), ADDMM_PARAMS)
        addmm["ldc"], addmm["fdc"], addmm["batch_stride_c"] = c.shape[2], 1, c[0].size
        addmm["alpha"], addmm["beta"] = alpha, beta
        args.update({2: c, 5: addmm.tobytes()})
    t = 1 << swizzle_log
    name = MLX_NAMES[np.dtype(a.dtype)]
    kernel = (f"steel_gemm_fused_{'t' if trans_a else 'n'}{'t' if trans_b else 'n'}_{name}_{name}"
              f"_bm{bm}_bn{bn}_bk{bk}_wm{wm}_wn{wn}")
    group = [32, wn, wm]
    run(library("steel/gemm/kernels/steel_gemm_fused"), kernel, args, groups([tn * t, -(-tm // t), batch], group), group,
        constants=constants)
    return d


def _matmul(a, b, trans_a, trans_b):
    a64, b64 = f32(a).astype(np.float64), f32(b).astype(np.float64)
    return (a64.transpose(0, 2, 1) if trans_a else a64) @ (b64.transpose(0, 2, 1) if trans_b else b64)


def test_steel_gemm_unaligned_batched_float32():
    rng = np.random.default_rng(26)
    a = rng.standard_normal((2, 70, 50)).astype(np.float32)
    b = rng.standard_normal((2, 50, 90)).astype(np.float32)
    d = _steel_gemm(a, b, False, False, np.float32)
    np.testing.assert_allclose(d, _matmul(a, b, False, False), rtol=1e-4, atol=1e-4)


def test_steel_gemm_aligned_transposed_swizzled_float32():
    # 128 x 64 by 32 x 32 tiles: four tile rows, so tiles are swizzled in pairs (swizzle_log 1)
    rng = np.random.default_rng(27)
    a = rng.standard_normal((1, 32, 128)).astype(np.float32)  # A^T stored: K x M
    b = rng.standard_normal((1, 64, 32)).astype(np.float32)   # B^T stored: N x K
    d = _steel_gemm(a, b, True, True, np.float32)
    np.testing.assert_allclose(d, _matmul(a, b, True, True), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float16, BF16])
def test_steel_gemm_addmm_half_types(dtype):
    # D = 0.5 * (A @ B^T) + 2 * C, in 64 x 32 tiles of 4 x 1 SIMD-groups
    rng = np.random.default_rng(28)
    a = rng.standard_normal((1, 40, 24)).astype(np.float32).astype(dtype)
    b = rng.standard_normal((1, 36, 24)).astype(np.float32).astype(dtype)
    c = rng.standard_normal((1, 40, 36)).astype(np.float32).astype(dtype)
    d = _steel_gemm(a, b, False, True, dtype, tile=(64, 32, 8, 4, 1), c=c, alpha=0.5, beta=2.0)
    want = 0.5 * _matmul(a, b, False, True) + 2.0 * f32(c)
    tol = 1e-2 if dtype == np.float16 else 5e-2
    np.testing.assert_allclose(f32(d), want, rtol=tol, atol=tol * 2)


# ---------------------------------------------------------------------------------------------
# random.metal: threefry2x32 random bits, two 32-bit words a thread (rbitsc: contiguous keys)

def _threefry2x32(key, count):
    """The kernel's hash of one counter pair under one key (numpy uint32 arithmetic wraps)."""
    rotations = [[13, 15, 26, 6], [17, 29, 16, 24]]
    ks = [np.uint32(key[0]), np.uint32(key[1]), np.uint32(key[0] ^ key[1] ^ 0x1BD11BDA)]
    x, y = np.uint32(count[0]) + ks[0], np.uint32(count[1]) + ks[1]
    for i in range(5):
        for r in rotations[i % 2]:
            x = x + y
            y = (y << np.uint32(r)) | (y >> np.uint32(32 - r))
            y ^= x
        x = x + ks[(i + 1) % 3]
        y = y + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x, y


@pytest.mark.skip(reason="random.metal returns `union rbits { uint2 val; uchar4 bytes[2]; }` by value: the host "
                         "engine's vector types have a non-trivial copy constructor (their swizzle members), so a "
                         "union holding a vector has a deleted copy constructor in C++")
@pytest.mark.parametrize("bytes_per_key", [24, 22, 18])  # whole words; a partial last word; an odd count
def test_random_bits(bytes_per_key):
    keys = np.array([[0, 1], [12345, 678], [0xDEADBEEF, 0x01234567]], np.uint32)
    words = -(-bytes_per_key // 4)
    half, odd = words // 2, words % 2
    out = np.zeros((len(keys), bytes_per_key), np.int8)
    rows = half + odd
    with np.errstate(over="ignore"):
        want = np.zeros((len(keys), 2 * rows), np.uint32)
        for k, key in enumerate(keys):
            for y in range(rows):
                last = odd and y == half
                want[k, y], second = _threefry2x32(key, (y, 0 if last else y + rows))
                if not last:
                    want[k, y + rows] = second
    run(library("random"), "rbitsc",
        {0: keys, 1: out, 2: struct.pack("<?", bool(odd)), 3: struct.pack("<Q", bytes_per_key)},
        [len(keys), rows], [len(keys), rows])
    np.testing.assert_array_equal(out.view(np.uint8), want.view(np.uint8)[:, :bytes_per_key])


# ---------------------------------------------------------------------------------------------
# steel_gemm_masked.metal: D = (A * lhs_mask) @ (B * rhs_mask) * out_mask with one mask value per
# 32 x 32 block (block_masked_gemm; two templates of that name, overloaded by template parameters)

@pytest.mark.parametrize("out_mask_kind,op_mask_kind,M,N,K", [
    ("bool_", "float32", 64, 96, 64),     # boolean output blocks, multiplicative operand blocks
    ("nomask", "bool_", 70, 40, 48),      # boolean operand blocks only; unaligned M, N and K
])
def test_block_masked_gemm(out_mask_kind, op_mask_kind, M, N, K):
    bs = 32
    rng = np.random.default_rng(29)
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    tm, tn, tk = -(-M // bs), -(-N // bs), -(-K // bs)
    mask = {"bool_": lambda s: rng.random(s) < 0.6, "float32": lambda s: rng.uniform(0.5, 2, s).astype(np.float32)}
    out_mask = mask[out_mask_kind]((tm, tn)) if out_mask_kind != "nomask" else None
    lhs_mask, rhs_mask = mask[op_mask_kind]((tm, tk)), mask[op_mask_kind]((tk, tn))
    d = np.full((M, N), np.nan, np.float32)
    params = np.zeros((), GEMM_PARAMS)
    for name, value in dict(M=M, N=N, K=K, lda=K, ldb=N, ldd=N, tiles_n=tn, tiles_m=tm, batch_stride_d=M * N,
                            gemm_k_iterations_aligned=K // 16, batch_ndim=1).items():
        params[name] = value
    strides = [] if out_mask is None else [1, tn]
    strides += [1, tk, 1, tn]
    placeholder = np.zeros(1, np.bool_)
    args = {0: a, 1: b, 3: d, 4: params.tobytes(), 6: i32(1), 7: i64(0, 0, 0, 0, 0),
            10: out_mask if out_mask is not None else placeholder, 11: lhs_mask, 12: rhs_mask, 13: i32(*strides)}
    mn_aligned, k_aligned = "t" if M % bs == 0 and N % bs == 0 else "n", "t" if K % 16 == 0 else "n"
    kernel = (f"steel_gemm_block_outmask_{out_mask_kind}_opmask_{op_mask_kind}_nn_float32_float32"
              f"_bm32_bn32_bk16_wm2_wn2_MN_{mn_aligned}aligned_K_{k_aligned}aligned")
    run(library("steel/gemm/kernels/steel_gemm_masked"), kernel, args, groups([tn, tm, 1], [32, 2, 2]), [32, 2, 2])
    expand = lambda m, rows, cols: np.kron(m.astype(np.float64), np.ones((bs, bs)))[:rows, :cols]  # noqa: E731
    want = (a * expand(lhs_mask, M, K)) @ (b * expand(rhs_mask, K, N))
    if out_mask is not None:
        want = want * expand(out_mask, M, N)
    np.testing.assert_allclose(d, want, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------
# scaled_dot_product_attention.metal: sdpa_vector, one threadgroup of 32 SIMD-groups per query
# (each SIMD-group takes every 32nd key; an online softmax, then the groups combine)

def _attention(q, k, v, scale, keep=None):
    """softmax(scale * q k^T) v per head, keys grouped over query heads (GQA); keep: (Hq, Lq, N)."""
    gqa = q.shape[1] // k.shape[1]
    kk, vv = np.repeat(k, gqa, axis=1).astype(np.float64), np.repeat(v, gqa, axis=1).astype(np.float64)
    s = scale * np.einsum("bhqd,bhkd->bhqk", q.astype(np.float64), kk)
    if keep is not None:
        s = np.where(keep, s, -np.inf)
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    return np.einsum("bhqk,bhkd->bhqd", p / p.sum(axis=-1, keepdims=True), vv)


@pytest.mark.parametrize("dtype,causal", [(np.float32, False), (np.float32, True), (np.float16, False)])
def test_sdpa_vector(dtype, causal):
    B, Hq, Hkv, Lq, N, D = 1, 4, 2, 2, 100, 64
    rng = np.random.default_rng(31)
    q = rng.standard_normal((B, Hq, Lq, D)).astype(dtype)
    k = rng.standard_normal((B, Hkv, N, D)).astype(dtype)
    v = rng.standard_normal((B, Hkv, N, D)).astype(dtype)
    out = np.zeros((B, Hq, Lq, D), dtype)
    scale = 1 / np.sqrt(D)
    name = {np.float32: "float", np.float16: "float16_t"}[dtype]
    run(library("scaled_dot_product_attention"), f"sdpa_vector_{name}_{D}_{D}",
        {0: q, 1: k, 2: v, 3: out, 4: i32(Hq // Hkv), 5: i32(N), 6: i64(N * D), 7: i64(D), 8: i64(N * D), 9: i64(D),
         10: f32bytes(scale)},
        groups([B * Hq, Lq, 1], [1024, 1, 1]), [1024, 1, 1],
        constants={"has_mask": False, "query_transposed": False, "do_causal": causal, "bool_mask": False,
                   "float_mask": False, "has_sinks": False})
    keep = None
    if causal:  # query i of Lq sees the keys up to N - Lq + i
        keep = np.arange(N)[None, :] <= (N - Lq + np.arange(Lq))[:, None]
    want = _attention(q, k, v, scale, keep)
    tol = 1e-4 if dtype == np.float32 else 5e-3
    np.testing.assert_allclose(f32(out), want, rtol=tol, atol=tol)
