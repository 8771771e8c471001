"""The cuda backend (backends/cuda/). On every machine: its unavailable path and the NVRTC
compile check of Metal kernels (needs the nvidia-cuda-nvrtc-cu12 and nvidia-cuda-cccl-cu12
wheels, skips without them). With MPS_SHIM_BACKEND=cuda on a machine with an NVIDIA GPU:
Metal's execution rules on the GPU, against numpy."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import mps_shim

ON_CUDA = mps_shim.backend_name() == "cuda"
gpu_only = pytest.mark.skipif(not ON_CUDA, reason="needs MPS_SHIM_BACKEND=cuda and an NVIDIA GPU")

REDUCE = r"""
#include <metal_stdlib>
using namespace metal;
kernel void row_sum(device const float* x [[buffer(0)]], device float* out [[buffer(1)]],
                    constant uint& n [[buffer(2)]], uint g [[threadgroup_position_in_grid]],
                    uint t [[thread_position_in_threadgroup]], uint tg [[threads_per_threadgroup]],
                    uint lane [[thread_index_in_simdgroup]], uint sg [[simdgroup_index_in_threadgroup]]) {
  threadgroup float part[32];
  float s = 0;
  for (uint j = t; j < n; j += tg) s += x[g * n + j];
  s = simd_sum(s);
  if (lane == 0) part[sg] = s;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  if (sg == 0) {
    s = lane < (tg + 31) / 32 ? part[lane] : 0.0f;
    s = simd_sum(s);
    if (lane == 0) out[g] = s;
  }
}
kernel void scale_half(device const half4* x [[buffer(0)]], device half4* y [[buffer(1)]],
                       constant float& k [[buffer(2)]], uint i [[thread_position_in_grid]]) {
  y[i] = half4(float4(x[i]) * k) + exp(half4(0.0h));
}
"""


def _cuda_compiler_missing():
    try:
        mps_shim.compile_check("kernel void k(device float* x, uint i [[thread_position_in_grid]]) { x[i] = 1; }")
    except mps_shim.EngineError as e:
        return str(e)
    return None


nvrtc_only = pytest.mark.skipif(_cuda_compiler_missing() is not None,
                                reason=f"no NVRTC here: {_cuda_compiler_missing()}")


def test_cuda_backend_says_why_it_cannot_run(run_python):
    info = json.loads(run_python("import json, mps_shim; print(json.dumps(mps_shim.runtime_info()))").stdout)
    reason = info["backends"]["cuda"]
    if reason == "available":
        pytest.skip("this machine can run the cuda backend")
    assert "CUDA driver" in reason or "NVRTC" in reason or "libcu++" in reason
    proc = run_python("import mps_shim; mps_shim.ShaderLibrary('kernel void k() {}')",
                      env={"MPS_SHIM_BACKEND": "cuda"})
    assert proc.returncode != 0
    assert "backend 'cuda' (MPS_SHIM_BACKEND) cannot run here: " + reason in proc.stderr


def test_compile_check_refuses_unknown_backends():
    with pytest.raises(mps_shim.EngineError, match="has no compile check"):
        mps_shim.compile_check("kernel void k() {}", backend="metal")


@nvrtc_only
def test_kernels_compile_for_cuda():
    mps_shim.compile_check(REDUCE)


@nvrtc_only
def test_cuda_compile_errors_name_the_metal_line():
    source = "kernel void k(device float* x, uint i [[thread_position_in_grid]]) {\n  x[i] = undefined_name;\n}\n"
    with pytest.raises(mps_shim.CompileError, match=r"library\.metal:2: error: identifier \"undefined_name\""):
        mps_shim.compile_check(source)


@nvrtc_only
def test_cuda_errors_in_library_templates_name_the_users_line():
    source = ("kernel void f(device float4* o, uint i [[thread_position_in_grid]]) {\n"
              "  float4 v = o[i];\n  v.xx = float2(1, 2);\n  o[i] = v;\n}\n")
    with pytest.raises(mps_shim.CompileError) as info:
        mps_shim.compile_check(source)
    assert "library.metal:3: error:" in str(info.value)


@nvrtc_only
def test_a_library_without_kernels_is_compiled_too():
    with pytest.raises(mps_shim.CompileError, match=r"library\.metal:1: error"):
        mps_shim.compile_check("Syntax error")


@nvrtc_only
def test_kernels_ptxas_rejects_optimised_still_assemble(monkeypatch):
    """ptxas of NVRTC 12.9 and 13.0 fails (C7600) on a sum and a prefix sum after lanes returned; the
    backend assembles such a kernel unoptimised. sm_90 runs ptxas (compute_90 would stop at PTX)."""
    monkeypatch.setenv("MPS_SHIM_CUDA_ARCH", "sm_90")
    mps_shim.compile_check("""#include <metal_stdlib>
using namespace metal;
kernel void k(device float* out, constant float* x, constant uint& n, uint i [[thread_position_in_grid]],
              uint lane [[thread_index_in_simdgroup]]) {
  if (i >= n) return;
  if (lane % 4 == 3) { out[2 * i] = -1.0f; return; }
  out[2 * i] = simd_sum(x[i]); out[2 * i + 1] = simd_prefix_exclusive_sum(x[i]);
}
""")


@nvrtc_only
def test_c10_headers_compile_for_cuda():
    torch_include = pytest.importorskip("torch.utils.cpp_extension").include_paths()[0]
    source = "#include <c10/metal/reduction_utils.h>\n#include <c10/metal/utils.h>\n" + REDUCE.replace(
        "s = simd_sum(s);\n  if (lane == 0) part", "s = c10::metal::simd_sum(s);\n  if (lane == 0) part", 1)
    mps_shim.compile_check(source, include_dirs=[torch_include])


# c10's half max and min: `isunordered(a, b) ? NAN : max(a, b)`, a float and a half in one conditional.
CONDITIONAL_NAN = r"""
#include <metal_stdlib>
using namespace metal;
kernel void pick(device const half* h [[buffer(0)]], device const float4* v [[buffer(1)]],
                 device half* oh [[buffer(2)]], device float4* ov [[buffer(3)]], device float* of [[buffer(4)]],
                 uint i [[thread_position_in_grid]]) {
  const bool nan_here = i % 2 == 1;
  oh[i] = nan_here ? NAN : h[i];
  ov[i] = nan_here ? NAN : v[i];
  of[i] = nan_here ? NAN : float(h[i]) * 2;
}
"""


@nvrtc_only
def test_a_nan_beside_a_half_in_a_conditional_compiles_for_cuda():
    mps_shim.compile_check(CONDITIONAL_NAN)


def test_a_nan_beside_a_half_in_a_conditional_takes_the_other_operands_type():
    n = 6
    h = np.arange(1, n + 1, dtype=np.float16)
    v = np.arange(4 * n, dtype=np.float32).reshape(n, 4)
    oh, ov, of = np.zeros(n, np.float16), np.zeros((n, 4), np.float32), np.zeros(n, np.float32)
    mps_shim.compile_shader(CONDITIONAL_NAN).pick(h, v, oh, ov, of, threads=n)
    mps_shim.synchronize()
    odd = np.arange(n) % 2 == 1
    assert np.isnan(oh[odd]).all() and np.isnan(ov[odd]).all() and np.isnan(of[odd]).all()
    np.testing.assert_array_equal(oh[~odd], h[~odd])
    np.testing.assert_array_equal(ov[~odd], v[~odd])
    np.testing.assert_array_equal(of[~odd], h[~odd].astype(np.float32) * 2)


@gpu_only
def test_row_sum_and_half_on_the_gpu():
    lib = mps_shim.compile_shader(REDUCE)
    rows, n = 5, 1000
    x = np.random.default_rng(0).standard_normal((rows, n)).astype(np.float32)
    out = np.zeros(rows, np.float32)
    lib.row_sum(x, out, np.uint32(n), threads=rows * 96, group_size=96)
    np.testing.assert_allclose(out, x.sum(1), rtol=1e-5, atol=1e-4)
    h = np.linspace(-2, 2, 64, dtype=np.float16)
    y = np.zeros_like(h)
    lib.scale_half(h, y, np.float32(3.0), threads=16)
    np.testing.assert_array_equal(y, (h.astype(np.float32) * 3).astype(np.float16) + np.float16(1))


BARRIER_AFTER_RETURN = r"""
#include <metal_stdlib>
using namespace metal;
// Odd threads return before the barrier; Apple's GPUs let the others pass it.
kernel void evens(device int* out [[buffer(0)]], uint t [[thread_position_in_threadgroup]],
                  uint tg [[threads_per_threadgroup]], uint g [[threadgroup_position_in_grid]]) {
  threadgroup int shared[256];
  shared[t] = int(t) * 10;
  if (t % 2) return;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  out[g * tg + t] = shared[(t + 2) % tg] + 1;
}
// An edge group of a grid that is not a multiple of the group: its real size and dense numbering.
kernel void edges(device uint4* out [[buffer(0)]], uint2 p [[thread_position_in_grid]],
                  uint2 size [[threads_per_threadgroup]], uint index [[thread_index_in_threadgroup]],
                  uint lane [[thread_index_in_simdgroup]], uint2 grid [[threads_per_grid]]) {
  out[p.y * grid.x + p.x] = uint4(size.x, size.y, index, simd_sum(1u) * 1000u + lane);
}
"""


@gpu_only
def test_returned_threads_do_not_block_a_barrier():
    lib = mps_shim.compile_shader(BARRIER_AFTER_RETURN)
    out = np.full(128, -1, np.int32)
    lib.evens(out, threads=128, group_size=64)
    t = np.arange(64)
    want = np.where(t % 2 == 0, (t + 2) % 64 * 10 + 1, -1)
    np.testing.assert_array_equal(out, np.concatenate([want, want]))


@gpu_only
def test_edge_groups_are_numbered_densely():
    lib = mps_shim.compile_shader(BARRIER_AFTER_RETURN)
    gx, gy = 20, 3
    out = np.zeros((gy, gx, 4), np.uint32)
    fn = lib.library.get_kernel_function("edges") if hasattr(lib, "library") else None
    shader = getattr(lib, "edges")
    shader(out, threads=[gx, gy], group_size=[8, 2])
    for y in range(gy):
        for x in range(gx):
            sx = 8 if x < 16 else 4
            sy = 2 if y < 2 else 1
            index = (y % 2) * sx + x % 8
            count = sx * sy
            lanes = min(32, count - index // 32 * 32)
            assert tuple(out[y, x]) == (sx, sy, index, lanes * 1000 + index % 32), (x, y)


FACTS = r"""
#include <metal_stdlib>
using namespace metal;
template <int N>
[[kernel, max_total_threads_per_threadgroup(N * 32)]]
void widths(device float3* out [[buffer(0)]], constant int2& pair [[buffer(1)]],
            constant float* table [[buffer(2)]], uint i [[thread_position_in_grid]]) {
  out[i] = float3(pair.x, pair.y, table[0] + N);
}
template [[host_name("widths_2")]] [[kernel]] void widths<2>(device float3*, constant int2&, constant float*, uint);
"""


@gpu_only
def test_cuda_modules_record_what_the_host_kernel_table_records(run_python):
    """Value sizes, reference-ness, writability and a constant-expression max_total_threads come from
    the compiler on both engines: the same description."""
    code = ("import json, mps_shim, numpy as np; lib = mps_shim.compile_shader(%r); "
            "out = np.zeros((4, 4), np.float32); "
            "lib.widths_2(out, np.array([3, 4], np.int32), np.array([0.5], np.float32), threads=4, group_size=4); "
            "print(json.dumps([lib.library.kernels['widths_2'], out.tolist()]))" % FACTS)
    described = {}
    for backend in ("host", "cuda"):
        env = dict(os.environ, MPS_SHIM_BACKEND=backend)
        kernel, out = json.loads(run_python(code, env=env).stdout)
        assert out == [[3, 4, 2.5, 0]] * 4, backend
        described[backend] = {"max_threads": kernel["max_threads"],
                              "params": [(p["name"], p["size"], p["reference"], p["writable"]) for p in kernel["params"]]}
    assert described["cuda"] == described["host"]
    assert described["cuda"]["max_threads"] == 64
    assert described["cuda"]["params"][:3] == [("out", 12, 0, 1), ("pair", 8, 1, 0), ("table", 4, 0, 0)]


@gpu_only
@pytest.mark.parametrize("layout", ["row_major", "transposed_views", "strided_output", "batched_broadcast"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_products_run_through_cublas_on_device_memory(layout, dtype):
    """The ATen products on device tensors: cuBLAS for every layout it takes, against numpy."""
    from mps_shim import Tensor, aten
    rng = np.random.default_rng(3)
    tol = 1e-4 if dtype == np.float32 else 2e-2
    a = rng.standard_normal((2, 33, 17)).astype(dtype)
    b = rng.standard_normal((2, 17, 9)).astype(dtype)
    if layout == "row_major":
        out = np.zeros((33, 9), dtype)
        aten.mm_out(out, a[0], b[0])
        want = a[0].astype(np.float32) @ b[0].astype(np.float32)
    elif layout == "transposed_views":
        out = np.zeros((33, 9), dtype)
        at, bt = np.ascontiguousarray(a[0].T), np.ascontiguousarray(b[0].T)
        aten.mm_out(out, Tensor.from_numpy(at).view((33, 17), (1, 33), 0), Tensor.from_numpy(bt).view((17, 9), (1, 17), 0))
        want = a[0].astype(np.float32) @ b[0].astype(np.float32)
    elif layout == "strided_output":
        storage = np.full((9, 40), -7, dtype)
        base = Tensor.from_numpy(storage)
        aten.mm_out(base.view((33, 9), (1, 40), 3), a[0], b[0])  # a column-major window of storage
        base.sync_to_host()
        out = storage[:, 3:36].T
        want = a[0].astype(np.float32) @ b[0].astype(np.float32)
        assert (storage[:, :3] == -7).all() and (storage[:, 36:] == -7).all()
    else:
        out = np.zeros((2, 33, 9), dtype)
        aten.bmm_out(out, a, Tensor.from_numpy(np.ascontiguousarray(b[0])).view((2, 17, 9), (0, 9, 1), 0))
        want = a.astype(np.float32) @ b[0].astype(np.float32)
    np.testing.assert_allclose(np.asarray(out, np.float32), want, rtol=tol, atol=tol)
    assert mps_shim.runtime_info()["gemm"].startswith("cublas")


@gpu_only
def test_host_ops_run_on_device_memory_through_host_copies():
    """An op without a device implementation (sort) reads and writes device tensors through host
    copies; the op's outputs are device tensors."""
    from mps_shim import aten
    x = np.array([[3, 1, 2], [9, 8, 7]], np.float32)
    values, indices = aten.sort(x, 1, 0)
    np.testing.assert_array_equal(values.numpy(), [[1, 2, 3], [7, 8, 9]])
    np.testing.assert_array_equal(indices.numpy(), [[1, 2, 0], [2, 1, 0]])


@gpu_only
def test_copies_between_device_views_keep_their_neighbours():
    """copy_ between device views (strided, converting dtype) goes through host copies of the spans
    and leaves the rest of the destination's storage as it was."""
    from mps_shim import Tensor
    storage = np.full(12, -1, np.float32)
    base = Tensor.from_numpy(storage)
    src = Tensor.from_numpy(np.arange(6, dtype=np.float16))
    base.view((3,), (3,), 1).copy_(src.view((3,), (2,), 0))  # every other half into every third float
    base.sync_to_host()
    np.testing.assert_array_equal(storage, [-1, 0, -1, -1, 2, -1, -1, 4, -1, -1, -1, -1])


# --- The Python layer's path for device memory that is not the host's, run on the host backend: with
# device_memory_is_host() False, arrays and DLPack imports bound to kernels are device copies, and the
# results come back to them after the dispatch.
WRITE_THROUGH = r"""
#include <metal_stdlib>
using namespace metal;
struct Rows { metal::array<device float*, 3> row; };
kernel void scale_rows(constant Rows& rows, device float* total, uint i [[thread_position_in_grid]]) {
  float s = 0;
  for (int r = 0; r < 3; ++r) { rows.row[r][i] *= 2; s += rows.row[r][i]; }
  total[i] = s;
}
"""


@pytest.fixture
def staged_as_on_a_gpu(monkeypatch):
    from mps_shim import tensor

    if mps_shim.runtime_info().get("backend") != "host":
        pytest.skip("the host backend stands in for a GPU's memory here")
    monkeypatch.setattr(tensor, "_DEVICE_MEMORY_IS_HOST", False)


def test_dlpack_imports_are_device_copies_whose_results_come_back(staged_as_on_a_gpu):
    torch = pytest.importorskip("torch")
    rows = [torch.arange(4, dtype=torch.float32) + 10 * r for r in range(3)]
    want_rows = [r * 2 for r in rows]
    imported = [mps_shim.from_dlpack(r) for r in rows]
    assert all(t.data_ptr != r.data_ptr() for t, r in zip(imported, rows))  # copies, not the host memory
    total = np.zeros(4, np.float32)
    mps_shim.compile_shader(WRITE_THROUGH).scale_rows(imported, total, threads=4)
    for got, want in zip(rows, want_rows):  # written through the argument buffer, copied back
        assert torch.equal(got, want)
    np.testing.assert_array_equal(total, sum(w.numpy() for w in want_rows))


def test_numpy_arguments_are_device_copies_whose_results_come_back(staged_as_on_a_gpu):
    rows = [np.arange(4, dtype=np.float32) + 10 * r for r in range(3)]
    want = [r * 2 for r in rows]
    total = np.zeros(4, np.float32)
    mps_shim.compile_shader(WRITE_THROUGH).scale_rows(rows, total, threads=4)
    for got, w in zip(rows, want):
        np.testing.assert_array_equal(got, w)
    np.testing.assert_array_equal(total, sum(want))


def test_a_view_of_a_device_copy_sends_results_back_to_the_array(staged_as_on_a_gpu):
    out = np.zeros(8, np.float32)
    lib = mps_shim.compile_shader("kernel void fill(device float* y, uint i [[thread_position_in_grid]]) "
                                  "{ y[i] = float(i) + 1; }")
    lib.fill(mps_shim.Tensor.from_numpy(out).view((4,), storage_offset=2), threads=4)
    np.testing.assert_array_equal(out, [0, 0, 1, 2, 3, 4, 0, 0])
