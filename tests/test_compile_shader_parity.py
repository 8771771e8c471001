"""compile_shader against what PyTorch's own tests of torch.mps.compile_shader check.

Each test here covers the behaviour one of PyTorch's tests checks (test_mps.py's
TestMetalLibrary and the C++ mps_test_metal_library.cpp), written anew, with numpy
arrays in place of MPS tensors and numpy references. Tests of the <c10/metal/...>
headers need an installed torch (for the headers only) and skip without it.
Not applicable here: Metal capture, and loading Apple's precompiled .metallib.
"""
import numpy as np
import pytest

import mps_shim
from mps_shim.shader import torch_include_dir

try:
    import ml_dtypes

    BF16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover - ml_dtypes comes with the test requirements
    BF16 = None


@pytest.fixture(scope="module")
def c10():
    """Skips unless torch's c10/metal headers are installed."""
    if torch_include_dir() is None:
        pytest.skip("torch is not installed (pip install torch==2.13.0): no c10/metal headers")


# ---- libraries, kernels, grids -------------------------------------------------------------------------------

def test_an_empty_library_has_no_kernels():
    lib = mps_shim.compile_shader("// nothing here")
    assert dir(lib) == [] and lib.library.kernel_names == []


@pytest.mark.parametrize("source", ["printf(x);", "Syntax error", "kernel void f(device float* p) { p[0] = ; }"])
def test_compile_errors_are_syntax_errors(source):
    with pytest.raises(SyntaxError) as info:
        mps_shim.compile_shader(source)
    assert isinstance(info.value, mps_shim.CompileError) and "error" in str(info.value)


def test_arange_in_half_sizes_the_grid_from_the_first_tensor():
    lib = mps_shim.compile_shader("""
    kernel void arange(device half* x, uint i [[thread_position_in_grid]]) { x[i] = i; }
    """)
    x = np.zeros(12, np.float16)
    lib.arange(x)
    assert np.array_equal(x, np.arange(12, dtype=np.float16))


def test_dispatch_in_three_dimensions_and_dir_lists_the_kernels():
    lib = mps_shim.compile_shader("""
    kernel void along_x(device float* x, uint3 p [[thread_position_in_grid]]) { x[p.x + p.y + p.z] = p.x; }
    kernel void along_y(device float* x, uint3 p [[thread_position_in_grid]]) { x[p.x + p.y + p.z] = p.y; }
    kernel void along_z(device float* x, uint3 p [[thread_position_in_grid]]) { x[p.x + p.y + p.z] = p.z; }
    """)
    assert set(dir(lib)) == {"along_x", "along_y", "along_z"}
    outs = [np.zeros(12, np.float32) for _ in range(3)]
    lib.along_x(outs[0])
    lib.along_y(outs[1], threads=(1, 12))
    lib.along_z(outs[2], threads=(1, 1, 12))
    for out in outs:
        assert np.array_equal(out, np.arange(12, dtype=np.float32))


ARANGE = """
kernel void arange(device float* x, constant float& start, constant float& step,
                   uint i [[thread_position_in_grid]]) {
    x[i] = start + i * step;
}
"""


def test_scalar_arguments_by_reference():
    lib = mps_shim.compile_shader(ARANGE)
    x = np.zeros(12, np.float32)
    lib.arange(x, 3.14, 0.5)
    assert np.allclose(x, np.float32(3.14) + np.arange(12, dtype=np.float32) * np.float32(0.5), rtol=0, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dimensionless_cpu_torch_tensors_are_values(dtype):
    torch = pytest.importorskip("torch")
    lib = mps_shim.compile_shader(ARANGE)
    x = np.zeros(12, np.float32)
    lib.arange(x, 3.14, torch.tensor(0.5, dtype=getattr(torch, dtype)))  # float64 narrowed to float, as torch does
    assert np.allclose(x, 3.14 + 0.5 * np.arange(12), atol=1e-5)


def test_cpu_torch_tensors_with_dimensions_are_refused():
    torch = pytest.importorskip("torch")
    lib = mps_shim.compile_shader("kernel void full(device half* x) { x[0] = 1.0; }")
    with pytest.raises(RuntimeError, match="torch tensor on the cpu device"):
        lib.full(torch.rand(3))
    with pytest.raises(RuntimeError, match="cpu tensor"):
        lib.full(mps_shim.Tensor.zeros(3, np.float16, device="cpu"))


def test_lists_pack_into_vectors_and_casts_convert_values():
    lib = mps_shim.compile_shader("""
    kernel void all_half(device half* x, constant half2& start_step, uint i [[thread_position_in_grid]]) {
        x[i] = start_step.x + i * start_step.y;
    }
    kernel void half_and_float(device half* x, constant half& start, constant float& step,
                               uint i [[thread_position_in_grid]]) {
        x[i] = start + i * step;
    }
    kernel void ints(device int* x, constant int3& v, uint i [[thread_position_in_grid]]) { x[i] = v[i]; }
    kernel void longs(device long* x, constant long* v, uint i [[thread_position_in_grid]]) { x[i] = v[i]; }
    kernel void bf(device float* x, constant bfloat2& v, uint i [[thread_position_in_grid]]) { x[i] = v[i]; }
    """)
    expected = (np.float16(3.14) + np.arange(12) * np.float16(0.5)).astype(np.float16)
    x = np.zeros(12, np.float16)
    lib.all_half(x, [3.14, 0.5], arg_casts="fp16")
    assert np.array_equal(x, expected)
    y = np.zeros(12, np.float16)
    lib.half_and_float(y, 3.14, 0.5, arg_casts={1: "fp16"})  # only argument 1 becomes half
    assert np.array_equal(x, y)
    z = np.zeros(3, np.int32)
    lib.ints(z, [7, -8, 9], arg_casts="int32")
    assert z.tolist() == [7, -8, 9]
    w = np.zeros(4, np.int64)
    lib.longs(w, (1, 2, 3, 2 ** 40))  # ints pack as int64 without a cast
    assert w.tolist() == [1, 2, 3, 2 ** 40]
    b = np.zeros(2, np.float32)
    lib.bf(b, [1.00390625, -3.0], arg_casts="bf16")  # 1 + 2^-8 rounds to even: 1.0
    assert b.tolist() == [1.0, -3.0]


def test_bad_casts_name_what_is_wrong():
    lib = mps_shim.compile_shader(ARANGE)
    x = np.zeros(4, np.float32)
    with pytest.raises(RuntimeError, match="unknown dtype 'fp7'"):
        lib.arange(x, 1.0, 2.0, arg_casts="fp7")
    with pytest.raises(RuntimeError, match="not an argument index"):
        lib.arange(x, 1.0, 2.0, arg_casts={5: "fp16"})
    with pytest.raises(RuntimeError, match="arg_casts must be"):
        lib.arange(x, 1.0, 2.0, arg_casts=[1])


def test_error_checking_raises_torchs_classes():
    lib = mps_shim.compile_shader("kernel void full(device half* x) { x[0] = 1.0; }")
    t = np.zeros(4, np.float16)
    with pytest.raises(RuntimeError):
        lib.non_existing(t)
    assert not hasattr(lib, "non_existing")
    with pytest.raises(RuntimeError):
        lib.full(12)  # no tensor to size the grid (and a value cannot back a device buffer)
    max_threads = lib.full.max_threads_per_threadgroup
    with pytest.raises(ValueError, match="Threadgroup size exceeds"):
        lib.full(t, group_size=max_threads + 5)
    with pytest.raises(ValueError, match="Threadgroup size exceeds"):
        lib.full(t, threads=(3, max_threads), group_size=(3, max_threads))
    assert not t[1:].any()


def test_kernel_attributes():
    lib = mps_shim.compile_shader("""
    #include <metal_stdlib>
    using namespace metal;
    kernel void bare() {}
    [[max_total_threads_per_threadgroup(64)]]
    kernel void shared(device float* x, uint i [[thread_position_in_threadgroup]]) {
        threadgroup float tile[64];
        threadgroup half2 pairs[8];
        tile[i] = x[i];
        threadgroup_barrier(mem_flags::mem_threadgroup);
        x[i] = tile[63 - i];
        pairs[0] = half2(0);
    }
    """)
    assert lib.bare.max_threads_per_threadgroup == 1024
    assert lib.bare.thread_execution_width == 32
    assert lib.bare.static_thread_group_memory_length == 0
    assert lib.shared.max_threads_per_threadgroup == 64
    assert lib.shared.static_thread_group_memory_length == 64 * 4 + 8 * 4
    x = np.arange(64, dtype=np.float32)
    lib.shared(x, group_size=64)
    assert np.array_equal(x, np.arange(64, dtype=np.float32)[::-1])


def test_two_dimensional_grid_with_strides_from_a_list():
    lib = mps_shim.compile_shader("""
    kernel void full(device float* t, constant ulong2& strides, uint2 p [[thread_position_in_grid]]) {
        t[p.x * strides.x + p.y * strides.y] = p.x + 33.0 * p.y;
    }
    """)
    t = np.zeros((16, 16), np.float32)
    lib.full(t, [s // 4 for s in t.strides], threads=(16, 16))
    assert t.sum() == 65280
    assert np.array_equal(t, np.arange(16)[:, None] + 33.0 * np.arange(16)[None, :])


def test_lambda_expressions():
    lib = mps_shim.compile_shader("""
    kernel void lambdas(device float* x, uint i [[thread_position_in_grid]]) {
        auto twice = [](float v) { return v * 2; };
        x[i] = twice(x[i]);
    }
    """)
    x = np.array([1, 2, 3, 4], np.float32)
    lib.lambdas(x)
    assert x.tolist() == [2, 4, 6, 8]


def test_a_tensor_backs_a_constant_reference_as_metal_binds():
    lib = mps_shim.compile_shader("""
    kernel void offset(device long* out, constant long2& seed_offset, uint i [[thread_position_in_grid]]) {
        out[i] = seed_offset.x * 1000 + seed_offset.y + i;
    }
    """)
    out = np.zeros(4, np.int64)
    lib.offset(out, np.array([42, 7], np.int64))
    assert out.tolist() == [42007, 42008, 42009, 42010]
    with pytest.raises(RuntimeError, match="reads 16 bytes, but the tensor bound to it holds 8"):
        lib.offset(out, np.array([42], np.int64))


# ---- argument buffers ------------------------------------------------------------------------------------------

ARGUMENT_BUFFER = """
constant constexpr auto nbuffers = 64;
struct Inputs { metal::array<device float*, nbuffers> args; };
kernel void sum_all(device float* output, constant Inputs& inputs, uint i [[thread_position_in_grid]]) {
    output[i] = 0;
    for (auto j = 0; j < nbuffers; ++j) output[i] += inputs.args[j][i];
}
"""


def test_a_tuple_of_tensors_is_an_argument_buffer():
    lib = mps_shim.compile_shader(ARGUMENT_BUFFER)
    rng = np.random.default_rng(1)
    base = rng.random((64, 32), dtype=np.float32)
    inputs = tuple(base)  # 64 row views, each at its own offset into one buffer
    out = np.zeros(32, np.float32)
    lib.sum_all(out, inputs)
    expected = np.zeros(32, np.float32)
    for row in inputs:
        expected += row
    assert np.array_equal(out, expected)
    tensors = [mps_shim.Tensor.from_numpy(np.ascontiguousarray(r)) for r in base]
    out2 = np.zeros(32, np.float32)
    lib.sum_all(out2, tensors)  # a list of Tensors too
    assert np.array_equal(out2, expected)


def test_argument_buffers_of_torch_tensors():
    torch = pytest.importorskip("torch")
    lib = mps_shim.compile_shader(ARGUMENT_BUFFER)
    rows = [mps_shim.from_dlpack(r) for r in torch.rand(64, 32).unbind(0)]
    out = np.zeros(32, np.float32)
    lib.sum_all(out, rows)
    assert np.allclose(out, np.stack([r.numpy() for r in rows]).sum(0), atol=1e-5)
    with pytest.raises(RuntimeError, match="element 0: a torch tensor on the cpu device"):
        lib.sum_all(out, list(torch.rand(64, 32).unbind(0)))


# ---- complex arrays ------------------------------------------------------------------------------------------

def test_complex_arrays_are_pairs_of_values():
    lib = mps_shim.compile_shader("""
    kernel void conj_mul(device float2* out, constant float2* a, constant float2* b, uint i [[thread_position_in_grid]]) {
        out[i] = float2(a[i].x * b[i].x + a[i].y * b[i].y, a[i].y * b[i].x - a[i].x * b[i].y);
    }
    kernel void swap(device ulong2* x, uint i [[thread_position_in_grid]]) { x[i] = x[i].yx; }  // Metal has no double
    """)
    rng = np.random.default_rng(2)
    a = (rng.standard_normal(16) + 1j * rng.standard_normal(16)).astype(np.complex64)
    b = (rng.standard_normal(16) + 1j * rng.standard_normal(16)).astype(np.complex64)
    out = np.zeros(16, np.complex64)
    lib.conj_mul(out, a, b)
    assert np.allclose(out, a * np.conj(b), atol=1e-5)
    d = np.array([1 + 2j, -3 + 0.5j], np.complex128)
    lib.swap(d)
    assert d.tolist() == [2 + 1j, 0.5 - 3j]
    t = mps_shim.Tensor.from_numpy(a)
    assert t.dtype == np.complex64 and np.array_equal(t.numpy(), a)


# ---- c10/metal headers -----------------------------------------------------------------------------------------

def test_c10_headers_are_found(c10):
    assert dir(mps_shim.compile_shader("#include <c10/metal/special_math.h>")) == []


def test_a_missing_header_points_at_the_include_line():
    with pytest.raises(SyntaxError, match=r"library.metal:2:.*no_such_header.h"):
        mps_shim.compile_shader("// first line\n#include <no_such_header.h>\n")


def test_randn_with_a_seed_tensor(c10):
    lib = mps_shim.compile_shader("""
    #include <c10/metal/random.h>
    kernel void randn(device float* out, constant long2& seed_offset, uint i [[thread_position_in_grid]]) {
        out[i] = c10::metal::randn(seed_offset.x, seed_offset.y + i);
    }
    """)
    out = np.zeros(100_000, np.float32)
    lib.randn(out, np.array([42, 0], np.int64))
    assert abs(out.mean()) < 0.01 and abs(out.std() - 1) < 0.02


def test_safe_mod_from_utils(c10):
    lib = mps_shim.compile_shader("""
    #include <c10/metal/utils.h>
    kernel void func(device int* out, uint i [[thread_position_in_grid]]) {
        out[i] = c10::metal::safe_mod(int(i / 65536), 6);
    }
    """)
    out = np.full(128, -1, np.int32)
    lib.func(out)
    assert not out.any()


def test_the_error_buffer_raises_what_the_kernel_reported(c10):
    lib = mps_shim.compile_shader("""
    #include <c10/metal/error.h>
    kernel void check_bounds(device float* x, constant int& limit, device c10::metal::ErrorMessages* error_buf,
                             uint i [[thread_position_in_grid]]) {
        if (int(i) >= limit) {
            TORCH_REPORT_ERROR(error_buf, "Index ", i, " exceeds limit ", limit);
            x[i] = -1.0;
            return;
        }
        x[i] = i;
    }
    """)
    x = np.zeros(10, np.float32)
    lib.check_bounds(x, 10, error_buf_idx=2)
    assert np.array_equal(x, np.arange(10, dtype=np.float32))
    y = np.zeros(10, np.float32)
    with pytest.raises(RuntimeError, match=r"Index [5-9] exceeds limit 5 \(.*:\d+, in check_bounds\); 4 more"):
        lib.check_bounds(y, 5, error_buf_idx=2)
    mps_shim.synchronize()  # reported once, not again
    lib.check_bounds(x, 10, error_buf_idx=2)  # the buffer was emptied
    with pytest.raises(RuntimeError, match="error_buf_idx=7 is not one of its buffer indices"):
        lib.check_bounds(x, 10, error_buf_idx=7)


def _metal_type(dtype):
    return {"float32": "float", "float16": "half", "bfloat16": "bfloat", "int32": "int", "int64": "long"}[dtype]


def _np_dtype(dtype):
    if dtype == "bfloat16":
        if BF16 is None:
            pytest.skip("ml_dtypes is not installed")
        return BF16
    return np.dtype(dtype)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "int32",
                                   pytest.param("int64", marks=pytest.mark.checked_reports(reason="c10's 64-bit reductions shuffle in inactive lanes (partial or divergent SIMD-groups): checked mode reports it"))])
def test_reduction_utils(c10, dtype):
    t = _metal_type(dtype)
    lib = mps_shim.compile_shader(f"""
    #include <c10/metal/reduction_utils.h>
    kernel void do_sum(device {t}* out, constant {t}* inp, uint i [[thread_position_in_grid]]) {{
        out[i] = c10::metal::simd_sum(inp[i]);
    }}
    kernel void do_max(device {t}* out0, device int* out1, constant {t}* inp, uint i [[thread_position_in_grid]]) {{
        auto rc = c10::metal::simd_argmax(inp[i]);
        out0[i] = rc.first;
        out1[i] = rc.second;
    }}
    """)
    dt = _np_dtype(dtype)
    rng = np.random.default_rng(3)
    x = (rng.integers(-9, 10, 28) if dt.kind in "iu" else rng.uniform(-9, 9, 28)).astype(dt)
    y = np.zeros(28, dt)
    lib.do_sum(y, x)
    exact = x.astype(np.float64).sum()
    # torch's float16 tolerance (atol 1e-2, rtol 1e-3): lanes combine in a tree, one rounding per level
    # (lane by lane, the error reached 0.039); bfloat16 keeps 8 bits, about 1/8 at these sums.
    tolerance = {"float16": 1e-2 + 1e-3 * abs(exact), "bfloat16": 0.125 + 8e-3 * abs(exact)}.get(dtype, 1e-4)
    assert np.all(np.abs(y.astype(np.float64) - exact) <= tolerance), (y, exact)
    z0, z1 = np.zeros(28, dt), np.zeros(28, np.int32)
    lib.do_max(z0, z1, x)
    assert np.all(z0 == x.max()) and np.all(z1 == int(np.argmax(x.astype(np.float64))))
    if dt.kind == "f" or dtype == "bfloat16":
        x[25] = np.nan
        lib.do_max(z0, z1, x)
        assert np.all(np.isnan(z0.astype(np.float32))) and np.all(z1 == 25)


def test_reduction_utils_on_complex(c10):
    lib = mps_shim.compile_shader("""
    #include <c10/metal/reduction_utils.h>
    kernel void do_sum(device float2* out, constant float2* inp, uint i [[thread_position_in_grid]]) {
        out[i] = c10::metal::simd_sum(inp[i]);
    }
    kernel void do_prod(device float2* out, constant float2* inp, uint i [[thread_position_in_grid]]) {
        out[i] = c10::metal::simd_prod(inp[i]);
    }
    """)
    rng = np.random.default_rng(4)
    x = (rng.standard_normal(28) + 1j * rng.standard_normal(28)).astype(np.complex64)
    y = np.zeros(28, np.complex64)
    lib.do_sum(y, x)
    assert np.max(np.abs(y - x.sum())) < 1e-4
    p = np.ones(32, np.complex64)
    p[:4] = [1 + 2j, 3 - 1j, -1 + 1j, 2 + 0j]
    q = np.zeros(32, np.complex64)
    lib.do_prod(q, p, threads=(32,), group_size=(32,))
    assert abs(q[0] - p.prod()) < 1e-4  # lane 0 holds the product


@pytest.mark.parametrize("dtype", ["float32", "float16", "int32", "bfloat16"])
def test_atomic_add_from_c10(c10, dtype):
    t = _metal_type(dtype)
    lib = mps_shim.compile_shader(f"""
    #include <c10/metal/atomic.h>
    using namespace c10::metal;
    kernel void atomic_add(device AtomicType<{t}>::type* out, constant {t}* inc, uint i [[thread_position_in_grid]]) {{
        AtomicType<{t}>::atomic_add(out, i & 1 ? 3 : 4, inc[i]);
    }}
    """)
    dt = _np_dtype(dtype)
    x = np.arange(16).astype(dt)
    inc = np.arange(16).astype(dt)
    lib.atomic_add(x, inc)
    assert float(x[3]) == 3 + sum(range(1, 16, 2)) and float(x[4]) == 4 + sum(range(0, 16, 2))


def test_transpose_with_int32_casts_and_a_3d_grid():
    lib = mps_shim.compile_shader("""
    kernel void nchw_to_nhwc(constant float* src, device float* dst, constant int2& hw,
                             uint3 p [[thread_position_in_grid]]) {
        const int c = p.x, n = p.z;
        if (c >= hw.x) return;
        for (int s = 0; s < hw.y; ++s) dst[(n * hw.y + s) * hw.x + c] = src[(n * hw.x + c) * hw.y + s];
    }
    """)
    src = np.arange(2 * 11 * 35, dtype=np.float32).reshape(2, 11, 35)
    dst = np.zeros((2, 35, 11), np.float32)
    lib.nchw_to_nhwc(src, dst, [11, 35], threads=(256, 1, 2), group_size=(256, 1, 1), arg_casts="int32")
    assert np.array_equal(dst, src.transpose(0, 2, 1))


def test_include_dirs_and_the_environment(tmp_path, monkeypatch):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "scale.h").write_text("inline float scale(float x) { return x * SCALE; }\n")
    source = "#define SCALE 3\n#include <mine/scale.h>\n" \
             "kernel void k(device float* x, uint i [[thread_position_in_grid]]) { x[i] = scale(x[i]); }\n"
    x = np.ones(4, np.float32)
    mps_shim.compile_shader(source, include_dirs=[tmp_path]).k(x)
    assert x.tolist() == [3] * 4
    monkeypatch.setenv("MPS_SHIM_INCLUDE_PATH", f"/no/such/folder:{tmp_path}")
    mps_shim.compile_shader(source).k(x)
    assert x.tolist() == [9] * 4
    # an edited header is compiled anew (the kernel cache keys on the included text)
    (tmp_path / "mine" / "scale.h").write_text("inline float scale(float x) { return x + SCALE; }\n")
    mps_shim.compile_shader(source).k(x)
    assert x.tolist() == [12] * 4
    monkeypatch.delenv("MPS_SHIM_INCLUDE_PATH")
    with pytest.raises(SyntaxError, match="mine/scale.h"):
        mps_shim.compile_shader(source)
    with pytest.raises(RuntimeError, match="include folder '/no/such/folder' is not a folder"):
        mps_shim.ShaderLibrary(source, include_dirs=["/no/such/folder"])


def test_a_header_error_points_at_the_header(tmp_path):
    (tmp_path / "broken.h").write_text("// fine\ninline float f(float x) { return x +; }\n")
    with pytest.raises(SyntaxError, match=r"broken.h:2:"):
        mps_shim.compile_shader("#include <broken.h>\nkernel void k(device float* x) { x[0] = f(1); }\n",
                                include_dirs=[str(tmp_path)])


def test_values_up_to_four_kibibytes():
    lib = mps_shim.compile_shader("""
    struct Table { float v[1024]; };
    kernel void pick(device float* out, constant Table& t, uint i [[thread_position_in_grid]]) { out[i] = t.v[1023 - i]; }
    """)
    out = np.zeros(1024, np.float32)
    lib.pick(out, list(np.arange(1024, dtype=np.float32)))
    assert np.array_equal(out, np.arange(1024, dtype=np.float32)[::-1])
    with pytest.raises(RuntimeError, match="needs 4096 bytes but 4092 were bound"):
        lib.pick(out, [1.0] * 1023)
    with pytest.raises(RuntimeError, match="1 to 4096 bytes"):
        lib.pick(out, [1.0] * 1025)

