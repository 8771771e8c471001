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
