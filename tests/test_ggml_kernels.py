"""ggml's Metal kernels (ggml-metal.metal, as llama.cpp ships it) against numpy references
written from each kernel's semantics. Needs a ggml checkout (tests/third_party.py); the
argument structs are packed with cffi from ggml's own ggml-metal-impl.h."""
import os

import numpy as np
import pytest

import mps_shim
from third_party import c_structs, ggml_dir, without_cuda_check


@pytest.fixture(scope="module")
def ggml():
    root = ggml_dir()
    metal = os.path.join(root, "src", "ggml-metal")
    import cffi

    ffi = cffi.FFI()
    with open(os.path.join(metal, "ggml-metal-impl.h")) as f:
        ffi.cdef(c_structs(f.read()))
    with open(os.path.join(metal, "ggml-metal.metal")) as f:
        with without_cuda_check():
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


# --- unary ops (kernel_unary_*: one kernel, the operation picked by function constant FC_unary_op) ---

def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * x * (1 + 0.044715 * x * x)))


def _gelu_erf(x):
    from math import erf
    return 0.5 * x * (1 + np.vectorize(erf)(x / np.sqrt(2)))


# op codes: OP_UNARY_NUM_* of ggml-metal-impl.h; `args` are the ggml_metal_kargs_unary fields the op reads
_UNARY = {
    "scale": (10, {"scale": 1.7, "bias": -0.3}, lambda x: 1.7 * x - 0.3),
    "clamp": (12, {"min": -0.5, "max": 0.8}, lambda x: np.clip(x, -0.5, 0.8)),
    "sqr": (13, {}, lambda x: x * x),
    "leaky_relu": (18, {"slope": 0.1}, lambda x: np.where(x > 0, x, 0.1 * x)),
    "tanh": (100, {}, np.tanh),
    "relu": (101, {}, lambda x: np.maximum(x, 0)),
    "sigmoid": (102, {}, lambda x: 1 / (1 + np.exp(-x))),
    "gelu": (103, {}, _gelu_tanh),
    "gelu_erf": (104, {}, _gelu_erf),
    "silu": (106, {}, lambda x: x / (1 + np.exp(-x))),
    "elu": (107, {}, lambda x: np.where(x > 0, x, np.expm1(x))),
    "hardswish": (112, {}, lambda x: x * np.clip(x / 6 + 0.5, 0, 1)),
    "softplus": (115, {}, lambda x: np.where(x > 20, x, np.log1p(np.exp(np.minimum(x, 20))))),
}


@pytest.mark.parametrize("op", sorted(_UNARY))
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_unary(ggml, op, dtype):
    _check_unary(ggml, op, dtype, vec=False, contiguous_count=True)


@pytest.mark.parametrize("op", ["scale", "gelu", "silu"])
@pytest.mark.parametrize("dtype, vec, contiguous_count", [(np.float32, True, True), (np.float16, True, True),
                                                          (np.float32, False, False), (np.float16, True, False)])
def test_unary_float4_and_row_dispatch(ggml, op, dtype, vec, contiguous_count):
    _check_unary(ggml, op, dtype, vec, contiguous_count)


def _check_unary(ggml, op, dtype, vec, contiguous_count):
    # FC_unary_cnt: ggml's small contiguous tensors run one thread per element (n threadgroups of 1);
    # otherwise rows of ne00 elements, nth threads per threadgroup (ggml_metal_op_unary)
    library, ffi = ggml
    code, params, reference = _UNARY[op]
    rows, n = 3, 200
    rng = np.random.default_rng(code)
    x = (rng.standard_normal((rows, n)) * 3).astype(dtype)
    y = np.zeros_like(x)
    es, w = x.itemsize, 4 if vec else 1
    ne0 = n // w
    args = _args(ffi, "ggml_metal_kargs_unary", ne00=ne0, ne01=rows, ne02=1, ne03=1, nb00=es, nb01=es * n,
                 nb02=es * n * rows, nb03=es * n * rows, ne0=ne0, ne1=rows, ne2=1, ne3=1, nb0=es, nb1=es * n,
                 nb2=es * n * rows, nb3=es * n * rows, **params)
    t = "f32" if dtype == np.float32 else "f16"
    name = f"kernel_unary_{t}_{t}" + ("_4" if vec else "")
    fn = library.get_kernel_function(name, constants={"FC_unary_op": code, "FC_unary_cnt": contiguous_count})
    if contiguous_count:
        _run(fn, [x, y], args, groups=(rows * ne0, 1, 1), group_size=(1, 1, 1))
    else:
        nth = min(ne0, 256)
        _run(fn, [x, y], args, groups=(-(-ne0 // nth) * rows, 1, 1), group_size=(nth, 1, 1))
    expected = reference(x.astype(np.float64))
    if dtype == np.float16:
        # computed in float, rounded once to half: within a half ulp or two of the rounded reference
        assert np.allclose(y.astype(np.float32), expected.astype(np.float16).astype(np.float32), rtol=2e-3,
                           atol=1e-4)
    else:
        assert np.allclose(y, expected, rtol=1e-5, atol=1e-6)


# --- ggml's block formats (ggml-common.h: block_q4_0, block_q8_0) and their quantizers (quantize_q*_0) ---

QK = 32
_Q8_0 = np.dtype([("d", "<f2"), ("qs", "i1", QK)])        # value = qs[j] * d
_Q4_0 = np.dtype([("d", "<f2"), ("qs", "u1", QK // 2)])   # value j < 16: (qs[j] & 15) - 8, j >= 16: (qs[j-16] >> 4) - 8; times d


def quantize_q8_0(x):
    """Rows of x (length a multiple of 32) as block_q8_0 bytes: d = amax/127, q = round(x/d) half away
    from zero, in float32 as the Metal quantizer computes it."""
    b = x.reshape(-1, QK).astype(np.float32)
    d = np.abs(b).max(axis=1) / np.float32(127)
    inv = np.divide(np.float32(1), d, out=np.zeros_like(d), where=d != 0)
    v = b * inv[:, None]
    blocks = np.empty(len(b), _Q8_0)
    blocks["d"] = d
    blocks["qs"] = np.sign(v) * np.floor(np.abs(v) + np.float32(0.5))
    return blocks.view(np.uint8).reshape(x.shape[:-1] + (-1,))


def quantize_q4_0(x):
    """Rows of x as block_q4_0 bytes: d = (the value of largest magnitude)/-8, q = min(15, trunc(x/d + 8.5))."""
    b = x.reshape(-1, QK).astype(np.float32)
    signed_max = b[np.arange(len(b)), np.abs(b).argmax(axis=1)]
    d = signed_max / np.float32(-8)
    inv = np.divide(np.float32(1), d, out=np.zeros_like(d), where=d != 0)
    q = np.minimum(15, np.trunc(b * inv[:, None] + np.float32(8.5))).astype(np.uint8)
    blocks = np.empty(len(b), _Q4_0)
    blocks["d"] = d
    blocks["qs"] = q[:, :QK // 2] | (q[:, QK // 2:] << 4)
    return blocks.view(np.uint8).reshape(x.shape[:-1] + (-1,))


def dequantize(kind, data, n):
    """The float32 values of rows of block bytes (n values a row)."""
    blocks = np.ascontiguousarray(data).reshape(-1).view(_Q8_0 if kind == "q8_0" else _Q4_0)
    d = blocks["d"].astype(np.float32)[:, None]
    if kind == "q8_0":
        q = blocks["qs"].astype(np.float32)
    else:
        q = np.concatenate([blocks["qs"] & 15, blocks["qs"] >> 4], axis=1).astype(np.float32) - 8
    return (q * d).reshape(data.shape[:-1] + (n,))


_QUANTIZE = {"q8_0": quantize_q8_0, "q4_0": quantize_q4_0}

# Formats tested with random blocks (any bytes are valid quants and scales): per kind the block layout
# (ggml-common.h) and how many values a block holds. The K-quants hold super-blocks of QK_K = 256.
QK_K = 256
_Q4_1 = np.dtype([("d", "<f2"), ("m", "<f2"), ("qs", "u1", QK // 2)])
_Q5_0 = np.dtype([("d", "<f2"), ("qh", "<u4"), ("qs", "u1", QK // 2)])
_Q5_1 = np.dtype([("d", "<f2"), ("m", "<f2"), ("qh", "<u4"), ("qs", "u1", QK // 2)])
_Q4_K = np.dtype([("d", "<f2"), ("dmin", "<f2"), ("scales", "u1", 12), ("qs", "u1", QK_K // 2)])
_Q6_K = np.dtype([("ql", "u1", QK_K // 2), ("qh", "u1", QK_K // 4), ("scales", "i1", QK_K // 16), ("d", "<f2")])
_RANDOM_BLOCKS = {"q4_1": (_Q4_1, QK), "q5_0": (_Q5_0, QK), "q5_1": (_Q5_1, QK), "q4_K": (_Q4_K, QK_K),
                  "q6_K": (_Q6_K, QK_K)}


def random_blocks(kind, rows, n, rng):
    """Rows of random valid blocks, the scales (d, and the min: m or dmin) kept small."""
    dtype, per_block = _RANDOM_BLOCKS[kind]
    blocks = np.frombuffer(rng.bytes(rows * n // per_block * dtype.itemsize), dtype).copy()
    for field in ("d", "m", "dmin"):
        if field in dtype.names:
            blocks[field] = rng.uniform(0.002, 0.02, len(blocks))
    return blocks.view(np.uint8).reshape(rows, -1)


def dequantize_blocks(kind, data, n):
    """float64 values of rows of random-format blocks, from ggml's layouts:
    q4_1: q*d + m, q the 32 nibbles (low nibbles of qs first). q5_0 / q5_1: the nibbles' fifth bit is bit j of
    qh for value j; (q - 16)*d, q*d + m.
    q4_K: 8 sub-blocks of 32, each value d*scale*q - dmin*min with 6-bit (scale, min) pairs packed in 12 bytes
    (pairs 0-3: low 6 bits of bytes 0-3 / 4-7; pairs 4-7: nibbles of bytes 8-11 and the top 2 bits of bytes
    0-3 / 4-7); 64 values per 32 bytes of qs, low nibbles first.
    q6_K: 16 sub-blocks of 16, value d*scale*(q - 32), q = 4 bits of ql and 2 of qh, per 128 values: ql 64
    bytes (low nibbles: values 0-63, high: 64-127), qh 32 bytes (bit pairs 0/2/4/6: values l, l+32, l+64, l+96)."""
    blocks = np.ascontiguousarray(data).reshape(-1).view(_RANDOM_BLOCKS[kind][0])
    d = blocks["d"].astype(np.float64)[:, None]
    if kind in ("q4_1", "q5_0", "q5_1"):
        qs = blocks["qs"].astype(np.int64)
        q = np.concatenate([qs & 15, qs >> 4], axis=1)
        if kind != "q4_1":
            q |= ((blocks["qh"].astype(np.int64)[:, None] >> np.arange(QK)) & 1) << 4
        values = (q - 16) * d if kind == "q5_0" else q * d + blocks["m"].astype(np.float64)[:, None]
    elif kind == "q4_K":
        s = blocks["scales"].astype(np.int64)
        sc = np.concatenate([s[:, 0:4] & 63, (s[:, 8:12] & 15) | ((s[:, 0:4] >> 6) << 4)], axis=1)
        mn = np.concatenate([s[:, 4:8] & 63, (s[:, 8:12] >> 4) | ((s[:, 4:8] >> 6) << 4)], axis=1)
        qs = blocks["qs"].reshape(-1, 4, 32).astype(np.int64)
        q = np.stack([qs & 15, qs >> 4], axis=2).reshape(-1, 8, 32)  # sub-block 2g: low nibbles of group g
        values = d[:, :, None] * sc[:, :, None] * q - blocks["dmin"].astype(np.float64)[:, None, None] * mn[:, :, None]
    else:
        ql = blocks["ql"].reshape(-1, 2, 64).astype(np.int64)
        qh = blocks["qh"].reshape(-1, 2, 32).astype(np.int64)
        low = np.concatenate([ql & 15, ql >> 4], axis=2)                             # values 0..127 of a half
        high = np.concatenate([(qh >> shift) & 3 for shift in (0, 2, 4, 6)], axis=2)
        q = (low | (high << 4)) - 32
        sc = blocks["scales"].astype(np.float64).reshape(-1, 2, 8).repeat(16, axis=2)
        values = d[:, :, None] * sc * q
    return values.reshape(data.shape[0], n)


def _weights(kind, rows, n, rng):
    """src0 of a product or get_rows in ggml type `kind`: (the bytes as passed, their float64 values)."""
    x = rng.standard_normal((rows, n)).astype(np.float32)
    if kind == "f32":
        return x, x.astype(np.float64)
    if kind == "f16":
        h = x.astype(np.float16)
        return h, h.astype(np.float64)
    if kind in _RANDOM_BLOCKS:
        q = random_blocks(kind, rows, n, rng)
        return q, dequantize_blocks(kind, q, n)
    q = _QUANTIZE[kind](x)
    return q, dequantize(kind, q, n).astype(np.float64)


def test_block_codecs_roundtrip():
    # the numpy codecs the quantized tests rely on: each value within half a step d of the input clamped
    # to what the block can represent (q8_0: [-127, 127]*d; q4_0: [-8, 7]*d, d of either sign), plus
    # |q| times the rounding of d to half (q is computed with d in float, as ggml's quantizers do)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 64)).astype(np.float32)
    for kind, dtype, qmin, qmax in (("q8_0", _Q8_0, -127, 127), ("q4_0", _Q4_0, -8, 7)):
        q = _QUANTIZE[kind](x)
        assert q.shape == (4, 2 * dtype.itemsize)
        d = q.reshape(-1).view(dtype)["d"].astype(np.float64).repeat(QK).reshape(x.shape)
        lo, hi = np.minimum(qmin * d, qmax * d), np.maximum(qmin * d, qmax * d)
        err = np.abs(dequantize(kind, q, 64) - np.clip(x, lo, hi))
        assert np.all(err <= np.abs(d) * (0.5 + max(-qmin, qmax) * 2.0 ** -11))


# --- get_rows: dst[i] = float(src0[rows[i]]) ---

@pytest.mark.parametrize("kind", ["f32", "f16", "q4_0", "q8_0", "q4_1", "q5_0", "q5_1", "q4_K", "q6_K"])
def test_get_rows(ggml, kind):
    library, ffi = ggml
    nrows, n = 10, 512
    rng = np.random.default_rng(len(kind))
    src0, values = _weights(kind, nrows, n, rng)
    idx = np.array([3, 0, 9, 3, 7], np.int32)
    dst = np.zeros((len(idx), n), np.float32)
    quantized = kind.startswith("q")
    # quantized rows move 16 values (a float4x4) per thread
    ne00t = n // 16 if quantized else n
    args = _args(ffi, "ggml_metal_kargs_get_rows", ne00t=ne00t, ne00=n, nb01=src0.strides[0],
                 nb02=src0.nbytes, nb03=src0.nbytes, ne10=len(idx), nb10=4, nb11=idx.nbytes, nb12=idx.nbytes,
                 nb1=4 * n, nb2=dst.nbytes, nb3=dst.nbytes)
    fn = library.get_kernel_function("kernel_get_rows_" + kind)
    nth = min(ne00t, fn.max_threads)
    _run(fn, [src0, idx, dst], args, groups=(-(-ne00t // nth) * len(idx), 1, 1), group_size=(nth, 1, 1))
    if kind in ("q4_1", "q5_1", "q4_K", "q6_K"):
        # a scale times q plus (or minus) a min in float, its roundings in another order than numpy's float64
        assert np.allclose(dst, values[idx], rtol=1e-6, atol=1e-6)
    else:
        # dequantizing is exact in float: (q - 8)*d, (q - 16)*d and q*d need at most 16 significant bits
        assert np.array_equal(dst, values[idx].astype(np.float32))


# --- matrix-vector products: dst[i1][i0] = sum_k src0[i0][k] * src1[i1][k], src1 and dst float ---

def _mul_mv_args(ffi, src0, m, n, k, nr0):
    return _args(ffi, "ggml_metal_kargs_mul_mv", ne00=k, ne01=m, ne02=1, nb00=src0.itemsize, nb01=src0.strides[0],
                 nb02=src0.nbytes, nb03=src0.nbytes, ne10=k, ne11=n, ne12=1, nb10=4, nb11=4 * k, nb12=4 * k * n,
                 nb13=4 * k * n, ne0=m, ne1=n, nr0=nr0, r2=1, r3=1)


# (src0 type, k, kernel suffix, simdgroups, src0 rows per simdgroup or threadgroup, threadgroup memory) as
# ggml_metal_library_get_pipeline_mul_mv picks them: f32/f16 by k (_short below 32 columns, _4 when k % 4 == 0,
# nsg = min(4, ceil(k/128))); the quantized kernels by their N_SG_*/N_R0_* of ggml-metal-impl.h. ggml sets the
# threadgroup memory length even where it is 0 (q4_0), and also (0 bytes) for kernels without a [[threadgroup(0)]]
# parameter (_short, the K-quants), which Metal ignores and mps_shim rejects: None there
_MUL_MV = [("f32", 256, "_4", 2, 2, 32 * 4 * 2), ("f32", 100, "", 1, 2, 32 * 4 * 2),
           ("f16", 384, "_4", 3, 2, 32 * 4 * 2), ("f16", 70, "", 1, 2, 32 * 4 * 2), ("f16", 20, "_short", 1, 32, None),
           ("q4_0", 256, "", 2, 4, 0), ("q8_0", 320, "", 4, 2, 32 * 4 * 2), ("q4_1", 256, "", 2, 4, 0),
           pytest.param("q5_0", 256, "", 2, 4, 0, marks=pytest.mark.checked_reports(
               reason="ggml's q5_0 dot product reads a uint32 at a 2-byte-aligned address (block_q5_0::qh): "
                      "memcheck reports the misaligned read")),
           ("q5_1", 256, "", 2, 4, 0), ("q4_K", 512, "", 2, 2, None),
           ("q6_K", 512, "", 2, 2, None)]


@pytest.mark.parametrize("kind, k, suffix, nsg, nr0, smem", _MUL_MV, ids=lambda v: str(v))
@pytest.mark.parametrize("n", [1, 3])
def test_mul_mv(ggml, kind, k, suffix, nsg, nr0, smem, n):
    library, ffi = ggml
    m = 16  # a multiple of the rows a threadgroup takes: the q4_0 kernel reads whole row groups unchecked
    rng = np.random.default_rng(k + n)
    src0, values = _weights(kind, m, k, rng)
    src1 = rng.standard_normal((n, k)).astype(np.float32)
    dst = np.zeros((n, m), np.float32)
    fn = library.get_kernel_function(f"kernel_mul_mv_{kind}_f32{suffix}", constants={
        "FC_mul_mv_nsg": nsg, "FC_mul_mv_ne12": 1, "FC_mul_mv_r2": 1, "FC_mul_mv_r3": 1})
    # each threadgroup: nr0 rows (most block formats: nr0 per SIMD-group), one src1 row; SIMD-groups split k
    rows_per_group = nr0 if kind in ("f32", "f16", "q8_0") else nr0 * nsg
    _run(fn, [src0, src1, dst], _mul_mv_args(ffi, src0, m, n, k, nr0), groups=(-(-m // rows_per_group), n, 1),
         group_size=(32, nsg, 1), threadgroup_memory=None if smem is None else {0: smem})
    expected = src1.astype(np.float64) @ values.T
    # float32 accumulation of k products in another order than numpy's
    assert np.allclose(dst, expected, rtol=1e-5, atol=1e-5 * np.sqrt(k))


# --- matrix-matrix products (SIMD-group matrices) with src0 in f16 or a block format ---

@pytest.mark.parametrize("kind", ["f16", "q4_0", "q8_0", "q4_1", "q5_0", "q5_1", "q4_K", "q6_K"])
@pytest.mark.parametrize("m, n, k", [(64, 32, 256), (96, 40, 512)])
def test_mul_mm(ggml, kind, m, n, k):
    # src0 rows are dequantized 16 values at a time into half tiles; the second shape leaves partial
    # 64x32 output tiles, which ggml writes through threadgroup memory (FC_mul_mm_bc_out, 8 KiB)
    library, ffi = ggml
    rng = np.random.default_rng(m + k)
    src0, values = _weights(kind, m, k, rng)
    src1 = rng.standard_normal((n, k)).astype(np.float32)
    dst = np.zeros((n, m), np.float32)
    bc_out = m % 64 != 0 or n % 32 != 0
    args = _args(ffi, "ggml_metal_kargs_mul_mm", ne00=k, ne02=1, nb01=src0.strides[0], nb02=src0.nbytes,
                 nb03=src0.nbytes, ne12=1, nb10=4, nb11=4 * k, nb12=src1.nbytes, nb13=src1.nbytes, ne0=m, ne1=n,
                 r2=1, r3=1)
    fn = library.get_kernel_function(f"kernel_mul_mm_{kind}_f32", constants={
        "FC_mul_mm_bc_inp": k % 32 != 0, "FC_mul_mm_bc_out": bc_out, "FC_mul_mm_ne12": 1, "FC_mul_mm_ne13": 1,
        "FC_mul_mm_r2": 1, "FC_mul_mm_r3": 1})
    _run(fn, [src0, src1, dst], args, groups=(-(-n // 32), -(-m // 64), 1), group_size=(32, 4, 1),
         threadgroup_memory={0: 8192 if bc_out else 4096 + 2048})
    # both operands are rounded to half in threadgroup memory; products accumulate in float
    expected = src1.astype(np.float16).astype(np.float64) @ values.astype(np.float16).astype(np.float64).T
    assert np.allclose(dst, expected, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("kind", ["q8_0", "q4_0"])
def test_cpy_f32_to_block_format(ggml, kind):
    # one thread quantizes one block of 32; ggml_metal_op_cpy: nk0 = blocks a row, nth = min(nk0, 256)
    library, ffi = ggml
    rows, n = 5, 256
    rng = np.random.default_rng(11)
    x = rng.standard_normal((rows, n)).astype(np.float32)
    x[1, :QK] = 0  # a zero block: d = 0 and no division by it
    expected = _QUANTIZE[kind](x)
    y = np.zeros_like(expected)
    block = y.shape[1] // (n // QK)
    nk0 = n // QK
    args = _args(ffi, "ggml_metal_kargs_cpy", nk0=nk0, ne00=n, ne01=rows, ne02=1, ne03=1, nb00=4, nb01=4 * n,
                 nb02=x.nbytes, nb03=x.nbytes, ne0=n, ne1=rows, ne2=1, ne3=1, nb0=block, nb1=y.strides[0],
                 nb2=y.nbytes, nb3=y.nbytes)
    fn = library.get_kernel_function("kernel_cpy_f32_" + kind)
    nth = min(nk0, 256)
    _run(fn, [x, y], args, groups=(-(-nk0 // nth) * rows, 1, 1), group_size=(nth, 1, 1))
    # the same float32 arithmetic as the numpy quantizer: identical bytes
    assert np.array_equal(y, expected)


@pytest.mark.parametrize("kind, n", [(kind, n) for kind in ("f32", "f16", "q4_0", "q8_0") for n in (2, 3, 5)]
                         + [("q4_K", 4), ("q6_K", 7)])
def test_mul_mv_ext_small_batches(ggml, kind, n):
    # ggml's choice for 2..8 src1 rows (4..8 for K-quants) when k % 128 == 0 (ggml_metal_op_mul_mat): r1ptg src1 rows a
    # threadgroup, nxpsg threads along a row (16 when k % 256 == 0 and n < 3, else 8), 2 SIMD-groups
    library, ffi = ggml
    m, k, nsg = 20, 256, 2
    nxpsg = 16 if k % 256 == 0 and n < 3 else 8
    r1ptg = {2: 2, 3: 3, 4: 4, 5: 5, 6: 3, 7: 4, 8: 4}[n]
    rows_per_group = (32 // nxpsg) * nsg
    rng = np.random.default_rng(n * 10 + len(kind))
    src0, values = _weights(kind, m, k, rng)
    src1 = rng.standard_normal((n, k)).astype(np.float32)
    dst = np.zeros((n, m), np.float32)
    args = _args(ffi, "ggml_metal_kargs_mul_mv_ext", ne00=k, ne01=m, ne02=1, nb00=src0.itemsize,
                 nb01=src0.strides[0], nb02=src0.nbytes, nb03=src0.nbytes, ne10=k, ne11=n, ne12=1, nb10=4,
                 nb11=4 * k, nb12=src1.nbytes, nb13=src1.nbytes, ne0=m, ne1=n, r2=1, r3=1)
    fn = library.get_kernel_function(f"kernel_mul_mv_ext_{kind}_f32_r1_{r1ptg}", constants={
        "FC_mul_mv_nsg": nsg, "FC_mul_mv_nxpsg": nxpsg, "FC_mul_mv_ne12": 1, "FC_mul_mv_r2": 1, "FC_mul_mv_r3": 1})
    _run(fn, [src0, src1, dst], args, groups=(-(-m // rows_per_group), -(-n // r1ptg), 1), group_size=(32, nsg, 1))
    expected = src1.astype(np.float64) @ values.T
    # float32 accumulation of k products in another order than numpy's
    assert np.allclose(dst, expected, rtol=1e-5, atol=1e-5 * np.sqrt(k))


# --- rotary position embedding: pairs of a head's first n_dims values rotated by pos * base^(-2i/n_dims) ---

@pytest.mark.parametrize("mode", ["norm", "neox"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("freq_factors, backward", [(False, False), (True, False), (False, True)])
def test_rope(ggml, mode, dtype, freq_factors, backward):
    # x: tokens x heads x head_dim (ggml ne02, ne01, ne00); one threadgroup per (head, token). norm rotates
    # adjacent pairs (2i, 2i+1), neox the halves (i, i + n_dims/2); values past n_dims are copied.
    # src2, optional, divides each pair's frequency; FC_rope_is_back rotates the other way (the gradient).
    library, ffi = ggml
    tokens, heads, head_dim, n_dims = 3, 4, 64, 48
    base, freq_scale, attn_factor = 10000.0, 0.5, 0.9
    rng = np.random.default_rng(head_dim + freq_factors)
    x = rng.standard_normal((tokens, heads, head_dim)).astype(dtype)
    pos = np.array([0, 5, 17], np.int32)
    factors = rng.uniform(1, 4, n_dims // 2).astype(np.float32)
    y = np.zeros_like(x)
    es = x.itemsize
    nb = [es, es * head_dim, es * head_dim * heads, x.nbytes]
    args = _args(ffi, "ggml_metal_kargs_rope", ne00=head_dim, ne01=heads, ne02=tokens, ne03=1, nb00=nb[0],
                 nb01=nb[1], nb02=nb[2], nb03=nb[3], ne0=head_dim, ne1=heads, ne2=tokens, ne3=1, nb0=nb[0], nb1=nb[1],
                 nb2=nb[2], nb3=nb[3], n_past=0, n_dims=n_dims, n_offs=0, n_ctx_orig=4096, freq_base=base,
                 freq_scale=freq_scale, ext_factor=0.0, attn_factor=attn_factor, beta_fast=32.0, beta_slow=1.0,
                 src2=freq_factors, inplace=False)
    t = "f32" if dtype == np.float32 else "f16"
    fn = library.get_kernel_function(f"kernel_rope_{mode}_{t}", constants={"FC_rope_is_imrope": False,
                                                                           "FC_rope_is_back": backward})
    _run(fn, [x, pos, factors if freq_factors else x, y], args, groups=(heads, tokens, 1),
         group_size=(min(1024, head_dim), 1, 1))

    i = np.arange(n_dims // 2)
    theta = pos[:, None].astype(np.float64) * base ** (-2.0 * i / n_dims) * freq_scale
    if freq_factors:
        theta = theta / factors
    cos, sin = np.cos(theta)[:, None, :] * attn_factor, np.sin(theta)[:, None, :] * attn_factor
    if backward:
        sin = -sin
    xf = x.astype(np.float64)
    first, second = (slice(0, n_dims, 2), slice(1, n_dims, 2)) if mode == "norm" else \
        (slice(0, n_dims // 2), slice(n_dims // 2, n_dims))
    expected = xf.copy()
    expected[..., first] = xf[..., first] * cos - xf[..., second] * sin
    expected[..., second] = xf[..., first] * sin + xf[..., second] * cos
    # float32 pow/sin/cos of angles up to ~17 rad; f16 results rounded once
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=2e-3, atol=2e-3)
    assert np.allclose(y.astype(np.float64), expected, **tol)


# --- gated linear units: dst = act(a) * b, a and b two tensors or the halves of one row ---

_GLU = {"reglu": lambda a: np.maximum(a, 0), "geglu": _gelu_tanh, "swiglu": lambda a: a / (1 + np.exp(-a))}


@pytest.mark.parametrize("op", sorted(_GLU))
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("split, swapped", [(False, False), (True, False), (True, True)])
def test_glu(ggml, op, dtype, split, swapped):
    # one src: the activation's input is the row's first half (second when swapped: ggml's i00/i10)
    library, ffi = ggml
    rows, n = 3, 96
    rng = np.random.default_rng(n + split + swapped)
    es = np.dtype(dtype).itemsize
    if split:
        x = (rng.standard_normal((rows, 2 * n)) * 2).astype(dtype)
        a, b = (x[:, n:], x[:, :n]) if swapped else (x[:, :n], x[:, n:])
        args = _args(ffi, "ggml_metal_kargs_glu", ne00=2 * n, nb01=es * 2 * n, ne10=2 * n, nb11=es * 2 * n, ne0=n,
                     nb1=es * n, i00=n if swapped else 0, i10=0 if swapped else n)
        buffers = [x, x]
    else:
        a, b = ((rng.standard_normal((rows, n)) * 2).astype(dtype) for _ in range(2))
        args = _args(ffi, "ggml_metal_kargs_glu", ne00=n, nb01=es * n, ne10=n, nb11=es * n, ne0=n, nb1=es * n)
        buffers = [a, b]
    y = np.zeros((rows, n), dtype)
    t = "f32" if dtype == np.float32 else "f16"
    fn = library.get_kernel_function(f"kernel_{op}_{t}")
    ne00 = 2 * n if split else n
    _run(fn, buffers + [y], args, groups=(rows, 1, 1), group_size=(min(fn.max_threads, ne00 // 2), 1, 1))
    expected = _GLU[op](a.astype(np.float64)) * b.astype(np.float64)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=2e-3, atol=1e-3)
    assert np.allclose(y.astype(np.float64), expected, **tol)


# --- set_rows: dst[rows[i]] = src[i], converting (how ggml writes the KV cache) ---

@pytest.mark.parametrize("kind", ["f32", "f16", "q8_0", "q4_0"])
@pytest.mark.parametrize("index_type", [np.int32, np.int64])
def test_set_rows(ggml, kind, index_type):
    library, ffi = ggml
    nrows, n = 12, 128
    rng = np.random.default_rng(n + len(kind))
    src = rng.standard_normal((4, n)).astype(np.float32)
    rows = np.array([7, 2, 11, 0], index_type)
    if kind in ("f32", "f16"):
        dst = np.full((nrows, n), -1, kind == "f32" and np.float32 or np.float16)
        expected = dst.copy()
        expected[rows] = src.astype(dst.dtype)
        nk0 = n
    else:
        dst = _QUANTIZE[kind](np.full((nrows, n), -1, np.float32))
        expected = dst.copy()
        expected[rows] = _QUANTIZE[kind](src)
        nk0 = n // QK
    # ggml_metal_op_set_rows: nth doubles from 32 up to nk0; short rows share a threadgroup (nrptg rows)
    nth = 32
    while nth < nk0 and nth < 1024:
        nth *= 2
    nrptg = 1
    if nth > nk0:
        nrptg, nth = -(-nth // nk0), nk0
    args = _args(ffi, "ggml_metal_kargs_set_rows", nk0=nk0, ne01=len(rows), nb01=4 * n, nb02=src.nbytes,
                 nb03=src.nbytes, ne11=1, ne12=1, nb10=rows.itemsize, nb11=rows.nbytes, nb12=rows.nbytes,
                 nb1=dst.strides[0], nb2=dst.nbytes, nb3=dst.nbytes)
    it = "i32" if index_type == np.int32 else "i64"
    fn = library.get_kernel_function(f"kernel_set_rows_f32_{it}_{kind}")
    _run(fn, [src, rows, dst], args, groups=(-(-len(rows) // nrptg), 1, 1), group_size=(nth, nrptg, 1))
    # conversions and quantizers as the numpy ones: identical bytes; rows not named are left alone
    assert np.array_equal(dst, expected)


# --- flash attention: out[q][h] = softmax(scale * Q[h][q] . K[h']^T + mask[q]) V[h'], h' = h / (heads / kv heads) ---

def _attention_reference(q, k, v, mask, scale, sinks=None):
    """q: heads x queries x dk (float32), k/v: kv heads x kv x d (half), mask: queries x kv or None;
    the kernels hold q as half. Returns queries x heads x dv, ggml's dst layout."""
    heads, kv_heads = q.shape[0], k.shape[0]
    qh = q.astype(np.float16).astype(np.float64)
    kk = np.repeat(k.astype(np.float64), heads // kv_heads, axis=0)
    vv = np.repeat(v.astype(np.float64), heads // kv_heads, axis=0)
    s = scale * qh @ kk.transpose(0, 2, 1)
    if mask is not None:
        s = s + mask.astype(np.float64)[None]
    m = s.max(axis=2, keepdims=True)
    if sinks is not None:
        m = np.maximum(m, sinks.astype(np.float64)[:, None, None])
    p = np.exp(s - m)
    total = p.sum(axis=2, keepdims=True)
    if sinks is not None:
        total += np.exp(sinks.astype(np.float64)[:, None, None] - m)
    return (p @ vv / total).transpose(1, 0, 2)


def _attention_inputs(rng, heads, kv_heads, queries, kv, d):
    q = rng.standard_normal((heads, queries, d)).astype(np.float32)
    k = rng.standard_normal((kv_heads, kv, d)).astype(np.float16)
    v = rng.standard_normal((kv_heads, kv, d)).astype(np.float16)
    return q, k, v


def _attention_mask(padded_rows, kv):
    """f16 mask rows (padded as ggml pads them): kv block 0 all 0, block 1 causal from 64, block 2 all -inf,
    so ggml's block scan sees each of its three cases."""
    cols = np.arange(kv)
    mask = np.where(cols[None, :] > 64 + np.arange(padded_rows)[:, None], -np.inf, 0).astype(np.float16)
    mask[:, 128:] = -np.inf
    return mask


def _attention_args(ffi, struct, q, k, v, mask, scale, **extra):
    heads, queries, d = q.shape
    kv_heads, kv, dv = v.shape
    mask_rows, mask_cols = mask.shape if mask is not None else (0, 0)
    return _args(ffi, struct, ne01=queries, ne02=heads, ne03=1, nb01=4 * d, nb02=4 * d * queries, nb03=q.nbytes,
                 ne11=kv, ne_12_2=kv_heads, ne_12_3=1, ns10=d, nb11=2 * d, nb12=2 * d * kv, nb13=k.nbytes, ns20=dv,
                 nb21=2 * dv, nb22=2 * dv * kv, nb23=v.nbytes, ne31=mask_rows, ne32=1, ne33=1, nb31=2 * mask_cols,
                 nb32=2 * mask_cols * mask_rows, nb33=2 * mask_cols * mask_rows, ne1=heads, ne2=queries, ne3=1,
                 scale=scale, max_bias=0.0, m0=0.0, m1=0.0, n_head_log2=0, logit_softcap=0.0, **extra)


def _attention_constants(prefix, has_mask, has_sinks, d, dv, nsg, **extra):
    return dict({f"FC_{prefix}_has_mask": has_mask, f"FC_{prefix}_has_sinks": has_sinks,
                 f"FC_{prefix}_has_bias": False, f"FC_{prefix}_has_scap": False, f"FC_{prefix}_has_kvpad": False,
                 f"FC_{prefix}_ns10": d, f"FC_{prefix}_ns20": dv, f"FC_{prefix}_nsg": nsg}, **extra)


def _attention_blocks(ggml, mask, queries, q_per_group, c_per_group):
    """ggml's pre-pass over the mask (kernel_flash_attn_ext_blk): per (query block, kv block) 0 = all -inf,
    1 = mixed, 2 = all zero."""
    library, ffi = ggml
    rows, cols = mask.shape
    nblk1, nblk0 = -(-queries // q_per_group), -(-cols // c_per_group)
    blk = np.full((nblk1, nblk0), 7, np.int8)
    args = _args(ffi, "ggml_metal_kargs_flash_attn_ext_blk", ne01=queries, ne30=cols, ne31=rows, ne32=1, ne33=1,
                 nb31=2 * cols, nb32=mask.nbytes, nb33=mask.nbytes)
    fn = library.get_kernel_function("kernel_flash_attn_ext_blk", constants={
        "FC_flash_attn_ext_blk_nqptg": q_per_group, "FC_flash_attn_ext_blk_ncpsg": c_per_group})
    _run(fn, [mask, blk], args, groups=(nblk0, nblk1, 1), group_size=(32, 1, 1))
    return blk


def test_flash_attn_ext_mask_blocks(ggml):
    mask = _attention_mask(32, 192)
    blk = _attention_blocks(ggml, mask, 28, 8, 64)
    # per query block (8 rows each): kv block 0 all zero, 1 mixed, 2 all -inf
    assert blk.tolist() == [[2, 1, 0]] * 4


@pytest.mark.parametrize("has_mask, has_sinks", [(True, False), (False, False), (True, True)])
def test_flash_attn_ext_f16(ggml, has_mask, has_sinks):
    # the prompt kernel (SIMD-group matrices, ggml's choice from 20 queries): 8 queries a threadgroup, 64 kv
    # entries per step, 4 SIMD-groups; 28 queries leave a partial query block; 4 heads share 2 kv heads
    library, ffi = ggml
    heads, kv_heads, queries, kv, d = 4, 2, 28, 192, 64
    nqptg, ncpsg, nsg = 8, 64, 4
    rng = np.random.default_rng(3 + has_mask + 2 * has_sinks)
    q, k, v = _attention_inputs(rng, heads, kv_heads, queries, kv, d)
    mask = _attention_mask(32, kv) if has_mask else None
    sinks = rng.standard_normal(heads).astype(np.float32) if has_sinks else None
    scale = 1 / np.sqrt(d)
    dst = np.zeros((queries, heads, d), np.float32)
    blk = _attention_blocks(ggml, mask, queries, nqptg, ncpsg) if has_mask else q
    args = _attention_args(ffi, "ggml_metal_kargs_flash_attn_ext", q, k, v, mask, scale)
    fn = library.get_kernel_function(f"kernel_flash_attn_ext_f16_dk{d}_dv{d}", constants=_attention_constants(
        "flash_attn_ext", has_mask, has_sinks, d, d, nsg, FC_flash_attn_ext_bc_mask=False))
    # ggml's FATTN_SMEM: per query the query (dk halves), the output (2*dv) and scores + mask (2*2*ncpsg)
    smem = -(-(nqptg * (d + 2 * d + 2 * 2 * ncpsg)) * 2 // 16) * 16
    # unused inputs (mask, sinks, the kv padding) are bound to q, as ggml binds them to src0
    _run(fn, [q, k, v, mask if has_mask else q, sinks if has_sinks else q, q, blk, dst], args,
         groups=(-(-queries // nqptg), heads, 1), group_size=(32, nsg, 1), threadgroup_memory={0: smem})
    expected = _attention_reference(q, k, v, None if mask is None else mask[:queries], scale, sinks)
    # q rounded to half as in the kernel; scores, softmax and P.V in float
    assert np.allclose(dst, expected, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("kind", ["f16", "q8_0"])
@pytest.mark.parametrize("queries, has_mask, has_sinks", [(1, True, False), (3, True, True), (1, False, False)])
def test_flash_attn_ext_vec(ggml, kind, queries, has_mask, has_sinks):
    # the decoding kernel (fewer than 20 queries): the kv range split over nwg = 32 workgroups of nsg = 1
    # SIMD-group, each writing a partial output and its softmax sum and max; kernel_flash_attn_ext_vec_reduce
    # (1024 threads a row) combines them. A q8_0 kv cache is read as blocks (below 32 queries ggml does not
    # convert it to f16 first).
    library, ffi = ggml
    heads, kv_heads, kv, d = 4, 2, 192, 64
    ncpsg, nsg, nwg = 32, 1, 32
    rng = np.random.default_rng(queries + 2 * has_mask + 4 * has_sinks + len(kind))
    q, k, v = _attention_inputs(rng, heads, kv_heads, queries, kv, d)
    if kind == "q8_0":
        k, v = (quantize_q8_0(t.astype(np.float32)) for t in (k, v))
        k_values, v_values = (dequantize("q8_0", t, d) for t in (k, v))
        nb10 = _Q8_0.itemsize
    else:
        k_values, v_values = k, v
        nb10 = 2
    mask = _attention_mask(8, kv) if has_mask else None
    sinks = rng.standard_normal(heads).astype(np.float32) if has_sinks else None
    scale = 1 / np.sqrt(d)
    rows = queries * heads
    tmp = np.zeros(rows * nwg * (d + 2), np.float32)
    args = _attention_args(ffi, "ggml_metal_kargs_flash_attn_ext_vec", q, k_values, v_values, mask, scale)
    # strides of the kv cache as stored (blocks for q8_0): ns10/ns20 count its elements (blocks) per row
    fields = ffi.from_buffer("ggml_metal_kargs_flash_attn_ext_vec *", bytearray(args))
    fields.nb11, fields.nb12, fields.nb13 = k.strides[1], k.strides[0], k.nbytes
    fields.nb21, fields.nb22, fields.nb23 = v.strides[1], v.strides[0], v.nbytes
    fields.ns10 = fields.ns20 = k.strides[1] // nb10
    args = bytes(ffi.buffer(fields))
    fn = library.get_kernel_function(f"kernel_flash_attn_ext_vec_{kind}_dk{d}_dv{d}", constants=_attention_constants(
        "flash_attn_ext_vec", has_mask, has_sinks, fields.ns10, fields.ns20, nsg, FC_flash_attn_ext_vec_nwg=nwg))
    # ggml's FATTN_SMEM for the vec kernel: per SIMD-group the query, scores and mask, and the output
    smem = -(-((128 + 4 * ncpsg + 2 * 128) * nsg * 2) // 16) * 16
    _run(fn, [q, k, v, mask if has_mask else q, sinks if has_sinks else q, q, tmp], args,
         groups=(queries, heads, nwg), group_size=(32, nsg, 1), threadgroup_memory={0: smem})
    dst = np.zeros((queries, heads, d), np.float32)
    reduce = library.get_kernel_function("kernel_flash_attn_ext_vec_reduce", constants={
        "FC_flash_attn_ext_vec_reduce_DV": d, "FC_flash_attn_ext_vec_reduce_NWG": nwg})
    _run(reduce, [tmp, dst], _args(ffi, "ggml_metal_kargs_flash_attn_ext_vec_reduce", nrows=rows),
         groups=(rows, 1, 1), group_size=(32 * nwg, 1, 1))
    expected = _attention_reference(q, k_values, v_values, None if mask is None else mask[:queries], scale, sinks)
    # q rounded to half as in the kernel; scores, softmax and P.V in float
    assert np.allclose(dst, expected, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("n", [200, 3000])
def test_cumsum(ggml, n):
    # ggml_metal_op_cumsum: blocks of nth (a power of two, up to the pipeline's maximum) scanned with SIMD
    # prefix sums; rows longer than a block also scan the block totals (tmp) and add them back
    library, ffi = ggml
    rows = 3
    rng = np.random.default_rng(n)
    x = rng.standard_normal((rows, n)).astype(np.float32)
    dst = np.zeros_like(x)
    blk = library.get_kernel_function("kernel_cumsum_blk_f32")
    nth = 1
    while nth < n and 2 * nth <= blk.max_threads:
        nth *= 2
    net0 = -(-n // nth)
    tmp = np.zeros((rows, net0), np.float32)

    def args(struct, ne00, ne01, nb00, outb=None):
        fields = dict(ne00=ne00, ne01=ne01, ne02=1, ne03=1, nb00=nb00, nb01=nb00 * ne00, nb02=nb00 * ne00 * ne01,
                      nb03=nb00 * ne00 * ne01, net0=net0, net1=rows, net2=1, net3=1, nbt0=4, nbt1=4 * net0,
                      nbt2=tmp.nbytes, nbt3=tmp.nbytes)
        return _args(ffi, struct, **fields, **({} if outb is None else {"outb": outb}))

    _run(blk, [x, tmp, dst], args("ggml_metal_kargs_cumsum_blk", n, rows, 4, outb=n > nth), groups=(net0 * rows, 1, 1),
         group_size=(nth, 1, 1), threadgroup_memory={0: 32 * 4})
    if n > nth:
        _run(blk, [tmp, tmp, tmp], args("ggml_metal_kargs_cumsum_blk", net0, rows, 4, outb=False),
             groups=(rows, 1, 1), group_size=(nth, 1, 1), threadgroup_memory={0: 32 * 4})
        add = library.get_kernel_function("kernel_cumsum_add_f32")
        _run(add, [tmp, dst], args("ggml_metal_kargs_cumsum_add", n, rows, 4), groups=(net0 * rows, 1, 1),
             group_size=(nth, 1, 1))
    # float32 sums of up to 3000 terms, in blocks
    assert np.allclose(dst, np.cumsum(x.astype(np.float64), axis=1), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("n", [100, 3000])
def test_argsort(ggml, order, n):
    # ggml_metal_op_argsort: a bitonic sort of each nth-wide block in threadgroup memory (nth a power of two,
    # padding indices sort last), then merge passes of doubling length ping-ponging between dst and a
    # scratch buffer (started on the scratch one when the pass count is odd, so the last lands in dst)
    library, ffi = ggml
    rows = 3
    rng = np.random.default_rng(n)
    x = rng.permutation(rows * n).reshape(rows, n).astype(np.float32) - rows * n / 2  # no ties
    sort = library.get_kernel_function(f"kernel_argsort_f32_i32_{order}")
    nth = 1
    while nth < n and 2 * nth <= sort.max_threads:
        nth *= 2
    npr = -(-n // nth)
    dst, tmp = np.zeros((rows, n), np.int32), np.zeros((rows, n), np.int32)
    out, scratch = (tmp, dst) if int(np.ceil(np.log2(npr))) % 2 == 1 else (dst, tmp)
    shape = dict(ne00=n, ne01=rows, ne02=1, ne03=1, nb00=4, nb01=4 * n, nb02=x.nbytes, nb03=x.nbytes, ne0=n,
                 ne1=rows, ne2=1, ne3=1)
    _run(sort, [x, out], _args(ffi, "ggml_metal_kargs_argsort", top_k=nth, **shape), groups=(npr * rows, 1, 1),
         group_size=(nth, 1, 1), threadgroup_memory={0: -(-nth * 4 // 16) * 16})
    merge = library.get_kernel_function(f"kernel_argsort_merge_f32_i32_{order}")
    length = nth
    while length < n:
        _run(merge, [x, out, scratch], _args(ffi, "ggml_metal_kargs_argsort_merge", top_k=n, len=length, **shape),
             groups=(-(-n // (2 * length)) * rows, 1, 1), group_size=(min(512, merge.max_threads), 1, 1))
        out, scratch = scratch, out
        length *= 2
    expected = np.argsort(x if order == "asc" else -x, axis=1, kind="stable")
    assert np.array_equal(dst, expected)


# --- mixture of experts: dst[t][s] = expert ids[t][s] of src0 times src1[t][s % ne11] ---

@pytest.mark.parametrize("kind", ["f16", "q4_0"])
@pytest.mark.parametrize("shared_input", [True, False])
def test_mul_mm_id(ggml, kind, shared_input):
    # ggml from 32 tokens: kernel_mul_mm_id_map0 lists each expert's (token, slot) pairs (one thread per
    # expert), then kernel_mul_mm_id multiplies each expert's rows by its gathered src1 rows on SIMD-group
    # matrices, a threadgroup of 128 per (32 pairs, 64 rows, expert). shared_input: one src1 row per token
    # (ne11 = 1, broadcast over the slots), else one per slot.
    library, ffi = ggml
    experts, used, tokens, k, m = 8, 2, 40, 128, 96
    rng = np.random.default_rng(experts + shared_input + len(kind))
    w, values = _weights(kind, experts * m, k, rng)
    w, values = w.reshape(experts, m, -1), values.reshape(experts, m, k)
    ne11 = 1 if shared_input else used
    x = rng.standard_normal((tokens, ne11, k)).astype(np.float32)
    ids = np.stack([rng.choice(experts, used, replace=False) for _ in range(tokens)]).astype(np.int32)
    tpe = np.zeros(experts, np.uint32)
    hids = np.zeros((experts, tokens), np.int32)
    map_args = _args(ffi, "ggml_metal_kargs_mul_mm_id_map0", ne02=experts, ne10=k, ne11=ne11, nb11=x.strides[1],
                     nb12=x.strides[0], ne21=tokens, ne20=used, nb21=ids.strides[0])
    map0 = library.get_kernel_function(f"kernel_mul_mm_id_map0_ne20_{used}")
    _run(map0, [ids, tpe, hids], map_args, groups=(1, 1, 1), group_size=(experts, 1, 1),
         threadgroup_memory={0: -(-experts * used * 2 // 16) * 16})
    assert tpe.tolist() == [int((ids == e).sum()) for e in range(experts)]

    dst = np.zeros((tokens, used, m), np.float32)
    args = _args(ffi, "ggml_metal_kargs_mul_mm_id", ne00=k, ne02=experts, nb01=w.strides[1], nb02=w.strides[0],
                 nb03=w.nbytes, ne11=ne11, nb10=4, nb11=x.strides[1], nb12=x.strides[0], nb13=x.nbytes, ne20=used,
                 ne21=tokens, ne0=m, ne1=used, r2=1, r3=1)
    fn = library.get_kernel_function(f"kernel_mul_mm_id_{kind}_f32", constants={"FC_mul_mm_bc_inp": k % 32 != 0})
    _run(fn, [w, x, tpe, hids, dst], args, groups=(-(-tokens // 32), -(-m // 64), experts), group_size=(128, 1, 1),
         threadgroup_memory={0: 8192})
    inputs = x[:, np.arange(used) % ne11].astype(np.float16).astype(np.float64)
    weights = values.astype(np.float16).astype(np.float64)[ids]           # tokens x used x m x k
    expected = np.einsum("tsmk,tsk->tsm", weights, inputs)
    # operands rounded to half in threadgroup memory, products accumulated in float
    assert np.allclose(dst, expected, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("kind, suffix, nsg, nr0, smem", [("f16", "_4", 1, 2, 32 * 4 * 2), ("q4_0", "", 2, 4, 0),
                                                          ("q8_0", "", 4, 2, 32 * 4 * 2)])
def test_mul_mv_id(ggml, kind, suffix, nsg, nr0, smem):
    # ggml below 32 tokens: the matrix-vector kernel per (token, slot), its expert read from ids in the kernel
    library, ffi = ggml
    experts, used, tokens, k, m = 6, 2, 3, 128, 16
    rng = np.random.default_rng(len(kind) + nsg)
    w, values = _weights(kind, experts * m, k, rng)
    w, values = w.reshape(experts, m, -1), values.reshape(experts, m, k)
    x = rng.standard_normal((tokens, used, k)).astype(np.float32)
    ids = np.stack([rng.choice(experts, used, replace=False) for _ in range(tokens)]).astype(np.int32)
    dst = np.zeros((tokens, used, m), np.float32)
    args = _args(ffi, "ggml_metal_kargs_mul_mv_id", nei0=used, nei1=tokens, nbi1=ids.strides[0], ne00=k, ne01=m,
                 ne02=experts, nb00=w.itemsize, nb01=w.strides[1], nb02=w.strides[0], ne10=k, ne11=used, ne12=tokens,
                 ne13=1, nb10=4, nb11=x.strides[1], nb12=x.strides[0], ne0=m, ne1=used, nb1=dst.strides[1], nr0=nr0)
    fn = library.get_kernel_function(f"kernel_mul_mv_id_{kind}_f32{suffix}", constants={
        "FC_mul_mv_nsg": nsg, "FC_mul_mv_ne12": 1, "FC_mul_mv_r2": 1, "FC_mul_mv_r3": 1})
    rows_per_group = nr0 if kind in ("f32", "f16", "q8_0") else nr0 * nsg
    _run(fn, [w, x, dst, ids], args, groups=(-(-m // rows_per_group), 1, used * tokens), group_size=(32, nsg, 1),
         threadgroup_memory={0: smem})
    expected = np.einsum("tsmk,tsk->tsm", values[ids], x.astype(np.float64))
    # float32 accumulation of k products in another order than numpy's
    assert np.allclose(dst, expected, rtol=1e-5, atol=1e-5 * np.sqrt(k))


# --- bfloat: ggml's host defines GGML_METAL_HAS_BF16 on devices that have it, which adds the bf16 kernels ---

@pytest.fixture(scope="module")
def ggml_bf16(ggml):
    root = ggml_dir()
    metal = os.path.join(root, "src", "ggml-metal")
    with open(os.path.join(metal, "ggml-metal.metal")) as f:
        source = "#define GGML_METAL_HAS_BF16 1\n" + f.read()
    with without_cuda_check():
        return mps_shim.ShaderLibrary(source, include_dirs=[metal, os.path.join(root, "src")]), ggml[1]


def _bf16(x):
    """(bfloat16 bits, their float64 values) of x, rounded to nearest even."""
    u = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    bits = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return bits, (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def test_get_rows_and_cpy_bf16(ggml_bf16):
    library, ffi = ggml_bf16
    rows, n = 6, 96
    rng = np.random.default_rng(16)
    x = rng.standard_normal((rows, n)).astype(np.float32)
    bits, values = _bf16(x)
    converted = np.zeros((rows, n), np.uint16)
    args = _args(ffi, "ggml_metal_kargs_cpy", nk0=n, ne00=n, ne01=rows, ne02=1, ne03=1, nb00=4, nb01=4 * n,
                 nb02=x.nbytes, nb03=x.nbytes, ne0=n, ne1=rows, ne2=1, ne3=1, nb0=2, nb1=2 * n, nb2=bits.nbytes,
                 nb3=bits.nbytes)
    _run(library.get_kernel_function("kernel_cpy_f32_bf16"), [x, converted], args, groups=(rows, 1, 1),
         group_size=(n, 1, 1))
    assert np.array_equal(converted, bits)  # round to nearest even, as numpy's reference does

    idx = np.array([5, 1, 1], np.int32)
    dst = np.zeros((len(idx), n), np.float32)
    args = _args(ffi, "ggml_metal_kargs_get_rows", ne00t=n, ne00=n, nb01=2 * n, nb02=bits.nbytes, nb03=bits.nbytes,
                 ne10=len(idx), nb10=4, nb11=idx.nbytes, nb12=idx.nbytes, nb1=4 * n, nb2=dst.nbytes, nb3=dst.nbytes)
    _run(library.get_kernel_function("kernel_get_rows_bf16"), [bits, idx, dst], args, groups=(len(idx), 1, 1),
         group_size=(n, 1, 1))
    assert np.array_equal(dst, values[idx].astype(np.float32))  # bfloat widens to float exactly


@pytest.mark.parametrize("k, suffix, nsg", [(256, "_4", 2), (70, "", 1)])
def test_mul_mv_bf16(ggml_bf16, k, suffix, nsg):
    library, ffi = ggml_bf16
    m, n = 16, 2
    rng = np.random.default_rng(k)
    bits, values = _bf16(rng.standard_normal((m, k)))
    src1 = rng.standard_normal((n, k)).astype(np.float32)
    dst = np.zeros((n, m), np.float32)
    fn = library.get_kernel_function(f"kernel_mul_mv_bf16_f32{suffix}", constants={
        "FC_mul_mv_nsg": nsg, "FC_mul_mv_ne12": 1, "FC_mul_mv_r2": 1, "FC_mul_mv_r3": 1})
    _run(fn, [bits, src1, dst], _mul_mv_args(ffi, bits, m, n, k, 2), groups=(m // 2, n, 1), group_size=(32, nsg, 1),
         threadgroup_memory={0: 32 * 4 * 2})
    # float32 accumulation of k products in another order than numpy's
    assert np.allclose(dst, src1.astype(np.float64) @ values.T, rtol=1e-5, atol=1e-5 * np.sqrt(k))


@pytest.mark.parametrize("k", [128, 100])
def test_mul_mm_bf16(ggml_bf16, k):
    # k % 32 != 0 takes ggml's bounds-checked loads (FC_mul_mm_bc_inp: `cond ? bfloat_value : 0`)
    library, ffi = ggml_bf16
    m, n = 64, 32
    rng = np.random.default_rng(k)
    bits, values = _bf16(rng.standard_normal((m, k)))
    src1 = rng.standard_normal((n, k)).astype(np.float32)
    dst = np.zeros((n, m), np.float32)
    args = _args(ffi, "ggml_metal_kargs_mul_mm", ne00=k, ne02=1, nb01=2 * k, nb02=bits.nbytes, nb03=bits.nbytes,
                 ne12=1, nb10=4, nb11=4 * k, nb12=src1.nbytes, nb13=src1.nbytes, ne0=m, ne1=n, r2=1, r3=1)
    fn = library.get_kernel_function("kernel_mul_mm_bf16_f32", constants={
        "FC_mul_mm_bc_inp": k % 32 != 0, "FC_mul_mm_bc_out": False, "FC_mul_mm_ne12": 1, "FC_mul_mm_ne13": 1,
        "FC_mul_mm_r2": 1, "FC_mul_mm_r3": 1})
    _run(fn, [bits, src1, dst], args, groups=(1, 1, 1), group_size=(32, 4, 1), threadgroup_memory={0: 4096 + 2048})
    # both operands held as bfloat in threadgroup memory, products accumulated in float
    expected = _bf16(src1)[1] @ values.T
    assert np.allclose(dst, expected, rtol=1e-3, atol=1e-3)


def test_flash_attn_ext_bf16(ggml_bf16):
    # the prompt kernel with a bfloat kv cache: q held as bfloat, the output accumulated in half
    library, ffi = ggml_bf16
    heads, kv_heads, queries, kv, d = 2, 1, 24, 128, 64
    nqptg, ncpsg, nsg = 8, 64, 4
    rng = np.random.default_rng(5)
    q = rng.standard_normal((heads, queries, d)).astype(np.float32)
    (k_bits, k_values), (v_bits, v_values) = (_bf16(rng.standard_normal((kv_heads, kv, d))) for _ in range(2))
    scale = 1 / np.sqrt(d)
    dst = np.zeros((queries, heads, d), np.float32)
    args = _attention_args(ffi, "ggml_metal_kargs_flash_attn_ext", q, k_bits, v_bits, None, scale)
    fn = library.get_kernel_function(f"kernel_flash_attn_ext_bf16_dk{d}_dv{d}", constants=_attention_constants(
        "flash_attn_ext", False, False, d, d, nsg, FC_flash_attn_ext_bc_mask=False))
    smem = -(-(nqptg * (d + 2 * d + 2 * 2 * ncpsg)) * 2 // 16) * 16
    _run(fn, [q, k_bits, v_bits, q, q, q, q, dst], args, groups=(-(-queries // nqptg), heads, 1),
         group_size=(32, nsg, 1), threadgroup_memory={0: smem})
    q_bf16 = _bf16(q)[1].astype(np.float32)
    expected = _attention_reference(q_bf16, k_values.astype(np.float32), v_values.astype(np.float32), None, scale)
    # q rounded to bfloat as the kernel holds it (the reference's rounding to half keeps those values); the
    # output accumulates in half, hence the looser tolerance
    assert np.allclose(dst, expected, rtol=5e-3, atol=5e-3)


@pytest.mark.parametrize("op", ["norm", "rms_norm"])
@pytest.mark.parametrize("fused", ["", "_mul", "_mul_add"])
@pytest.mark.parametrize("vec", [False, True])
def test_norm_with_fused_mul_add(ggml, op, fused, vec):
    # ggml fuses norm -> mul(weight) -> add(bias) into one kernel: weight and bias rows broadcast over the
    # rows (nef1 = 1); _4 reads float4 (ne00_t = ne00/4); nth doubles from 32 while below ne00_t
    library, ffi = ggml
    rows, n, eps = 5, 384, 1e-5
    rng = np.random.default_rng(len(op) + len(fused) + vec)
    x = (rng.standard_normal((rows, n)) * 3 + 1).astype(np.float32)
    weight = rng.standard_normal((1, n)).astype(np.float32)
    bias = rng.standard_normal((1, n)).astype(np.float32)
    y = np.zeros_like(x)
    ne00_t = n // 4 if vec else n
    nb1 = 4 * n
    args = _args(ffi, "ggml_metal_kargs_norm", ne00=n, ne00_t=ne00_t, nb1=nb1, nb2=x.nbytes, nb3=x.nbytes, eps=eps,
                 nef1=[rows, 1, 1], nef2=[1, 1, 1], nef3=[1, 1, 1], nbf1=[nb1, nb1, nb1],
                 nbf2=[x.nbytes, nb1, nb1], nbf3=[x.nbytes, nb1, nb1])
    fn = library.get_kernel_function(f"kernel_{op}{fused}_f32" + ("_4" if vec else ""))
    nth = 32
    while nth < ne00_t and nth < fn.max_threads:
        nth *= 2
    nth = min(nth, fn.max_threads, -(-ne00_t // 32) * 32)
    _run(fn, [x, weight, bias, y], args, groups=(rows, 1, 1), group_size=(nth, 1, 1), threadgroup_memory={0: 32 * 4})
    xf = x.astype(np.float64)
    if op == "norm":
        centred = xf - xf.mean(axis=1, keepdims=True)
        expected = centred / np.sqrt((centred ** 2).mean(axis=1, keepdims=True) + eps)
    else:
        expected = xf / np.sqrt((xf ** 2).mean(axis=1, keepdims=True) + eps)
    if fused:
        expected = expected * weight
    if fused == "_mul_add":
        expected = expected + bias
    # float32 sums of 384 values
    assert np.allclose(y, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rows, n", [(2, 1000), (1, 50), (20, 300)])
def test_argmax(ggml, rows, n):
    # ggml_metal_op_argmax: nth doubles from 32 while below n and nth * rows < 256; beyond one SIMD-group the
    # SIMD-groups' (max, index) pairs meet in threadgroup memory
    library, ffi = ggml
    rng = np.random.default_rng(n)
    x = rng.permutation(rows * n).reshape(rows, n).astype(np.float32)  # no ties
    dst = np.full(rows, -7, np.int32)
    nth = 32
    while nth < n and nth * rows < 256:
        nth *= 2
    fn = library.get_kernel_function("kernel_argmax_f32")
    _run(fn, [x, dst], _args(ffi, "ggml_metal_kargs_argmax", ne00=n, nb01=4 * n), groups=(rows, 1, 1),
         group_size=(nth, 1, 1), threadgroup_memory={0: 32 * (4 + 4)})
    assert np.array_equal(dst, x.argmax(axis=1))
