"""ggml's Metal kernels (ggml-metal.metal, as llama.cpp ships it) against numpy references
written from each kernel's semantics. Needs a ggml checkout (tests/third_party.py); the
argument structs are packed with cffi from ggml's own ggml-metal-impl.h."""
import os

import numpy as np
import pytest

import mps_shim
from third_party import c_structs, ggml_dir


@pytest.fixture(scope="module")
def ggml():
    root = ggml_dir()
    metal = os.path.join(root, "src", "ggml-metal")
    import cffi

    ffi = cffi.FFI()
    with open(os.path.join(metal, "ggml-metal-impl.h")) as f:
        ffi.cdef(c_structs(f.read()))
    with open(os.path.join(metal, "ggml-metal.metal")) as f:
        library = mps_shim.ShaderLibrary(f.read(), include_dirs=[metal, os.path.join(root, "src")])
    return library, ffi


def _args(ffi, struct, **fields):
    p = ffi.new(struct + "*")
    for name, value in fields.items():
        if isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                getattr(p, name)[i] = v
        else:
            setattr(p, name, value)
    return bytes(ffi.buffer(p))


def _run(fn, buffers, args, groups, group_size, threadgroup_memory=None):
    def encode(f):
        f.start_encoding()
        f.set_arg_bytes(0, args)
        for i, b in enumerate(buffers, start=1):
            f.set_arg_tensor(i, b)
        for index, nbytes in (threadgroup_memory or {}).items():
            f.set_threadgroup_memory_length(index, nbytes)
        f.dispatch([g * s for g, s in zip(groups, group_size)], list(group_size))
    fn.run_command_block(encode)


def test_rms_norm_f32(ggml):
    library, ffi = ggml
    rows, n, eps = 6, 1000, 1e-6
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, n)).astype(np.float32)
    y = np.zeros_like(x)
    nb1 = n * 4
    args = _args(ffi, "ggml_metal_kargs_norm", ne00=n, ne00_t=n, nb1=nb1, nb2=nb1 * rows, nb3=nb1 * rows, eps=eps,
                 nef1=[rows, 1, 1], nef2=[1, 1, 1], nef3=[1, 1, 1], nbf1=[nb1, 0, 0], nbf2=[nb1 * rows, 0, 0],
                 nbf3=[nb1 * rows, 0, 0])
    fn = library.get_kernel_function("kernel_rms_norm_f32")
    _run(fn, [x, x, x, y], args, groups=(rows, 1, 1), group_size=(256, 1, 1), threadgroup_memory={0: 32 * 4})
    expected = x / np.sqrt((x.astype(np.float64) ** 2).mean(axis=1, keepdims=True) + eps)
    assert np.allclose(y, expected, rtol=1e-5, atol=1e-6)


def test_cpy_f32_f16(ggml):
    library, ffi = ggml
    rows, n, nth = 5, 300, 128
    rng = np.random.default_rng(1)
    x = rng.standard_normal((rows, n)).astype(np.float32) * 100
    y = np.zeros((rows, n), np.float16)
    args = _args(ffi, "ggml_metal_kargs_cpy", nk0=n, ne00=n, ne01=rows, ne02=1, ne03=1, nb00=4, nb01=4 * n,
                 nb02=4 * n * rows, nb03=4 * n * rows, ne0=n, ne1=rows, ne2=1, ne3=1, nb0=2, nb1=2 * n,
                 nb2=2 * n * rows, nb3=2 * n * rows)
    fn = library.get_kernel_function("kernel_cpy_f32_f16")
    nw0 = -(-n // nth)
    _run(fn, [x, y], args, groups=(rows * nw0, 1, 1), group_size=(nth, 1, 1))
    assert np.array_equal(y, x.astype(np.float16))


def _bin_args(ffi, a, b, out):
    """ggml_metal_kargs_bin for contiguous 2-D a (rows x n), b broadcast along rows (1 x n or rows x n)."""
    rows, n = a.shape
    es = a.itemsize
    return _args(ffi, "ggml_metal_kargs_bin", ne00=n, ne01=rows, ne02=1, ne03=1, nb00=es, nb01=es * n,
                 nb02=es * n * rows, nb03=es * n * rows, ne10=b.shape[1], ne11=b.shape[0], ne12=1, ne13=1,
                 nb10=es, nb11=es * b.shape[1], nb12=es * b.size, nb13=es * b.size, ne0=n, ne1=rows, ne2=1, ne3=1,
                 nb0=es, nb1=es * n, nb2=es * n * rows, nb3=es * n * rows, offs=0, o1=[0] * 8)


@pytest.mark.parametrize("op, name, reference", [(0, "add", np.add), (1, "sub", np.subtract),
                                                 (2, "mul", np.multiply), (3, "div", np.divide)])
@pytest.mark.parametrize("dtype, kernel", [(np.float32, "kernel_bin_fuse_f32_f32_f32"),
                                           (np.float16, "kernel_bin_fuse_f16_f16_f16")])
def test_binary_ops_with_row_broadcast(ggml, op, name, reference, dtype, kernel):
    # ggml picks the operation with function constants (FC_BIN + 0..3: op, fused count, row/column broadcast)
    library, ffi = ggml
    rows, n = 4, 200
    rng = np.random.default_rng(op)
    a = rng.uniform(0.5, 2, (rows, n)).astype(dtype)
    b = rng.uniform(0.5, 2, (1, n)).astype(dtype)
    out = np.zeros_like(a)
    fn = library.get_kernel_function(kernel, constants={"FC_bin_op": op, "FC_bin_f": 1, "FC_bin_rb": False,
                                                        "FC_bin_cb": False})
    _run(fn, [a, b, out], _bin_args(ffi, a, b, out), groups=(rows, 1, 1), group_size=(64, 1, 1))
    expected = reference(a, b)  # numpy in the array's own dtype
    assert np.allclose(out.astype(np.float32), expected.astype(np.float32), rtol=1e-3 if dtype == np.float16 else 1e-6)


@pytest.mark.parametrize("m, n, k", [(64, 32, 64), (128, 64, 96)])
def test_mul_mm_f32_on_simdgroup_matrices(ggml, m, n, k):
    # ggml's matrix-matrix product: dst[i1][i0] = sum_k src0[i0][k] * src1[i1][k], tiles of 64x32 in
    # threadgroup memory (as half), 8x8 SIMD-group matrix products, 4 SIMD-groups per threadgroup.
    library, ffi = ggml
    rng = np.random.default_rng(m + n + k)
    src0 = rng.standard_normal((m, k)).astype(np.float32)
    src1 = rng.standard_normal((n, k)).astype(np.float32)
    dst = np.zeros((n, m), np.float32)
    args = _args(ffi, "ggml_metal_kargs_mul_mm", ne00=k, ne02=1, nb01=4 * k, nb02=4 * k * m, nb03=4 * k * m, ne12=1,
                 nb10=4, nb11=4 * k, nb12=4 * k * n, nb13=4 * k * n, ne0=m, ne1=n, r2=1, r3=1)
    fn = library.get_kernel_function("kernel_mul_mm_f32_f32", constants={
        "FC_mul_mm_bc_inp": False, "FC_mul_mm_bc_out": False, "FC_mul_mm_ne12": 1, "FC_mul_mm_ne13": 1,
        "FC_mul_mm_r2": 1, "FC_mul_mm_r3": 1})
    _run(fn, [src0, src1, dst], args, groups=(-(-n // 32), -(-m // 64), 1), group_size=(32, 4, 1),
         threadgroup_memory={0: 4096 + 2048})
    # the kernel stages both operands in threadgroup memory as half
    expected = src1.astype(np.float16).astype(np.float64) @ src0.astype(np.float16).astype(np.float64).T
    assert np.allclose(dst, expected, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("n, threads", [(100, 32), (1000, 256)])
def test_soft_max_f32(ggml, n, threads):
    # scaled softmax of each row, with a mask row added (src1; src2, the sinks, absent: bound to src0)
    library, ffi = ggml
    rows = 3
    rng = np.random.default_rng(n)
    x = rng.standard_normal((rows, n)).astype(np.float32)
    mask = np.where(rng.random(n) < 0.2, -np.inf, 0.0).astype(np.float32)[None, :]
    y = np.zeros_like(x)
    scale = 0.7
    args = _args(ffi, "ggml_metal_kargs_soft_max", ne00=n, ne01=rows, ne02=1, nb01=4 * n, nb02=4 * n * rows,
                 nb03=4 * n * rows, ne11=1, ne12=1, ne13=1, nb11=0, nb12=0, nb13=0, nb1=4 * n, nb2=4 * n * rows,
                 nb3=4 * n * rows, scale=scale, max_bias=0.0, m0=0.0, m1=0.0, n_head_log2=0)
    fn = library.get_kernel_function("kernel_soft_max_f32")
    _run(fn, [x, mask, x, y], args, groups=(rows, 1, 1), group_size=(threads, 1, 1), threadgroup_memory={0: 32 * 4})
    z = x.astype(np.float64) * scale + mask
    expected = np.exp(z - z.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    assert np.allclose(y, expected, rtol=1e-5, atol=1e-7)
